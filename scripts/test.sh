#!/usr/bin/env bash
# Sets up (packages, build) and runs every test: unit tests (core, bridge
# with and without GC stress, stores with a real redis-server) and
# integration tests against a real Dovecot with real IMAP/POP3 clients.
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
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
