#!/usr/bin/env bash
# bench/engines.sh: pages/s of 1, 2 and 3 real engines (build/luacrawl run, real Chromium)
# sharing one crawl through Redis (--frontier redis://, issue 14), without other work on the
# machine in mind: run it on an idle one. One redis-server (appendfsync everysec, a temporary
# directory, a free loopback port) and one local site (spec/support/server.py) serve all runs;
# each N gets a crawl of its own: /_/links?n=PAGES and its PAGES pages (max_depth 1, as
# spec/redis_spec.lua's job), N engines started together, each at concurrency CONC.
# Printed per N: the wall time from the first start to the last exit (browser starts
# included), the server's first push to last acknowledgement (the crawl itself), and pages/s
# of both; the crawl must end with every page committed exactly once, or the run fails.
#   ENGINES="1 2 3" PAGES=300 CONC=4 bash bench/engines.sh
# Everything started here is stopped by its EXIT trap; the engines' stderr is in the temporary
# directory, printed when one fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
bin=${LUACRAWL_BIN:-$src/build/luacrawl}
export LUACRAWL_JS=${LUACRAWL_JS:-$src/build/js}
pages=${PAGES:-300}
conc=${CONC:-4}
tmp=$(mktemp -d /tmp/luacrawl-bench-engines.XXXXXX)
chmod 711 "$tmp"
redis_pid= site_pid= engine_pids=()
cleanup() {
  for p in "${engine_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  [[ -n $site_pid ]] && kill "$site_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly yes \
  --appendfsync everysec --logfile "$tmp/redis.log" &
redis_pid=$!
python3 "$src/spec/support/server.py" --root "$src/spec/fixtures/site" --port-file "$tmp/site.port" \
  --watch-pid $$ >"$tmp/site.log" 2>&1 &
site_pid=$!
for _ in $(seq 100); do [[ -s $tmp/site.port ]] && redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
site="http://127.0.0.1:$(cat "$tmp/site.port")"
cat >"$tmp/job.lua" <<'LUA'
return {
  start = { args.base .. "/_/links?n=" .. args.n },
  max_depth = 1, concurrency = tonumber(args.c), retries = 3,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
}
LUA
now() { date +%s.%N; }
printf '%-8s %6s %10s %10s %10s %10s\n' engines pages wall_s wall_pps crawl_s crawl_pps
for n in ${ENGINES:-1 2 3}; do
  url="redis://127.0.0.1:$port/0?crawl=engines-$n"
  t0=$(now)
  engine_pids=()
  for i in $(seq "$n"); do
    "$bin" run "$tmp/job.lua" "base=$site" "n=$pages" "c=$conc" --frontier "$url" -q \
      -o "$tmp/e$n.$i.jsonl" 2>"$tmp/e$n.$i.log" &
    engine_pids+=($!)
  done
  for i in "${!engine_pids[@]}"; do
    if ! wait "${engine_pids[$i]}"; then
      echo "bench/engines: engine $((i + 1)) of $n failed:" >&2
      cat "$tmp/e$n.$((i + 1)).log" >&2
      exit 1
    fi
  done
  engine_pids=()
  t1=$(now)
  st=$("$bin" status "$url" --json)
  unique=$("$bin" export "$url" | python3 -c 'import sys, json; print(len({json.loads(l)["url"] for l in sys.stdin}))')
  python3 - "$n" "$pages" "$t0" "$t1" "$unique" "$st" <<'PY'
import json, sys
n, pages, t0, t1, unique, st = sys.argv[1:]
st, want = json.loads(st), int(pages) + 1
if st["records"] != want or int(unique) != want:
    sys.exit("bench/engines: %s engines: %d records, %s distinct, of %d pages" % (n, st["records"], unique, want))
wall = float(t1) - float(t0)
crawl = (st["last_activity"] - st["started"]) / 1000
print("%-8s %6d %10.2f %10.1f %10.2f %10.1f" % (n, want, wall, want / wall, crawl, want / crawl))
PY
done
