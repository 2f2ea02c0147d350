#!/usr/bin/env bash
# The whole test suite, on a fresh machine. The Redis engine's tests start
# their own redis-server on 127.0.0.1 (a random free port, a temporary
# directory), so only the executable is needed: installed here if missing,
# as are Node.js and npm, which the BullMQ comparison runs on.
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

# Node.js and npm run BullMQ beside requeue-redis (`requeue bench --engine
# redis --peers`, tested by crates/requeue-cli/tests/bench_peers.rs, which
# is skipped only when `node` is missing): installed here if missing, then
# BullMQ's pinned packages (the bench would install them on first use too).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing nodejs and npm (BullMQ runs on them in the peers bench)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q nodejs npm >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null; }
  else
    echo "node and npm are not installed: the BullMQ comparison test will be skipped" \
      "(Debian/Ubuntu: apt-get install nodejs npm)" >&2
  fi
fi
peers=crates/requeue-bench/peers/bullmq
if command -v npm >/dev/null 2>&1 && [ ! -f "$peers/node_modules/bullmq/package.json" ]; then
  echo "installing BullMQ's pinned packages (npm ci in $peers)" >&2
  (cd "$peers" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

exec cargo test --workspace --all-features "$@"
