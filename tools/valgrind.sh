#!/usr/bin/env bash
# The C unit tests and one real crawl of the example site under valgrind (memcheck).
# Valgrind follows luacrawl only, not Chromium. Fails on any memory error or definite leak.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-fds=no)
fail=0
for t in "$build"/spec/test_*; do
  [ -x "$t" ] || continue
  echo "== valgrind $(basename "$t")"
  "${vg[@]}" "$t" >/dev/null || { echo "FAIL $(basename "$t")"; fail=1; }
done
echo "== valgrind luacrawl: crawl of the example site"
LUACRAWL_WRAPPER="${vg[*]}" LUACRAWL_BIN="$build/luacrawl" \
  bash tools/run-default.sh depth=2 >/dev/null 2>"$build/valgrind-crawl.log" || {
    echo "FAIL crawl under valgrind:"; tail -40 "$build/valgrind-crawl.log"; fail=1; }
grep -E "ERROR SUMMARY|definitely lost" "$build/valgrind-crawl.log" || true
[ $fail -eq 0 ] && echo "valgrind: clean"
exit $fail
