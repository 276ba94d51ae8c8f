#!/usr/bin/python3
"""tools/bench/bench_spm.py - python sentencepiece's side of bench_spm.

The same corpus and models as bin/bench/bench_spm (tests/ref_spm.py's
spm_bench.txt, spm_llama_l/llama_s/nfkc_user.model), encoded to ids with
Debian's python3-sentencepiece 0.1.97: one `sp.encode(line)` call per line,
then one batched `sp.encode(lines, num_threads=N)` call (the loop in C++),
for 1 and 2 threads.  Median of 5 after a warm-up.  When
build/bench/bench_spm.txt exists (bench_spm writes it) the C figures are
printed alongside.

    /usr/bin/python3 tools/bench/bench_spm.py [--runs 5] [--dir build/ref]
"""
import argparse
import os
import statistics
import subprocess
import time

import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=os.environ.get("SECAP_REF_DIR") or "build/ref")
    a = ap.parse_args()
    path = os.path.join(a.dir, "spm_bench.txt")
    if not os.path.exists(path):
        subprocess.run(["/usr/bin/python3", "tests/ref_spm.py", a.dir], check=True)
    data = open(path, "rb").read()
    lines = data.decode("utf-8").split("\n")[:-1]
    mb = len(data) / 1e6
    c = {}
    if os.path.exists("build/bench/bench_spm.txt"):
        for row in open("build/bench/bench_spm.txt"):
            name, one, two = row.split()
            c[name] = (float(one), float(two))
    print(f"corpus: {path}, {len(lines)} lines, {mb:.2f} MB; python3-sentencepiece {spm.__version__}")
    print(f"{'model':10s} {'per-line MB/s':>14s} {'batch 1 thr':>12s} {'batch 2 thr':>12s} {'C 1 thr':>9s} "
          f"{'C 2 thr':>9s} {'C/per-line':>11s} {'C/batch':>8s}")
    for name in ["llama_l", "llama_s", "nfkc_user"]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(a.dir, f"spm_{name}.model"))
        enc = sp.encode

        def per_line():
            for l in lines:
                enc(l)

        def batch(n):
            return lambda: sp.encode(lines, num_threads=n)

        res = []
        for fn in [per_line, batch(1), batch(2)]:
            fn()
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            res.append(mb / statistics.median(ts))
        one, two = c.get(name, (float("nan"), float("nan")))
        print(f"{name:10s} {res[0]:14.1f} {res[1]:12.1f} {res[2]:12.1f} {one:9.1f} {two:9.1f} "
              f"{one / res[0]:10.1f}x {one / res[1]:7.1f}x")


if __name__ == "__main__":
    main()
