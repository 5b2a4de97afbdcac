#!/usr/bin/env bash
# The test command (README, .ci/run): install what tests need, type-check, run the suite on
# Node 20, then the unit tests and a CLI smoke test on Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
npx tsc -p tsconfig.json
npx vitest run "$@"
bash scripts/node24.sh
