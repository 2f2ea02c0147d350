#!/usr/bin/env bash
# What publishing needs, checked: each crate's features on their own build
# without a warning, the declared rust-version builds the workspace, and
# every crate packages and builds from its package (`cargo package`).
# Safe to run again; uses its own target directories under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
# With REQUEUE_PRUNE_TARGETS=1 (CI), each step's target directory is removed
# when the step is done, so the steps never hold disk at the same time.
prune() { [ "${REQUEUE_PRUNE_TARGETS:-0}" = 1 ] && rm -rf "$target/$1"; return 0; }

# 1. Each feature of `requeue` on its own (and none), then requeue-bench
#    with and without Redis: a warning in any of them fails the check.
check() {
  local out
  out=$(CARGO_TARGET_DIR="$target/features" cargo check --message-format short "$@" 2>&1) || {
    echo "$out" >&2
    echo "release check: cargo check $* failed" >&2
    exit 1
  }
  if echo "$out" | grep -E '^(crates/|src/).*warning' >&2; then
    echo "release check: cargo check $* warns" >&2
    exit 1
  fi
}
check -p requeue --no-default-features
for feature in tokio events prometheus opentelemetry conformance json remote signal; do
  check -p requeue --no-default-features --features "$feature"
done
check -p requeue-bench --no-default-features
check -p requeue-bench --features redis
check -p requeue-kube
echo "release check: every feature builds on its own without warnings"
prune features

# 2. The declared rust-version (workspace Cargo.toml) builds everything.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1 || true
fi
if rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  CARGO_TARGET_DIR="$target/msrv" cargo "+$msrv" check --workspace --exclude requeue-kube \
    --all-features --all-targets
  # requeue-kube declares kube's own minimum (1.89), which is above the
  # workspace's: its own code is checked on the workspace's toolchain with
  # that floor lifted, so the only newer need is kube's, which kube states.
  CARGO_TARGET_DIR="$target/msrv" cargo "+$msrv" check -p requeue-kube \
    --all-features --all-targets --ignore-rust-version
  echo "release check: rust-version $msrv builds the workspace (requeue-kube: its code; kube needs 1.89)"
  prune msrv
else
  echo "release check: RUST-VERSION $msrv NOT CHECKED: its toolchain cannot be installed here" >&2
fi

# 3. Every crate packages, and builds from its package. Cargo verifies the
#    packages through a temporary local registry, and takes a registry
#    package of a version it has seen as unchanged: its unpacked copy under
#    ~/.cargo/registry (directories named "-<hash>") and its build in the
#    target directory are reused. Drop both first, or a second run would
#    build against the first run's sources.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rm -rf "$cargo_home"/registry/src/-*/requeue* "$cargo_home"/registry/cache/-*/requeue*
rm -rf "$target/package"
# requeue-testkit is test plumbing with `publish = false`: nothing to package.
CARGO_TARGET_DIR="$target/package" cargo package --workspace --exclude requeue-testkit --allow-dirty
echo "release check: every crate packages and builds from its package"
prune package
