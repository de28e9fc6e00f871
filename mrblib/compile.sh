#!/bin/sh
# compile.sh MRBC OUTPUT.c SYMBOL FILE.rb...
# Runs `mrbc -g` on copies of the files named dovecot/<file>.rb, so that the
# debug info (and every backtrace through the API) names them so, whatever
# the build tree's path (src/mruby/errors.cpp hides exactly these frames).
set -e
mrbc=$1 out=$2 symbol=$3
shift 3
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/dovecot"
names=
for f in "$@"; do
    cp "$f" "$tmp/dovecot/"
    names="$names dovecot/$(basename "$f")"
done
cd "$tmp"
# shellcheck disable=SC2086  # names are dovecot/<file>.rb, no spaces
"$mrbc" -g -B"$symbol" -o "$out" $names
