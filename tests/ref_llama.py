#!/usr/bin/python3
"""tests/ref_llama.py OUTDIR - PyTorch reference for the C LLaMA with LoRA.

A compact LlamaForCausalLM written from the Hugging Face definitions (no
transformers package: Debian 12 has none): RMSNorm (w * x / sqrt(mean(x^2) +
eps), computed in float32 in HF, here in float64), rotary embeddings in the
rotate-half layout (inv_freq = theta^(-2i/d), cos/sin of cat(freqs, freqs)),
grouped-query attention through repeat_kv, SwiGLU MLP (down(silu(gate(x)) *
up(x))), a causal mask combined with the padding mask, tied or untied
lm_head.  PEFT LoRA on the target projections: W x + (alpha / r) B (A x)
(dropout is off: eval mode).  Everything runs in float64 from float32
weights; fixtures are stored float32.

The input rows are SECap's caption sequences
    [BOS] [Q audio vectors] [prompt] [caption] [EOS] [padding]
(embedding vectors and token ids mixed in one sequence), right-padded; the
loss is the mean cross entropy over the caption tokens and EOS, each
predicted from the step before.

Writes to OUTDIR, for each variant TAG (gqa: kv heads < heads, untied,
default rope_theta; tied: tied embeddings, every projection adapted,
rope_theta 1000; bf16: gqa with every projection / embedding rounded to
bf16, which the C test loads as bf16 storage):
  llama_TAG.h5          base weights, config as root attributes
  llama_TAG_adapter.h5  the adapter (PEFT names, model_type "lora"), lora_B
                        non-zero so lora_A's gradient is not trivially zero
  llama_TAG_merged.h5   tools/merge_lora.py's merge of the two (gqa only)
  llama_TAG_io.h5       /audio [B, Q, D], /prompt [B, Pmax] + /prompt_len,
                        /caption [B, Cmax] + /caption_len (int32, padded),
                        /lens [B], /targets [B, T], /logits [B, T, V] (rows
                        t >= lens[b] zero), /loss [1], /grad_audio [B, Q, D],
                        /grad/<lora name> every LoRA tensor's gradient
  llama_TAG_lm.h5       LM pretraining with trainable base weights (gqa and
                        tied, no LoRA): /ids [B, T] token ids (row b valid
                        for t < lens[b], right-padded), /lens [B], /targets
                        [B, T] (the next id, or -100 past the row), /loss [1]
                        (mean next-token cross entropy), /grad/<HF name> the
                        gradient of every base tensor (tied: the embedding
                        gets the lookup's and the logits' parts)
"""
import math
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import convert_hf  # noqa: E402

torch.set_num_threads(2)
IGNORE = -100
PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def module_of(p):
    return "self_attn" if p in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"


def shapes(cfg):
    D, I, H, G = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    return {"q_proj": (D, D), "k_proj": (G * hd, D), "v_proj": (G * hd, D), "o_proj": (D, D),
            "gate_proj": (I, D), "up_proj": (I, D), "down_proj": (D, I)}


def make_weights(cfg, gen, bf16):
    V, D, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    sd = {"model.embed_tokens.weight": 0.5 * torch.randn(V, D, generator=gen)}
    for l in range(L):
        for p, (o, i) in shapes(cfg).items():
            sd[f"model.layers.{l}.{module_of(p)}.{p}.weight"] = torch.randn(o, i, generator=gen) / math.sqrt(i)
        sd[f"model.layers.{l}.input_layernorm.weight"] = 1.0 + 0.2 * torch.randn(D, generator=gen)
        sd[f"model.layers.{l}.post_attention_layernorm.weight"] = 1.0 + 0.2 * torch.randn(D, generator=gen)
    sd["model.norm.weight"] = 1.0 + 0.2 * torch.randn(D, generator=gen)
    if not cfg.get("tie_word_embeddings", 0):
        sd["lm_head.weight"] = torch.randn(V, D, generator=gen) / math.sqrt(D)
    sd = {k: v.float() for k, v in sd.items()}
    if bf16:   # what the C side stores as bf16: projections, embeddings, lm_head
        sd = {k: (v.to(torch.bfloat16).float() if k.endswith("_proj.weight") or "embed" in k or "lm_head" in k else v)
              for k, v in sd.items()}
    return sd


