#!/bin/sh
# Enforces docs/architecture.md "How to add an event": applies add_event.patch
# (a toy event, Dovecot.on_ping: one hook-table row, one binding file, its
# meson line, its test) to a scratch copy of the source tree, then checks
#   1. the patch touches at most 4 files;
#   2. the copy builds with -Dwerror=true and the toy event's test passes;
#   3. the toy's binding file emptied, the build fails at link time naming
#      binding_Ping: a hook without a binding cannot be built.
# Usage: check_add_event.sh SOURCE_ROOT PATCH [SCRATCH_DIR]
set -eu

src=$(cd "$1" && pwd)
patch_file=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
max_files=4

fail() { echo "FAIL: $*" >&2; exit 1; }

files=$(grep '^+++ ' "$patch_file" | sort -u | wc -l)
echo "the recipe touches $files files:"
grep '^+++ ' "$patch_file" | sed 's/^+++ b\//  /'
[ "$files" -le "$max_files" ] || fail "adding an event touches $files files (at most $max_files)"

scratch=${3:-}
if [ -z "$scratch" ]; then
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/dmr-recipe.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
fi
tree=$scratch/tree
mkdir -p "$tree"

# The tree without build directories, .git and the libmruby cache (linked).
for entry in "$src"/* "$src"/.[!.]*; do
    [ -e "$entry" ] || continue
    name=$(basename "$entry")
    case "$name" in .git|.cache) continue ;; esac
    [ -f "$entry/build.ninja" ] || [ -d "$entry/meson-private" ] && continue
    cp -a "$entry" "$tree/"
done
ln -s "$src/.cache" "$tree/.cache"

patch -d "$tree" -p1 --fuzz=0 --no-backup-if-mismatch -s < "$patch_file" ||
    fail "add_event.patch no longer applies: regenerate it (docs/architecture.md)"

log=$scratch/build.log
meson setup "$scratch/build" "$tree" --buildtype=debugoptimized -Dwerror=true \
    -Dbenchmarks=false > "$log" 2>&1 || { cat "$log"; fail "meson setup failed"; }
ninja -C "$scratch/build" tests/unit/unit_bridge >> "$log" 2>&1 ||
    { tail -50 "$log"; fail "the tree with the toy event does not build"; }

out=$scratch/test.log
"$scratch/build/tests/unit/unit_bridge" --gtest_filter='EventsTest.*' > "$out" 2>&1 ||
    { cat "$out"; fail "the event tests fail with the toy event"; }
grep -q '^\[       OK \] EventsTest.PingReachesItsHandler' "$out" ||
    { cat "$out"; fail "the toy event's test did not run"; }
echo "the toy event builds and its test passes"

# Without its binding the hook row must not build.
echo "// emptied by check_add_event.sh" > "$tree/src/mruby/bind_ping.cpp"
if ninja -C "$scratch/build" tests/unit/unit_bridge > "$log" 2>&1; then
    fail "a hook without a binding still builds"
fi
grep -q 'binding_Ping' "$log" || { tail -30 "$log"; fail "the build failed, but not for the missing binding"; }
echo "without its binding the build fails:"
grep -m1 'binding_Ping' "$log"
echo "PASS"
