#!/usr/bin/env bash
# Installs the system packages tinyvllm needs when any is missing (Debian/Ubuntu).
# Uses apt directly as root, sudo otherwise. Idempotent and quiet when all is present.
set -euo pipefail
PKGS="build-essential cmake pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libcmocka-dev libedit-dev nodejs npm clang curl python3 python3-jinja2 tmux libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node/npm may come from elsewhere than Debian (nvm, nodesource): accept what is on PATH
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
if command -v clang >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx clang | tr '\n' ' ')
fi
missing=$(echo "$missing" | xargs || true)
if [ -n "$missing" ]; then
  echo "setup: installing missing packages: $missing"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: need root or sudo to install: $missing" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q || true
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# JS test clients and oracles (npm), installed into tests/js when its lockfile changed
if [ -f tests/js/package.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package.json -nt tests/js/node_modules/.stamp ]; then
    echo "setup: npm install in tests/js"
    if ! log=$(cd tests/js && npm install --no-audit --no-fund --loglevel=error 2>&1 && touch node_modules/.stamp); then
      echo "$log" >&2
      echo "setup: npm install failed; JS oracle tests will skip" >&2
    fi
  fi
fi
