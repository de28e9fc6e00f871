#!/usr/bin/env bash
# Builds the libmruby the plugins link: Debian's own mruby source package
# (the version of the installed libmruby-dev), same gem set and flags as
# Debian's build, plus MRB_USE_DEBUG_HOOK (scripts/mruby-debug-hook.rb).
# Output: .cache/mruby-<version>-debughook/{include,build/host/...}. Built
# only when missing; prints the directory. Run as root (adds a deb-src entry
# for the archive Debian's own sources list names, installs ruby/rake/bison).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=$(dpkg-query -W -f='${Version}' libmruby-dev)
upstream=${version%%-*}
dir=$root/.cache/mruby-$version-debughook
lib=$dir/build/host/lib/libmruby.a
config=$root/scripts/mruby-debug-hook.rb
# A change to the build configuration rebuilds.
stamp=$dir/.config-$(sha1sum "$config" | cut -c1-12)

# .cache/mruby names the current build (meson.build links it).
link() { ln -sfn "$(basename "$dir")" "$root/.cache/mruby"; }
if [ -f "$lib" ] && [ -f "$stamp" ]; then
  link
  echo "$dir"
  exit 0
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
tools=()
for p in ruby rake bison dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || tools+=("$p")
done

# deb-src for the same archive and suite as Debian's own deb entry.
src_list=/etc/apt/sources.list.d/dovecot-mruby-src.sources
need_update=0
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  cat > "$src_list" <<SRC
# Added by dovecot-mruby scripts/build-mruby.sh: Debian's mruby source package.
Types: deb-src
URIs: ${uri:-http://deb.debian.org/debian}
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi
if [ $need_update = 1 ] || [ ${#tools[@]} -gt 0 ]; then
  apt-get update -q >&2
fi
if [ ${#tools[@]} -gt 0 ]; then
  echo "build-mruby: installing ${tools[*]}" >&2
  apt-get install -y -q --no-install-recommends "${tools[@]}" >&2
fi

rm -rf "$dir" "$dir.tmp"
mkdir -p "$dir.tmp"
(cd "$dir.tmp" && apt-get source -q "mruby=$version" >&2)
mv "$dir.tmp/mruby-$upstream" "$dir"
rm -rf "$dir.tmp"
# A copy inside the cache: rake writes its lock file next to the config.
cp "$config" "$dir/dovecot-mruby-build-config.rb"
# As debian/rules builds it: dpkg-buildflags with hardening=+all.
cflags=$(cd "$dir" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
ldflags=$(cd "$dir" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
(cd "$dir" && CFLAGS="$cflags" LDFLAGS="$ldflags" MRUBY_CONFIG="$dir/dovecot-mruby-build-config.rb" \
   rake -j"$(nproc)" all >&2)
touch "$stamp"
link
echo "build-mruby: built $dir/build/host/lib/libmruby.a in $(( $(date +%s) - start ))s" >&2
echo "$dir"