def make_lora(cfg, lcfg, gen):
    r, L = lcfg["r"], cfg["num_hidden_layers"]
    out = {}
    for l in range(L):
        for p in lcfg["target_modules"].split(","):
            o, i = shapes(cfg)[p]
            stem = f"base_model.model.model.layers.{l}.{module_of(p)}.{p}"
            out[stem + ".lora_A.weight"] = (torch.rand(r, i, generator=gen) * 2 - 1) / math.sqrt(i)
            out[stem + ".lora_B.weight"] = 0.3 * torch.randn(o, r, generator=gen) / math.sqrt(r)
    return {k: v.float() for k, v in out.items()}


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, pos, theta):   # x [B, nh, T, hd], pos [T]
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    f = pos.double()[:, None] * inv[None, :]
    emb = torch.cat((f, f), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def repeat_kv(x, n):
    B, G, T, hd = x.shape
    return x if n == 1 else x[:, :, None].expand(B, G, n, T, hd).reshape(B, G * n, T, hd)


def forward(cfg, lcfg, W, A, x, lens):
    """x [B, T, D] float64 -> logits [B, T, V]."""
    B, T, D = x.shape
    H, G = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, theta = D // H, cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    scale = lcfg["alpha"] / lcfg["r"] if lcfg else 0.0

    def proj(l, p, h):
        y = h @ W[f"model.layers.{l}.{module_of(p)}.{p}.weight"].T
        stem = f"base_model.model.model.layers.{l}.{module_of(p)}.{p}"
        if A is not None and stem + ".lora_A.weight" in A:
            y = y + scale * ((h @ A[stem + ".lora_A.weight"].T) @ A[stem + ".lora_B.weight"].T)
        return y

    i = torch.arange(T)
    visible = (i[None, :] <= i[:, None])[None] & (i[None, None, :] < torch.as_tensor(lens)[:, None, None])
    bias = torch.zeros(B, 1, T, T, dtype=torch.float64).masked_fill(~visible[:, None], float("-inf"))
    pos = torch.arange(T)
    for l in range(cfg["num_hidden_layers"]):
        h = rmsnorm(x, W[f"model.layers.{l}.input_layernorm.weight"], eps)
        q = proj(l, "q_proj", h).view(B, T, H, hd).transpose(1, 2)
        k = proj(l, "k_proj", h).view(B, T, G, hd).transpose(1, 2)
        v = proj(l, "v_proj", h).view(B, T, G, hd).transpose(1, 2)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        k, v = repeat_kv(k, H // G), repeat_kv(v, H // G)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + bias
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + proj(l, "o_proj", a)
        h = rmsnorm(x, W[f"model.layers.{l}.post_attention_layernorm.weight"], eps)
        x = x + proj(l, "down_proj", Fn.silu(proj(l, "gate_proj", h)) * proj(l, "up_proj", h))
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", 0) else W["lm_head.weight"]
    return x @ head.T


def build_batch(cfg, W, audio, prompts, captions):
    """[BOS][audio][prompt][caption][EOS][pad] rows, lens, targets."""
    B, Q, D = audio.shape
    bos, eos = cfg["bos_token_id"], cfg["eos_token_id"]
    lens = [1 + Q + len(p) + len(c) + 1 for p, c in zip(prompts, captions)]
    T = max(lens)
    E = W["model.embed_tokens.weight"]
    rows, targets = [], torch.full((B, T), IGNORE, dtype=torch.int64)
    for b in range(B):
        text = list(prompts[b]) + list(captions[b]) + [eos]
        text += [eos] * (T - 1 - Q - len(text))
        rows.append(torch.cat([E[[bos]], audio[b], E[text]], dim=0))
        first = 1 + Q + len(prompts[b])
        for s in range(T):
            if first <= s + 1 < lens[b]:
                targets[b, s] = text[s + 1 - 1 - Q]
    return torch.stack(rows), lens, targets


def maxrel(a, b):
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))


