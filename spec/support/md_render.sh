#!/usr/bin/env bash
# md_render.sh: prints the Markdown that page:markdown() makes of one HTML
# file, without the engine: headless Chromium loads a copy of the file with
# the script built by luacrawl.inpage in its head, calls
# window.__luacrawl_markdown on load, and writes the result into the DOM,
# which --dump-dom prints.
#
#   spec/support/md_render.sh FIXTURE.html [main_only | svg_text]
#
# The second argument sets that option of page:markdown() to true.
# Prints the markdown trimmed plus exactly one newline (the format of the
# expected spec/fixtures/markdown/*.md files); exits 1 with the error on
# stderr when the script is not installed or returned { ok = false }.
# Environment: LUACRAWL_JS (default build/js), CHROMIUM (default
# /usr/lib/chromium/chromium-headless-shell), MD_RENDER_RAW=1 to print the
# returned object as JSON instead. Fixtures carry a <base href>
# so their links resolve the same wherever they are served from; all host
# names resolve to nothing, so Chromium makes no network request.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chromium=${CHROMIUM:-/usr/lib/chromium/chromium-headless-shell}

if [ $# -lt 1 ] || [ $# -gt 2 ] || { [ $# -eq 2 ] && [ "$2" != main_only ] && [ "$2" != svg_text ]; }; then
  echo "usage: $0 FIXTURE.html [main_only | svg_text]" >&2
  exit 2
fi
fixture=$1
main_only=false
svg_text=false
[ "${2:-}" = main_only ] && main_only=true
[ "${2:-}" = svg_text ] && svg_text=true
[ -f "$fixture" ] || { echo "$0: no such file: $fixture" >&2; exit 2; }

tmp=$(mktemp -d)
chromium_pid=
cleanup() {
  # Chromium runs in a session of its own: end the whole group, helpers too.
  if [ -n "$chromium_pid" ]; then
    kill -- "-$chromium_pid" 2>/dev/null || true
    wait "$chromium_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The script exactly as the engine gets it.
LUACRAWL_JS=${LUACRAWL_JS:-$root/build/js} lua5.4 -e "
  package.path = '$root/lib/?.lua;' .. package.path
  local inpage = require('luacrawl.inpage')
  local script, err = inpage.script('markdown')
  if not script then io.stderr:write(err, '\n') os.exit(1) end
  io.write(script)
  io.open('$tmp/call.js', 'w'):write(inpage.call('markdown', { main_only = $main_only, svg_text = $svg_text })):close()
" > "$tmp/inpage.js"

# Loaded twice to exercise the guard; the call runs after the load event,
# as the engine's does after navigation.
cat > "$tmp/run.js" <<EOF
window.addEventListener('load', function () {
  var result = $(cat "$tmp/call.js");
  var out = document.createElement('pre');
  out.id = 'luacrawl-result';
  out.textContent = btoa(unescape(encodeURIComponent(JSON.stringify(result))));
  document.documentElement.appendChild(out);
});
EOF
inject="<script src=\"file://$tmp/inpage.js\"></script><script src=\"file://$tmp/inpage.js\"></script><script src=\"file://$tmp/run.js\"></script>"
awk -v inject="$inject" '
  !done && /<head[^>]*>/ { sub(/<head[^>]*>/, "&" inject); done = 1 }
  { print }
  END { if (!done) exit 3 }
' "$fixture" > "$tmp/page.html" || { echo "$0: $fixture has no <head>" >&2; exit 2; }

setsid timeout -k 5 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --allow-file-access-from-files \
  --host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir="$tmp/profile" \
  --dump-dom "file://$tmp/page.html" > "$tmp/dom.html" 2> "$tmp/chromium.log" &
chromium_pid=$!
wait "$chromium_pid" || { cat "$tmp/chromium.log" >&2; exit 1; }
kill -- "-$chromium_pid" 2>/dev/null || true
chromium_pid=

encoded=$(sed -n 's/.*<pre id="luacrawl-result">\([A-Za-z0-9+\/=]*\)<\/pre>.*/\1/p' "$tmp/dom.html")
if [ -z "$encoded" ]; then
  echo "$0: no result in the page (did the script run?)" >&2
  cat "$tmp/chromium.log" >&2
  exit 1
fi
printf '%s' "$encoded" | base64 -d | node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    const r = JSON.parse(s);
    if (process.env.MD_RENDER_RAW === "1") { process.stdout.write(JSON.stringify(r) + "\n"); return; }
    if (!r || r.ok !== true) { process.stderr.write((r && r.error || "no result") + "\n"); process.exit(1); }
    process.stdout.write(r.markdown.trim() + "\n");
  });'
