#!/usr/bin/python3
"""tools/bench/bench_decode_torch.py - PyTorch baseline for bin/bench/bench_decode.

Greedy decoding of the 110M LLaMA shape (D 768, 12 layers, 12 heads, FFN
2048, vocab 32000, untied), random weights, batch 1, 256 new tokens from
[BOS], with a KV cache (the model written out in plain torch from the HF
definitions: RMSNorm, rotate-half RoPE, causal attention over the cache,
SwiGLU), under torch.inference_mode, in float32 and in bfloat16 (weights
and activations, as a bf16 model runs in PyTorch).  Prints the median
tokens/s of --reps runs (interleaved).  Threads: $SECAP_THREADS (default 2).

  /usr/bin/python3 tools/bench/bench_decode_torch.py [--tokens N] [--reps R]

With --write-llama2c DIR it instead writes random weights of the same shape
in llama2.c's run.c checkpoint format (DIR/model.bin: a 7-int header dim,
hidden_dim, n_layers, n_heads, n_kv_heads, -vocab (negative: untied
classifier), seq_len, then float32 tensors in run.c's order, layers stacked)
and a placeholder DIR/tokenizer.bin (pieces "t<id>"), for timing run.c on
the same shape.  The classifier row of BOS (id 1) is zero so run.c, which
stops at BOS, always runs its full length.
"""
import argparse
import math
import os
import struct
import time

import numpy as np
import torch

V, D, L, H, FF, SEQ = 32000, 768, 12, 12, 2048, 1024


def write_llama2c(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    hd = D // H

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    with open(os.path.join(out, "model.bin"), "wb") as f:
        f.write(struct.pack("7i", D, FF, L, H, H, -V, SEQ))
        for arr in (rand(V, D), np.ones((L, D), np.float32), rand(L, D, D), rand(L, D, D), rand(L, D, D),
                    rand(L, D, D), np.ones((L, D), np.float32), rand(L, FF, D), rand(L, D, FF), rand(L, FF, D),
                    np.ones(D, np.float32), np.zeros(SEQ * hd, np.float32)):
            f.write(arr.tobytes())
        wcls = rand(V, D)
        wcls[1] = 0
        f.write(wcls.tobytes())
    with open(os.path.join(out, "tokenizer.bin"), "wb") as f:
        f.write(struct.pack("i", 8))
        for i in range(V):
            s = f"t{i}".encode()
            f.write(struct.pack("fi", 0.0, len(s)) + s)
    print(f"wrote {out}/model.bin and {out}/tokenizer.bin")


class Llama:
    def __init__(self, dtype, gen):
        def rand(*shape):
            return (torch.randn(*shape, generator=gen) * 0.02).to(dtype)
        self.emb = rand(V, D)
        self.layers = [dict(q=rand(D, D), k=rand(D, D), v=rand(D, D), o=rand(D, D), g=rand(FF, D), u=rand(FF, D),
                            d=rand(D, FF), n1=torch.ones(D, dtype=dtype), n2=torch.ones(D, dtype=dtype))
                       for _ in range(L)]
        self.norm = torch.ones(D, dtype=dtype)
        self.head = rand(V, D)
        hd = D // H
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        f = torch.arange(SEQ, dtype=torch.float32)[:, None] * inv[None]
        emb = torch.cat((f, f), -1)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)
        self.dtype = dtype

    @staticmethod
    def rms(x, w):
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype)

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), -1)

    def step(self, tok, pos, cache):
        hd = D // H
        x = self.emb[tok][None]                       # [1, D]
        cos, sin = self.cos[pos], self.sin[pos]
        for i, w in enumerate(self.layers):
            h = self.rms(x, w["n1"])
            q = (h @ w["q"].T).view(H, hd)
            k = (h @ w["k"].T).view(H, hd)
            v = (h @ w["v"].T).view(H, hd)
            q = q * cos + self.rot(q) * sin
            k = k * cos + self.rot(k) * sin
            K, Vc = cache[i]
            K[:, pos], Vc[:, pos] = k, v
            s = torch.einsum("hd,htd->ht", q, K[:, :pos + 1]) / math.sqrt(hd)
            a = torch.einsum("ht,htd->hd", torch.softmax(s.float(), -1).to(x.dtype), Vc[:, :pos + 1]).reshape(1, D)
            x = x + a @ w["o"].T
            h = self.rms(x, w["n2"])
            x = x + (torch.nn.functional.silu(h @ w["g"].T) * (h @ w["u"].T)) @ w["d"].T
        return (self.rms(x, self.norm) @ self.head.T)[0]

    def generate(self, n):
        hd = D // H
        cache = [(torch.zeros(H, SEQ, hd, dtype=self.dtype), torch.zeros(H, SEQ, hd, dtype=self.dtype))
                 for _ in range(L)]
        tok, out = 1, []
        for pos in range(n):
            tok = int(torch.argmax(self.step(tok, pos, cache)))
            out.append(tok)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--write-llama2c", metavar="DIR")
    ap.add_argument("--dtype", choices=("f32", "bf16", "both"), default="both")
    a = ap.parse_args()
    if a.write_llama2c:
        write_llama2c(a.write_llama2c)
        return
    threads = int(os.environ.get("SECAP_THREADS", "2"))
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(7)
    models = {k: Llama(torch.float32 if k == "f32" else torch.bfloat16, gen)
              for k in ("f32", "bf16") if a.dtype in (k, "both")}
    times = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m.generate(8)   # warm-up
        for _ in range(a.reps):
            for k, m in models.items():
                t0 = time.perf_counter()
                m.generate(a.tokens)
                times[k].append(a.tokens / (time.perf_counter() - t0))
    print(f"PyTorch {torch.__version__} decode, 110M shape, batch 1, greedy, {a.tokens} tokens, {threads} threads, "
          f"median of {a.reps}")
    for k, v in times.items():
        v.sort()
        print(f"  {k:5s}: {v[len(v) // 2]:7.1f} tokens/s (min {v[0]:.1f}, max {v[-1]:.1f})")
        print(f"RESULT bench=decode dtype={k} tokens_per_s={v[len(v) // 2]:.2f} tokens={a.tokens}")


if __name__ == "__main__":
    main()
