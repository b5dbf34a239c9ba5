#!/usr/bin/env bash
# Long run of the TypeScript-side mutation driver (README "Reliability"): RUNS inputs per target (default
# 20000) over SNI task files, JSONL tasks, run and DIO configs, tokenizer.json; seed SEED (default 1).
#   scripts/fuzz-ts.sh [RUNS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export INSTILL_FUZZ_RUNS="${1:-20000}" INSTILL_FUZZ_SEED="${2:-1}"
exec nice -n "${NICE:-10}" npx vitest run test/reliability/fuzz-inputs.test.ts --testTimeout=0
