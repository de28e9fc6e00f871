#!/usr/bin/env bash
# The README's install section, run literally on a throwaway copy of this
# host: an overlay of / (writes go to a tmpfs, the host is never touched) in
# private mount, network and PID namespaces, chrooted. Inside, /etc/dovecot is
# Debian's stock configuration again (/usr/share/dovecot, as dovecot-core's
# postinst installs it), users are system users (PAM passdb), and
# test_install.py starts that Dovecot, runs the README's commands and checks
# the example policies with real IMAP clients.
#   tests/install/run.sh SOURCE_ROOT BUILD_DIR
# Needs root (as the integration tests do); exits 77 (skipped) without it.
set -euo pipefail
src=$(realpath "${1:?source root}")
build=$(realpath "${2:?build dir}")
if [ "$(id -u)" != 0 ]; then
  echo "install test: needs root (namespaces, overlay, chroot)"; exit 77
fi
if [ "${DMR_INSTALL_INNER:-}" != 1 ]; then
  # The PID namespace ends every process started inside (Dovecot too) when
  # this script's inner half exits.
  exec env DMR_INSTALL_INNER=1 unshare --mount --net --pid --fork --propagation private \
    bash "$0" "$src" "$build"
fi

tmp=$(mktemp -d /tmp/dmr-install.XXXXXX)
trap 'cd /; umount -R "$tmp" 2>/dev/null || umount -l "$tmp" 2>/dev/null; rmdir "$tmp" 2>/dev/null' EXIT
mount -t tmpfs -o size=2g tmpfs "$tmp"
mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
root=$tmp/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/run"
# The README says `meson install -C build`: the build under test is ./build.
if [ "$build" != "$src/build" ]; then
  mkdir -p "$root$src/build"
  mount --bind "$build" "$root$src/build"
fi
# The packaged case (tests/package/run.sh): DMR_INSTALL_DEB names the
# directory holding the built .deb; tests/package/test_package.py runs the
# README's package install instead, with the same checks.
suite=install
if [ -n "${DMR_INSTALL_DEB:-}" ]; then
  mkdir -p "$root/tmp/dmr-deb"
  mount --bind "$(realpath "$DMR_INSTALL_DEB")" "$root/tmp/dmr-deb"
  suite=package
fi
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 DMR_SOURCE_ROOT="$src" \
  ${DMR_INSTALL_DEB:+DMR_INSTALL_DEB=/tmp/dmr-deb} \
  sh -c 'cd "$1/tests/$2" && exec python3 -m unittest -v "test_$2"' sh "$src" "$suite"
