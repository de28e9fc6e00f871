#!/usr/bin/env bash
# The Debian package, built and installed as the README's "Packages"
# subsection says: `dpkg-buildpackage -b -us -uc` on a copy of this source
# tree (the host's tree and its parent stay untouched), then
# tests/install/run.sh's throwaway root (overlay of /, private namespaces)
# with DMR_INSTALL_DEB set, where test_package.py resets Dovecot to Debian's
# stock configuration, runs the README's package install block
# (`apt install ./dovecot-mruby_*.deb`, then the configuration) and makes the
# install test's checks plus the package's own (dpkg -L, the ABI dependency).
#   tests/package/run.sh SOURCE_ROOT BUILD_DIR
# Needs root (as the install test does); exits 77 (skipped) without it.
set -euo pipefail
src=$(realpath "${1:?source root}")
build=$(realpath "${2:?build dir}")
if [ "$(id -u)" != 0 ]; then
  echo "package test: needs root (namespaces, overlay, chroot)"; exit 77
fi
# Build-Depends (debian/control) are the README's prerequisites: setup.sh
# --test installs them; a missing one fails here with dpkg's own message.
(cd "$src" && dpkg-checkbuilddeps)

tmp=$(mktemp -d /tmp/dmr-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# The source as a clone has it (tracked and new files, no build dirs), and
# the libmruby scripts/build-mruby.sh cached in .cache/ (debian/rules reuses
# it; without it the package build would fetch Debian's mruby source).
mkdir "$tmp/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$tmp/src" -xf -
else
  tar -C "$src" --exclude=./.git --exclude='./build*' --exclude='./obj-*' --exclude=./.cache -cf - . \
    | tar -C "$tmp/src" -xf -
fi
if [ -d "$src/.cache" ]; then
  cp -a "$src/.cache" "$tmp/src/"
fi

start=$(date +%s)
# All cores (debhelper builds with ninja -j1 unless told).
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
if ! (cd "$tmp/src" && dpkg-buildpackage -b -us -uc) >"$tmp/build.log" 2>&1; then
  tail -n 60 "$tmp/build.log"
  echo "package test: dpkg-buildpackage failed (log above)"
  exit 1
fi
echo "package test: dpkg-buildpackage -b -us -uc took $(( $(date +%s) - start ))s"
ls -l "$tmp"/*.deb

DMR_INSTALL_DEB=$tmp bash "$src/tests/install/run.sh" "$src" "$build"
