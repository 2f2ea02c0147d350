#!/usr/bin/env bash
# The whole test suite, on a fresh machine. The Redis engine's tests start
# their own redis-server on 127.0.0.1 (a random free port, a temporary
# directory), so only the executable is needed: installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing redis-server (the Redis tests start their own on loopback)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q redis-server >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
    # The package may start a system service on 6379; the tests never use it.
    (service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
  else
    echo "redis-server is not installed; install it (Debian/Ubuntu: apt-get install redis-server)" >&2
    exit 1
  fi
fi

exec cargo test --workspace --all-features "$@"
