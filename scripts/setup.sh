#!/usr/bin/env bash
# Set-up for a bare Debian bookworm machine, shared by the README's two commands
# and by .ci/run (one copy): Mesa >= 25's lavapipe (Dawn refuses bookworm's
# 22.x) from bookworm-backports, Debian's chromium for the browser parity tests
# (playwright-core drives it; no browser is ever downloaded), python3 for one
# reference check, then `npm ci`.
# Idempotent and quick when everything is present. Run it with bash as root, or
# as a user with sudo; it says so and stops when neither is possible.
# Usage: bash scripts/setup.sh [--no-browser]
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
with_browser=1
[ "${1:-}" = "--no-browser" ] && with_browser=0

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else
    echo "scripts/setup.sh: installing Debian packages needs root or sudo, and this user ($(id -un)) has neither." >&2
    echo "  Ask an administrator to run: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1; apt-get install chromium" >&2
    exit 1
  fi
}
apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { as_root apt-get update -qq; apt_updated=1; }; }

mesa_version="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
if [ -z "$mesa_version" ] || dpkg --compare-versions "$mesa_version" lt 25 || ! dpkg-query -W libvulkan1 >/dev/null 2>&1; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    as_root tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt_update
  as_root apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "setup: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"

if [ "$with_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  apt_update
  as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null 2>&1 && echo "setup: chromium $(dpkg-query -W -f='${Version}' chromium)"

# python3 runs the reference subsample snippet of ../shared/datasets/README.md in
# test/subsample.test.ts (Debian images usually have it already).
if ! command -v python3 >/dev/null 2>&1; then
  apt_update
  as_root apt-get install -y -qq --no-install-recommends python3-minimal >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file (npm's own
# rule); it builds dist/ through `prepare`. Otherwise rebuild dist/ only when a
# source or shader is newer than it.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
elif [ ! -f dist/node.js ] || [ -n "$(find src shaders scripts/gen-shaders.js scripts/bundle.js -newer dist/node.js -type f -print -quit)" ]; then
  npm run build --silent
fi
echo "setup: node $(node --version), node_modules and dist/ ready"
