#!/usr/bin/env bash
# tools/layers.sh ENGINE_DIR: checks the engine's layer order (docs/ARCHITECTURE.md, "Layers").
# Every layer is a folder; a file may include headers of its own layer and of layers below it,
# never above. The lower layers may not use the libraries of higher ones either: base and crawl
# are pure C (no libuv, no Lua, no SQLite), the store adds SQLite and nothing of the loop, dist (the
# Redis frontier) the loop and hiredis without Lua, and
# nothing below the Lua runtime touches a Lua state. Prints one line per violation and exits 1 if there is any. The build runs it (target `layers`); the
# test layers/upward-include proves it fails on an upward include.
set -euo pipefail
dir=${1:?usage: layers.sh ENGINE_DIR}
layers=(base crawl store sys dist browser pool lua job .)
declare -A owner
for i in "${!layers[@]}"; do
  for h in "$dir/${layers[$i]}"/*.h; do
    [[ -e $h ]] && owner[$(basename "$h")]=$i
  done
done
# System headers a layer below the given index may not include.
redis="hiredis/hiredis.h hiredis/async.h hiredis/adapters/libuv.h"
forbid() {
  case $1 in
    0 | 1) echo "uv.h lua.h lauxlib.h lualib.h libwebsockets.h sqlite3.h $redis" ;; # base, crawl
    2) echo "uv.h lua.h lauxlib.h lualib.h libwebsockets.h $redis" ;;                # store
    3) echo "lua.h lauxlib.h lualib.h libwebsockets.h $redis" ;;                     # sys
    4) echo "lua.h lauxlib.h lualib.h libwebsockets.h" ;;                 # dist
    5 | 6) echo "lua.h lauxlib.h lualib.h" ;;                                 # browser, pool
    *) echo "" ;;
  esac
}
bad=0
for i in "${!layers[@]}"; do
  for f in "$dir/${layers[$i]}"/*.[ch]; do
    [[ -e $f ]] || continue
    while IFS= read -r line; do
      n=${line%%:*}
      inc=$(sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$line")
      if [[ $line == *'"'* ]]; then
        o=${owner[$inc]:-}
        if [[ -z $o ]]; then
          echo "layers: ${f#"$dir"/}:$n includes \"$inc\", which no layer owns" >&2
          bad=1
        elif ((o > i)); then
          echo "layers: ${f#"$dir"/}:$n includes \"$inc\" of layer ${layers[$o]}, above its own layer ${layers[$i]}" >&2
          bad=1
        fi
      else
        for x in $(forbid "$i"); do
          if [[ $inc == "$x" ]]; then
            echo "layers: ${f#"$dir"/}:$n includes <$inc>, which layer ${layers[$i]} may not use" >&2
            bad=1
          fi
        done
      fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$f" || true)
  done
done
exit $bad
