#!/usr/bin/env bash
# Builds the libFuzzer targets of spec/fuzz with clang (in $BUILD_FUZZ) and runs each for
# FUZZ_SECONDS, one at a time, each in one process on one thread (libFuzzer's default, which is
# what -jobs=1 -workers=1 asks for, minus a fuzz-0.log left in the cwd): the machine may be shared.
# Usage: tools/fuzz.sh [target...]   (default: all). New inputs go to $BUILD_FUZZ/corpus/<t>/
# (the committed spec/fuzz/corpus/<t>/ is read, never written); crashes, timeouts and failed
# properties to $BUILD_FUZZ/findings/<t>/. Exits 1 if any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_FUZZ=${BUILD_FUZZ:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-2}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(json url robots cdp frontier output proc base64)

CC=clang cmake -S . -B "$BUILD_FUZZ" -DCMAKE_BUILD_TYPE=Debug -DLC_FUZZ=ON -DLC_JS=OFF >/dev/null
cmake --build "$BUILD_FUZZ" -j "$JOBS" --target fuzzers >&2

found=0
for t in "${targets[@]}"; do
  exe="$BUILD_FUZZ/spec/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
  mkdir -p "$BUILD_FUZZ/corpus/$t" "$BUILD_FUZZ/findings/$t"
  # robots: a whole file may be 500 KiB; the others read small inputs.
  max_len=4096
  [ "$t" = robots ] && max_len=$((512 * 1024))
  echo "fuzz: $t for ${FUZZ_SECONDS}s" >&2
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -print_final_stats=1 \
    -artifact_prefix="$BUILD_FUZZ/findings/$t/" \
    "$BUILD_FUZZ/corpus/$t" "spec/fuzz/corpus/$t" 2>"$BUILD_FUZZ/fuzz-$t.log"; then
    echo "fuzz: $t FOUND something: see $BUILD_FUZZ/fuzz-$t.log and $BUILD_FUZZ/findings/$t/" >&2
    grep -E "ERROR|property failed|robots: one parse|runtime error|Test unit written" "$BUILD_FUZZ/fuzz-$t.log" | head -5 >&2 || true
    found=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$BUILD_FUZZ/fuzz-$t.log" | tr '\n' ' ' >&2
    echo >&2
  fi
done
exit $found
