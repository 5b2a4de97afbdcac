#!/usr/bin/env bash
# The README's first command: install what the demo needs, build, run it. Root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
# Acts 3 and 4: the test API server makes its certificates with openssl; the real kubectl shows what happened.
if ! command -v openssl >/dev/null; then
  echo "connwatch demo: acts 3 and 4 need openssl (the test API server's certificates): apt-get install openssl" >&2
  exit 1
fi
[ -x /usr/bin/kubectl ] || echo "connwatch demo: no /usr/bin/kubectl: acts 3 and 4 run without the kubectl views" >&2
exec node --import tsx scripts/demo/run.ts "$@"
