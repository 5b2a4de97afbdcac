#!/usr/bin/env bash
# The test command (README, .ci/run): install what tests need, type-check, run the unit tests and
# a CLI smoke test on Node 24, then the whole suite on Node 20 (its summary is the closing line).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
# A lab left by a crashed test worker is removed whatever happens (every lab this tool made).
trap 'node --import tsx scripts/lab/cli.ts down >/dev/null 2>&1 || true' EXIT
npx tsc -p tsconfig.json
bash scripts/node24.sh
npx vitest run "$@"
