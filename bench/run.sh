#!/usr/bin/env bash
# bench/run.sh: luacrawl's benchmarks (what `make bench` runs). They report; they do not pass
# or fail. See bench/README.md for the method and bench/RESULTS.md for figures.
#
#   bash bench/run.sh                      everything with the defaults
#   BENCH=load bash bench/run.sh           only the continuous-load benchmark
#   BENCH=throughput bash bench/run.sh     only the throughput benchmark
#
# Knobs (environment):
#   BENCH            all | load | throughput                         (all)
#   BENCH_PAGES      pages of each continuous-load run               (5000)
#   BENCH_LOAD_CONCURRENCY                                           (8)
#   BENCH_CONFIGS    distinct context configurations (user agents), one run each  (4 20 200)
#   BENCH_BLOCK      consecutive requests per configuration; 1: round robin       (1)
#   BENCH_POLICIES   default (max_contexts = 4 only), on (+ force), off (no cleanup)  (default)
#   BENCH_LOAD_BROWSER  Chromium binary of the load runs   (/usr/lib/chromium/chromium-headless-shell)
#   BENCH_TP_PAGES   pages of the PostgreSQL manual per throughput run; 0: the whole manual (300)
#   BENCH_TP_CONCURRENCY                                             (1 4 8)
#   BENCH_SITES      site (the bundled 40 pages) and/or pgdocs       (site pgdocs)
#   BENCH_BROWSERS   shell and/or full                               (shell full)
#   BENCH_TOOLS      luacrawl and/or puppeteer                       (luacrawl puppeteer)
#   BENCH_OUT        where results go                                (bench/out)
#
# Writes BENCH_OUT/<timestamp>/ (per-run probe and stats files, logs, manifest.jsonl,
# machine.json, summary.json), and copies summary.json to BENCH_OUT/latest.json. Every
# Chromium, node and server process is stopped before this script exits: the servers watch
# this script's pid, each measured command runs under bench/probe.py, which owns and reaps its
# whole tree, and the EXIT trap stops whatever is left by pid.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
bin=${LUACRAWL_BIN:-$src/build/luacrawl}
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

BENCH=${BENCH:-all}
BENCH_PAGES=${BENCH_PAGES:-5000}
BENCH_LOAD_CONCURRENCY=${BENCH_LOAD_CONCURRENCY:-8}
BENCH_CONFIGS=${BENCH_CONFIGS:-4 20 200}
BENCH_BLOCK=${BENCH_BLOCK:-1}
BENCH_POLICIES=${BENCH_POLICIES:-default}
BENCH_LOAD_BROWSER=${BENCH_LOAD_BROWSER:-/usr/lib/chromium/chromium-headless-shell}
BENCH_TP_PAGES=${BENCH_TP_PAGES:-300}
BENCH_TP_CONCURRENCY=${BENCH_TP_CONCURRENCY:-1 4 8}
BENCH_SITES=${BENCH_SITES:-site pgdocs}
BENCH_BROWSERS=${BENCH_BROWSERS:-shell full}
BENCH_TOOLS=${BENCH_TOOLS:-luacrawl puppeteer}
BENCH_OUT=${BENCH_OUT:-$here/out}

PGDOCS=/usr/share/doc/postgresql-doc-15/html
SHELL_BIN=/usr/lib/chromium/chromium-headless-shell
FULL_BIN=/usr/lib/chromium/chromium

case "$BENCH" in all | load | throughput) ;; *)
  echo "run.sh: BENCH must be all, load or throughput (got '$BENCH')" >&2
  exit 2
  ;;
esac
if [ ! -x "$bin" ]; then
  echo "run.sh: no luacrawl binary at $bin (make build)" >&2
  exit 1
fi

stamp=$(date +%Y%m%d-%H%M%S)
out="$BENCH_OUT/$stamp"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/luacrawl-bench.XXXXXX")
chmod 711 "$work" # as root the browser runs as luacrawl-chrome, who must reach its profile dirs
servers=()
probe_pid=

