#!/usr/bin/env bash
# layers_check.sh SRC: proves that the build's layer check can fail. tools/layers.sh must accept
# the engine as it is, and refuse a copy in which a lower layer includes a header of a higher
# one (base including the context cache's header, the pool including the task header) and one
# in which a pure layer includes <lua.h>.
set -euo pipefail
src=${1:?usage: layers_check.sh SRC}
check=$src/tools/layers.sh
bash "$check" "$src/engine" || { echo "FAIL: the engine itself breaks the layer order"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
try() { # name file line: copy the engine, add the line to the file, expect a refusal
  rm -rf "$tmp/engine" && cp -r "$src/engine" "$tmp/engine"
  printf '%s\n' "$3" >>"$tmp/engine/$2"
  if out=$(bash "$check" "$tmp/engine" 2>&1); then
    echo "FAIL: $1 was accepted"
    exit 1
  fi
  grep -q "$2" <<<"$out" || { echo "FAIL: $1: the message does not name $2: $out"; exit 1; }
  echo "ok: $1 refused: $out"
}
try "base including crawl" base/log.c '#include "ctxcache.h"'
try "pool including lua" pool/bpool.h '#include "task.h"'
try "crawl including lua.h" crawl/frontier.c '#include <lua.h>'
try "crawl including sqlite3.h" crawl/frontier.c '#include <sqlite3.h>'
try "store including uv.h" store/store.h '#include <uv.h>'
try "crawl including store" crawl/robots.c '#include "store.h"'
try "job including engine" job/job.c '#include "engine.h"'
echo "layers: all refusals as expected"
