#!/usr/bin/env bash
# tests/run.sh BINDIR - run every test program in BINDIR/tests and print one
# summary of the cmocka counts (skipped tests, e.g. a kernel this CPU cannot
# run, are counted apart, never as passed).  Reference scripts (tests/ref_*.py,
# run with Debian's /usr/bin/python3) write their fixtures to build/ref/ first
# (when missing or older than the script), so the parity tests compare against
# PyTorch outputs made on this machine, whichever build runs first.
# Sanitizer builds run with LeakSanitizer on; tests/lsan.supp lists the only
# leaks tolerated (inside system libraries, each with its reason).
# Exits non-zero if any test fails or any program crashes or leaks.
set -uo pipefail
bindir=${1:-bin}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export SECAP_REF_DIR=${SECAP_REF_DIR:-$top/build/ref}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$SECAP_REF_DIR"

for ref in tests/ref_*.py; do
    [[ -e "$ref" ]] || continue
    stamp="$SECAP_REF_DIR/.$(basename "$ref").stamp"
    # Re-run when the script or a tool it imports (tools/*.py) changed.
    newer=$(find "$ref" tools -maxdepth 1 -name '*.py' -newer "$stamp" 2>/dev/null | head -1)
    if [[ ! -e "$stamp" || -n "$newer" ]]; then
        echo "== $ref"
        /usr/bin/python3 "$ref" "$SECAP_REF_DIR" || { echo "FAILED: reference script $ref"; exit 1; }
        touch "$stamp"
    fi
done

passed=0; failed=0; skipped=0; crashed=()
for t in "$bindir"/tests/test_*; do
    [[ -x "$t" ]] || continue
    echo "== $t"
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    k=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
    if [[ $rc -ne 0 && $f -eq 0 ]]; then crashed+=("$(basename "$t") (exit $rc)"); fi
done
echo "=================================================="
echo "tests ($bindir): $passed passed, $failed failed, $skipped skipped (not passed), ${#crashed[@]} programs crashed ${crashed[*]:-}"
[[ $failed -eq 0 && ${#crashed[@]} -eq 0 && $passed -gt 0 ]]