# Other people rebuild build/luacrawl and edit lib/ while this runs: measure one fixed copy of
# the binary and of its Lua library (LUACRAWL_LIB), and record the binary's checksum.
mkdir -p "$work/snap"
cp "$bin" "$work/snap/luacrawl"
cp -r "$src/lib" "$work/snap/lib"
bin_sha=$(sha256sum "$bin" | cut -c1-16)
bin_mtime=$(date -r "$bin" '+%Y-%m-%d %H:%M:%S')
bin="$work/snap/luacrawl"
export LUACRAWL_LIB="$work/snap/lib"

# Stops the running probe (it kills and reaps its tree), the servers, and removes temp files.
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$probe_pid" ] && kill -0 "$probe_pid" 2>/dev/null; then
    kill -TERM "$probe_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
  fi
  for pid in "${servers[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${servers[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM HUP

log() { printf 'run.sh: %s\n' "$*" >&2; }

# serve ROOT NAME: starts the fixture server on 127.0.0.1; sets $port.
serve() {
  local root=$1 name=$2
  "$python" "$src/spec/support/server.py" --root "$root" --port-file "$work/$name.port" \
    --watch-pid $$ </dev/null 2>"$out/server-$name.log" &
  servers+=($!)
  port=
  for _ in $(seq 100); do
    if [ -s "$work/$name.port" ]; then
      port=$(cat "$work/$name.port")
      return 0
    fi
    sleep 0.1
  done
  log "the fixture server for $name did not start"
  exit 1
}

# measure LABEL MANIFEST_JSON RECORDS ROOT PSS_INTERVAL -- COMMAND...: runs COMMAND under the probe
# (in the background, so a signal to this script reaches the trap at once), appends to the
# manifest.
measure() {
  local label=$1 manifest=$2 records=$3 root=$4 pss_interval=$5
  shift 6
  rm -f "$records"
  set +e
  "$python" "$here/probe.py" --out "$out/$label.probe.json" --label "$label" --pss \
    --pss-interval "$pss_interval" \
    --root "$root" --records "$records" -- "$@" 2>"$out/$label.log" &
  probe_pid=$!
  wait "$probe_pid"
  local rc=$?
  set -e
  probe_pid=
  printf '%s\n' "$manifest" >>"$out/manifest.jsonl"
  rm -f "$records"
  rm -rf "$root"
  [ "$rc" -eq 0 ] || log "$label exited with $rc (see $out/$label.log)"
  tail -n 1 "$out/$label.log" | sed 's/^/    /' >&2 || true
  # The probe exits 130/143 when it was interrupted (even if this shell ignores SIGINT, as a
  # background job does): stop here; the EXIT trap cleans up.
  if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
    log "interrupted"
    exit "$rc"
  fi
  return 0
}

# ---------------------------------------------------------------- machine

