#!/usr/bin/python3
"""tests/ref_hubert.py OUTDIR - PyTorch reference for the C HuBERT encoder.

A compact re-implementation of Hugging Face `HubertModel` (inference, eval
mode) whose state-dict names are exactly HF's, cross-checked inside this
script against torchaudio's independent wav2vec2/HuBERT implementation
(`torchaudio.models.wav2vec2_model`, which loads HF state dicts unchanged).
Everything runs in float64 from float32 weights; outputs are stored float32.

Writes to OUTDIR:
  hubert_base_small.h5        weights, "base" variant: group-norm feature
                              encoder (GroupNorm after conv 0 only, no conv
                              bias), post-LN transformer, conv_dim 512 x 7,
                              hidden 64, 2 layers, 4 heads, FFN 128,
                              pos conv kernel 128 / 16 groups; holds
                              masked_spec_embed (to be ignored).
  hubert_large_small.h5       weights, "large" variant: layer-norm feature
                              encoder with conv bias, pre-LN ("stable layer
                              norm") transformer + final LayerNorm,
                              conv_dim [64,64,96,96,128,128,160], hidden 96,
                              3 layers, 4 heads, FFN 256, pos conv kernel 16 /
                              8 groups; no masked_spec_embed.
  hubert_large_small_bf16.h5  the same weights stored as bfloat16.
  hubert_base_io.h5, hubert_large_io.h5   inputs and outputs (below).
  hubert_frames.txt           "samples frames" per line (HF frame count).

Weight files: see tools/convert_hf.py (written with its writer).

IO file layout (F = frames, H = hidden, L = num_hidden_layers):
  /wave                      [T] float32, T = 24000 (1.5 s synthetic speech-like
                             signal: gliding harmonics + noise, 16 kHz)
  /single/conv.{i}           [C_i, T_i] output of conv layer i (after norm+GELU)
  /single/extract_features   [F, C_last] feature-encoder output (time-major)
  /single/projected          [F, H] after feature_projection
  /single/pos_conv           [F, H] positional conv embedding (after GELU)
  /single/hidden_states      [L+1, F, H] HF `output_hidden_states` order:
                             post-LN: [LN(x+pos), after layer 0, ..., after layer L-1];
                             pre-LN:  [x+pos, after layer 0, ..., after layer L-2,
                                       final_LN(after layer L-1)]
  /single/last_hidden_state  [F, H] (= hidden_states[L])
  /batch/wave                [3, Tmax] padded; padding is NOT zeros but noise,
                             so an implementation that lets padding leak fails
  /batch/lengths             [3] int64 valid samples
  /batch/frames              [3] int64 valid frames (HF formula)
  /batch/attention_mask      [3, Tmax] int32 1 = valid sample (HF semantics)
  /batch/hidden_states       [L+1, 3, Fmax, H]  each utterance run ALONE
  /batch/last_hidden_state   [3, Fmax, H]       each utterance run ALONE
                             (frames >= frames[b] are 0 and not compared)

Mask semantics reproduced: a padded batch must give, on each utterance's
valid frames, what the utterance gives when run alone.  For the "large"
(layer-norm) variant that is exactly HF with `attention_mask` (padded frames
zeroed before the positional conv, padded keys masked in attention); this
script checks HF-batched == alone.  For the "base" (group-norm) variant HF
passes no attention mask and its GroupNorm statistics run over the padded
length, so HF-batched output depends on the padding; the C side must compute
the GroupNorm statistics over each utterance's valid conv-0 frames and apply
the same frame zeroing + key masking, which equals running alone.
"""
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import convert_hf  # noqa: E402

torch.set_num_threads(2)

KERNEL = [10, 3, 3, 3, 3, 2, 2]
STRIDE = [5, 2, 2, 2, 2, 2, 2]


def frames_hf(lengths, kernel=KERNEL, stride=STRIDE):
    """HubertModel._get_feat_extract_output_lengths."""
    for k, s in zip(kernel, stride):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths


# ---------------------------------------------------------------------------
# HF HubertModel, compact (names = HF state-dict names)

class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, s, bias, norm):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, s, bias=bias)
        self.norm = norm
        if norm == "group":   # HubertGroupNormConvLayer
            self.layer_norm = nn.GroupNorm(cout, cout, affine=True)
        elif norm == "layer":  # HubertLayerNormConvLayer (eps 1e-5, not layer_norm_eps)
            self.layer_norm = nn.LayerNorm(cout, elementwise_affine=True)

    def forward(self, x):
        x = self.conv(x)
        if self.norm == "group":
            x = self.layer_norm(x)
        elif self.norm == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        return Fn.gelu(x)


