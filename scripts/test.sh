#!/usr/bin/env bash
# Sets up (packages, build) and runs every test: unit tests (core, bridge
# with and without GC stress, stores with a real redis-server) and
# integration tests against a real Dovecot with real IMAP/POP3 clients.
# Both Dovecot versions: first this host's (Debian 12: 2.3), then the same
# script inside a Debian 13 root (2.4; scripts/debian13.sh makes it the first
# time, about 3 minutes, and keeps it with its build in
# /var/cache/dovecot-mruby/). Each side prints its summary line; the last
# line is the total, "N passed, N failed" (", N skipped" when some were). The
# exit status is non-zero when either side failed.
#   DMR_TEST_SIDES=host      this host's Dovecot only (the inner run's setting)
#   DMR_TEST_SIDES=debian13  the Debian 13 root only
# Arguments go to `meson test` on each side (e.g. --suite unit).
set -uo pipefail
cd "$(dirname "$0")/.."

sides=${DMR_TEST_SIDES:-host debian13}
sides=$(echo ${sides//,/ })
# On a Debian 13 host the host side is already 2.4: no root.
if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = trixie ]; then
  sides=$(echo ${sides//debian13/})
  [ -n "$sides" ] || sides=host
fi
label() {
  if [ "$1" = host ]; then
    v=$(dpkg-query -W -f='${Version}' dovecot-core 2>/dev/null | sed 's/^[0-9]*://; s/[-+].*//')
    echo "Dovecot ${v:-?} (this host)"
  else
    echo "Dovecot 2.4 (Debian 13 root)"
  fi
}
if [ "$sides" != host ]; then
  summaries=()
  status=0
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  for side in $sides; do
    case $side in
      host) DMR_TEST_SIDES=host bash "$0" "$@" 2>&1 | tee "$log" ;;
      debian13) bash scripts/debian13.sh env DMR_TEST_SIDES=host bash scripts/test.sh "$@" 2>&1 |
                  tee "$log" ;;
      *) echo "test.sh: DMR_TEST_SIDES: unknown side '$side' (host, debian13)" >&2; exit 2 ;;
    esac
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || status=1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    # No summary: setup or the build failed before any test ran (one failure).
    [ -n "$line" ] || line="0 passed, 1 failed (setup/build failed, exit $rc)"
    [ "$rc" = 0 ] || grep -qE ' [1-9][0-9]* failed' <<<"$line" || line="$line (exit $rc)"
    summaries+=("$(label "$side"): $line")
  done
  echo
  printf '%s\n' "${summaries[@]}"
  python3 - "${summaries[@]}" <<'PY'
import re, sys
p = f = s = 0
for line in sys.argv[1:]:
    m = re.search(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", line)
    p += int(m.group(1)); f += int(m.group(2)); s += int(m.group(3) or 0)
    if "(exit" in line and int(m.group(2)) == 0:
        f += 1
print(f"{p} passed, {f} failed" + (f", {s} skipped" if s else ""))
PY
  exit $status
fi

# This host's Dovecot (inside the root: Debian 13's).
v=$(dpkg-query -W -f='${Version}' dovecot-core 2>/dev/null || echo "not installed")
echo "test.sh: Dovecot $v on $(. /etc/os-release && echo "$PRETTY_NAME")"
bash scripts/setup.sh --test || exit 1

meson test -C build --print-errorlogs --num-processes 2 "$@"
status=$?

python3 - <<'PY'
# One closing line over every test case: GoogleTest and unittest counts are
# read from meson's log of each test program.
import json, os, re
passed = failed = skipped = 0
path = "build/meson-logs/testlog.json"
for line in open(path) if os.path.exists(path) else []:
    r = json.loads(line)
    out = (r.get("stdout") or "") + "\n" + (r.get("stderr") or "")
    gtest = re.search(r"\[==========\] (\d+) tests? from .* ran", out)
    if gtest:
        total = int(gtest.group(1))
        f = re.search(r"\[  FAILED  \] (\d+) tests?, listed below", out)
        s_ = re.search(r"\[  SKIPPED \] (\d+) tests?", out)
        nf, ns = (int(f.group(1)) if f else 0), (int(s_.group(1)) if s_ else 0)
        passed += total - nf - ns; failed += nf; skipped += ns
        continue
    ran = re.search(r"^Ran (\d+) tests? in", out, re.M)
    if ran:
        total = int(ran.group(1))
        m = re.search(r"FAILED \((.*)\)", out)
        nf = sum(int(x) for x in re.findall(r"(?:failures|errors)=(\d+)", m.group(1))) if m else 0
        ns = sum(int(x) for x in re.findall(r"skipped=(\d+)", out.splitlines()[-1])) if out.strip() else 0
        passed += total - nf - ns; failed += nf; skipped += ns
        continue
    if r["result"] == "OK": passed += 1
    elif r["result"] == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $status