chromium_version=$("$FULL_BIN" --version 2>/dev/null || true)
shell_version=$("$SHELL_BIN" --version 2>/dev/null || true)
"$python" - "$out/machine.json" <<EOF
import json, os, platform, subprocess, sys
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception: return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
mem = ""
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal"): mem = line.split(":", 1)[1].strip(); break
json.dump({"nproc": os.cpu_count(), "cpu": cpu, "mem_total": mem, "kernel": platform.release(),
  "os": sh(". /etc/os-release && echo \$PRETTY_NAME"),
  "chromium": """$chromium_version""", "chromium_headless_shell": """$shell_version""",
  "node": sh("node --version"), "luacrawl": sh("$bin --version"),
  "luacrawl_binary_sha256_16": "$bin_sha", "luacrawl_binary_mtime": "$bin_mtime",
  "puppeteer_core": sh("node -p \"require('$here/node_modules/puppeteer-core/package.json').version\""),
  "luacrawl_commit": sh("git -C $src rev-parse --short HEAD"),
  "luacrawl_tree_dirty": bool(sh("git -C $src status --porcelain --untracked-files=no")),
  "bench": {"BENCH": "$BENCH", "BENCH_PAGES": $BENCH_PAGES, "BENCH_LOAD_CONCURRENCY": $BENCH_LOAD_CONCURRENCY,
            "BENCH_CONFIGS": "$BENCH_CONFIGS", "BENCH_BLOCK": $BENCH_BLOCK, "BENCH_POLICIES": "$BENCH_POLICIES",
            "BENCH_LOAD_BROWSER": "$BENCH_LOAD_BROWSER", "BENCH_TP_PAGES": $BENCH_TP_PAGES,
            "BENCH_TP_CONCURRENCY": "$BENCH_TP_CONCURRENCY", "BENCH_SITES": "$BENCH_SITES",
            "BENCH_BROWSERS": "$BENCH_BROWSERS", "BENCH_TOOLS": "$BENCH_TOOLS"}},
  open(sys.argv[1], "w"), indent=1)
EOF
log "results in $out"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}'), $chromium_version"

# ---------------------------------------------------------------- continuous load

run_load() {
  serve "$src/examples/site" load
  local base="http://127.0.0.1:$port"
  for configs in $BENCH_CONFIGS; do
  for policy in $BENCH_POLICIES; do
    local label="load-k$configs-policy-$policy"
    local root
    root=$(mktemp -d "$work/prof.XXXXXX") && chmod 711 "$root"
    log "$label: $BENCH_PAGES pages, concurrency $BENCH_LOAD_CONCURRENCY, $configs configurations in blocks of $BENCH_BLOCK, $(basename "$BENCH_LOAD_BROWSER")"
    LUACRAWL_PROFILE_ROOT=$root measure "$label" \
      "{\"part\":\"load\",\"label\":\"$label\",\"tool\":\"luacrawl\",\"browser\":\"$(basename "$BENCH_LOAD_BROWSER")\",\"site\":\"fixture /_/page?id=N\",\"concurrency\":$BENCH_LOAD_CONCURRENCY,\"policy\":\"$policy\",\"pages_target\":$BENCH_PAGES,\"configs\":$configs,\"block\":$BENCH_BLOCK,\"probe\":\"$label.probe.json\",\"stats\":\"$label.stats.json\"}" \
      "$work/$label.jsonl" "$root" 2 -- \
      "$bin" run "$here/load.lua" "base=$base" "pages=$BENCH_PAGES" \
      "concurrency=$BENCH_LOAD_CONCURRENCY" "configs=$configs" "block=$BENCH_BLOCK" \
      "policy=$policy" --browser "$BENCH_LOAD_BROWSER" -o "$work/$label.jsonl" \
      --stats "$out/$label.stats.json"
  done
  done
}

# ---------------------------------------------------------------- throughput

ensure_pgdocs() {
  [ -f "$PGDOCS/index.html" ] && return 0
  log "installing postgresql-doc-15 (the PostgreSQL 15 HTML manual) with apt-get"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-doc-15 >"$out/apt.log" 2>&1; then
    apt-get update -qq >>"$out/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-doc-15 >>"$out/apt.log" 2>&1 || true
  fi
  [ -f "$PGDOCS/index.html" ]
}

ensure_puppeteer() {
  [ -f "$here/node_modules/puppeteer-core/package.json" ] && return 0
  log "installing puppeteer-core into bench/node_modules (npm ci, from bench/package-lock.json)"
  (cd "$here" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund >"$out/npm.log" 2>&1)
}

# Starts each browser binary once (about:blank) so the first measured run does not pay for a
# cold page cache.
warm_up() {
  local b=$1 p
  p=$(mktemp -d "$work/warm.XXXXXX")
  timeout 60 "$b" --headless --no-sandbox --disable-gpu --user-data-dir="$p" --dump-dom about:blank \
    >/dev/null 2>&1 </dev/null || true
  rm -rf "$p"
}