def run_variant(tag, cfg, lcfg, seed, outdir, bf16=False, merged=False):
    t0 = time.time()
    gen = torch.Generator().manual_seed(seed)
    sd32 = make_weights(cfg, gen, bf16)
    lora32 = make_lora(cfg, lcfg, gen)
    W = {k: v.double() for k, v in sd32.items()}
    A = {k: v.double().requires_grad_(True) for k, v in lora32.items()}
    B, Q, D, V = 3, 3, cfg["hidden_size"], cfg["vocab_size"]
    audio = (0.5 * torch.randn(B, Q, D, generator=gen)).float().double().requires_grad_(True)
    plen, clen = [2, 4, 1], [3, 1, 5]
    prompts = [torch.randint(3, V, (n,), generator=gen).tolist() for n in plen]
    captions = [torch.randint(3, V, (n,), generator=gen).tolist() for n in clen]
    x, lens, targets = build_batch(cfg, W, audio, prompts, captions)
    T = x.shape[1]
    logits = forward(cfg, lcfg, W, A, x, lens)
    loss = Fn.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE)
    loss.backward()
    for k, a in A.items():
        assert a.grad is not None and float(a.grad.abs().max()) > 0, f"no gradient reaches {k}"
    with torch.no_grad():
        for b in range(B):   # the padded batch gives each row what it gives alone
            alone = forward(cfg, lcfg, W, A, x[b:b + 1, :lens[b]], [lens[b]])
            d = maxrel(logits[b, :lens[b]], alone[0])
            assert d < 1e-12, f"{tag}: row {b} batched != alone ({d})"
        lg = logits.detach().clone()
        for b in range(B):
            lg[b, lens[b]:] = 0

    def f32(t):
        return t.detach().float().numpy()

    attrs = dict(cfg, model_type="llama", hidden_act="silu", source=f"tests/ref_llama.py seed={seed}")
    wpath = os.path.join(outdir, f"llama_{tag}.h5")
    convert_hf.write_weights(wpath, {k: v.numpy() for k, v in sd32.items()}, attrs, "fp32", order=list(sd32))
    apath = os.path.join(outdir, f"llama_{tag}_adapter.h5")
    lattrs = dict(model_type="lora", peft_type="LORA", task_type="CAUSAL_LM", bias="none", r=lcfg["r"],
                  lora_alpha=float(lcfg["alpha"]), lora_dropout=0.05, target_modules=lcfg["target_modules"])
    convert_hf.write_weights(apath, {k: v.numpy() for k, v in lora32.items()}, lattrs, "fp32", order=list(lora32))
    if merged:
        mpath = os.path.join(outdir, f"llama_{tag}_merged.h5")
        subprocess.run([sys.executable, os.path.join(HERE, "..", "tools", "merge_lora.py"), "--base", wpath,
                        "--adapter", apath, "--out", mpath], check=True)

    iopath = os.path.join(outdir, f"llama_{tag}_io.h5")
    tmp = iopath + ".tmp"

    def padded(rows):
        n = max(len(r) for r in rows)
        return np.asarray([r + [0] * (n - len(r)) for r in rows], dtype=np.int32)

    with h5py.File(tmp, "w") as f:
        f["audio"] = f32(audio)
        f["prompt"] = padded(prompts)
        f["prompt_len"] = np.asarray(plen, dtype=np.int32)
        f["caption"] = padded(captions)
        f["caption_len"] = np.asarray(clen, dtype=np.int32)
        f["lens"] = np.asarray(lens, dtype=np.int32)
        f["targets"] = targets.numpy().astype(np.int32)
        f["logits"] = f32(lg)
        f["loss"] = np.asarray([float(loss)], dtype=np.float32)
        f["grad_audio"] = f32(audio.grad)
        for k, a in A.items():
            f[f"grad/{k}"] = f32(a.grad)
    os.replace(tmp, iopath)
    print(f"  {tag}: T {T}, loss {float(loss):.6f}, {len(A)} LoRA tensors, {time.time() - t0:.1f} s")


