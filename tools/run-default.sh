#!/usr/bin/env bash
# run-default.sh: what `make run` runs after building. Serves examples/site on 127.0.0.1 with
# the fixture server, crawls it with scripts/crawl.lua, and always stops the server.
#
#   tools/run-default.sh [name=value ...] [-o FILE] [--stats FILE]   (extra args go to luacrawl)
#
# Records (JSON Lines) go to stdout, progress and the summary to stderr. Exits with luacrawl's
# exit code, or 1 when the server cannot start. LUACRAWL_BIN overrides build/luacrawl;
# LUACRAWL_PYTHON overrides python3.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LUACRAWL_BIN:-$src/build/luacrawl}
python=${LUACRAWL_PYTHON:-python3}
[ -x /usr/bin/python3 ] && [ -z "${LUACRAWL_PYTHON:-}" ] && python=/usr/bin/python3

if [ ! -x "$bin" ]; then
  echo "run-default.sh: no luacrawl binary at $bin (build it first, or set LUACRAWL_BIN)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/luacrawl-run.XXXXXX")
server_pid=
crawl_pid=

# Stops the crawl (if it is somehow still running) and the server; removes the temp dir.
cleanup() {
  if [ -n "$crawl_pid" ] && kill -0 "$crawl_pid" 2>/dev/null; then
    kill -TERM "$crawl_pid" 2>/dev/null || true
    wait "$crawl_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The server and luacrawl each run in a session of their own, so a Ctrl-C at the terminal
# reaches only this script, which passes exactly one SIGINT on to luacrawl (two would mean
# "force") and keeps serving while luacrawl winds down. `( ... ) &` rather than a plain `&`
# keeps SIGINT at its default disposition in the child (bash ignores it for simple
# background commands).
forward() {
  [ -n "$crawl_pid" ] && kill -"$1" "$crawl_pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward TERM' HUP

(trap - INT QUIT; exec setsid "$python" "$src/spec/support/server.py" --root "$src/examples/site" \
  --port-file "$work/port" --watch-pid $$ </dev/null) &
server_pid=$!

port=
for _ in $(seq 100); do
  if [ -s "$work/port" ]; then
    port=$(cat "$work/port")
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "run-default.sh: the fixture server did not start within 10 s" >&2
  exit 1
fi
echo "run-default.sh: serving examples/site at http://127.0.0.1:$port/" >&2

set +e
# LUACRAWL_WRAPPER (e.g. "valgrind --error-exitcode=99") runs luacrawl under a tool.
# shellcheck disable=SC2086
(trap - INT QUIT TERM HUP; exec setsid ${LUACRAWL_WRAPPER:-} "$bin" run "$src/scripts/crawl.lua" \
  "url=http://127.0.0.1:$port/" "$@") &
crawl_pid=$!
while :; do
  wait "$crawl_pid"
  code=$?
  # wait also returns (128+N) when a trapped signal arrives: wait again until luacrawl exits.
  kill -0 "$crawl_pid" 2>/dev/null || break
done
crawl_pid=
exit "$code"
