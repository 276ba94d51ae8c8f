#!/usr/bin/env python3
"""PyTorch baseline for bench_ops: the same linear and attention forward +
backward shapes, on the CPU with the same thread count (SECAP_THREADS or 2).
Best of 5 after a warm-up; GFLOP/s counted as in bench_ops.c.
  /usr/bin/python3 tools/bench/bench_ops_torch.py [--reps N]
Each case also prints one "RESULT bench=ops_..." line (tools/bench/run.py)."""
import os
import sys
import time

import torch
import torch.nn.functional as F

threads = int(os.environ.get("SECAP_THREADS", "0") or 0) or os.cpu_count()
torch.set_num_threads(threads)
torch.manual_seed(0)
print(f"torch {torch.__version__}, threads: {threads}")


REPS = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5


def best(fn, reps=REPS):
    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


M, K, N = 2048, 1024, 1024
x = torch.randn(M, K, requires_grad=True)
w = torch.nn.Parameter(torch.randn(N, K) * 0.03)
b = torch.nn.Parameter(torch.zeros(N))
dy = torch.randn(M, N)


def linear():
    x.grad = None
    w.grad = None
    b.grad = None
    F.linear(x, w, b).backward(dy)


s = best(linear)
flops = 3 * 2 * M * N * K
print(f"linear fwd+bwd M={M} K={K} N={N} ({flops * 1e-9:.1f} GFLOP)")
print(f"  torch F.linear    {s * 1e3:8.2f} ms  {flops / s * 1e-9:7.1f} GFLOP/s")
print(f"RESULT bench=ops_linear ms={s * 1e3:.3f} gflops={flops / s * 1e-9:.2f}")

B, H, T, d = 8, 12, 256, 64
q = torch.randn(B, H, T, d, requires_grad=True)
k = torch.randn(B, H, T, d, requires_grad=True)
v = torch.randn(B, H, T, d, requires_grad=True)
do = torch.randn(B, H, T, d)


def manual():
    for t in (q, k, v):
        t.grad = None
    p = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    (p @ v).backward(do)


flops = 3 * 2 * 2 * B * H * T * T * d
print(f"attention fwd+bwd B={B} heads={H} T={T} d={d} ({flops * 1e-9:.2f} GFLOP model)")
# Debian 12's torch 1.13 has no fused scaled_dot_product_attention.
for name, fn in (("torch separate ops", manual),):
    s = best(fn)
    print(f"  {name:<18}{s * 1e3:8.2f} ms  {flops / s * 1e-9:7.1f} GFLOP/s")
print(f"RESULT bench=ops_attention ms={s * 1e3:.3f} gflops={flops / s * 1e-9:.2f}")
