#!/usr/bin/env bash
# Installs what building, testing and running dovecot-mruby needs on Debian 12
# (as root), then configures and builds into ./build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential meson ninja-build pkg-config python3
  dovecot-core dovecot-dev dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-auth-lua
  libmruby-dev mruby
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  liblmdb-dev lmdb-utils libhiredis-dev redis-server
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Debian's dovecot-core postinst would start a system Dovecot; we never need it.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A system Dovecot started by the package would hold ports 143/110; ours use
# their own ports and never touch it, so leave it alone.

# libmruby with the instruction hook the watchdog needs (cached in .cache/).
bash scripts/build-mruby.sh >/dev/null

if [ ! -f build/build.ninja ]; then
  # DMR_WERROR=1 (CI): a compiler warning fails the build.
  meson setup build --buildtype=debugoptimized ${DMR_WERROR:+-Dwerror=true}
fi
ninja -C build
