#!/usr/bin/python3
"""tests/ref_qformer.py OUTDIR - PyTorch reference for the C Q-Former.

A compact re-implementation of BLIP-2's Q-Former (LAVIS Qformer.py: a BERT
whose layers hold self-attention, cross-attention every cross_attention_freq
layers, a text feed-forward and a query feed-forward) with SECap's audio
projections and BLIP-2-style embedding heads, written from the BERT/BLIP-2
definitions (no transformers package: Debian 12 has none).  Module attribute
names are chosen so that state_dict() yields the weight-file names exactly
("Qformer.bert.encoder.layer.0.crossattention.self.key.weight", "query_tokens",
"audio_project.weight", ...).  Everything runs in float64 from float32
weights; fixtures are stored float32.

Masks follow BERT: an additive (1 - mask) * -10000 on the attention scores
(in float64 exp(-10000) is exactly 0, the same as dropping the key).

Writes to OUTDIR, for each variant TAG in (small, blip):
  qformer_TAG.h5      the weights (tools/convert_hf.py's writer) with the
                      config as root attributes (model_type "qformer")
  qformer_TAG_io.h5   inputs, outputs and gradients:
    /audio [B, T, A_in]  padded audio features; rows t >= frames[b] hold noise
    /frames [B] int32
    /ids [B, S] int32    token ids; positions s >= lens[b] hold random ids
    /lens [B] int32
    /out/query [B, Q, H]       query-mode outputs of the padded batch
    /out/speech_mean [B, E]    speech_proj(mean over queries)
    /out/speech_none [B, Q, E] speech_proj per query
    /out/llm [B, Q, D]         audio_llama_project            (when D > 0)
    /out/text [B, S, H]        text-mode outputs (rows s >= lens[b] unspecified)
    /out/text_emb [B, E]       text_proj([CLS])
    /alone/query [B, Q, H]     each item run alone on its valid frames
    /alone/text [B, S, H]      each item run alone on its valid tokens (zero
                               past lens[b])
    /r/<name>                  fixed random weights of the scalar loss
                               loss = sum_name sum(out[name] * r[name]);
                               r/text is zero on padded rows
    /loss                      [1] float64
    /grad/<param name>         d loss / d every parameter
    /grad_audio [B, T, A_in]   d loss / d audio (zero on padded frames)
  qformer_small_bert.h5  a plain BERT file (model_type "bert") holding the
                      text side of qformer_small under BertForPreTraining's
                      "bert." prefix, plus pooler and cls tensors that a
                      loader must ignore: initialising a Q-Former from it
                      gives qformer_small's text-mode outputs.
"""
import math
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


# ---------------------------------------------------------------------------
# BLIP-2 Q-Former (names = state-dict names)

class SelfAttention(nn.Module):        # BertSelfAttention: .query .key .value
    def __init__(self, c, kv_width):
        super().__init__()
        H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.hd = H // self.nh
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(kv_width, H)
        self.value = nn.Linear(kv_width, H)

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.nh, self.hd).transpose(1, 2)

    def forward(self, x, kv, mask):    # mask [B, Tk] of 0/1 or None
        q, k, v = self.split(self.query(x)), self.split(self.key(kv)), self.split(self.value(kv))
        s = q @ k.transpose(-1, -2) / math.sqrt(self.hd)
        if mask is not None:
            s = s + (1.0 - mask[:, None, None, :].to(s.dtype)) * -10000.0
        a = torch.softmax(s, dim=-1) @ v
        B, _, T, _ = a.shape
        return a.transpose(1, 2).reshape(B, T, self.nh * self.hd)


class DenseNorm(nn.Module):            # BertSelfOutput / BertOutput: .dense .LayerNorm
    def __init__(self, c, fan_in):
        super().__init__()
        self.dense = nn.Linear(fan_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)   # dropout: eval mode


class Attention(nn.Module):            # BertAttention: .self .output
    def __init__(self, c, kv_width):
        super().__init__()
        self.self = SelfAttention(c, kv_width)
        self.output = DenseNorm(c, c["hidden_size"])

    def forward(self, x, kv, mask):
        return self.output(self.self(x, kv, mask), x)


