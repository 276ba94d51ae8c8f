#!/usr/bin/env bash
# tools/train_spm.sh - the demo's SentencePiece tokenizer (LLaMA's settings).
#
#   tools/train_spm.sh [--data DIR] [--prompts FILE] [--text FILE]... [--no-fortunes]
#                      [--vocab-size N] [--coverage F] [--out MODEL]
#
# 1. collects the LM text with bin/secap-lmtext text: the captions and
#    transcripts of the dataset's TRAIN split (never dev or test), the prompt
#    list, and extra text (default: fortunes-zh's chinese, tang300, song100),
#    cleaned as include/secap/lmtext.h says -> MODEL's directory/lm_text.txt;
# 2. trains a BPE model on it with Debian's spm_train (package sentencepiece)
#    with LLaMA's tokenizer settings: byte_fallback, split_digits, identity
#    normalisation (no NFKC), dummy prefix, extra whitespace kept, pieces up
#    to 16 bytes, UNK 0, BOS 1, EOS 2, no PAD.  character_coverage defaults
#    to 0.99 (LLaMA: 0.99995): the demo's 2 MB of text holds 6,000 distinct
#    characters, and at a vocabulary of 4,000 the rarest 1% of characters go
#    to byte pieces instead.  One thread and no sentence sampling, so the
#    same text gives the same model byte for byte;
# 3. checks the model: bin/secap-lmtext stats (every document encodes and
#    decodes back to itself) and bin/secap-tokenize encode | decode on the
#    whole text, compared with cmp.
# Defaults: --data data/demo, --prompts data/prompts_zh.txt, --vocab-size
# 4000, --out build/demo/tokenizer.model.  Needs `make` (bin/) first.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
data=data/demo
prompts=data/prompts_zh.txt
vocab=4000
coverage=0.99
out=build/demo/tokenizer.model
fortunes=1
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --data) data=$2; shift 2 ;;
        --prompts) prompts=$2; shift 2 ;;
        --text) extra+=("$2"); shift 2 ;;
        --no-fortunes) fortunes=0; shift ;;
        --vocab-size) vocab=$2; shift 2 ;;
        --coverage) coverage=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "tools/train_spm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v spm_train >/dev/null || { echo "tools/train_spm.sh: spm_train not found (hint: tools/deps.sh demo installs the Debian package sentencepiece)" >&2; exit 1; }
[[ -x $bin/secap-lmtext && -x $bin/secap-tokenize ]] || { echo "tools/train_spm.sh: $bin/secap-lmtext or $bin/secap-tokenize missing (hint: run make)" >&2; exit 1; }
if [[ $fortunes == 1 ]]; then
    fdir=
    for d in /usr/share/games/fortunes /usr/share/fortunes; do [[ -e $d/tang300 ]] && fdir=$d && break; done
    [[ -n $fdir ]] || { echo "tools/train_spm.sh: fortunes-zh text not found (hint: tools/deps.sh demo, or --no-fortunes)" >&2; exit 1; }
    extra+=("$fdir/chinese" "$fdir/tang300" "$fdir/song100")
fi
src=(--data "$data" --split train)
[[ -n $prompts ]] && src+=(--prompts "$prompts")
for f in "${extra[@]}"; do src+=(--text "$f"); done

dir=$(dirname "$out")
mkdir -p "$dir"
text=$dir/lm_text.txt
"$bin/secap-lmtext" text "${src[@]}" --out "$text"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/train_spm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The model records its input and prefix names (trainer_spec): fixed
# relative names in a scratch directory keep it the same wherever it is built.
cp "$text" "$tmp/lm_text.txt"
(cd "$tmp" && spm_train --input=lm_text.txt --model_prefix=tokenizer --model_type=bpe --vocab_size="$vocab" \
    --character_coverage="$coverage" --byte_fallback=true --split_digits=true \
    --normalization_rule_name=identity --add_dummy_prefix=true --remove_extra_whitespaces=false \
    --allow_whitespace_only_pieces=true --max_sentencepiece_length=16 \
    --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
    --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false \
    --max_sentence_length=65536 --minloglevel=1 >log 2>&1) ||
    { tail -20 "$tmp/log" >&2; echo "tools/train_spm.sh: spm_train failed (log above)" >&2; exit 1; }
mv "$tmp/tokenizer.model" "$out"
echo "tools/train_spm.sh: $out (BPE, vocab $vocab, coverage $coverage) from $text ($(wc -l <"$text") lines)"
"$bin/secap-lmtext" stats --tokenizer "$out" "${src[@]}" 2>/dev/null
"$bin/secap-tokenize" --model "$out" <"$text" | "$bin/secap-tokenize" --model "$out" --decode | cmp - "$text" ||
    { echo "tools/train_spm.sh: secap-tokenize does not round-trip $text" >&2; exit 1; }
echo "tools/train_spm.sh: secap-tokenize round-trips all $(wc -l <"$text") lines"
