#!/usr/bin/env bash
# tools/deps.sh GROUP... - install the Debian packages a make target needs.
#
# Groups: build (compiler libraries), test (the PyTorch reference stack of the
# parity tests, sentencepiece's python binding and spm_train for the tokenizer
# tests, espeak-ng + sox for the speech they run on, and OpenMPI for the
# 2-rank training test tests/test_dist.c), fuzz (clang,
# its libFuzzer/sanitizer runtimes and omp.h for the fuzz targets), demo (the
# demo-corpus generator, and spm_train for the demo tokenizer, tools/train_spm.sh),
# browser (headless Chromium for make test-browser).  gnuplot-nox (test, demo):
# the loss-curve PNGs of tools/plot_run.sh, which secap-train draws at each
# stage end and tests/test_train.c checks.
# Checks each package with dpkg-query and installs only what is missing, with
# apt-get, as root.  Prints nothing when everything is present.
set -euo pipefail

declare -A GROUP
GROUP[build]="gcc make pkg-config libopenblas-openmp-dev libcmocka-dev libhdf5-dev libsndfile1-dev libsoxr-dev libcjson-dev libutf8proc-dev zlib1g-dev"
GROUP[test]="python3 python3-numpy python3-torch python3-torchaudio python3-h5py python3-sentencepiece sentencepiece espeak-ng sox libopenmpi-dev openmpi-bin gnuplot-nox"
GROUP[fuzz]="clang libclang-rt-14-dev libomp-dev"
GROUP[demo]="espeak-ng sox fortunes-zh sentencepiece gnuplot-nox"
GROUP[browser]="chromium"

missing=()
for g in "$@"; do
    [[ -n "${GROUP[$g]:-}" ]] || { echo "tools/deps.sh: unknown group '$g' (use: ${!GROUP[*]})" >&2; exit 2; }
    for p in ${GROUP[$g]}; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ "$st" == "install ok installed" ]] || missing+=("$p")
    done
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "tools/deps.sh: installing missing Debian packages: ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
    echo "tools/deps.sh: not root; run as root: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run to finish instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=600 -y -q)
if ! apt-get "${apt_opts[@]}" install "${missing[@]}" >/tmp/secap-deps.log 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 -q update >>/tmp/secap-deps.log 2>&1
    apt-get "${apt_opts[@]}" install "${missing[@]}" >>/tmp/secap-deps.log 2>&1 || {
        echo "tools/deps.sh: apt-get failed; see /tmp/secap-deps.log" >&2; tail -20 /tmp/secap-deps.log >&2; exit 1; }
fi
echo "tools/deps.sh: installed ${missing[*]}" >&2
