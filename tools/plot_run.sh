#!/usr/bin/env bash
# tools/plot_run.sh RUN_DIR [STAGE] - loss curves of a secap-train run as PNGs.
#
# Reads RUN_DIR/metrics.jsonl (one JSON object per optimizer step, README
# "Run directory") and writes RUN_DIR/plots/<stage>.png for each stage in it
# (or only STAGE), drawn with gnuplot (Debian gnuplot-nox; tools/deps.sh
# demo test).  One panel per curve against the stage's step:
#   loss (and dev_loss where logged, as points);
#   each loss term the stage logs: mi, con, est, temp (stage qformer);
#   dev_cider, dev_bleu4, dev_emotion (stage caption, eval.caption_every);
#   lr.
# Skipped steps (loss null) are left out.  bin/secap-train runs it at the end
# of every stage when gnuplot is installed; it works on any run directory,
# running or finished.  Files are written as <name>.tmp.png and renamed.
# Exit 0 with the PNG paths on stdout; 1 with a message on a missing file or
# gnuplot; 2 on bad arguments.
set -euo pipefail

usage() { echo "usage: tools/plot_run.sh RUN_DIR [lm|qformer|caption]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
run=$1
only=${2:-}
[[ -z "$only" || "$only" =~ ^(lm|qformer|caption)$ ]] || usage
metrics="$run/metrics.jsonl"
[[ -r "$metrics" ]] || { echo "tools/plot_run.sh: $metrics: no such file (hint: a secap-train run directory, after its first step)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "tools/plot_run.sh: gnuplot is not installed (hint: tools/deps.sh demo, i.e. apt-get install gnuplot-nox)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/secap-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$run/plots"

# One TSV per stage and curve: step value (python's json reads the %.9g
# floats; null and absent fields are skipped).  Prints "stage curve" lines.
/usr/bin/python3 - "$metrics" "$tmp" "$only" >"$tmp/curves" <<'EOF'
import json, sys
path, out, only = sys.argv[1], sys.argv[2], sys.argv[3]
curves = ["loss", "dev_loss", "mi", "con", "est", "temp", "dev_cider", "dev_bleu4", "dev_emotion", "lr"]
files, order = {}, []
with open(path) as f:
    for ln, line in enumerate(f, 1):
        if not line.endswith("\n"):
            continue   # a torn last line of a running or killed run
        try:
            d = json.loads(line)
        except ValueError as e:
            sys.exit(f"tools/plot_run.sh: {path}:{ln}: not JSON ({e}) (hint: a secap-train metrics.jsonl)")
        st = d.get("stage")
        if not st or (only and st != only) or "step" not in d:
            continue
        for c in curves:
            v = d.get(c)
            if isinstance(v, (int, float)):
                k = (st, c)
                if k not in files:
                    files[k] = open(f"{out}/{st}.{c}.tsv", "w")
                    order.append(k)
                files[k].write(f"{d['step']}\t{v!r}\n")
for k in order:
    files[k].close()
for k in sorted(order, key=lambda k: (order.index(next(o for o in order if o[0] == k[0])), curves.index(k[1]))):
    print(*k)
EOF

stages=$(awk '{print $1}' "$tmp/curves" | awk '!seen[$0]++')
[[ -n "$stages" ]] || { echo "tools/plot_run.sh: $metrics: no step${only:+ of stage $only} logged yet" >&2; exit 1; }
for st in $stages; do
    mapfile -t cs < <(awk -v s="$st" '$1 == s && $2 != "dev_loss" {print $2}' "$tmp/curves")
    has_dev=$(awk -v s="$st" '$1 == s && $2 == "dev_loss"' "$tmp/curves")
    n=${#cs[@]}
    rows=$(( (n + 1) / 2 ))
    png="$run/plots/$st.png"
    {
        echo "set terminal pngcairo noenhanced size 1200,$((300 * rows)) font ',10'"
        echo "set output '$tmp/$st.png'"
        echo "set datafile separator '\t'"
        echo "set grid"
        echo "set key top right"
        echo "set multiplot layout $rows,2 title '$(basename "$(cd "$run" && pwd)") - stage $st'"
        for c in "${cs[@]}"; do
            echo "set title '$c'"
            echo "set xlabel 'step'"
            if [[ "$c" == loss && -n "$has_dev" ]]; then
                echo "plot '$tmp/$st.loss.tsv' using 1:2 with lines lw 1 title 'train loss', '$tmp/$st.dev_loss.tsv' using 1:2 with linespoints pt 7 lw 2 title 'dev loss'"
            elif [[ "$c" == dev_* ]]; then
                echo "plot '$tmp/$st.$c.tsv' using 1:2 with linespoints pt 7 lw 2 title '$c'"
            else
                echo "plot '$tmp/$st.$c.tsv' using 1:2 with lines lw 1 title '$c'"
            fi
        done
        echo "unset multiplot"
    } >"$tmp/$st.gp"
    gnuplot "$tmp/$st.gp" 2>"$tmp/$st.err" || { echo "tools/plot_run.sh: gnuplot failed on stage $st:" >&2; cat "$tmp/$st.err" >&2; exit 1; }
    cp "$tmp/$st.png" "$run/plots/$st.tmp.png"
    mv -f "$run/plots/$st.tmp.png" "$png"
    echo "$png"
done
