#!/usr/bin/env bash
# md_check.sh: the offline check of page:markdown's in-page script. Renders
# every spec/fixtures/markdown/NAME.html with md_render.sh and compares the
# result with NAME.md (whole body) and, where it exists, NAME.main_only.md
# (opts.main_only = true) and NAME.svg_text.md (opts.svg_text = true). Needs the npm packages installed (build/js, or
# $LUACRAWL_JS) and headless Chromium. Prints a diff for each mismatch and
# ends with "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fixtures=$(cd "$here/../fixtures/markdown" && pwd)
passed=0
failed=0

# check EXPECTED.md HTML [main_only | svg_text]
check() {
  local expected=$1 actual
  shift
  if actual=$("$here/md_render.sh" "$@"; printf x) && [ "$actual" = "$(cat "$expected"; printf x)" ]; then
    passed=$((passed + 1))
    echo "ok   ${expected##*/}"
  else
    failed=$((failed + 1))
    echo "FAIL ${expected##*/}"
    diff -u "$expected" <(printf '%s' "${actual%x}") | sed 's/^/     /'
  fi
}

for html in "$fixtures"/*.html; do
  name=${html%.html}
  [ -f "$name.md" ] && check "$name.md" "$html"
  [ -f "$name.main_only.md" ] && check "$name.main_only.md" "$html" main_only
  [ -f "$name.svg_text.md" ] && check "$name.svg_text.md" "$html" svg_text
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
