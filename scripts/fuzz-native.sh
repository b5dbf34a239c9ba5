#!/usr/bin/env bash
# Long runs of the native fuzz harnesses under AddressSanitizer + UndefinedBehaviorSanitizer (README
# "Reliability"): each build-asan/native/core/fuzz_* binary (cmake --preset sanitize && cmake --build --preset
# sanitize) for RUNS inputs (default 100000) from seed SEED (default 1). Leak checking is on (LSan at exit). Prints
# each harness's JSON figures line; failing inputs are saved under build-asan/fuzz-findings/. Exit 1 on any crash,
# hang, leak or contract violation.
#   scripts/fuzz-native.sh [RUNS] [SEED] [HARNESS...]
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-100000}"; SEED="${2:-1}"; shift $(( $# > 2 ? 2 : $# ))
BIN="${FUZZ_BIN:-build-asan/native/core}"
[ -d "$BIN" ] || { echo "fuzz-native: $BIN missing; build it: cmake --preset sanitize && cmake --build --preset sanitize" >&2; exit 2; }
mkdir -p build-asan/fuzz-findings
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/native/core/fuzz/lsan.supp:print_suppressions=0}"
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=($(cd "$BIN" && ls fuzz_* 2>/dev/null))
rc=0
for h in "${harnesses[@]}"; do
  log="build-asan/fuzz-findings/$h-seed$SEED.log"
  nice -n "${NICE:-10}" "$BIN/$h" --runs "$RUNS" --seed "$SEED" --save-dir build-asan/fuzz-findings > "$log" 2>&1
  status=$?
  tail -n 1 "$log"
  if [ $status -ne 0 ]; then echo "fuzz-native: $h exited $status; see $log" >&2; rc=1; fi
done
exit $rc
