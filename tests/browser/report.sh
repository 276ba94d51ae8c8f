#!/usr/bin/env bash
# tests/browser/report.sh BINDIR - secap-report's page in a real browser
# (make test-browser; Debian's chromium, tools/deps.sh browser).
#
# Makes a small dataset (4 clips with audio, transcripts and labels), a run
# directory with two stages of metrics.jsonl and a per-item score file, writes
# the page with BINDIR/secap-report, opens it in headless Chromium with
# "#selftest" (the page's script then clicks every sortable header twice and
# picks every emotion in the filter, and writes what it saw into
# <pre id="selftest">) and checks, from the fixture's own files: the rows,
# audio elements with sources and chart lines rendered; every column sorts
# descending then ascending by its per-item values (ties in clip order); the
# filter shows exactly the clips of each label.  Exits 1 on any mismatch.
set -euo pipefail
bindir=${1:-bin}
top=$(cd "$(dirname "$0")/../.." && pwd)
bindir=$(cd "$bindir" && pwd)
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || { echo "tests/browser/report.sh: no chromium (hint: tools/deps.sh browser, as root)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/secap_browser_XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

/usr/bin/python3 - <<'PY'
import json, math, struct, wave, os
os.makedirs("ds/wav"); os.makedirs("run"); os.makedirs("page")
ids = ["u1", "u2", "u3", "u4", "u5"]
labels = ["开心", "悲伤", "开心", "生气", "悲伤"]
for i, u in enumerate(ids):
    with wave.open(f"ds/wav/{u}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(0.05 * (i + 1) * t))) for t in range(8000)))
open("ds/wav.scp", "w").write("".join(f"{u} wav/{u}.wav\n" for u in ids))
open("ds/text.txt", "w").write("".join(f"{u} 第{i}句<i>话</i>\n" for i, u in enumerate(ids)))
open("ds/emotion.txt", "w").write("".join(f"{u} {l}\n" for u, l in zip(ids, labels)))
refs = {"u1": ["语速很快，听起来很开心", "心情很好"], "u2": "语气哀伤", "u3": ["带着笑意"],
        "u4": ["情绪愤怒，声音很大"], "u5": ["声音很轻，透着悲伤"]}
hyps = {"u1": ["听起来很开心<script>document.title='x'</script>", "心情很好"], "u2": "语速很快，情绪愤怒",
        "u3": "带着笑意", "u4": "声音很大", "u5": "声音很轻，语气哀伤"}
json.dump(refs, open("ds/fid2captions.json", "w"), ensure_ascii=False)
json.dump(hyps, open("hyps.json", "w"), ensure_ascii=False)
# u3 and u5 tie on Similarity: the tie keeps clip order in both directions
json.dump({"u1": {"Similarity": 0.9}, "u2": {"Similarity": 0.2}, "u3": {"Similarity": 0.7},
           "u4": {"Similarity": -0.1}, "u5": {"Similarity": 0.7}}, open("sim.json", "w"))
with open("run/metrics.jsonl", "w") as f:
    for st in ("qformer", "caption"):
        for k in range(1, 31):
            f.write(json.dumps({"stage": st, "step": k, "loss": 3 / k + 0.1, "loss_con": 1 - k / 40,
                                "loss_mi": 0.2, "lr": 1e-4}) + "\n")
PY

"$bindir/secap-score" --refs ds/fid2captions.json --hyps hyps.json --per-item lib.json > /dev/null
"$bindir/secap-report" --captions hyps.json --refs ds/fid2captions.json --data ds --run run --scores sim.json \
    --out page/report.html
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --virtual-time-budget=10000 \
    --dump-dom "file://$dir/page/report.html#selftest" > dom.html 2> browser.log || {
    echo "tests/browser/report.sh: chromium failed:" >&2; tail -5 browser.log >&2; exit 1; }

/usr/bin/python3 - <<'PY'
import json, re, sys, urllib.parse
dom = open("dom.html", encoding="utf-8").read()
m = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
if not m:
    sys.exit("report.sh: no <pre id=\"selftest\"> in the DOM: the page's script did not run to the end")
got = json.loads(urllib.parse.unquote(m.group(1)))
ids = ["u1", "u2", "u3", "u4", "u5"]
labels = dict(l.split() for l in open("ds/emotion.txt", encoding="utf-8"))
lib = json.load(open("lib.json"))
sim = json.load(open("sim.json"))
cols = ["Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Similarity"]
vals = {f"s{k}": {u: (sim if c == "Similarity" else lib)[u][c] for u in ids} for k, c in enumerate(cols)}
vals["idx"] = {u: i + 1 for i, u in enumerate(ids)}
errors = []

def check(what, a, b):
    if a != b:
        errors.append(f"{what}: page {a}, expected {b}")

check("rows", got["rows"], 5)
check("audio elements", got["audio"], 5)
check("audio sources", got["audio_with_source"], 5)
check("chart lines (2 stages x loss, loss_con, loss_mi)", got["charts"], 6)
check("corpus metric rows (5 metrics, Similarity mean, emotion)", got["metrics_rows"], 7)
check("sortable columns", sorted(got["sorted"]), sorted([f"{k}:{d}" for k in vals for d in ("asc", "desc")]))
for k, v in vals.items():
    order = {u: i for i, u in enumerate(ids)}
    check(f"sort {k} descending", got["sorted"].get(f"{k}:desc"), sorted(ids, key=lambda u: (-v[u], order[u])))
    check(f"sort {k} ascending", got["sorted"].get(f"{k}:asc"), sorted(ids, key=lambda u: (v[u], order[u])))
want_f = {"": ids}
for u in ids:
    want_f.setdefault(labels[u], []).append(u)
check("filter options", sorted(got["filtered"]), sorted(want_f))
for l, us in want_f.items():
    check(f"filter {l or 'all'}", got["filtered"].get(l), us)
check("count after reset", got["shown"], "5 / 5 clips")
if "<title>x</title>" in dom:
    errors.append("a caption's <script> ran")
if errors:
    print("tests/browser/report.sh: FAILED\n  " + "\n  ".join(errors))
    sys.exit(1)
n = sum(len(v) for v in got["sorted"].values())
print(f"tests/browser/report.sh: ok: 5 rows, 5 audio players, {got['charts']} curve lines; "
      f"{len(got['sorted'])} sorts and {len(got['filtered'])} filters as expected ({n} row positions checked)")
PY
