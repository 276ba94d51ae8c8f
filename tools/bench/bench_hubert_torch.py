#!/usr/bin/python3
"""tools/bench/bench_hubert_torch.py - the PyTorch baseline of bench_hubert.

torchaudio's HuBERT-base and HuBERT-large (random weights: speed does not
depend on them), forward only under torch.inference_mode(), 2 threads, on the
same 10 s speech-like signal; best of 3 after a warm-up.  When
build/bench/bench_hubert.txt exists (bin/bench/bench_hubert writes it; `make
bench` runs the C benchmarks first) it also prints the C / PyTorch ratio.

    /usr/bin/python3 tools/bench/bench_hubert_torch.py [--seconds 10] [--reps 3] [--threads 2] [--only hubert-base]

Each model also prints one "RESULT bench=hubert ..." line (tools/bench/run.py).
"""
import argparse
import math
import os
import time

import torch
import torchaudio

PEAK = 330.0   # GFLOP/s, sgemm on 2 cores
TARGET = 0.6   # C time must be at most this fraction of PyTorch's


def speechlike(n, seed=7):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / 16000
    f = 140.0 * (1 + 0.25 * torch.sin(2 * math.pi * 1.3 * t)) + 30 * t
    phase = 2 * math.pi * torch.cumsum(f, 0) / 16000
    x = sum(torch.sin(h * phase + h) / h for h in range(1, 11))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 3.0 * t) ** 2
    return (0.2 * x * env + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("hubert-base", "hubert-large"), help="one model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = speechlike(int(a.seconds * 16000))[None]
    c_ms = {}
    cfile = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bench", "bench_hubert.txt")
    if os.path.exists(cfile):
        for ln in open(cfile):
            p = ln.split()
            if p and not p[0].startswith("#"):
                c_ms[p[0]] = (float(p[1]), float(p[2]), float(p[3]))
    for preset, build in (("hubert-base", torchaudio.models.hubert_base),
                          ("hubert-large", torchaudio.models.hubert_large)):
        if a.only and preset != a.only:
            continue
        m = build().eval()
        best = math.inf
        with torch.inference_mode():
            for r in range(a.reps + 1):
                t0 = time.perf_counter()
                y, _ = m(x)
                t = time.perf_counter() - t0
                if r:
                    best = min(best, t)
        line = (f"{preset:13s} torchaudio {a.seconds:4.1f} s audio ({y.shape[1]} frames): {best * 1e3:8.1f} ms "
                f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
        if preset in c_ms and abs(c_ms[preset][2] - a.seconds) < 1e-6:
            ms, gflop, _ = c_ms[preset]
            ratio = ms / (best * 1e3)
            line += (f"\n{'':13s} C {ms:.1f} ms = {ratio:.2f} x PyTorch (target <= {TARGET}: "
                     f"{'met' if ratio <= TARGET else 'NOT met'}); PyTorch {gflop / best:.1f} GFLOP/s = "
                     f"{100 * gflop / best / PEAK:.1f}% of {PEAK:.0f}")
        print(line, flush=True)
        print(f"RESULT bench=hubert preset={preset} seconds={a.seconds:.1f} ms={best * 1e3:.3f} frames={y.shape[1]}",
              flush=True)
        del m


if __name__ == "__main__":
    main()