class Intermediate(nn.Module):         # BertIntermediate: .dense + GELU (erf)
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return Fn.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c, l):
        super().__init__()
        self.attention = Attention(c, c["hidden_size"])
        self.has_cross = l % c["cross_attention_freq"] == 0
        if self.has_cross:
            self.crossattention = Attention(c, c["encoder_width"])
        if c["text_mode"]:
            self.intermediate = Intermediate(c)
            self.output = DenseNorm(c, c["intermediate_size"])
        self.intermediate_query = Intermediate(c)
        self.output_query = DenseNorm(c, c["intermediate_size"])

    def forward_query(self, x, audio, amask):
        x = self.attention(x, x, None)
        if self.has_cross:
            x = self.crossattention(x, audio, amask)
        return self.output_query(self.intermediate_query(x), x)

    def forward_text(self, x, tmask):
        x = self.attention(x, x, tmask)
        return self.output(self.intermediate(x), x)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        if c["text_mode"]:
            self.word_embeddings = nn.Embedding(c["vocab_size"], H)
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], H)
            if c["type_vocab_size"] > 0:
                self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.types = c["text_mode"] and c["type_vocab_size"] > 0

    def forward_text(self, ids):
        S = ids.shape[1]
        x = self.word_embeddings(ids) + self.position_embeddings(torch.arange(S))[None]
        if self.types:   # token_type_ids all zero (HF BertModel default)
            x = x + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c, l) for l in range(c["num_hidden_layers"]))


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)


class QformerWrap(nn.Module):          # BLIP-2's self.Qformer (BertLMHeadModel without cls)
    def __init__(self, c):
        super().__init__()
        self.bert = Bert(c)