def run_lm(tag, cfg, seed, outdir):
    """Next-token loss of a padded id batch with every base tensor trainable;
    the weights are those of llama_TAG.h5 (make_weights from the same seed)."""
    gen = torch.Generator().manual_seed(seed)
    sd32 = make_weights(cfg, gen, False)
    W = {k: v.double().requires_grad_(True) for k, v in sd32.items()}
    g2 = torch.Generator().manual_seed(seed + 100)
    B, T, V = 3, 9, cfg["vocab_size"]
    lens = [9, 6, 8]
    ids = torch.randint(0, V, (B, T), generator=g2)
    targets = torch.full((B, T), IGNORE, dtype=torch.int64)
    for b in range(B):
        ids[b, lens[b]:] = cfg["eos_token_id"]
        targets[b, :lens[b] - 1] = ids[b, 1:lens[b]]
    x = W["model.embed_tokens.weight"][ids]
    logits = forward(cfg, None, W, None, x, lens)
    loss = Fn.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE)
    loss.backward()
    for k, w in W.items():
        assert w.grad is not None and float(w.grad.abs().max()) > 0, f"lm {tag}: no gradient reaches {k}"
    path = os.path.join(outdir, f"llama_{tag}_lm.h5")
    with h5py.File(path + ".tmp", "w") as f:
        f["ids"] = ids.numpy().astype(np.int32)
        f["lens"] = np.asarray(lens, dtype=np.int32)
        f["targets"] = targets.numpy().astype(np.int32)
        f["loss"] = np.asarray([float(loss)], dtype=np.float32)
        for k, w in W.items():
            f[f"grad/{k}"] = w.grad.float().numpy()
    os.replace(path + ".tmp", path)
    print(f"  {tag} lm: loss {float(loss):.6f}, {len(W)} base tensors with gradients")


def check_merge_refusals(outdir):
    """tools/merge_lora.py refuses an adapter of another base, a base as the
    adapter, and an output that is one of its inputs, naming the problem."""
    tool = os.path.join(HERE, "..", "tools", "merge_lora.py")
    j = lambda n: os.path.join(outdir, n)   # noqa: E731
    cases = [
        (["--base", j("llama_tied.h5"), "--adapter", j("llama_gqa_adapter.h5"), "--out", j("llama_bad.h5")],
         "do not fit"),
        (["--base", j("llama_gqa.h5"), "--adapter", j("llama_gqa.h5"), "--out", j("llama_bad.h5")],
         "expected 'lora'"),
        (["--base", j("llama_gqa.h5"), "--adapter", j("llama_gqa_adapter.h5"), "--out", j("llama_gqa.h5")],
         "input"),
    ]
    for args, want in cases:
        p = subprocess.run([sys.executable, tool] + args, capture_output=True, text=True)
        if p.returncode == 0 or want not in p.stderr:
            sys.exit(f"ref_llama: merge_lora.py {' '.join(args)} should fail with '{want}', got rc {p.returncode}: "
                     f"{p.stderr.strip()}")
    assert not os.path.exists(j("llama_bad.h5")), "a refused merge left an output file"
    print("  merge_lora.py refusals: ok")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_llama.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    base = dict(vocab_size=61, hidden_size=32, intermediate_size=44, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
    gqa = dict(base, num_key_value_heads=2)          # rope_theta absent: 10000
    tied = dict(base, num_key_value_heads=4, tie_word_embeddings=True, rope_theta=1000.0, rms_norm_eps=1e-5)
    run_variant("gqa", gqa, dict(r=4, alpha=8, target_modules="q_proj,v_proj"), 21, outdir, merged=True)
    run_variant("tied", tied, dict(r=2, alpha=5, target_modules=",".join(PROJ)), 22, outdir)
    run_variant("bf16", gqa, dict(r=4, alpha=8, target_modules="q_proj,v_proj"), 23, outdir, bf16=True)
    run_lm("gqa", gqa, 21, outdir)
    run_lm("tied", tied, 22, outdir)
    check_merge_refusals(outdir)
    print("ref_llama: ok")


if __name__ == "__main__":
    main()
