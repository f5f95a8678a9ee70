#!/usr/bin/env bash
# bench/state.sh: the durable crawl (--state) against the in-memory one, on the bundled site
# (examples/site, what `make run` crawls). Runs each RUNS times (default 7), alternating, and
# prints the median pages/s of each (from the summary line) and their ratio. Issue 11's goal:
# the durable crawl at >= 0.9x the in-memory one. It reports; it asserts nothing.
#   bash bench/state.sh            (needs build/luacrawl: make)
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/luacrawl-state-bench.XXXXXX")
chmod 711 "$work"
trap 'rm -rf "$work"' EXIT
rate() { sed -n 's/.*(\([0-9.]*\) pages\/s).*/\1/p' "$1" | tail -1; }
mem=() dur=()
for i in $(seq "$runs"); do
  bash "$src/tools/run-default.sh" -q >/dev/null 2>"$work/m.err" || true
  mem+=("$(rate "$work/m.err")")
  rm -f "$work/c.db"*
  bash "$src/tools/run-default.sh" -q --state "$work/c.db" >/dev/null 2>"$work/d.err" || true
  dur+=("$(rate "$work/d.err")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${mem[@]}") d=$(median "${dur[@]}")
echo "in memory: ${mem[*]} pages/s (median $m)"
echo "--state:   ${dur[*]} pages/s (median $d)"
awk -v m="$m" -v d="$d" 'BEGIN { printf "ratio --state / in memory: %.2f\n", d / m }'
echo "{\"bench\":\"state\",\"runs\":$runs,\"memory_pages_s\":$m,\"state_pages_s\":$d}"
