#!/usr/bin/env bash
# Installs what building dovecot-mruby needs on Debian 12 (as root), then
# configures and builds into ./build. Idempotent.
#   bash scripts/setup.sh          the install path: build dependencies only
#                                  (what an operator's mail host needs to
#                                  build and `meson install` the plugins)
#   bash scripts/setup.sh --test   also the test and benchmark dependencies
#                                  (googletest, redis-server, ...): for
#                                  scripts/test.sh and CI, never a mail host
#   bash scripts/setup.sh --packages [--test]
#                                  print those package names (one line) and
#                                  exit: scripts/debian13.sh makes its root
#                                  with them, so setup.sh there installs nothing
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
print_only=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1 ;;
    --packages) print_only=1 ;;
    *) echo "usage: $0 [--packages] [--test]" >&2; exit 2 ;;
  esac
done

# Building the plugins and running them (the demo runs IMAP and POP3).
packages=(
  build-essential meson ninja-build pkg-config python3
  dovecot-core dovecot-dev dovecot-imapd dovecot-pop3d
  libmruby-dev mruby liblmdb-dev libhiredis-dev nlohmann-json3-dev libonig-dev
)
# Unit, integration and benchmark runs only.
test_packages=(
  dovecot-lmtpd dovecot-auth-lua
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  lmdb-utils redis-server redis-sentinel   # redis-sentinel: the failover test
  debhelper   # tests/package: dpkg-buildpackage of debian/
)
[ $with_tests = 1 ] && packages+=("${test_packages[@]}")
if [ $print_only = 1 ]; then
  echo "${packages[*]}"
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A system Dovecot started by the package would hold ports 143/110; ours use
# their own ports and never touch it, so leave it alone.

# libmruby with the instruction hook the watchdog needs (cached in .cache/).
bash scripts/build-mruby.sh >/dev/null

# The install path builds the plugins only; --test also the tests and
# benchmarks (turned on in an existing build when asked for).
if [ ! -f build/build.ninja ]; then
  # DMR_WERROR=1 (CI): a compiler warning fails the build.
  flag=$([ $with_tests = 1 ] && echo true || echo false)
  meson setup build --buildtype=debugoptimized -Dtests=$flag -Dbenchmarks=$flag \
    ${DMR_WERROR:+-Dwerror=true}
elif [ $with_tests = 1 ]; then
  off=$(meson introspect build --buildoptions | python3 -c 'import json, sys
print(" ".join("-D%s=true" % o["name"] for o in json.load(sys.stdin)
               if o["name"] in ("tests", "benchmarks") and o["value"] is False))')
  if [ -n "$off" ]; then
    meson configure build $off
  fi
fi
ninja -C build
