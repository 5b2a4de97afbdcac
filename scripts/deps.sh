#!/usr/bin/env bash
# Installs what connwatch's demo and tests need on a Debian 12 host, as root, without starting
# any system daemon (a temporary policy-rc.d denies service start-up while apt runs).
# Usage: scripts/deps.sh [test|demo]   — idempotent; apt runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

apt_packages=(dbus systemd iproute2 nftables iputils-ping procps util-linux)
case "$what" in
  test) apt_packages+=(prometheus prometheus-alertmanager systemd-container debootstrap openssl) ;;
  demo) apt_packages+=(prometheus-alertmanager openssl) ;;
  *) echo "usage: scripts/deps.sh [test|demo]" >&2; exit 2 ;;
esac

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "connwatch deps: need root to install: ${missing[*]}" >&2; exit 1; fi
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# connwatch deps.sh: never start services during install\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap '[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  echo "connwatch deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies, when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
