#!/usr/bin/env bash
# Fuzzes the work queue with cargo-fuzz (libFuzzer) on STABLE Rust.
#
# Usage: scripts/fuzz.sh [seconds]        (default 600)
#
# Environment:
#   FUZZ_TARGET=queue_ops     the target in fuzz/fuzz_targets/
#   FUZZ_SANITIZER=none       none (stable, default) | address | leak
#                             (address/leak use -Zsanitizer, so the script then
#                             sets RUSTC_BOOTSTRAP=1; the crate has no unsafe,
#                             so `none` loses little and runs ~2x faster)
#   FUZZ_SEED=N               libFuzzer's -seed (default: random, printed in the log)
#   FUZZ_JOBS=1               parallel libFuzzer processes (-fork=N when > 1)
#
# Why this works on stable: with `--sanitizer none` cargo-fuzz passes only
# stable codegen flags (-Cpasses=sancov-module,
# -Cllvm-args=-sanitizer-coverage-level=4 / -inline-8bit-counters /
# -pc-table / -trace-compares / -stack-depth, --cfg fuzzing,
# -Cdebug-assertions) and libfuzzer-sys builds libFuzzer itself with the
# system C++ compiler. No nightly toolchain, no -Z flag.
#
# Steps:
#   1. installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if missing;
#   2. builds the target (release + debug assertions + coverage instrumentation);
#   3. replays every committed minimized crash in fuzz/regressions/<target>/
#      (fails the script if one still crashes, but goes on fuzzing);
#   4. fuzzes for [seconds] with the working corpus fuzz/corpus/<target>/
#      (generated, git-ignored, kept between runs) seeded from the committed
#      fuzz/seeds/<target>/; new inputs go to the working corpus only;
#   5. on a crash: minimizes it with `cargo fuzz tmin` into
#      fuzz/regressions/<target>/ and prints the input and the panic;
#   6. prints the figures: executions, exec/s, coverage, corpus files/bytes.
# The full libFuzzer log is fuzz/target/<target>-fuzz.log.
set -euo pipefail

secs=${1:-600}
target=${FUZZ_TARGET:-queue_ops}
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  timeout 1200 cargo install cargo-fuzz --locked
fi
cargo fuzz --version

if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi

corpus="corpus/$target"
seeds="seeds/$target"
regressions="regressions/$target"
artifacts="artifacts/$target"
mkdir -p "$corpus" "$seeds" "$regressions" "$artifacts" target
log="target/$target-fuzz.log"

echo "== building $target (sanitizer: $sanitizer)"
timeout 1800 cargo fuzz build -s "$sanitizer" "$target"

status=0

regression_inputs=$(find "$regressions" -type f ! -name '.*' ! -name '*.md' | sort)
if [ -n "$regression_inputs" ]; then
  echo "== replaying $(echo "$regression_inputs" | wc -l) regression input(s)"
  # shellcheck disable=SC2086
  if ! timeout 300 cargo fuzz run -s "$sanitizer" "$target" $regression_inputs -- -runs=1 \
       >"target/$target-regressions.log" 2>&1; then
    echo "!! a regression input still fails: see fuzz/target/$target-regressions.log" >&2
    grep -m5 -E "panicked at|^assertion|failed:" "target/$target-regressions.log" >&2 || true
    status=1
  else
    echo "   all pass"
  fi
fi

seed_arg=()
if [ -n "${FUZZ_SEED:-}" ]; then
  seed_arg=(-seed="$FUZZ_SEED")
fi
fork_arg=()
if [ "$jobs" -gt 1 ]; then
  fork_arg=(-fork="$jobs" -ignore_crashes=0)
fi

echo "== fuzzing $target for ${secs}s (log: fuzz/$log)"
before_crashes=$(find "$artifacts" -type f -name 'crash-*' | sort)
set +e
timeout $((secs + 300)) cargo fuzz run -s "$sanitizer" "$target" "$corpus" "$seeds" -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  "${seed_arg[@]}" "${fork_arg[@]}" >"$log" 2>&1
rc=$?
set -e
echo "   libFuzzer exit code: $rc"

new_crashes=$(comm -13 <(echo "$before_crashes") <(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort) | sed '/^$/d')
if [ "$rc" -ne 0 ] || [ -n "$new_crashes" ]; then
  status=1
  echo "!! the fuzzer found a failure:" >&2
  grep -m10 -E "panicked at|assertion|ERROR: libFuzzer|SUMMARY" "$log" >&2 || true
  for crash in $new_crashes; do
    name=$(basename "$crash")
    case "$name" in crash-*) ;; *) echo "   ($name: not minimized)"; continue ;; esac
    min="$regressions/min-${name#crash-}"
    echo "== minimizing $crash -> fuzz/$min"
    timeout 900 cargo fuzz tmin -s "$sanitizer" -r 2000 "$target" "$crash" \
      >"target/$target-tmin.log" 2>&1 || true
    smallest=$(ls -S "$artifacts"/minimized-from-* 2>/dev/null | tail -1 || true)
    if [ -n "$smallest" ]; then
      cp "$smallest" "$min"
    else
      cp "$crash" "$min"
    fi
    echo "   input ($(wc -c <"$min") bytes): $(od -An -tx1 -v "$min" | tr -s ' \n' ' ')"
    timeout 120 cargo fuzz run -s "$sanitizer" "$target" "$min" -- -runs=1 2>&1 \
      | grep -m3 -A2 "panicked at" || true
  done
fi

echo "== figures"
grep -E "^INFO: Seed:" "$log" | head -1 || true
grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || grep -E "^#[0-9]+" "$log" | tail -1 || true
grep -E "^stat::" "$log" || true
files=$(find "$corpus" -type f | wc -l)
bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
echo "working corpus fuzz/$corpus: $files files, $bytes bytes"
exit "$status"
