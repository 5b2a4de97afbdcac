#!/usr/bin/env bash
# The README's first command: install what the demo needs, build, run it. Root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
exec node --import tsx scripts/demo/run.ts "$@"
