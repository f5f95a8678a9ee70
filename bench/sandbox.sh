#!/usr/bin/env bash
# bench/sandbox.sh: the crawl under --sandbox (with --allow-private: the bundled site is on
# 127.0.0.1) against the plain one, on the bundled site (examples/site, what `make run`
# crawls). Runs each RUNS times (default 7), alternating, and prints the median pages/s of each
# (from the summary line) and their ratio. Issue 12's goal: the sandbox costs under 5 %.
# It reports; it asserts nothing.
#   bash bench/sandbox.sh            (needs build/luacrawl: make)
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/luacrawl-sandbox-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
rate() { sed -n 's/.*(\([0-9.]*\) pages\/s).*/\1/p' "$1" | tail -1; }
plain=() boxed=()
for i in $(seq "$runs"); do
  bash "$src/tools/run-default.sh" -q >/dev/null 2>"$work/p.err" || true
  plain+=("$(rate "$work/p.err")")
  bash "$src/tools/run-default.sh" -q --sandbox --allow-private >/dev/null 2>"$work/s.err" || true
  boxed+=("$(rate "$work/s.err")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain[@]}") s=$(median "${boxed[@]}")
echo "plain:     ${plain[*]} pages/s (median $p)"
echo "--sandbox: ${boxed[*]} pages/s (median $s)"
awk -v p="$p" -v s="$s" 'BEGIN { printf "ratio --sandbox / plain: %.2f\n", s / p }'
echo "{\"bench\":\"sandbox\",\"runs\":$runs,\"plain_pages_s\":$p,\"sandbox_pages_s\":$s}"
