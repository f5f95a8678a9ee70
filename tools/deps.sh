#!/usr/bin/env bash
# Installs the Debian packages luacrawl needs, and nothing when all are there.
# Runs apt-get update only when something is missing. Needs root to install.
# `deps.sh fuzz` also installs what `make fuzz` needs (clang with libFuzzer); `make test`
# does not need it (its fuzz corpus replay builds with gcc).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  lua5.4 liblua5.4-dev lua-cjson lua-busted
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv liburiparser-dev
  libsqlite3-dev sqlite3
  redis-server libhiredis-dev curl
  chromium-headless-shell chromium
  python3 nodejs npm
)
[ "${1:-}" = fuzz ] && packages+=(clang libclang-rt-14-dev)
[ "${LC_DEPS_EXTRA:-}" ] && packages+=(${LC_DEPS_EXTRA})

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

# node and npm may come from outside Debian (an image's own Node.js); accept them when they work.
if printf '%s\n' "${missing[@]}" | grep -qx nodejs && command -v node >/dev/null; then
  missing=("${missing[@]/nodejs}")
fi
if printf '%s\n' "${missing[@]}" | grep -qx npm && command -v npm >/dev/null; then
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"

# The unprivileged system user the browser runs as when luacrawl runs as root (engine/browser.h:
# LC_BROWSER_USER). Idempotent; only root can create it.
browser_user=luacrawl-chrome
if ! id -u "$browser_user" >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group "$browser_user"
    echo "luacrawl: created the system user $browser_user (runs the browser when luacrawl is root)" >&2
  else
    echo "luacrawl: note: no user $browser_user (only needed when luacrawl runs as root; run 'make deps' as root)" >&2
  fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "luacrawl: missing Debian packages: ${missing[*]} (run 'make deps' as root)" >&2
  exit 1
fi
echo "luacrawl: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
