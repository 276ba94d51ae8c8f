#!/usr/bin/python3
"""PyTorch reference for bench_stage1: one stage-1 training step of a
bert-base-sized Q-Former on cached features, the same shapes, order and
threads as tools/bench/bench_stage1.c (see its header):

  B 16 clips, T 300 frames of width 1024, 12 layers, H 768, 12 heads, I 3072,
  32 queries, cross-attention every 2 layers, V 21128, E 256; transcript and
  caption of 32 tokens (transcript under no_grad); vCLUB (hidden 256) step
  with its own AdamW on detached q, t; then U (full variant, estimator fixed)
  + contrastive loss with labels, backward, AdamW (lr 1e-4, weight decay 0.05
  except biases, LayerNorms and the temperature).  Training mode: hidden
  dropout 0.1 after the embeddings and each sub-block, as the C step.

The model is tests/ref_qformer.py's Bridge (written from the BLIP-2 / BERT
definitions, state-dict names as the C side) run in float32, with dropout
added.  torch 1.13 has no fused attention: softmax(QK^T)V as separate ops.

  /usr/bin/python3 tools/bench/stage1_torch.py [--steps N] [--threads N]
  /usr/bin/python3 tools/bench/stage1_torch.py --interleave bin/bench/bench_stage1 --rounds 3
The second form alternates rounds of the C benchmark (a subprocess with the
same thread count) and of this one, and prints the median of each, the ratio
C / PyTorch and the phase medians.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import ref_qformer  # noqa: E402

B, T, S = 16, 300, 32
P_DROP = 0.1
PHASES = ["query fwd", "text fwd x2", "vclub step", "objective+backward", "adamw step"]

CFG = dict(ref_qformer.SMALL, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
           intermediate_size=3072, vocab_size=21128, max_position_embeddings=512, type_vocab_size=2,
           num_query_tokens=32, cross_attention_freq=2, encoder_width=768, audio_width=1024, llm_width=0,
           embed_dim=256, text_mode=1, hidden_dropout_prob=P_DROP)


def dense_norm_dropout(self, h, residual):     # BertSelfOutput / BertOutput in training mode
    return self.LayerNorm(Fn.dropout(self.dense(h), P_DROP, self.training) + residual)


ref_qformer.DenseNorm.forward = dense_norm_dropout


class Stage1(ref_qformer.Bridge):
    def query_train(self, audio, amask):
        bert = self.Qformer.bert
        a = self.audio_project(audio)
        x = Fn.dropout(bert.embeddings.LayerNorm(self.query_tokens.expand(audio.shape[0], -1, -1)), P_DROP,
                       self.training)
        for layer in bert.encoder.layer:
            x = layer.forward_query(x, a, amask)
        return self.speech_proj(x.mean(1))

    def text_train(self, ids, tmask):
        bert = self.Qformer.bert
        x = Fn.dropout(bert.embeddings.forward_text(ids), P_DROP, self.training)
        for layer in bert.encoder.layer:
            x = layer.forward_text(x, tmask)
        return self.text_proj(x[:, 0])


class Estimator(nn.Module):            # CLUB's p_mu / p_logvar
    def __init__(self, x, y, h):
        super().__init__()
        self.p_mu = nn.Sequential(nn.Linear(x, h), nn.ReLU(), nn.Linear(h, y))
        self.p_logvar = nn.Sequential(nn.Linear(x, h), nn.ReLU(), nn.Linear(h, y), nn.Tanh())

    def forward(self, q):
        return self.p_mu(q), self.p_logvar(q)


def contrastive(q, k, temp, labels):
    with torch.no_grad():
        temp.clamp_(0.001, 0.5)
    s = Fn.normalize(q, dim=-1) @ Fn.normalize(k, dim=-1).t() / temp
    same = (labels[:, None] == labels[None, :]).float()
    same.fill_diagonal_(0)
    n = same.sum(1, keepdim=True)
    W = torch.eye(B) + torch.where(n > 0, same / n.clamp(min=1), same)
    return 0.5 * (-(W * Fn.log_softmax(s, 1)).sum() / B - (W * Fn.log_softmax(s.t(), 1)).sum() / B)


def build():
    torch.manual_seed(0)
    m = Stage1(CFG)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0, 0.02)
    m.train()
    est = Estimator(256, 256, 256)
    temp = nn.Parameter(torch.tensor(0.07))
    nodecay = [p for n, p in m.named_parameters() if n.endswith("bias") or "LayerNorm" in n] + [temp]
    decay = [p for n, p in m.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=nodecay, weight_decay=0.0)],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    eopt = torch.optim.AdamW(est.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(7)
    data = dict(audio=torch.randn(B, T, 1024, generator=g), amask=torch.ones(B, T),
                tids=torch.randint(1000, 21000, (B, S), generator=g), cids=torch.randint(1000, 21000, (B, S), generator=g),
                tmask=torch.ones(B, S), labels=torch.arange(B) % 7)
    data["tids"][:, 0] = 101
    data["cids"][:, 0] = 101
    nparam = sum(p.numel() for p in m.parameters()) + 1
    return m, est, temp, opt, eopt, data, nparam


def step(m, est, temp, opt, eopt, d):
    t = [time.perf_counter()]
    q = m.query_train(d["audio"], d["amask"])
    t.append(time.perf_counter())
    with torch.no_grad():
        tt = m.text_train(d["tids"], d["tmask"])
    k = m.text_train(d["cids"], d["tmask"])
    t.append(time.perf_counter())
    # the estimator's step on detached q, t
    eopt.zero_grad()
    mu, lv = est(q.detach())
    lest = ((mu - tt) ** 2 / lv.exp() + lv).sum(-1).mean()
    lest.backward()
    eopt.step()
    t.append(time.perf_counter())
    # U with the estimator fixed (its weights detached), t stop-gradient
    for p in est.parameters():
        p.requires_grad_(False)
    mu, lv = est(q)
    for p in est.parameters():
        p.requires_grad_(True)
    r = torch.exp(-lv)
    tbar, var = tt.mean(0), tt.var(0, unbiased=False)
    U = (0.5 * r * ((mu - tbar) ** 2 + var - (mu - tt) ** 2)).sum(-1).mean()
    loss = U + contrastive(q, k, temp, d["labels"])
    opt.zero_grad()
    loss.backward()
    t.append(time.perf_counter())
    opt.step()
    t.append(time.perf_counter())
    return [(t[i + 1] - t[i]) * 1e3 for i in range(5)], float(U), float(loss - U)


def run_torch(state, steps, warmup, log=True):
    m, est, temp, opt, eopt, d, _ = state
    tot, ph = [], [[] for _ in PHASES]
    for it in range(warmup + steps):
        p, u, con = step(m, est, temp, opt, eopt, d)
        if log:
            print(f"  torch {'warm-up' if it < warmup else 'step'} {it + 1 if it < warmup else it - warmup + 1}: "
                  f"{sum(p):.1f} ms  (U {u:.4f}, L_con {con:.4f})", flush=True)
        if it >= warmup:
            tot.append(sum(p))
            for i in range(5):
                ph[i].append(p[i])
    return statistics.median(tot), [statistics.median(x) for x in ph]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SECAP_THREADS", "0") or 0) or 2)
    ap.add_argument("--interleave", metavar="BENCH_STAGE1", help="the C benchmark binary to alternate with")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    state = build()
    print(f"torch {torch.__version__}, {a.threads} threads, {state[6]} parameters", flush=True)
    if not a.interleave:
        med, ph = run_torch(state, a.steps, a.warmup)
        for name, v in zip(PHASES, ph):
            print(f"  phase {name:20s} median {v:8.1f} ms")
        print(f"stage1 torch median_ms={med:.1f}")
        print(f"RESULT bench=stage1 ms={med:.1f}")
        return
    env = dict(os.environ, SECAP_THREADS=str(a.threads), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"))
    cs, ts, cph, tph = [], [], [], []
    for rnd in range(a.rounds):
        out = subprocess.run([a.interleave, "--steps", str(a.steps), "--warmup", str(a.warmup)], env=env,
                             capture_output=True, text=True, check=True).stdout
        print(f"round {rnd + 1} C:\n{out}", end="", flush=True)
        mc = float(re.search(r"stage1 c median_ms=([0-9.]+)", out).group(1))
        cph.append([float(re.search(rf"phase {re.escape(n)}\s+median\s+([0-9.]+)", out).group(1)) for n in PHASES])
        print(f"round {rnd + 1} torch:", flush=True)
        mt, ph = run_torch(state, a.steps, a.warmup)
        cs.append(mc)
        ts.append(mt)
        tph.append(ph)
        print(f"round {rnd + 1}: C {mc:.1f} ms, torch {mt:.1f} ms, C / torch {mc / mt:.2f}", flush=True)
    print("phase medians over rounds (C | torch):")
    for i, n in enumerate(PHASES):
        print(f"  {n:20s} {statistics.median(x[i] for x in cph):9.1f} | {statistics.median(x[i] for x in tph):9.1f} ms")
    c, t = statistics.median(cs), statistics.median(ts)
    print(f"median over {a.rounds} rounds: C {c:.1f} ms/step, torch {t:.1f} ms/step, C / torch = {c / t:.2f} "
          f"(goal <= 0.7); per round: {', '.join(f'{x / y:.2f}' for x, y in zip(cs, ts))}")


if __name__ == "__main__":
    main()
