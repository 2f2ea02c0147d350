#!/usr/bin/env bash
# Runs requeue's concurrency tests under a sanitizer, on the STABLE toolchain.
#
# Usage: scripts/sanitizers.sh [thread|address|leak|helgrind|drd]...   (default: thread)
#
#   thread    ThreadSanitizer (data races). The command it runs is:
#               RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread" \
#               cargo test -Zbuild-std --target x86_64-unknown-linux-gnu \
#                 --target-dir target/sanitizers/thread -p requeue \
#                 --test queue_stress --test queue_client_go --test queue_async
#   address   AddressSanitizer + LeakSanitizer, the same way (-Zsanitizer=address).
#   leak      LeakSanitizer alone (-Zsanitizer=leak).
#   helgrind  valgrind --tool=helgrind on the release test binaries (slow: see below).
#   drd       valgrind --tool=drd, likewise.
#
# Environment:
#   SAN_TESTS="queue_stress queue_client_go queue_async"   integration tests to run
#   SAN_FILTER=""        a test-name filter passed to the test binaries
#   SAN_TIMEOUT=2400     seconds allowed for each cargo/valgrind command
#
# How this works on stable 1.95: `-Zsanitizer` and `-Zbuild-std` are unstable
# flags, which RUSTC_BOOTSTRAP=1 unlocks on a stable compiler. -Zbuild-std
# rebuilds std with the sanitizer, so std's own atomics and locks are
# instrumented (without it TSan reports false races inside std's Arc,
# channels and thread spawning). It needs the toolchain's `rust-src`
# component: the script runs `rustup component add rust-src` when it is
# missing (that downloads from the Rust dist server; if that is unreachable
# the sanitizer modes cannot run and the script says so). `--target` keeps
# RUSTFLAGS away from build scripts and proc macros, and the separate
# --target-dir keeps the instrumented build out of the normal one.
#
# The valgrind modes need no nightly feature but are a last resort only:
# valgrind understands pthread locks, not the futex-based locks of std and
# parking_lot (the queue's own lock), so it sees no happens-before edge
# through them and reports the data they guard as racing. Tried here
# (helgrind, queue_client_go collapse_while_processing_blocks_a_second_worker_until_done):
# 69 errors from 37 contexts, e.g. `Waiters::register` (a push under the
# queue's parking_lot mutex) "racing" with `snapshot` (a read under the
# same mutex) -- all false. The suppressions below only drop reports whose
# stack is inside std::sys::sync / parking_lot themselves; reports in code
# that runs under those locks remain, so these modes fail only on a failed
# test, never on a valgrind report: read the log. They also run the tests
# at full size (the test files are not parameterised): use SAN_FILTER.
#
# Exit status: non-zero if any test failed, or (thread/address/leak) if the
# sanitizer reported anything.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(thread)
tests=(${SAN_TESTS:-queue_stress queue_client_go queue_async})
filter=${SAN_FILTER:-}
limit=${SAN_TIMEOUT:-2400}
host=$(rustc -vV | sed -n 's/^host: //p')
logdir="target/sanitizers"
mkdir -p "$logdir"

test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

need_rust_src() {
  if rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    return 0
  fi
  echo "== rust-src is missing: rustup component add rust-src"
  if ! timeout 600 rustup component add rust-src; then
    echo "!! cannot install rust-src: -Zbuild-std, and so the sanitizer modes, cannot run here." >&2
    echo "!! Use a valgrind mode instead: scripts/sanitizers.sh helgrind" >&2
    return 1
  fi
}

run_sanitizer() {
  local san=$1
  need_rust_src || return 1
  local log="$logdir/$san.log"
  echo "== $san sanitizer: ${tests[*]} (log: $log)"
  # halt_on_error=0: report every race, not just the first; exitcode makes
  # a reported problem fail the test binary even if its tests passed.
  set +e
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=$san" \
    TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 exitcode=66 ${TSAN_OPTIONS:-}" \
    ASAN_OPTIONS="detect_leaks=1 exitcode=66 ${ASAN_OPTIONS:-}" \
    timeout "$limit" cargo test -Zbuild-std --target "$host" \
      --target-dir "$logdir/$san" -p requeue "${test_args[@]}" -- $filter \
      >"$log" 2>&1
  local rc=$?
  set -e
  grep -E "^test result:|^running [0-9]+ tests|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY:" "$log" || true
  local reports
  reports=$(grep -cE "WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer" "$log" || true)
  echo "   exit code $rc, sanitizer reports: $reports"
  [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]
}

suppressions() {
  # Lock internals valgrind cannot see as locks (futex-based).
  cat <<'EOF'
{
   std-futex-mutex
   Helgrind:Race
   ...
   fun:*std*sys*sync*
}
{
   parking-lot-core
   Helgrind:Race
   ...
   fun:*parking_lot*
}
{
   std-futex-mutex-drd
   drd:ConflictingAccess
   ...
   fun:*std*sys*sync*
}
{
   parking-lot-core-drd
   drd:ConflictingAccess
   ...
   fun:*parking_lot*
}
EOF
}

run_valgrind() {
  local tool=$1
  local log="$logdir/$tool.log" supp="$logdir/valgrind.supp"
  suppressions >"$supp"
  echo "== valgrind --tool=$tool: ${tests[*]} (log: $log)"
  local bins
  bins=$(timeout "$limit" cargo test --release -p requeue "${test_args[@]}" --no-run \
           --message-format=json 2>/dev/null \
         | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
  : >"$log"
  local status=0
  for bin in $bins; do
    echo "-- $bin" | tee -a "$log"
    # No --error-exitcode: the reports are mostly false (see the top).
    timeout "$limit" valgrind --tool="$tool" --suppressions="$supp" \
      "$bin" --test-threads=1 $filter >>"$log" 2>&1 || status=1
    grep -E "^test result:|ERROR SUMMARY" "$log" | tail -2
  done
  return $status
}

status=0
for mode in "${modes[@]}"; do
  case "$mode" in
    thread | address | leak) run_sanitizer "$mode" || status=1 ;;
    helgrind | drd) run_valgrind "$mode" || status=1 ;;
    *) echo "unknown mode: $mode (thread, address, leak, helgrind, drd)" >&2; exit 2 ;;
  esac
done
exit $status