class Bridge(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, Q = c["hidden_size"], c["num_query_tokens"]
        self.c = c
        self.Qformer = QformerWrap(c)
        self.query_tokens = nn.Parameter(torch.zeros(1, Q, H))
        if c["audio_width"] > 0:
            self.audio_project = nn.Linear(c["audio_width"], c["encoder_width"])
        if c["llm_width"] > 0:
            self.audio_llama_project = nn.Linear(H, c["llm_width"])
        if c["embed_dim"] > 0:
            self.speech_proj = nn.Linear(H, c["embed_dim"])
            if c["text_mode"]:
                self.text_proj = nn.Linear(H, c["embed_dim"])

    def query(self, audio, amask):
        bert = self.Qformer.bert
        a = self.audio_project(audio) if self.c["audio_width"] > 0 else audio
        x = bert.embeddings.LayerNorm(self.query_tokens.expand(audio.shape[0], -1, -1))
        for layer in bert.encoder.layer:
            x = layer.forward_query(x, a, amask)
        return x

    def text(self, ids, tmask):
        bert = self.Qformer.bert
        x = bert.embeddings.forward_text(ids)
        for layer in bert.encoder.layer:
            x = layer.forward_text(x, tmask)
        return x


# ---------------------------------------------------------------------------

SMALL = dict(model_type="qformer", hidden_act="gelu", position_embedding_type="absolute",
             hidden_size=48, num_hidden_layers=4, num_attention_heads=4, intermediate_size=80,
             vocab_size=90, max_position_embeddings=24, type_vocab_size=2, layer_norm_eps=1e-12,
             hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02,
             num_query_tokens=6, cross_attention_freq=2, encoder_width=40, audio_width=56,
             llm_width=36, embed_dim=24, text_mode=1)
# BLIP-2's LAVIS layout: no token types, cross-attention in every layer, no
# audio_project (features arrive at encoder_width), no LLM projection
BLIP = dict(SMALL, num_hidden_layers=3, type_vocab_size=0, cross_attention_freq=1, audio_width=0,
            llm_width=0, layer_norm_eps=1e-6, num_query_tokens=5)

B = 3
FRAMES = [29, 17, 6]
LENS = [13, 8, 1]
T, S = max(FRAMES), 16


def randomise(model, gen):
    """Non-trivial weights, exactly representable in float32."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if "LayerNorm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(shape, generator=gen)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(shape, generator=gen)
            elif "embeddings" in name or name == "query_tokens":
                v = 0.5 * torch.randn(shape, generator=gen)
            else:
                v = torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
            p.copy_(v.float())


def maxrel(a, b):
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))


def check(what, d, tol):
    print(f"  {what}: max rel diff = {d:.3g}")
    if not d <= tol:
        sys.exit(f"ref_qformer: FAILED {what}: {d:.3g} > {tol:g}")


def run_variant(tag, cfg, seed, outdir):
    t0 = time.time()
    gen = torch.Generator().manual_seed(seed)
    model = Bridge(cfg)
    randomise(model, gen)
    sd32 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model = model.double()
    H, Q, E, D = cfg["hidden_size"], cfg["num_query_tokens"], cfg["embed_dim"], cfg["llm_width"]
    A_in = cfg["audio_width"] or cfg["encoder_width"]

    audio = torch.randn(B, T, A_in, generator=gen, dtype=torch.float64).float().double()
    amask = torch.zeros(B, T, dtype=torch.int64)
    ids = torch.randint(0, cfg["vocab_size"], (B, S), generator=gen)
    tmask = torch.zeros(B, S, dtype=torch.int64)
    for b in range(B):
        amask[b, :FRAMES[b]] = 1
        audio[b, FRAMES[b]:] = 3.0 * torch.randn(T - FRAMES[b], A_in, generator=gen, dtype=torch.float64).float().double()
        tmask[b, :LENS[b]] = 1
    ids[:, 0] = 2   # a [CLS]-like first token

    audio_leaf = audio.clone().requires_grad_(True)
    out = {}
    out["query"] = model.query(audio_leaf, amask)
    out["speech_mean"] = model.speech_proj(out["query"].mean(dim=1))
    out["speech_none"] = model.speech_proj(out["query"])
    if D > 0:
        out["llm"] = model.audio_llama_project(out["query"])
    out["text"] = model.text(ids, tmask)
    out["text_emb"] = model.text_proj(out["text"][:, 0])
    r = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64).float().double() for k, v in out.items()}
    r["text"] = r["text"] * tmask[:, :, None].double()
    loss = sum((out[k] * r[k]).sum() for k in out)
    model.zero_grad()
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    for k in sd32:
        assert grads[k] is not None and float(grads[k].abs().max()) > 0, f"no gradient reaches {k}"

    # each item alone on its valid frames / tokens; also against the batch
    with torch.no_grad():
        alone_q = torch.zeros(B, Q, H, dtype=torch.float64)
        alone_t = torch.zeros(B, S, H, dtype=torch.float64)
        for b in range(B):
            alone_q[b] = model.query(audio[b:b + 1, :FRAMES[b]], None)[0]
            alone_t[b, :LENS[b]] = model.text(ids[b:b + 1, :LENS[b]], None)[0]
            check(f"{tag}: batched query == alone, item {b}", maxrel(out["query"][b], alone_q[b]), 1e-12)
            check(f"{tag}: batched text == alone, item {b}",
                  maxrel(out["text"][b, :LENS[b]], alone_t[b, :LENS[b]]), 1e-12)
        # the masked padding carries no gradient to the input
        for b in range(B):
            g = audio_leaf.grad[b, FRAMES[b]:]
            assert g.numel() == 0 or float(g.abs().max()) == 0.0, f"padding of item {b} takes a gradient"

    def f32(x):
        return x.detach().float().numpy()

    wpath = os.path.join(outdir, f"qformer_{tag}.h5")
    attrs = dict(cfg, source=f"tests/ref_qformer.py seed={seed}")
    convert_hf.write_weights(wpath, {k: v.numpy() for k, v in sd32.items()}, attrs, "fp32", order=list(sd32))

    iopath = os.path.join(outdir, f"qformer_{tag}_io.h5")
    tmp = iopath + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["weights"] = os.path.basename(wpath)
        f["audio"] = f32(audio)
        f["frames"] = np.asarray(FRAMES, dtype=np.int32)
        f["ids"] = ids.numpy().astype(np.int32)
        f["lens"] = np.asarray(LENS, dtype=np.int32)
        for k, v in out.items():
            f[f"out/{k}"] = f32(v)
            f[f"r/{k}"] = f32(r[k])
        f["alone/query"] = f32(alone_q)
        f["alone/text"] = f32(alone_t)
        f["loss"] = np.asarray([float(loss)], dtype=np.float64)
        for k, g in grads.items():
            f[f"grad/{k}"] = f32(g)
        f["grad_audio"] = f32(audio_leaf.grad)
    os.replace(tmp, iopath)

    if tag == "small":   # the text side as a plain BERT checkpoint
        bert = {}
        for k, v in sd32.items():
            if not k.startswith("Qformer.bert."):
                continue
            n = k[len("Qformer.bert."):]
            if ".crossattention." in n or "_query." in n:
                continue
            bert["bert." + n] = v.numpy()
        bert["bert.pooler.dense.weight"] = np.eye(H, dtype=np.float32)
        bert["bert.pooler.dense.bias"] = np.zeros(H, np.float32)
        bert["cls.predictions.bias"] = np.zeros(cfg["vocab_size"], np.float32)
        battrs = {k: v for k, v in cfg.items() if k not in (
            "num_query_tokens", "cross_attention_freq", "encoder_width", "audio_width", "llm_width",
            "embed_dim", "text_mode")}
        battrs.update(model_type="bert", pad_token_id=0, source="tests/ref_qformer.py (text side of qformer_small)")
        convert_hf.write_weights(os.path.join(outdir, "qformer_small_bert.h5"), bert, battrs, "fp32")
    print(f"  {tag}: wrote {wpath}, {iopath} ({len(grads)} parameter gradients) in {time.time() - t0:.1f} s")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_qformer.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    run_variant("small", SMALL, 11, outdir)
    run_variant("blip", BLIP, 12, outdir)
    print(f"ref_qformer: ok ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
