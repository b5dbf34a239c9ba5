#!/usr/bin/env bash
# The long soak (README "Reliability"): trains, evaluates and generates on a tiny T5 in one process for
# MINUTES (default 30), sampling RSS and open file descriptors; exits 1 unless both are flat after the warm-up.
# Runs at low priority with one LibTorch thread. Needs `npm run build:ts` and the addon.
#   scripts/soak-long.sh [--minutes 30] [--sample 10] [--warmup 0.2] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export INSTILL_THREADS="${INSTILL_THREADS:-1}"
exec nice -n "${NICE:-19}" node scripts/soak-long.mjs "$@"
