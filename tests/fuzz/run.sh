#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [TARGET...] - run libFuzzer targets one after
# another, SECONDS each (all of bin/fuzz/ when none is named).
#
# Each target first runs every input of its seed corpus tests/fuzz/<name>/
# (committed: seeds and the regression inputs of fixed findings) and of its
# working corpus build/fuzz/corpus/<name>/ (grown by earlier runs, not
# committed), then mutates them; a libFuzzer dictionary tests/fuzz/<name>.dict
# is used when present.  Crashes, leaks, timeouts (> 10 s for one input) and
# inputs needing more than 2 GB go to build/fuzz/findings/<name>/ and fail
# the run (the other targets still run; the exit status is non-zero).
#
# One exception: a hang, a crash by signal, an oversized allocation or an
# AddressSanitizer report whose innermost frame of ours or of libhdf5 is in
# libhdf5 (a damaged HDF5 file sending Debian's libhdf5 1.10.8 into a loop or
# a wild read; README.md, "Reliability") is libhdf5's, not ours.  Its input
# goes to build/fuzz/findings/<name>/libhdf5/, it is counted, and the target
# goes on fuzzing for the rest of its time.  The report judged is the input's
# re-run alone; when that does not crash (libhdf5 keeps free lists and caches
# across files, so some of its wild reads need the inputs before), it is the
# fuzzing run's own report.  Leaks, UBSan reports, our own checks and every
# report whose innermost frame is ours are failures.
#
# FUZZ_RUNS=N (make test's short run) bounds the run: each target executes at
# most N inputs from libFuzzer seed FUZZ_SEED (default 1), and a restart after
# a libhdf5 finding continues with the next seed and the runs left (fewer
# where SECONDS runs out first).  The inputs explored still differ between
# machines and runs: libhdf5's findings depend on its heap's history.
#
# The targets' own output is hidden (-close_fd_mask=3); sanitizer reports are
# not.  Extra libFuzzer flags: FUZZ_FLAGS="...".  On a shared machine run at
# low priority: `nice -n 19 tests/fuzz/run.sh 3600 score_json`.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for t in tests/fuzz/*.c; do targets+=("$(basename "$t" .c)"); done
fi
# allocator_may_return_null=1: an allocation beyond ASan's limit returns NULL
# as malloc does in production (libhdf5 handles it; ours stop with a message);
# one over -malloc_limit_mb below is still reported.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# "libhdf5" when the report in log $1 is a hang, a crash by signal, an
# oversized allocation or an AddressSanitizer report (libhdf5 is not
# instrumented: ASan sees its wild copies only through interceptors such as
# memcpy) whose innermost frame of ours or of libhdf5 is in libhdf5; else
# "ours".  Frames of ours carry a source path in our tree.
crash_re='ERROR: libFuzzer: (timeout|deadly signal|out-of-memory \(malloc)|ERROR: AddressSanitizer: '
classify() {
    local log=$1
    grep -q "secap fuzz:" "$log" && { echo ours; return; }
    grep -qE "$crash_re" "$log" || { echo ours; return; }
    local frame
    frame=$(grep -E "^ +#[0-9]+ 0x" "$log" | grep -E "libhdf5|$top/(src|tests|train|eval|tools)/" | head -1)
    [[ "$frame" == *libhdf5* ]] && echo libhdf5 || echo ours
}

failed=()
summary=()
for t in "${targets[@]}"; do
    bin=bin/fuzz/$t
    [[ -x "$bin" ]] || { echo "tests/fuzz/run.sh: $bin is not built (hint: make fuzz-build)"; failed+=("$t (not built)"); continue; }
    [[ -d tests/fuzz/$t ]] || { echo "tests/fuzz/run.sh: no seed corpus tests/fuzz/$t/"; failed+=("$t (no seeds)"); continue; }
    corpus=build/fuzz/corpus/$t
    findings=build/fuzz/findings/$t
    mkdir -p "$corpus" "$findings/libhdf5"
    dict=()
    [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
    echo "== $t: ${secs} s ($(ls tests/fuzz/$t | wc -l) seeds, $(ls "$corpus" | wc -l) in the working corpus)"
    log=build/fuzz/$t.log
    : >"$log"
    start=$(date +%s)
    execs=0
    hdf5=0
    status=ok
    restarts=0
    while :; do
        left=$((secs - ($(date +%s) - start)))
        [[ $left -ge 1 ]] || break
        budget=()
        if [[ -n ${FUZZ_RUNS:-} ]]; then
            [[ $execs -lt $FUZZ_RUNS ]] || break
            budget=(-runs=$((FUZZ_RUNS - execs)) -seed=$((${FUZZ_SEED:-1} + restarts)))
        fi
        restarts=$((restarts + 1))
        run=build/fuzz/$t.run.log
        # shellcheck disable=SC2086
        "$bin" -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
            -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" \
            "${budget[@]}" ${FUZZ_FLAGS:-} "$corpus" "tests/fuzz/$t" >"$run" 2>&1
        rc=$?
        cat "$run" >>"$log"
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run" | tail -1)
        execs=$((execs + ${n:-0}))
        [[ $rc -eq 0 ]] && break
        artifact=$(sed -n "s|.*Test unit written to \(.*\)|\1|p" "$run" | tail -1)
        # Re-run the input alone with output on: -close_fd_mask can swallow a
        # timeout's stack, and this shows whether it reproduces.
        repro=build/fuzz/$t.repro.log
        : >"$repro"
        [[ -n "$artifact" ]] && "$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 "$artifact" >"$repro" 2>&1
        cat "$repro" >>"$log"
        report=$repro alone=""
        if ! grep -qE "$crash_re" "$repro"; then report=$run alone=", not alone"; fi
        if [[ -n "$artifact" && $(classify "$report") == libhdf5 ]]; then
            mv "$artifact" "$findings/libhdf5/"
            hdf5=$((hdf5 + 1))
            echo "   libhdf5: $findings/libhdf5/$(basename "$artifact") ($(grep -oE "ERROR: [A-Za-z]+: [a-z -]+" "$report" | head -1)$alone)"
            continue
        fi
        status=failed
        echo "FAILED: $t (exit $rc), input ${artifact:-(none)}; the report (last 60 lines of $run, then of $repro):"
        tail -60 "$run"
        tail -60 "$repro"
        failed+=("$t")
        break
    done
    line="$t: $(( $(date +%s) - start )) s, $execs inputs, $(ls "$corpus" | wc -l) in the corpus, $hdf5 libhdf5 finding(s), $status"
    echo "   $line"
    summary+=("$line")
done
echo "=================================================="
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} target(s), ${secs} s each, ${#failed[@]} failed ${failed[*]:-}"
[[ ${#failed[@]} -eq 0 ]]
