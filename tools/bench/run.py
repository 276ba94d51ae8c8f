#!/usr/bin/python3
"""tools/bench/run.py - the benchmark suite (`make bench`): runs every
benchmark with its reference, interleaved (C, reference, C, reference, ...),
and writes ONE table, build/bench/table.md (raw figures in
build/bench/results.json, every run's output in build/bench/logs/); both are
rewritten after every group, so a stopped run leaves the rows it finished.

    /usr/bin/python3 tools/bench/run.py [--runs N] [--quick] [--rows ops,bf16,...]
                                        [--bin bin] [--out build/bench/table.md]
                                        [--append BENCHMARKS.md] [--rerender results.json]

Rows (--rows or BENCH_ROWS picks groups; default all; they run, and appear in
the table, in the order ops, bf16, hubert, step, caption, stage1, decode, 7b,
demo):
  ops      linear and fused attention forward + backward (bin/bench/bench_ops)
           against PyTorch (tools/bench/bench_ops_torch.py); the linear row
           also gives the raw sgemm rate measured in the same process
  bf16     the bf16-weight products (bin/bench/bench_bf16 --quick) against
           sgemm on the same weight in float32, same process
  hubert   HuBERT-base frozen forward on 10 s (bin/bench/bench_hubert)
           against torchaudio (tools/bench/bench_hubert_torch.py)
  stage1   the Q-Former stage-1 step (bench_stage1 / stage1_torch.py)
  caption  the caption-stage step, LoRA on the 110M LLaMA (bench_caption /
           caption_torch.py), f32 base
  step     the whole caption step at the mid-size configuration, HuBERT on
           the fly (bench_step / step_torch.py), with model FLOP/s as a
           fraction of the in-process sgemm rate
  decode   greedy decoding tokens/s, 110M shape, f32 (bench_decode /
           bench_decode_torch.py), and llama2.c's `run` when LLAMA2C names a
           built one (nothing is fetched: the row says "not given" otherwise;
           its model file is written locally by bench_decode_torch.py)
  7b       one caption step of configs/q7x2.ini --init random under
           /usr/bin/time -v: step time and peak RSS; needs 20 GiB of
           MemAvailable (else a "not run" row says what there is) and a demo
           corpus (BENCH_DEMO, below); BENCH_7B=0 skips it; run once
  demo     the demo training's time to its target, read from a run
           directory's metrics.jsonl (BENCH_DEMO_RUN, default
           $BENCH_DEMO/build/demo/run): the optimizer time (sum over steps of
           batch / samples_per_s, evaluations and saves excluded) until the
           first dev CIDEr >= BENCH_DEMO_CIDER (default 0.474, twice the
           random-clip baseline's test CIDEr, BENCHMARKS.md)

Environment: SECAP_THREADS (default 2) threads on both sides
(torch.set_num_threads), OMP_WAIT_POLICY=passive unless set, BENCH_RUNS
(default 3), BENCH_STEPS (timed steps per process of the stage1, caption and
step rows after one warm-up, default 2), BENCH_QUICK=1 (one run, tiny repetitions: a smoke test, the
figures mean nothing), BENCH_DEMO (a checkout where `make demo` ran; default
the repository), LLAMA2C, BENCH_7B, BENCH_7B_NEED_GIB (default 20), BENCH_DEMO_RUN,
BENCH_DEMO_CIDER.

Each benchmark prints machine-readable lines "RESULT bench=NAME key=value
..." beside its human output; a row's figure is the median over the runs of
the value named there.  The ratio column is always this project's time over
the reference's (for rates: the reference's rate over ours): below 1 means
this project is faster.  The machine column names the CPU, its AVX-512
features and the kernels OpenBLAS runs (its own detection, or
OPENBLAS_CORETYPE when set), which both sides' matrix products use.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PY = "/usr/bin/python3"
GROUPS = ["ops", "bf16", "hubert", "step", "caption", "stage1", "decode", "7b", "demo"]
NEED_7B_GIB = 20.0


def parse_results(text):
    """Every 'RESULT k=v ...' line of text as a dict (numbers as floats)."""
    out = []
    for ln in text.splitlines():
        if not ln.startswith("RESULT "):
            continue
        d = {}
        for tok in ln.split()[1:]:
            k, _, v = tok.partition("=")
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
        out.append(d)
    return out


def pick(results, **match):
    for d in results:
        if all(d.get(k) == v for k, v in match.items()):
            return d
    return None


def machine():
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name") and model == "unknown CPU":
                    model = ln.split(":", 1)[1].strip()
                elif ln.startswith("flags"):
                    flags = set(ln.split(":", 1)[1].split())
    except OSError:
        pass
    isa = " ".join(x for x in ("avx512f", "avx512_bf16") if x in flags) or "no avx512f"
    return f"{model}, {isa}, {os.cpu_count()} vCPU, OpenBLAS {openblas_core()}"


def openblas_core():
    """The kernel family OpenBLAS runs here (its runtime dispatch, or
    OPENBLAS_CORETYPE when set: the sgemm rate depends on it, and PyTorch
    uses the same library through libblas.so.3)."""
    import ctypes
    for lib in ("libopenblas.so.0", "libopenblasp.so.0"):
        try:
            f = ctypes.CDLL(lib).openblas_get_corename
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_char_p
        return f().decode().strip() + " kernels"
    return "kernels unknown"


def mem_available_gib():
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemAvailable:"):
                return int(ln.split()[1]) / 1048576.0
    return 0.0


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def fmt(x, nd=1):
    return f"{x:,.{nd}f}"


class Suite:
    def __init__(self, a):
        self.a = a
        self.bin = a.bin
        self.logdir = os.path.join(os.path.dirname(os.path.abspath(a.out)), "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.env = dict(os.environ, SECAP_THREADS=str(a.threads),
                        OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"),
                        OMP_NUM_THREADS=str(a.threads))
        self.rows = []          # dicts: name, ours, ref, ratio, runs, date
        self.raw = {}
        self.failed = []
        self.mach = machine()
        self.cached = None
        if a.rerender:
            with open(a.rerender) as f:
                self.cached = json.load(f)

    # -- running -------------------------------------------------------
    def run(self, tag, cmd, timeout=3600, aux=False):
        """Runs cmd in the repository; returns its RESULT lines, or None (and
        records a failure) when it fails or, unless aux (a preparation step
        such as writing a weight file), prints none."""
        t0 = time.time()
        log = os.path.join(self.logdir, f"{tag}.log")
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=timeout)
            rc, out = p.returncode, p.stdout
        except subprocess.TimeoutExpired as e:
            rc, out = 124, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        except OSError as e:
            rc, out = 127, f"{cmd[0]}: {e}\n"
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + out + f"\n[exit {rc}, {time.time() - t0:.1f} s]\n")
        print(f"  {tag}: exit {rc}, {time.time() - t0:.1f} s", flush=True)
        res = parse_results(out)
        if rc != 0 or (not res and not aux):
            self.failed.append(f"{tag} (exit {rc}, {len(res)} RESULT lines; log {os.path.relpath(log, ROOT)})")
            return None
        return res

    def interleave(self, group, sides):
        """sides: list of (name, cmd or None).  Runs them in turn, N times;
        returns {name: [results of each successful run]}."""
        if self.cached is not None:       # --rerender: the figures of an earlier run
            self.raw[group] = self.cached["raw"].get(group, {n: [] for n, _ in sides})
            return self.raw[group]
        got = {n: [] for n, _ in sides}
        for i in range(self.a.runs):
            for n, cmd in sides:
                if cmd is None:
                    continue
                r = self.run(f"{group}-{n}-{i + 1}", cmd)
                if r is not None:
                    got[n].append(r)
        self.raw[group] = got
        return got

    def row(self, name, ours, ref, ratio, runs, note=""):
        date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
        if self.cached is not None:   # --rerender: the date the row was measured
            date = next((r["date"] for r in self.cached["rows"] if r["name"] == name), date)
        self.rows.append(dict(name=name, ours=ours, ref=ref, ratio=ratio, runs=runs, note=note, date=date))

    @staticmethod
    def med(runs, key, **match):
        v = [pick(r, **match)[key] for r in runs if pick(r, **match) and key in pick(r, **match)]
        return (statistics.median(v), v) if v else (None, [])

    def timed_row(self, name, c, ref, key="ms", unit="ms", match=None, extra=None, ref_name="PyTorch"):
        match = match or {}
        cm, cv = self.med(c, key, **match)
        rm, rv = self.med(ref, key, **match)
        if cm is None:
            self.row(name, "failed (see logs)", fmt(rm) + f" {unit}" if rm else "-", "-", "0")
            return None, None
        ours = f"{fmt(cm)} {unit}" + (f" ({'/'.join(fmt(x, 0) for x in cv)})" if len(cv) > 1 else "")
        if extra:
            ours += "; " + extra(cm)
        theirs = "-" if rm is None else f"{ref_name} {fmt(rm)} {unit}" + \
            (f" ({'/'.join(fmt(x, 0) for x in rv)})" if len(rv) > 1 else "")
        ratio = "-" if rm is None else f"**{cm / rm:.2f}**"
        self.row(name, ours, theirs, ratio, f"{len(cv)}+{len(rv)}")
        return cm, rm

    def steps(self):
        """--steps/--warmup of the training-step benchmarks (BENCH_STEPS timed steps, default 2, after one
        warm-up step; quick: one step, no warm-up)."""
        if self.a.quick:
            return ["--steps", "1", "--warmup", "0"]
        return ["--steps", str(self.a.steps), "--warmup", "1"]

    # -- groups --------------------------------------------------------
    def g_ops(self):
        reps = "1" if self.a.quick else "5"
        got = self.interleave("ops", [("c", [f"{self.bin}/bench/bench_ops", "--no-decode", "--reps", reps]),
                                      ("torch", [PY, "tools/bench/bench_ops_torch.py", "--reps", reps])])
        c, t = got["c"], got["torch"]
        sg, _ = self.med(c, "sgemm_gflops", bench="ops_linear")
        gl, _ = self.med(c, "gflops", bench="ops_linear")
        ext = (lambda ms: f"{fmt(gl)} GFLOP/s = {100 * gl / sg:.0f} % of the raw sgemm ({fmt(sg)} GFLOP/s, "
               f"same process) = {100 * gl / 330:.0f} % of 330") if sg and gl else None
        self.timed_row("linear fwd+bwd, M 2048, K = N = 1024 (best of reps)", c, t, match=dict(bench="ops_linear"),
                       extra=ext)
        ga, _ = self.med(c, "gflops", bench="ops_attention")
        self.timed_row("attention fwd+bwd, B 8, 12 heads, T 256, d 64: fused (torch: separate ops)", c, t,
                       match=dict(bench="ops_attention"),
                       extra=(lambda ms: f"{fmt(ga)} GFLOP/s = {100 * ga / sg:.0f} % of sgemm") if ga and sg else None)

    def g_bf16(self):
        reps = "1" if self.a.quick else "9"
        got = self.interleave("bf16", [("c", [f"{self.bin}/bench/bench_bf16", "--quick", "--reps", reps])])
        c = got["c"]
        for case, label in (("decode", "bf16 weight, decode: x [1, 4096] W [4096, 4096]"),
                            ("forward", "bf16 weight, training forward: x [82, 4096] W [4096, 4096]")):
            variant = "avx512bf16" if any(pick(r, case=case, variant="avx512bf16") for r in c) else "portable"
            # the f32 path secap_linear takes: sgemv for one row, sgemm otherwise
            base = "sgemv" if case == "decode" else "sgemm"
            sm, _ = self.med(c, "ms", case=case, variant=base)
            bm, bv = self.med(c, "ms", case=case, variant=variant)
            if bm is None or sm is None:
                self.row(label, "failed (see logs)", "-", "-", "0")
                continue
            self.row(label, f"{variant} {fmt(bm, 2)} ms ({'/'.join(fmt(x, 2) for x in bv)})",
                     f"{base} on the f32 weight {fmt(sm, 2)} ms (same process)", f"**{bm / sm:.2f}**",
                     f"{len(bv)}")

    def g_hubert(self):
        sec, reps = ("1", "1") if self.a.quick else ("10", "3")
        got = self.interleave("hubert", [
            ("c", [f"{self.bin}/bench/bench_hubert", "--only=hubert-base", f"--reps={reps}", f"--seconds={sec}",
                   f"--threads={self.a.threads}"]),
            ("torch", [PY, "tools/bench/bench_hubert_torch.py", "--only", "hubert-base", "--reps", reps,
                       "--seconds", sec, "--threads", str(self.a.threads)])])
        gf, _ = self.med(got["c"], "gflop", bench="hubert")
        self.timed_row(f"HuBERT-base frozen forward, {sec} s audio (best of {reps}; goal <= 0.6)", got["c"],
                       got["torch"], match=dict(bench="hubert"), ref_name="torchaudio",
                       extra=(lambda ms: f"{fmt(gf / ms * 1e3)} GFLOP/s") if gf else None)

    def g_stage1(self):
        st = self.steps()
        got = self.interleave("stage1", [("c", [f"{self.bin}/bench/bench_stage1"] + st),
                                         ("torch", [PY, "tools/bench/stage1_torch.py"] + st)])
        gf, _ = self.med(got["c"], "gflop", bench="stage1")
        sg, _ = self.med(got["c"], "sgemm_gflops", bench="stage1")
        self.timed_row("Q-Former stage-1 step, bert-base, B 16 x 6 s cached features (goal <= 0.7)", got["c"],
                       got["torch"], match=dict(bench="stage1"),
                       extra=(lambda ms: f"{fmt(gf / ms * 1e3)} GFLOP/s = {100 * gf / ms * 1e3 / sg:.0f} % of "
                              f"in-process sgemm ({fmt(sg)})") if gf and sg else None)

    def g_caption(self):
        st = self.steps()
        got = self.interleave("caption", [
            ("c", [f"{self.bin}/bench/bench_caption", "--dtype", "f32"] + st),
            ("torch", [PY, "tools/bench/caption_torch.py", "--dtype", "f32"] + st)])
        gf, _ = self.med(got["c"], "gflop", bench="caption")
        sg, _ = self.med(got["c"], "sgemm_gflops", bench="caption")
        self.timed_row("caption-stage step, 110M LLaMA f32 + LoRA r 8, B 8 x 80 (goal <= 0.7)", got["c"],
                       got["torch"], match=dict(bench="caption"),
                       extra=(lambda ms: f"{fmt(gf / ms * 1e3)} GFLOP/s = {100 * gf / ms * 1e3 / sg:.0f} % of "
                              f"in-process sgemm ({fmt(sg)})") if gf and sg else None)

    def g_step(self):
        st = self.steps()
        got = self.interleave("step", [("c", [f"{self.bin}/bench/bench_step"] + st),
                                       ("torch", [PY, "tools/bench/step_torch.py"] + st)])
        gf, _ = self.med(got["c"], "gflop", bench="step")
        sg, _ = self.med(got["c"], "sgemm_gflops", bench="step")
        self.timed_row("whole caption step: HuBERT-base on the fly (B 4 x 4 s) + bert-base Q-Former (32 queries) "
                       "+ 110M LLaMA with LoRA r 8 (goal <= 0.6)", got["c"], got["torch"], match=dict(bench="step"),
                       extra=(lambda ms: f"{fmt(gf)} GFLOP/step, {fmt(gf / ms * 1e3)} GFLOP/s = "
                              f"{100 * gf / ms * 1e3 / sg:.0f} % of in-process sgemm ({fmt(sg)}), "
                              f"{100 * gf / ms * 1e3 / 330:.0f} % of 330") if gf and sg else None)
        self.timed_row("... of which the HuBERT-base forward (B 4 x 4 s, inside the step)", got["c"], got["torch"],
                       key="hubert_ms", match=dict(bench="step"), ref_name="torchaudio")

    def g_decode(self):
        tokens = "8" if self.a.quick else "256"
        sides = [("c", [f"{self.bin}/bench/bench_decode", "--reps", "1", "--dtype", "f32", "--tokens", tokens]),
                 ("torch", [PY, "tools/bench/bench_decode_torch.py", "--reps", "1", "--dtype", "f32",
                            "--tokens", tokens])]
        l2c = os.environ.get("LLAMA2C", "")
        mdir = os.path.join(ROOT, "build", "bench", "llama2c")
        if l2c:
            if not os.access(l2c, os.X_OK):
                self.failed.append(f"decode: LLAMA2C={l2c} is not an executable (hint: the path of a built "
                                   f"llama2.c `run`)")
                l2c = ""
            elif not os.path.exists(os.path.join(mdir, "model.bin")):
                self.run("decode-llama2c-model", [PY, "tools/bench/bench_decode_torch.py", "--write-llama2c", mdir],
                         aux=True)
        if l2c:
            # a wrapper that prints run's "achieved tok/s" as a RESULT line
            sides.append(("llama2c", ["/bin/sh", "-c", f"'{l2c}' '{mdir}/model.bin' -z '{mdir}/tokenizer.bin' "
                                      f"-t 0 -n {int(tokens) + 1} -i '' 2>&1 | tee /dev/stderr | sed -n "
                                      f"'s/^achieved tok\\/s: \\([0-9.]*\\).*/RESULT bench=decode dtype=f32 "
                                      f"tokens_per_s=\\1/p'"]))
        got = self.interleave("decode", sides)
        c, t = got["c"], got["torch"]

        def rate_row(name, other, oname):
            cm, cv = self.med(c, "tokens_per_s", bench="decode", dtype="f32")
            om, ov = self.med(other, "tokens_per_s", bench="decode", dtype="f32")
            ours = "failed (see logs)" if cm is None else \
                f"{fmt(cm)} tokens/s ({'/'.join(fmt(x) for x in cv)})"
            theirs = "-" if om is None else f"{oname} {fmt(om)} tokens/s ({'/'.join(fmt(x) for x in ov)})"
            ratio = f"**{om / cm:.2f}**" if cm and om else "-"
            self.row(name, ours, theirs, ratio, f"{len(cv)}+{len(ov)}")

        rate_row(f"decode, 110M shape f32, batch 1, greedy {tokens} tokens", t, "PyTorch")
        if l2c:
            rate_row(f"decode, 110M shape f32, against llama2.c ({l2c})", got["llama2c"], "llama2.c")
        else:
            self.row("decode against llama2.c", "-", "not given (set LLAMA2C=/path/to/llama2.c/run; nothing is "
                     "fetched)", "-", "0")

    def demo_paths(self):
        base = os.environ.get("BENCH_DEMO", ROOT)
        return dict(data=os.path.join(base, "data", "demo"),
                    vocab=os.path.join(base, "build", "demo", "vocab.txt"),
                    tok=os.path.join(base, "build", "demo", "tokenizer.model"),
                    run=os.environ.get("BENCH_DEMO_RUN", os.path.join(base, "build", "demo", "run")))

    def g_7b(self):
        name = "7B-shape caption step (configs/q7x2.ini --init random, batch 1): step time, peak RSS"
        if self.cached is not None:
            self.rows += [r for r in self.cached["rows"] if r["name"] == name]
            return
        if os.environ.get("BENCH_7B", "1") == "0":
            self.row(name, "skipped (BENCH_7B=0)", "-", "-", "0")
            return
        if self.a.quick:
            self.row(name, "not run in quick mode", "-", "-", "0")
            return
        p = self.demo_paths()
        miss = [v for k, v in p.items() if k != "run" and not os.path.exists(v)]
        if miss:
            self.row(name, f"not run: needs a demo corpus and tokenizers ({', '.join(miss)} missing; `make demo` "
                     "or BENCH_DEMO=<a checkout where it ran>)", "-", "-", "0")
            return
        have, need = mem_available_gib(), float(os.environ.get("BENCH_7B_NEED_GIB", NEED_7B_GIB))
        if have < need:
            self.row(name, f"not run: needs {need:.0f} GiB free, have {have:.1f} GiB (MemAvailable)", "-", "-", "0")
            return
        hub = os.path.join(ROOT, "build", "bench", "hubert-large.h5")
        if not os.path.exists(hub):
            self.run("7b-hubert-large", [PY, "tools/convert_hf.py", "--init", "random", "--config", "hubert-large",
                                         "--out", hub], aux=True)
        out = os.path.join(ROOT, "build", "bench", "run-q7x2")
        shutil.rmtree(out, ignore_errors=True)
        cmd = ["/usr/bin/time", "-v", f"{self.bin}/secap-train", "--config", "configs/q7x2.ini", "--init", "random",
               "--train.max_steps=1", "--train.stages=caption", "--data.batch_size=1", f"--data.dir={p['data']}",
               f"--hubert.weights={hub}", f"--qformer.vocab={p['vocab']}", f"--llama.tokenizer={p['tok']}",
               f"--train.out_dir={out}", "--train.save_every=0"]
        t0 = time.time()
        log = os.path.join(self.logdir, "7b.log")
        pr = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + pr.stdout + f"\n[exit {pr.returncode}]\n")
        print(f"  7b: exit {pr.returncode}, {time.time() - t0:.1f} s", flush=True)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", pr.stdout)
        sps = None
        try:
            for ln in open(os.path.join(out, "metrics.jsonl")):
                j = json.loads(ln)
                if j.get("stage") == "caption" and "samples_per_s" in j:
                    sps = j["samples_per_s"]
        except OSError:
            pass
        shutil.rmtree(out, ignore_errors=True)
        if pr.returncode != 0 or not rss or not sps:
            self.failed.append(f"7b (exit {pr.returncode}; log {os.path.relpath(log, ROOT)})")
            self.row(name, f"failed (exit {pr.returncode}, see {os.path.relpath(log, ROOT)})", "-", "-", "0")
            return
        gib = int(rss.group(1)) / 1048576.0
        self.row(name, f"step {fmt(1.0 / sps)} s (metrics.jsonl samples/s {sps}); peak RSS {gib:.2f} GiB (goal < 20); "
                 f"whole run {time.time() - t0:.0f} s", "- (no reference at this size)", "-", "1")

    def g_demo(self):
        p = self.demo_paths()
        target = float(os.environ.get("BENCH_DEMO_CIDER", "0.474"))
        name = f"demo training: time to dev CIDEr >= {target:g}"
        mf = os.path.join(p["run"], "metrics.jsonl")
        if not os.path.exists(mf):
            self.row(name, f"no demo run ({mf} absent; `make demo` or BENCH_DEMO_RUN=<run dir>)", "-", "-", "0")
            return
        # batch sizes from the run's config.ini: [data] for qformer/caption, [lm] for lm
        bs, sec = {}, None
        try:
            for ln in open(os.path.join(p["run"], "config.ini")):
                ln = ln.split("#", 1)[0].strip()
                m = re.match(r"\[(\w+)\]", ln)
                if m:
                    sec = m.group(1)
                elif "=" in ln and ln.split("=", 1)[0].strip() == "batch_size":
                    bs[sec] = float(ln.split("=", 1)[1])
        except OSError:
            pass
        opt_s, hit, best, emo, n = 0.0, None, None, None, 0
        for ln in open(mf):
            j = json.loads(ln)
            if "samples_per_s" not in j or j["samples_per_s"] <= 0:
                continue
            n += 1
            b = bs.get("lm" if j.get("stage") == "lm" else "data", 16.0)
            opt_s += b / j["samples_per_s"]
            if "dev_cider" in j:
                best = max(best or 0.0, j["dev_cider"])
                if hit is None and j["dev_cider"] >= target:
                    hit = (j["stage"], j["step"], j["gstep"], opt_s, j["dev_cider"])
            if "dev_emotion" in j:
                emo = max(emo or 0.0, j["dev_emotion"])
        tail = f"whole run {n} steps, {fmt(opt_s / 60)} min of optimizer time"
        if emo is not None:
            tail += f"; dev emotion best {100 * emo:.1f} % (issue goal 75 % on test)"
        if hit:
            ours = (f"{fmt(hit[3] / 60, 2)} min of optimizer time, reached at {hit[0]} step {hit[1]} (global "
                    f"{hit[2]}, dev CIDEr {hit[4]:.3f}); {tail}")
        else:
            ours = f"not reached (best dev CIDEr {best if best is not None else 'none logged'}); {tail}"
        self.row(name, ours, f"- (run {os.path.relpath(p['run'], ROOT) if p['run'].startswith(ROOT) else p['run']})",
                 "-", "1")

    # -- output ----------------------------------------------------------
    def table(self, started, load0):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        self.meta = dict(commit=commit + (" (modified tree)" if dirty else ""), started=started, load0=load0,
                         load1=loadavg(), runs=self.a.runs)
        if self.cached is not None and "meta" in self.cached:
            self.meta = dict(self.cached["meta"])
            self.meta.setdefault("runs", self.a.runs)
        m = self.meta
        lines = [
            f"Machine: {self.mach}; {self.a.threads} threads on both sides (SECAP_THREADS, torch.set_num_threads), "
            f"OMP_WAIT_POLICY={self.env['OMP_WAIT_POLICY']}.  Commit {m['commit']}.  "
            f"Started {m['started']}, {'QUICK mode (tiny repetitions: smoke test only), ' if self.a.quick else ''}"
            f"{m['runs']} interleaved run(s) per row (C, reference, C, ...), medians; load average "
            f"{m['load0']} at the start, {m['load1']} at the end."
            + (f"  (Table rebuilt from {self.a.rerender}.)" if self.a.rerender else ""),
            "",
            "| benchmark | secap-c | reference (same machine, threads) | C / ref time | runs (C+ref) | machine | date |",
            "|---|---|---|---|---|---|---|",
        ]
        parts = [x.strip() for x in self.mach.split(",")]   # model, ISA, vCPUs, OpenBLAS kernels
        short = ", ".join([parts[0], parts[1]] + [x for x in parts[2:] if x.startswith("OpenBLAS")])
        for r in self.rows:
            lines.append(f"| {r['name']} | {r['ours']} | {r['ref']} | {r['ratio']} | {r['runs']} | {short} | "
                         f"{r['date']} |")
        if self.failed:
            lines += ["", "Failed runs: " + "; ".join(self.failed) + "."]
        return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "0") not in ("", "0"))
    ap.add_argument("--rows", default=os.environ.get("BENCH_ROWS", ",".join(GROUPS)))
    ap.add_argument("--steps", type=int, default=int(os.environ.get("BENCH_STEPS", "2")),
                    help="timed steps per process of the training-step rows (after one warm-up)")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SECAP_THREADS", "0") or 0) or 2)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "table.md"))
    ap.add_argument("--append", metavar="BENCHMARKS.md", help="also append the table as a new dated section")
    ap.add_argument("--rerender", metavar="RESULTS.json", help="run nothing: rebuild the table from the raw figures "
                    "of an earlier run (its results.json; the 7B row as it was)")
    a = ap.parse_args()
    if a.quick:
        a.runs = 1
    if a.runs < 1:
        sys.exit("run.py: --runs must be at least 1")
    groups = [g.strip() for g in a.rows.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        sys.exit(f"run.py: unknown row group(s) {', '.join(bad)} (hint: choose from {', '.join(GROUPS)})")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    s = Suite(a)
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    load0 = loadavg()
    print(f"bench: {s.mach}, {a.threads} threads, {a.runs} run(s), rows {','.join(groups)}", flush=True)
    def write(pending):
        """The table so far (rows not yet run listed under it) and the raw figures, atomically."""
        text = s.table(started, load0)
        if pending:
            text += "\nNot run yet (the suite was still running or stopped): " + ", ".join(pending) + ".\n"
        for path, body in ((a.out, text), (os.path.join(os.path.dirname(os.path.abspath(a.out)), "results.json"),
                                           json.dumps(dict(rows=s.rows, raw=s.raw, failed=s.failed, meta=s.meta),
                                                      indent=1))):
            with open(path + ".tmp", "w") as f:
                f.write(body)
            os.replace(path + ".tmp", path)
        return text

    todo = [g for g in GROUPS if g in groups]
    for i, g in enumerate(todo):
        print(f"== {g}", flush=True)
        getattr(s, "g_" + g)()
        text = write(todo[i + 1:])
    print("\n" + text)
    print(f"bench: table written to {os.path.relpath(a.out, ROOT)}")
    if a.append:
        with open(a.append, "a") as f:
            nruns = "quick" if a.quick else f"{s.meta['runs']} runs"
            f.write(f"\n## `make bench` of {s.meta['started']} ({nruns})\n\n"
                    f"    make bench        # = /usr/bin/python3 tools/bench/run.py\n\n{text}")
        print(f"bench: appended to {a.append}")
    sys.exit(1 if s.failed else 0)


if __name__ == "__main__":
    main()
