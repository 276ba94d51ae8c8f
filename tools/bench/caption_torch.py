#!/usr/bin/python3
"""PyTorch reference for bench_caption: one caption-stage training step of
the LLaMA with LoRA, the same shapes, order and threads as
tools/bench/bench_caption.c (see its header):

  110M shape (D 768, 12 layers, 12 heads, FFN 2048, V 32000, untied), random
  frozen base; PEFT LoRA r 8, alpha 16, dropout 0.05 on q_proj, v_proj
  (y = W x + alpha/r B(A dropout(x)), A kaiming-uniform, B zeros); B = 8
  rows [BOS] [32 audio vectors, a leaf with a gradient] [15 prompt ids]
  [31 caption ids] [EOS] = 80 steps; mean cross entropy over the caption
  and EOS targets; backward; AdamW (lr 1e-4, weight decay 0) on the LoRA
  tensors.  Training mode (LoRA dropout active).

The model is written in plain torch from the Hugging Face LlamaForCausalLM
definitions (Debian 12 has no transformers): RMSNorm in float32,
rotate-half RoPE, causal + padding mask, softmax(QK^T / sqrt(d)) V as
separate ops (torch 1.13 has no fused attention), SwiGLU MLP.  --dtype bf16
stores the base weights in bfloat16 and runs the frozen model in bfloat16
(a model loaded with torch_dtype=torch.bfloat16); the LoRA tensors stay
float32 and PEFT casts the input to them and the result back.

  /usr/bin/python3 tools/bench/caption_torch.py [--steps N] [--threads N] [--dtype f32|bf16|both]
  /usr/bin/python3 tools/bench/caption_torch.py --interleave bin/bench/bench_caption --rounds 3
The second form alternates rounds of the C benchmark (a subprocess with the
same thread count and --dtype) and of this one, and prints the median of
each, the ratio C / PyTorch and the phase medians.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import time

import torch
import torch.nn.functional as Fn

V, D, L, H, FF = 32000, 768, 12, 12, 2048
B, Q, NP, NC = 8, 32, 15, 31
T = 1 + Q + NP + NC + 1
R, ALPHA, P_DROP = 8, 16.0, 0.05
EPS, THETA = 1e-5, 10000.0
PHASES = ["forward", "loss", "backward", "adamw step"]


class Model:
    def __init__(self, dtype, gen):
        def rand(*shape):
            return (torch.randn(*shape, generator=gen) * 0.02).to(dtype)
        self.dtype = dtype
        self.emb = rand(V, D)
        self.layers = [dict(q=rand(D, D), k=rand(D, D), v=rand(D, D), o=rand(D, D), g=rand(FF, D), u=rand(FF, D),
                            d=rand(D, FF), n1=torch.ones(D, dtype=dtype), n2=torch.ones(D, dtype=dtype))
                       for _ in range(L)]
        self.norm = torch.ones(D, dtype=dtype)
        self.head = rand(V, D)
        self.lora = []
        for _ in range(L):
            ent = {}
            for p in ("q", "v"):
                a = ((torch.rand(R, D, generator=gen) * 2 - 1) / math.sqrt(D)).requires_grad_(True)
                ent[p] = (a, torch.zeros(D, R, requires_grad=True))
            self.lora.append(ent)
        self.params = [t for ent in self.lora for p in ("q", "v") for t in ent[p]]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        hd = D // H
        inv = 1.0 / (THETA ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        f = torch.arange(T, dtype=torch.float32)[:, None] * inv[None]
        e = torch.cat((f, f), -1)
        self.cos, self.sin = e.cos().to(dtype), e.sin().to(dtype)

    def rms(self, x, w):
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), -1)

    def proj(self, h, w, ab):
        y = h @ w.T
        if ab is None:
            return y
        a, b = ab
        z = Fn.dropout(h.to(a.dtype), P_DROP, True)
        return y + ((z @ a.T) @ b.T * (ALPHA / R)).to(y.dtype)

    def forward(self, x, lens):
        hd = D // H
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None] + \
            torch.where(torch.arange(T)[None, :] < lens[:, None], 0.0, float("-inf"))[:, None, None, :]
        mask = mask.to(self.dtype)
        for w, lo in zip(self.layers, self.lora):
            h = self.rms(x, w["n1"])
            q = self.proj(h, w["q"], lo["q"]).view(B, T, H, hd).transpose(1, 2)
            k = self.proj(h, w["k"], None).view(B, T, H, hd).transpose(1, 2)
            v = self.proj(h, w["v"], lo["v"]).view(B, T, H, hd).transpose(1, 2)
            q = q * self.cos + self.rot(q) * self.sin
            k = k * self.cos + self.rot(k) * self.sin
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
            p = torch.softmax(s.float(), -1).to(x.dtype)
            a = (p @ v).transpose(1, 2).reshape(B, T, D)
            x = x + a @ w["o"].T
            h = self.rms(x, w["n2"])
            x = x + (Fn.silu(h @ w["g"].T) * (h @ w["u"].T)) @ w["d"].T
        return self.rms(x, self.norm) @ self.head.T


def make_data(gen):
    audio = torch.randn(B, Q, D, generator=gen) * 0.02
    prompt = torch.randint(3, 31993, (B, NP), generator=gen)
    caption = torch.randint(3, 31993, (B, NC), generator=gen)
    ids = torch.cat((torch.ones(B, 1, dtype=torch.long), prompt, caption, torch.full((B, 1), 2)), 1)
    targets = torch.full((B, T), -100)
    targets[:, 1 + Q + NP - 1:T - 1] = torch.cat((caption, torch.full((B, 1), 2)), 1)
    return dict(audio=audio, ids=ids, targets=targets, lens=torch.full((B,), T))


def step(m, d):
    t = [time.perf_counter()]
    audio = d["audio"].to(m.dtype).requires_grad_(True)
    e = m.emb[d["ids"]]
    x = torch.cat((e[:, :1], audio, e[:, 1:]), 1)
    logits = m.forward(x, d["lens"])
    t.append(time.perf_counter())
    loss = Fn.cross_entropy(logits.float().reshape(-1, V), d["targets"].reshape(-1), ignore_index=-100)
    t.append(time.perf_counter())
    m.opt.zero_grad()
    loss.backward()
    t.append(time.perf_counter())
    m.opt.step()
    t.append(time.perf_counter())
    return [(t[i + 1] - t[i]) * 1e3 for i in range(4)], float(loss)


def run_torch(m, d, steps, warmup, tag):
    tot, ph = [], [[] for _ in PHASES]
    for it in range(warmup + steps):
        p, lv = step(m, d)
        print(f"  torch {tag} {'warm-up' if it < warmup else 'step'} {it + 1 if it < warmup else it - warmup + 1}: "
              f"{sum(p):.1f} ms  (loss {lv:.4f})", flush=True)
        if it >= warmup:
            tot.append(sum(p))
            for i in range(4):
                ph[i].append(p[i])
    return statistics.median(tot), [statistics.median(x) for x in ph]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SECAP_THREADS", "0") or 0) or 2)
    ap.add_argument("--dtype", choices=("f32", "bf16", "both"), default="f32")
    ap.add_argument("--interleave", metavar="BENCH_CAPTION", help="the C benchmark binary to alternate with")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(7)
    tags = ["f32", "bf16"] if a.dtype == "both" else [a.dtype]
    models = {t: Model(torch.float32 if t == "f32" else torch.bfloat16, gen) for t in tags}
    d = make_data(gen)
    print(f"torch {torch.__version__}, {a.threads} threads, LoRA {sum(p.numel() for p in models[tags[0]].params)} "
          f"trainable, B={B} T={T}", flush=True)
    if not a.interleave:
        for t, m in models.items():
            med, ph = run_torch(m, d, a.steps, a.warmup, t)
            for name, v in zip(PHASES, ph):
                print(f"  {t} phase {name:12s} median {v:8.1f} ms")
            print(f"caption torch {t} median_ms={med:.1f}")
            print(f"RESULT bench=caption dtype={t} ms={med:.1f}")
        return
    env = dict(os.environ, SECAP_THREADS=str(a.threads), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"))
    cs, ts, cph, tph = ({t: [] for t in tags} for _ in range(4))
    gflop, sgemm = None, []
    for rnd in range(a.rounds):
        out = subprocess.run([a.interleave, "--steps", str(a.steps), "--warmup", str(a.warmup), "--dtype", a.dtype],
                             env=env, capture_output=True, text=True, check=True).stdout
        print(f"round {rnd + 1} C:\n{out}", end="", flush=True)
        for t in tags:
            mm = re.search(rf"caption c {t} median_ms=([0-9.]+) gflop=([0-9.]+) sgemm_gflops=([0-9.]+)", out)
            cs[t].append(float(mm.group(1)))
            gflop = float(mm.group(2))
            sgemm.append(float(mm.group(3)))
            cph[t].append([float(re.search(rf"{t} phase {re.escape(n)}\s+median\s+([0-9.]+)", out).group(1))
                           for n in PHASES])
        print(f"round {rnd + 1} torch:", flush=True)
        for t in tags:
            mt, ph = run_torch(models[t], d, a.steps, a.warmup, t)
            ts[t].append(mt)
            tph[t].append(ph)
            print(f"round {rnd + 1} {t}: C {cs[t][-1]:.1f} ms, torch {mt:.1f} ms, C / torch {cs[t][-1] / mt:.2f}",
                  flush=True)
    sg = statistics.median(sgemm)
    for t in tags:
        print(f"{t} phase medians over rounds (C | torch):")
        for i, n in enumerate(PHASES):
            print(f"  {n:12s} {statistics.median(x[i] for x in cph[t]):9.1f} | "
                  f"{statistics.median(x[i] for x in tph[t]):9.1f} ms")
        c, tt = statistics.median(cs[t]), statistics.median(ts[t])
        print(f"{t}: median over {a.rounds} rounds: C {c:.1f} ms/step, torch {tt:.1f} ms/step, C / torch = "
              f"{c / tt:.2f} (goal <= 0.7); per round: {', '.join(f'{x / y:.2f}' for x, y in zip(cs[t], ts[t]))}; "
              f"{gflop:.1f} GFLOP/step: C {gflop / c * 1e3:.1f} GFLOP/s = {100 * gflop / c * 1e3 / sg:.0f} % of "
              f"the in-process sgemm rate (median over the C runs {sg:.1f} GFLOP/s), "
              f"{100 * gflop / c * 1e3 / 330:.0f} % of 330; torch {gflop / tt * 1e3:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
