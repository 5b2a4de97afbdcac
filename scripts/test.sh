#!/usr/bin/env bash
# The test command (README, .ci/run): install what tests need, type-check, run the unit tests and
# a CLI smoke test on Node 24, then the whole suite on Node 20 (its summary is the closing line).
# Under CI=true a skipped test fails the run: every capability the tests need is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
# A lab left by a crashed test worker is removed whatever happens — only labs this run made, so a
# second run on the same machine (or a person's `npm run lab -- up`) keeps its own.
labs_before=" $(ls /run/connwatch-lab /run/connwatch-lab/systemd 2>/dev/null | sed -n 's/\.json$//p' | tr '\n' ' ') "
down_new_labs() {
  for f in /run/connwatch-lab/*.json /run/connwatch-lab/systemd/*.json; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .json)
    case "$labs_before" in *" $name "*) continue ;; esac
    case "$name" in
      cwsd-*) node --import tsx scripts/lab/cli.ts systemd down "$name" >/dev/null 2>&1 || true ;;
      *) node --import tsx scripts/lab/cli.ts down "$name" >/dev/null 2>&1 || true ;;
    esac
  done
}
trap down_new_labs EXIT
npx tsc -p tsconfig.json
bash scripts/node24.sh
log=$(mktemp)
set +e
npx vitest run "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 0 ] && [ "${CI:-}" = true ] && grep -qE 'Tests.*skipped' "$log"; then
  echo "CI: some tests were skipped, so a capability or an install step is missing (see the skip reasons above)" >&2
  status=1
fi
rm -f "$log"
exit "$status"
