#!/usr/bin/env bash
# bench/markdown/run.sh: the Markdown benchmark (see bench/README.md). Scores page:markdown()
# whole-page and main_only against the HTML of 20 pages of the SQLite documentation (Debian's
# sqlite3-doc, /usr/share/doc/sqlite3), served on 127.0.0.1 and crawled with luacrawl. Reports;
# does not pass or fail.
#
#   bash bench/markdown/run.sh            the 20 pages below
#   BENCH_MD_PAGES="a.html b.html" bash bench/markdown/run.sh
#
# Installs what is missing first: sqlite3-doc through tools/deps.sh (LC_DEPS_EXTRA; needs root
# when it is missing) and markdown-it into bench/markdown/node_modules (npm ci, from
# package-lock.json). Writes BENCH_OUT/markdown-<timestamp>/ (records.jsonl, rendered.jsonl,
# scores.json, the crawl's stderr and stats) and prints the figures; with BENCH_MD_FORMAT=markdown
# as the Markdown tables of bench/RESULTS.md. The server watches this script's pid and the EXIT
# trap stops it by pid; luacrawl ends its own browser.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
bin=${LUACRAWL_BIN:-$src/build/luacrawl}
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
docs=/usr/share/doc/sqlite3
BENCH_OUT=${BENCH_OUT:-$src/bench/out}
BENCH_MD_PAGES=${BENCH_MD_PAGES:-"docs.html index.html lang.html c3ref/funclist.html c3ref/open.html
  compile.html dbstat.html fileformat2.html fts5.html pragma.html nulls.html walformat.html
  datatype3.html cli.html json1.html lang_corefunc.html lang_createtable.html quickstart.html
  spellfix1.html tclsqlite.html"}

log() { printf 'markdown bench: %s\n' "$*" >&2; }

[ -x "$bin" ] || { log "no luacrawl binary at $bin (make)"; exit 1; }
LC_DEPS_EXTRA=sqlite3-doc bash "$src/tools/deps.sh"
[ -f "$docs/docs.html" ] || { log "sqlite3-doc is not installed ($docs/docs.html missing)"; exit 1; }
if [ ! -f "$here/node_modules/markdown-it/package.json" ]; then
  log "installing markdown-it (npm ci in bench/markdown)"
  (cd "$here" && npm ci --no-audit --no-fund --silent >&2)
fi

out="$BENCH_OUT/markdown-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/luacrawl-bench-md.XXXXXX")
server_pid=
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

"$python" "$src/spec/support/server.py" --root "$docs" --port-file "$work/port" --watch-pid $$ \
  </dev/null 2>"$out/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { log "the server did not start"; exit 1; }
base="http://127.0.0.1:$(cat "$work/port")/"

pages=$(printf '%s\n' $BENCH_MD_PAGES | paste -sd, -)
log "crawling $(printf '%s\n' $BENCH_MD_PAGES | wc -l) pages of $docs from $base"
"$bin" run "$here/job.lua" "base=$base" "pages=$pages" "truth=$here/truth.js" \
  --stats "$out/stats.json" >"$out/records.jsonl" 2>"$out/crawl.log"
node "$here/render.mjs" <"$out/records.jsonl" >"$out/rendered.jsonl"
format=()
[ "${BENCH_MD_FORMAT:-}" = markdown ] && format=(--markdown)
"$python" "$here/score.py" "$out/records.jsonl" "$out/rendered.jsonl" --json "$out/scores.json" "${format[@]}"
log "results in $out"
