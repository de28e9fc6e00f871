#!/usr/bin/env bash
# A Debian 13 root (Dovecot 2.4, mruby 3.3) made from Debian's archive, and
# this source tree run inside it: how scripts/test.sh tests the 2.4 side on a
# Debian 12 host. As root:
#   bash scripts/debian13.sh [COMMAND ...]
# 1. Makes the root with debootstrap when it is missing, half made, or made
#    with another package list (the stamp ROOT/.dovecot-mruby-packages):
#    scripts/setup.sh --test's packages plus the tools build-mruby.sh and the
#    tests use, so setup.sh inside installs nothing. It is built in ROOT.new
#    and renamed to ROOT only when complete: an interrupted debootstrap never
#    leaves a root that looks usable, and the next run removes ROOT.new.
# 2. Mounts, for this run: the root onto itself (so that "/" inside is a
#    mount point), proc, and /dev (with dev/pts, dev/shm).
# 3. Copies the working tree (git ls-files -co --exclude-standard: tracked
#    and new files, not ignored ones) to ROOT/srv/dovecot-mruby, keeping the
#    root's own build/ and .cache/ (its mruby 3.3 library and its meson build
#    are reused; ninja rebuilds what the copy changed).
# 4. Runs COMMAND there (default: a login shell) as root, with PATH, HOME,
#    LANG and the caller's DMR_* variables (DMR_WERROR, ...; not those that
#    name host paths), and exits with its status.
# At exit the mounts are undone (lazily when a process started inside still
# holds them); between runs the root has nothing mounted, so removing it is
# a plain rm -rf. One run at a time per root (flock ROOT.lock): a second one
# waits. Settings (environment):
#   DMR_DEBIAN13_ROOT   the root (default /var/cache/dovecot-mruby/debian13)
#   DMR_DEBIAN_MIRROR   Debian's archive (default: the one apt uses here)
#   DMR_DEBIAN13_DIR    the copy's name under ROOT/srv (default dovecot-mruby;
#                       several worktrees may keep their own builds side by
#                       side; a new one starts from the default copy's .cache)
# Times here (2 cores): the root made in about 3 minutes (184 s), 1.1 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

