#!/usr/bin/python3
"""tools/bench/stage1_evidence.py RUN_DIR... - the stage-1 dev probes of
secap-train runs (metrics.jsonl fields of src/train/probe.c) as a Markdown
table per run: step, dev loss, recall@1 / @5 (speech -> caption), emotion
centroid accuracy, the dev vCLUB bound U, the transcript probe; and the
mean of the last 5 train-step "mi" (U on the batch) values before each
evaluation.  Used for BENCHMARKS.md "Stage 1 on the demo: evidence"."""
import json
import sys


def table(run):
    rows = [json.loads(l) for l in open(run + "/metrics.jsonl", encoding="utf-8")]
    print("\n%s\n" % run)
    print("| step | dev loss | R@1 | R@5 | emotion centroid | dev U | train U (last 5) | transcript R@1 | transcript AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = None
    for i, r in enumerate(rows):
        if "dev_r1" not in r:
            continue
        first = first or r
        mi = [x.get("mi", 0.0) for x in rows[max(0, i - 4):i + 1]]
        auc = r.get("dev_tx_auc")
        print("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s |" % (
            r["step"], r["dev_loss"], r["dev_r1"], r["dev_r5"], r["dev_emo_centroid"], r["dev_mi"],
            sum(mi) / len(mi), r["dev_tx_r1"], "%.3f" % auc if auc is not None else "-"))
    half = rows[-1]["step"] / 2 if rows else 0
    late = [r for r in rows if r["step"] > half]
    dev_late = [r["dev_mi"] for r in late if "dev_mi" in r]
    if late and dev_late:
        print("\nsecond half (steps > %d): mean train U (mi) %.3f over %d steps, mean dev U %.3f over %d evaluations"
              % (half, sum(r.get("mi", 0.0) for r in late) / len(late), len(late), sum(dev_late) / len(dev_late),
                 len(dev_late)))
    if first:
        print("\nchance: R@1 %.3f, R@5 %.3f, emotion (majority class) %.3f, transcript R@1 %.3f; %d dev clips" % (
            first["dev_r1_chance"], first["dev_r5_chance"], first["dev_emo_majority"], first["dev_tx_chance"],
            first["dev_probe_n"]))


for d in sys.argv[1:]:
    table(d.rstrip("/"))
