#!/usr/bin/env bash
# bench/redis.sh [redis_bench options]: the shared Redis frontier's unit benchmark
# (bench/redis_bench.c) against a redis-server of its own: one per fsync policy
# (REDIS_FSYNC, default "everysec always"), each on a free loopback port in a temporary
# directory with the append-only file on (the durability the issue asks for), killed at the end.
# Options go to redis_bench (--engines 1,4,16 --pages 100000 --concurrency 8 --hold 0
# --lease-ms 1500 by default). JSON lines on stdout (with the "fsync" of the run added),
# readable lines on stderr. REDIS_ARGS adds options to the server's command line (e.g.
# "--set-max-intset-entries 4096").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
bin=${REDIS_BENCH_BIN:-$src/build/bench/redis_bench}
[[ -x $bin ]] || { echo "bench/redis: build first ($bin is missing)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "bench/redis: redis-server is not installed" >&2; exit 2; }
tmp=$(mktemp -d /tmp/luacrawl-bench-redis.XXXXXX)
redis_pid=
cleanup() {
  if [[ -n $redis_pid ]]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
for fsync in ${REDIS_FSYNC:-everysec always}; do
  port=$(free_port)
  mkdir -p "$tmp/$fsync"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/$fsync" --save '' --appendonly yes \
    --appendfsync "$fsync" --logfile "$tmp/$fsync/redis.log" ${REDIS_ARGS:-} &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  echo "bench/redis: appendfsync $fsync, redis-server pid $redis_pid on 127.0.0.1:$port" >&2
  "$bin" --port "$port" "$@" | sed "s/^{/{\"fsync\":\"$fsync\",/"
  kill "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
done