run_throughput() {
  local sites=() s
  for s in $BENCH_SITES; do
    case $s in
      site)
        serve "$src/examples/site" tp-site
        sites+=("site|http://127.0.0.1:$port/|100000")
        ;;
      pgdocs)
        if ensure_pgdocs; then
          serve "$PGDOCS" tp-pgdocs
          local max=$BENCH_TP_PAGES
          [ "$max" -gt 0 ] || max=100000
          sites+=("pgdocs|http://127.0.0.1:$port/index.html|$max")
        else
          log "postgresql-doc-15 could not be installed: the pgdocs site is skipped (see $out/apt.log)"
        fi
        ;;
      *) log "unknown site '$s' skipped" ;;
    esac
  done
  if [[ " $BENCH_TOOLS " == *" puppeteer "* ]] && ! ensure_puppeteer; then
    log "npm ci failed (see $out/npm.log): puppeteer-core runs are skipped"
    BENCH_TOOLS=${BENCH_TOOLS//puppeteer/}
  fi
  local b
  for b in $BENCH_BROWSERS; do
    case $b in shell) warm_up "$SHELL_BIN" ;; full) warm_up "$FULL_BIN" ;; esac
  done
  local entry site url max bpath c tool label root
  for entry in "${sites[@]}"; do
    IFS='|' read -r site url max <<<"$entry"
    for b in $BENCH_BROWSERS; do
      case $b in
        shell) bpath=$SHELL_BIN ;;
        full) bpath=$FULL_BIN ;;
        *) log "unknown browser '$b' skipped"; continue ;;
      esac
      for c in $BENCH_TP_CONCURRENCY; do
        for tool in $BENCH_TOOLS; do
          label="tp-$site-$b-c$c-$tool"
          root=$(mktemp -d "$work/prof.XXXXXX") && chmod 711 "$root"
          local manifest="{\"part\":\"throughput\",\"label\":\"$label\",\"tool\":\"$tool\",\"browser\":\"$b\",\"site\":\"$site\",\"concurrency\":$c,\"pages_target\":$max,\"probe\":\"$label.probe.json\""
          log "$label"
          case $tool in
            luacrawl)
              LUACRAWL_PROFILE_ROOT=$root measure "$label" "$manifest,\"stats\":\"$label.stats.json\"}" \
                "$work/$label.jsonl" "$root" 2 -- \
                "$bin" run "$here/crawl.lua" "url=$url" "concurrency=$c" "max=$max" \
                --browser "$bpath" -o "$work/$label.jsonl" --stats "$out/$label.stats.json"
              ;;
            puppeteer)
              measure "$label" "$manifest}" "$work/$label.jsonl" "$root" 2 -- \
                node "$here/pptr.mjs" --browser "$bpath" --url "$url" --concurrency "$c" \
                --max "$max" --out "$work/$label.jsonl" --profile "$root/profile"
              ;;
            *) log "unknown tool '$tool' skipped" ;;
          esac
        done
      done
    done
  done
}

t0=$(date +%s)
if [ "$BENCH" = all ] || [ "$BENCH" = load ]; then run_load; fi
if [ "$BENCH" = all ] || [ "$BENCH" = throughput ]; then run_throughput; fi
# puppeteer-core may have been installed by run_throughput, after machine.json was written.
"$python" - "$out/machine.json" "$here/node_modules/puppeteer-core/package.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
try:
    m["puppeteer_core"] = json.load(open(sys.argv[2]))["version"]
except (OSError, ValueError, KeyError):
    pass
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF2
log "done in $(($(date +%s) - t0)) s"

echo
"$python" "$here/report.py" "$out"
cp "$out/summary.json" "$BENCH_OUT/latest.json"
echo
echo "machine-readable results: $out/summary.json (and $BENCH_OUT/latest.json)"
