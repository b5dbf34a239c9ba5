#!/usr/bin/env bash
# Kill trials (README "Reliability"): `instill launch --nproc 2 -- train` with a random worker SIGKILLed at a
# random moment, N times (default 20); checks no hung survivor, no corrupt checkpoint, --resume finishes.
#   scripts/kill-trials.sh [--trials 20] [--seed 1] [--steps 12] [--deadline 60] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n "${NICE:-10}" node scripts/kill-trials.mjs "$@"
