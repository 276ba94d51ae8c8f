#!/usr/bin/env bash
# tools/demo.sh - the main job on the demo corpus (filled in as stages land).
# Builds data/demo with tools/make_demo_corpus.py when it is missing, then
# prints its statistics.  SECAP_DEMO_NUM sets the corpus size (default 1500).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
if [[ ! -e data/demo/wav.scp ]]; then
    echo "secap demo: generating the demo corpus in data/demo (espeak-ng + sox, about 2 minutes on 2 cores)"
    /usr/bin/python3 tools/make_demo_corpus.py --out data/demo --num "${SECAP_DEMO_NUM:-1500}"
fi
"$bin/secap-data" stats --data data/demo
echo "secap demo: next stages (HuBERT features, Q-Former stage 1, captioner stage 2, decoding and"
echo "scoring the test split with configs/q7x2.ini) land with the later issues."