root=${DMR_DEBIAN13_ROOT:-/var/cache/dovecot-mruby/debian13}
suite=trixie
inner=/srv/${DMR_DEBIAN13_DIR:-dovecot-mruby}
say() { echo "debian13: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (debootstrap, mount, chroot)"; exit 1
fi

mirror=${DMR_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The host's own Debian archive (not the security one).
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
             awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' \
                                 /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

# The packages: what setup.sh --test installs, build-mruby.sh's tools (it
# still fetches mruby's source once, with apt-get source), and the commands
# the tests call (ip, openssl, ps, valgrind for bench/).
packages="$(bash scripts/setup.sh --packages --test) ruby rake bison dpkg-dev
  iproute2 openssl procps valgrind ca-certificates"
packages=$(echo $packages | tr ' ' '\n' | sort -u | tr '\n' ' ')
stamp_text="suite=$suite packages=$packages"
stamp=$root/.dovecot-mruby-packages

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
if ! flock -n 9; then
  say "waiting for another run on $root"
  flock 9
fi

mounted=()
cleanup() {
  local m
  for ((i=${#mounted[@]}-1; i>=0; i--)); do
    m=${mounted[i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

unmount_all() {  # everything mounted below $1 (a leftover of a killed run)
  local m
  for m in $(awk -v r="$1/" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

make_root() {
  local new=$root.new start
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
  fi
  local why
  if ! why=$(python3 - "$mirror/dists/$suite/InRelease" <<'PY' 2>&1
import sys, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=30)
except Exception as e:
    sys.exit(str(getattr(e, "reason", None) or e))
PY
  ); then
    say "cannot reach Debian's archive at $mirror (dists/$suite/InRelease: $why); set DMR_DEBIAN_MIRROR"
    exit 1
  fi
  unmount_all "$new"
  rm -rf --one-file-system "$new"
  start=$(date +%s)
  say "making $root (debootstrap $suite from $mirror)"
  if ! debootstrap --variant=minbase --include="$(echo $packages | tr ' ' ',')" \
        "$suite" "$new" "$mirror" >"$root.debootstrap.log" 2>&1; then
    tail -n 20 "$root.debootstrap.log" >&2
    say "debootstrap failed (log: $root.debootstrap.log)"
    exit 1
  fi
  # A Dovecot or redis started by a package's maintainer script must not run
  # in the root (the tests start their own).
  printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
  chmod 755 "$new/usr/sbin/policy-rc.d"
  # The old root's libmruby build stays useful (same mruby); the meson
  # build is made anew with the new packages.
  if [ -d "$root$inner" ]; then
    mkdir -p "$new$inner"
    cp -a "$root$inner/.cache" "$new$inner/" 2>/dev/null || true
  fi
  echo "$stamp_text" >"$new/.dovecot-mruby-packages"
  if [ -e "$root" ]; then
    unmount_all "$root"
    mv "$root" "$root.old"
    rm -rf --one-file-system "$root.old"
  fi
  mv "$new" "$root"
  say "made $root in $(( $(date +%s) - start ))s ($(du -sh "$root" | cut -f1))"
}

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_text" ]; then
  [ -e "$root" ] && say "$root: missing stamp or another package list: making it anew"
  make_root
fi

# Mounts for this run (a killed run's leftovers first undone: this run holds
# the lock, nothing else uses them).
unmount_all "$root"
mountpoint -q "$root" && umount -l "$root"
# The root a mount point of its own (a bind onto itself): inside, "/" then
# is one, as on a real system; `unshare --propagation private` (tests/install,
# the integration harness) needs that.
# Private: what is mounted below it (here, or by the tests inside) never
# propagates to the host's tree.
mount --bind "$root" "$root"
mount --make-private "$root"
mounted+=("$root")
mount -t proc proc "$root/proc"
mounted+=("$root/proc")
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mounted+=("$root/dev")

# The working tree, as a clone has it, over the previous copy (whose build/
# and .cache/ stay). Files keep their times from the tree, except that a
# file whose content differs from the previous copy is stamped now and an
# unchanged one keeps the previous copy's time: the root's build then
# rebuilds exactly what changed, even when the tree's time is older than
# its outputs (a checkout of an older branch, another clone).
mkdir -p "$root$inner"
stage=$root$inner.incoming
rm -rf "$stage"
mkdir -p "$stage"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$stage" -xf -
else
  tar --exclude=./.git --exclude='./build*' --exclude='./obj-*' --exclude=./.cache -cf - . |
    tar -C "$stage" -xf -
fi
(cd "$stage" && find . -type f -print0) | while IFS= read -r -d '' f; do
  if cmp -s "$stage/$f" "$root$inner/$f"; then
    touch -r "$root$inner/$f" "$stage/$f"
  else
    touch "$stage/$f"
  fi
done
for keep in build .cache; do
  if [ -e "$root$inner/$keep" ]; then mv "$root$inner/$keep" "$stage/$keep"; fi
done
if [ ! -e "$stage/.cache" ] && [ -d "$root/srv/dovecot-mruby/.cache" ]; then
  cp -a "$root/srv/dovecot-mruby/.cache" "$stage/.cache"
fi
rm -rf "$root$inner"
mv "$stage" "$root$inner"

env_args=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
          LANG=C.UTF-8 TERM="${TERM:-dumb}")
# (Not the ones naming host paths: the root has its own.)
while IFS= read -r v; do env_args+=("$v"); done < <(env | grep '^DMR_' |
  grep -Ev '^DMR_(DEBIAN|BUILD_DIR|SOURCE_ROOT|INSTALL_)' || true)
[ $# -gt 0 ] || set -- bash -l
# fd 9 (the lock) closed: a daemon started inside must not hold it.
status=0
chroot "$root" /usr/bin/env -i "${env_args[@]}" sh -c 'cd "$0" && exec "$@"' "$inner" "$@" 9>&- ||
  status=$?
exit $status
