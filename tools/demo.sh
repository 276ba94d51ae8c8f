#!/usr/bin/env bash
# tools/demo.sh - the main job on the demo corpus (filled in as stages land).
#
# 1. builds data/demo with tools/make_demo_corpus.py when it is missing and
#    prints its statistics;
# 2. makes a random-weight HuBERT of the large layout at demo width
#    (tools/convert_hf.py --init random --config hubert-demo; the paper's
#    chinese-hubert-large cannot be downloaded here) and extracts the
#    features of every utterance into the feature cache build/demo/features.h5;
# 3. builds the BERT vocab.txt of the corpus (transcripts and captions) for the
#    Q-Former's text side: build/demo/vocab.txt (bin/secap-vocab);
# 4. trains the demo's SentencePiece BPE tokenizer (LLaMA's settings) on the
#    LM text -- train-split captions and transcripts, data/prompts_zh.txt,
#    fortunes-zh -- with tools/train_spm.sh: build/demo/tokenizer.model.
# 5. trains with bin/secap-train --config configs/demo.ini (stages lm,
#    qformer, caption) into build/demo/run; a run directory that already
#    holds a checkpoint is resumed (--resume: the checkpoint's own config),
#    so a second `make demo` continues an interrupted run or, when it is
#    finished, only loads and returns;
# 6. captions the test split and scores it with the two baselines:
#    bin/secap-eval --checkpoint build/demo/run --split test (files in
#    build/demo/run/eval-test), then the HTML page with bin/secap-report.
# SECAP_DEMO_NUM sets the corpus size (default 1500).
set -euo pipefail
# Threads sleep rather than spin between parallel regions: on a shared machine
# a spinning OpenMP team whose partner thread is descheduled runs the small
# demo models several times slower (7x measured with one other busy process).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
if [[ ! -e data/demo/wav.scp ]]; then
    echo "secap demo: generating the demo corpus in data/demo (espeak-ng + sox, about 2 minutes on 2 cores)"
    /usr/bin/python3 tools/make_demo_corpus.py --out data/demo --num "${SECAP_DEMO_NUM:-1500}"
fi
"$bin/secap-data" stats --data data/demo --config configs/q7x2.ini

mkdir -p build/demo
hubert=build/demo/hubert-demo.h5
if [[ ! -e $hubert ]]; then
    echo "secap demo: random-weight HuBERT (large layout, demo width) -> $hubert"
    /usr/bin/python3 tools/convert_hf.py --init random --config hubert-demo --seed 1 --out "$hubert"
fi
echo "secap demo: extracting HuBERT features into build/demo/features.h5"
"$bin/secap-extract" --hubert "$hubert" --data data/demo --out build/demo/features.h5
echo "secap demo: BERT vocab of the corpus' transcripts and captions -> build/demo/vocab.txt"
"$bin/secap-vocab" --data data/demo --out build/demo/vocab.txt
echo "secap demo: SentencePiece tokenizer of the LM text (train split, prompts, fortunes-zh) -> build/demo/tokenizer.model"
BIN="$bin" tools/train_spm.sh --data data/demo --out build/demo/tokenizer.model
run=build/demo/run
if compgen -G "$run/ckpt-*.h5" > /dev/null; then
    echo "secap demo: resuming (or, when finished, checking) the run in $run"
    "$bin/secap-train" --resume "$run"
else
    echo "secap demo: training lm, qformer, caption -> $run (configs/demo.ini)"
    "$bin/secap-train" --config configs/demo.ini
fi
echo "secap demo: captioning and scoring the test split"
"$bin/secap-eval" --checkpoint "$run" --split test --out "$run/eval-test"
"$bin/secap-report" --captions "$run/eval-test/fid2captions.json" --refs "$run/eval-test/refs.json" \
    --data data/demo --run "$run" --out "$run/eval-test/report.html"
echo "secap demo: done in ${SECONDS} s; report: $run/eval-test/report.html"
