#!/usr/bin/env bash
# bench/serve.sh [DURATION_S]: `luacrawl serve` under continuous /crawl load (bench/serve.py):
# concurrency 8 (SERVE_CONCURRENCY), 200 rotating user agents, against the local test site
# (spec/support/server.py), for DURATION_S seconds (default 600: the issue's 10 minutes).
# Starts the site and the server on free loopback ports, stops both at the end (SIGTERM: the
# server's graceful stop, whose last line says refs_outstanding). Writes the report to
# ${SERVE_OUT:-bench/serve-result.json}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
bin=${LUACRAWL_BIN:-$src/build/luacrawl}
duration=${1:-${SERVE_DURATION:-600}}
conc=${SERVE_CONCURRENCY:-8}
out=${SERVE_OUT:-$here/serve-result.json}
tmp=$(mktemp -d /tmp/luacrawl-bench-serve.XXXXXX)
chmod 711 "$tmp"
site_pid= serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  [[ -n $site_pid ]] && kill "$site_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
python3 "$src/spec/support/server.py" --root "$src/spec/fixtures/site" --port-file "$tmp/site.port" \
  --watch-pid $$ >"$tmp/site.log" 2>&1 &
site_pid=$!
for _ in $(seq 100); do [[ -s $tmp/site.port ]] && break; sleep 0.1; done
site="http://127.0.0.1:$(cat "$tmp/site.port")"
LUACRAWL_JS=${LUACRAWL_JS:-$src/build/js} "$bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" \
  --allow-private --config <(echo "return { max_running = $conc, max_queue = 64 }") \
  2>"$tmp/serve.log" &
serve_pid=$!
for _ in $(seq 300); do grep -q "serving on" "$tmp/serve.log" && break; sleep 0.1; done
port=$(grep -o 'serving on http://127.0.0.1:[0-9]*' "$tmp/serve.log" | grep -o '[0-9]*$')
server="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$server/health" >/dev/null && break; sleep 0.2; done
echo "bench/serve: $duration s at concurrency $conc against $site (server $server)" >&2
python3 "$here/serve.py" --server "$server" --site "$site" --duration "$duration" \
  --concurrency "$conc" --out "$out"
kill -TERM "$serve_pid"
wait "$serve_pid" || echo "bench/serve: the server exited with $?" >&2
serve_pid=
grep -E "stopped: refs_outstanding" "$tmp/serve.log" >&2 || true
