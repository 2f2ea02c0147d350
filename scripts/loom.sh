#!/usr/bin/env bash
# Runs the loom models of the work queue's core (src/queue/loom_tests.rs).
#
#   scripts/loom.sh                 # preemption bound 3 (what CI runs)
#   LOOM_MAX_PREEMPTIONS=4 scripts/loom.sh   # a deeper search
#
# The crate-specific cfg `requeue_loom` swaps the crate's sync shim
# (src/sync.rs) to loom's types, so dependencies' own `cfg(loom)` code
# stays out. A separate target directory keeps the normal build cache warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
export RUSTFLAGS="${RUSTFLAGS:-} --cfg requeue_loom"
exec cargo test --release -p requeue --lib loom -- --nocapture --test-threads=1 "$@"