class FeatureExtractor(nn.Module):
    def __init__(self, c):
        super().__init__()
        cin, layers = 1, []
        for i, (d, k, s) in enumerate(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"])):
            norm = c["feat_extract_norm"] if (c["feat_extract_norm"] == "layer" or i == 0) else None
            layers.append(ConvLayer(cin, d, k, s, c["conv_bias"], norm))
            cin = d
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wave, trace=None):
        x = wave[:, None]
        for layer in self.conv_layers:
            x = layer(x)
            if trace is not None:
                trace.append(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.use_ln = c["feat_proj_layer_norm"]
        if self.use_ln:
            self.layer_norm = nn.LayerNorm(c["conv_dim"][-1], eps=c["layer_norm_eps"])
        self.projection = nn.Linear(c["conv_dim"][-1], c["hidden_size"])

    def forward(self, x):
        return self.projection(self.layer_norm(x) if self.use_ln else x)


class PosConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, K, G = c["hidden_size"], c["num_conv_pos_embeddings"], c["num_conv_pos_embedding_groups"]
        self.conv = nn.utils.weight_norm(nn.Conv1d(H, H, K, padding=K // 2, groups=G), name="weight", dim=2)
        self.remove = 1 if K % 2 == 0 else 0

    def forward(self, x):  # [B, T, H]
        x = self.conv(x.transpose(1, 2))
        if self.remove:
            x = x[:, :, :-self.remove]
        return Fn.gelu(x).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.hd = H // self.nh
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(H, H) for _ in range(4))

    def forward(self, x, mask):
        B, T, H = x.shape
        q = (self.q_proj(x) * self.hd ** -0.5).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w + mask
        a = torch.softmax(w, dim=-1) @ v
        return self.out_proj(a.transpose(1, 2).reshape(B, T, H))


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.intermediate_dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.output_dense = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.output_dense(Fn.gelu(self.intermediate_dense(x)))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c["layer_norm_eps"]
        self.stable = c["do_stable_layer_norm"]
        self.attention = Attention(c)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=eps)
        self.feed_forward = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, x, mask):
        if self.stable:   # HubertEncoderLayerStableLayerNorm
            x = x + self.attention(self.layer_norm(x), mask)
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x, mask))   # HubertEncoderLayer
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.stable = c["do_stable_layer_norm"]
        self.pos_conv_embed = PosConv(c)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, x, fmask, trace):
        ext = None
        if fmask is not None:
            x = x.clone()
            x[~fmask] = 0
            ext = (1.0 - fmask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        pos = self.pos_conv_embed(x)
        trace["pos_conv"] = pos
        x = x + pos
        if not self.stable:
            x = self.layer_norm(x)
        hs = []
        for layer in self.layers:
            hs.append(x)
            x = layer(x, ext)
        if self.stable:
            x = self.layer_norm(x)
        hs.append(x)
        return x, hs


class HubertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.feature_extractor = FeatureExtractor(c)
        self.feature_projection = FeatureProjection(c)
        self.encoder = Encoder(c)
        if c["mask_time_prob"] > 0 or c["mask_feature_prob"] > 0:
            self.masked_spec_embed = nn.Parameter(torch.zeros(c["hidden_size"]).uniform_())

    def forward(self, wave, attention_mask=None):
        trace = {"conv": []}
        feats = self.feature_extractor(wave, trace["conv"]).transpose(1, 2)
        trace["extract_features"] = feats
        fmask = None
        if attention_mask is not None:
            n = frames_hf(attention_mask.sum(-1), self.c["conv_kernel"], self.c["conv_stride"])
            fmask = torch.arange(feats.shape[1])[None, :] < n[:, None]
        x = self.feature_projection(feats)
        trace["projected"] = x
        last, hs = self.encoder(x, fmask, trace)
        return last, hs, trace


# ---------------------------------------------------------------------------

BASE = dict(convert_hf.HUBERT_DEFAULTS, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128, conv_dim=[512] * 7,
            num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)
LARGE = dict(convert_hf.HUBERT_DEFAULTS, **convert_hf.HUBERT_LARGE)
LARGE.update(hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
             conv_dim=[64, 64, 96, 96, 128, 128, 160], num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=8, mask_time_prob=0.0)


def randomise(model, gen):
    """Non-trivial random weights, exactly representable in float32."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if name == "masked_spec_embed":
                v = torch.rand(shape, generator=gen)
            elif "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(shape, generator=gen)
            elif "norm" in name and name.endswith("bias"):
                v = 0.1 * torch.randn(shape, generator=gen)
            elif name.endswith("weight_g"):
                v = 0.5 + torch.rand(shape, generator=gen)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(shape, generator=gen)
            else:  # conv / linear weight or weight_v
                fan_in = int(np.prod(shape[1:]))
                v = torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5
                if "conv_layers" in name:
                    v = v * 2 ** 0.5
            p.copy_(v.float())


def speechlike(n, gen, f0=140.0):
    t = torch.arange(n, dtype=torch.float64) / 16000
    f = f0 * (1 + 0.25 * torch.sin(2 * np.pi * 1.3 * t)) + 30 * t
    phase = 2 * np.pi * torch.cumsum(f, 0) / 16000
    x = sum(torch.sin(h * phase + h) / h for h in range(1, 11))
    env = 0.5 + 0.5 * torch.sin(2 * np.pi * 3.0 * t) ** 2
    x = 0.2 * x * env + 0.02 * torch.randn(n, generator=gen, dtype=torch.float64)
    return x.float().double()


def ta_model(c, sd):
    """The same network in torchaudio, weights loaded from the HF state dict."""
    from torchaudio.models import wav2vec2_model
    m = wav2vec2_model(
        extractor_mode=c["feat_extract_norm"] + "_norm",
        extractor_conv_layer_config=list(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"])),
        extractor_conv_bias=c["conv_bias"], encoder_embed_dim=c["hidden_size"],
        encoder_projection_dropout=0.0, encoder_pos_conv_kernel=c["num_conv_pos_embeddings"],
        encoder_pos_conv_groups=c["num_conv_pos_embedding_groups"],
        encoder_num_layers=c["num_hidden_layers"], encoder_num_heads=c["num_attention_heads"],
        encoder_attention_dropout=0.0, encoder_ff_interm_features=c["intermediate_size"],
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
        encoder_layer_norm_first=c["do_stable_layer_norm"], encoder_layer_drop=0.0, aux_num_out=None)

    def sub(prefix):
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    m.feature_extractor.load_state_dict(sub("feature_extractor."))
    m.encoder.feature_projection.load_state_dict(sub("feature_projection."))
    m.encoder.transformer.load_state_dict(sub("encoder."))
    return m.double().eval()


def maxdiff(a, b):
    return float((a - b).abs().max())


def check(what, d, tol):
    print(f"  {what}: max |diff| = {d:.3g}")
    if not d <= tol:
        sys.exit(f"ref_hubert: FAILED {what}: {d:.3g} > {tol:g}")


def run_variant(tag, cfg, seed, outdir, gen_audio):
    t0 = time.time()
    gen = torch.Generator().manual_seed(seed)
    model = HubertModel(cfg)
    randomise(model, gen)
    sd32 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # the module's names must be exactly the converter's HF name table
    convert_hf.check_tensors({k: v.numpy() for k, v in sd32.items()},
                             convert_hf.hubert_names(cfg), f"ref_hubert {tag}")
    model = model.double().eval()
    L = cfg["num_hidden_layers"]

    wave = speechlike(24000, gen_audio)
    lengths = [24000, 15673, 8017]
    batch = torch.zeros(3, 24000, dtype=torch.float64)
    amask = torch.zeros(3, 24000, dtype=torch.int32)
    for b, n in enumerate(lengths):
        batch[b, :n] = wave[:n] if b == 0 else speechlike(n, gen_audio, f0=110.0 + 60 * b)
        batch[b, n:] = 0.5 * torch.randn(24000 - n, generator=gen_audio, dtype=torch.float64).float().double()
        amask[b, :n] = 1
    frames = frames_hf(torch.tensor(lengths))

    with torch.no_grad():
        last, hs, tr = model(wave[None])
        F = last.shape[1]
        assert F == int(frames_hf(torch.tensor(24000)))
        # batch: each utterance alone, zero beyond its frames
        b_last = torch.zeros(3, F, cfg["hidden_size"], dtype=torch.float64)
        b_hs = torch.zeros(L + 1, 3, F, cfg["hidden_size"], dtype=torch.float64)
        for b, n in enumerate(lengths):
            l1, h1, _ = model(batch[b:b + 1, :n])
            f = int(frames[b])
            assert l1.shape[1] == f
            b_last[b, :f] = l1[0]
            for i in range(L + 1):
                b_hs[i, b, :f] = h1[i][0]
        check(f"{tag}: batch[0] alone == single", maxdiff(b_last[0], last[0]), 0.0)

        # --- cross-check against torchaudio
        ta = ta_model(cfg, {k: v.double() for k, v in sd32.items() if k != "masked_spec_embed"})
        ta_last, _ = ta(wave[None])
        check(f"{tag}: torchaudio last_hidden_state (single)", maxdiff(ta_last, last), 1e-9)
        ta_hs, _ = ta.extract_features(wave[None])
        for i in range(L - (1 if cfg["do_stable_layer_norm"] else 0)):
            check(f"{tag}: torchaudio layer {i} output", maxdiff(ta_hs[i], hs[i + 1]), 1e-9)
        if cfg["feat_extract_norm"] == "layer":
            # HF / torchaudio with a padding mask == alone on valid frames
            hb_last, _, _ = model(batch, amask)
            ta_b, ta_len = ta(batch, torch.tensor(lengths))
            assert ta_len.tolist() == frames.tolist()
            for b, n in enumerate(lengths):
                f = int(frames[b])
                check(f"{tag}: HF batched+mask == alone, utt {b}", maxdiff(hb_last[b, :f], b_last[b, :f]), 1e-9)
                check(f"{tag}: torchaudio batched == alone, utt {b}", maxdiff(ta_b[b, :f], b_last[b, :f]), 1e-9)
        else:
            hb_last, _, _ = model(batch)
            d = maxdiff(hb_last[1, :int(frames[1])], b_last[1, :int(frames[1])])
            print(f"  {tag}: (HF batched without mask differs from alone by {d:.3g}: GroupNorm sees padding)")

    def f32(x):
        return x.detach().float().numpy()

    wpath = os.path.join(outdir, f"hubert_{tag}_small.h5")
    attrs = dict(cfg, config_json="", source=f"tests/ref_hubert.py seed={seed}")
    names = list(convert_hf.hubert_names(cfg))
    sdn = {k: v.numpy() for k, v in sd32.items()}
    convert_hf.write_weights(wpath, sdn, attrs, "fp32", order=names)
    if tag == "large":
        convert_hf.write_weights(os.path.join(outdir, f"hubert_{tag}_small_bf16.h5"), sdn, attrs, "bf16", order=names)

    iopath = os.path.join(outdir, f"hubert_{tag}_io.h5")
    tmp = iopath + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["variant"] = tag
        f.attrs["weights"] = os.path.basename(wpath)
        f.attrs["mask_semantics"] = ("batch outputs are each utterance run alone; frames >= "
                                     "batch/frames[b] are zero and not compared")
        f["wave"] = f32(wave)
        for i, c in enumerate(tr["conv"]):
            f[f"single/conv.{i}"] = f32(c[0])
        f["single/extract_features"] = f32(tr["extract_features"][0])
        f["single/projected"] = f32(tr["projected"][0])
        f["single/pos_conv"] = f32(tr["pos_conv"][0])
        f["single/hidden_states"] = f32(torch.stack([h[0] for h in hs]))
        f["single/last_hidden_state"] = f32(last[0])
        f["batch/wave"] = f32(batch)
        f["batch/lengths"] = np.asarray(lengths, dtype=np.int64)
        f["batch/frames"] = frames.numpy().astype(np.int64)
        f["batch/attention_mask"] = amask.numpy()
        f["batch/hidden_states"] = f32(b_hs)
        f["batch/last_hidden_state"] = f32(b_last)
    os.replace(tmp, iopath)
    print(f"  {tag}: wrote {wpath}, {iopath} (F={F}, frames={frames.tolist()}) in {time.time() - t0:.1f} s")


def frames_table(outdir):
    lens = list(range(1, 2001)) + sorted(set(np.geomspace(2000, 160000, 400).astype(int).tolist()
                                          + [k * 320 + d for k in (50, 100, 250, 499) for d in (-1, 0, 1, 79, 80, 81)]
                                          + [160000]))
    checked = (400, 401, 719, 720, 721, 1999, 2000, 16000, 16080, 16081, 24000, 48123, 159999, 160000)
    lens = sorted(set(lens) | set(checked) | {8017, 15673})
    fr = frames_hf(torch.tensor(lens))
    fr = torch.clamp(fr, min=0)   # fewer samples than the receptive field: no frame
    # the formula against real conv output sizes (only kernel/stride matter)
    convs = [nn.Conv1d(1 if i == 0 else 2, 2, k, s) for i, (k, s) in enumerate(zip(KERNEL, STRIDE))]
    for n in checked:
        x = torch.zeros(1, 1, n)
        with torch.no_grad():
            for c in convs:
                x = c(x)
        assert x.shape[-1] == int(frames_hf(torch.tensor(n))), (n, x.shape)
        assert x.shape[-1] == int(fr[lens.index(n)])
    for n in (399, 1):   # conv stack refuses inputs shorter than the receptive field
        assert int(fr[lens.index(n)]) == 0
    path = os.path.join(outdir, "hubert_frames.txt")
    with open(path + ".tmp", "w") as f:
        f.write("# samples frames  (HF _get_feat_extract_output_lengths, kernel 10,3,3,3,3,2,2, "
                "stride 5,2,2,2,2,2,2; 0 below 400 samples)\n")
        for n, m in zip(lens, fr.tolist()):
            f.write(f"{n} {m}\n")
    os.replace(path + ".tmp", path)
    print(f"  wrote {path} ({len(lens)} lengths)")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_hubert.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    frames_table(outdir)
    run_variant("base", BASE, 1, outdir, torch.Generator().manual_seed(100))
    run_variant("large", LARGE, 2, outdir, torch.Generator().manual_seed(100))
    print(f"ref_hubert: ok ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
