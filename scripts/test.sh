#!/usr/bin/env bash
# The test command (README, .ci/run): install what tests need, type-check, run the suite on
# Node 20, then the unit tests and a CLI smoke test on Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
# A lab left by a crashed test worker is removed whatever happens (every lab this tool made).
trap 'node --import tsx scripts/lab/cli.ts down >/dev/null 2>&1 || true' EXIT
npx tsc -p tsconfig.json
npx vitest run "$@"
bash scripts/node24.sh
