#!/usr/bin/env python3
"""Auth process CPU per login, side by side in one run: plain Dovecot, Dovecot
with the mruby passdb policy stage (on_auth + on_auth_result), and the
auth-lua equivalent (a passdb policy stage returning NEXT; auth-lua has no
hook after the attempt). All three run blocking=no, i.e. in the auth process
itself, in front of the same passwd-file passdb, with the same config
otherwise; rounds alternate between the instances so that machine noise hits
all of them alike.

Each login: connect, LOGIN, LOGOUT (imaplib). The auth process's CPU time is
read from /proc/<pid>/schedstat (nanoseconds) before and after each round.

With --callgrind, counts the auth process's instructions per login instead
(valgrind's callgrind; independent of how busy the machine is): for each
configuration one instance with 20 and one with 20 + --logins logins, the
difference divided by --logins. The auth service then runs as root under
valgrind (same for all three).

Run as root from the source tree after building (loads the module from the
build tree in a private mount namespace, see tests/integration/auth_harness.py):
  python3 bench/auth_cpu.py --rounds 10 --logins 300
  python3 bench/auth_cpu.py --callgrind --logins 100
"""

import argparse
import glob
import imaplib
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("DMR_BUILD_DIR", os.path.join(ROOT, "build"))
from auth_harness import AuthDovecot  # noqa: E402
from harness import merge  # noqa: E402

MRUBY_POLICY = """
BLOCKED = { "mallory" => true }
FAILS = Hash.new(0)
Dovecot.on_auth do |auth|
  auth.reject("blocked") if BLOCKED[auth.user] || FAILS[auth.remote_ip] > 1000
end
Dovecot.on_auth_result do |res|
  FAILS[res.remote_ip] += 1 unless res.success?
end
"""

LUA_POLICY = """
local blocked = { mallory = true }
function auth_passdb_lookup(req)
  if blocked[req.user] then
    return dovecot.auth.PASSDB_RESULT_USER_DISABLED, "reason=blocked"
  end
  return dovecot.auth.PASSDB_RESULT_NEXT, ""
end
"""

COMMON = {"login_trusted_networks": "127.0.0.0/8"}


def auth_pid(master_pid):
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != master_pid:
                continue
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().split(b"\0")[0].decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        # "dovecot/auth", or "dovecot-<instance_name>/auth"
        title = cmd.split("/", 1)[-1]
        if title.split(" ")[0] == "auth":
            return int(name)
    return None


class Instance:
    def __init__(self, label, dovecot):
        self.label = label
        self.dovecot = dovecot
        self.pid = None
        self.per_login_us = []

    def start(self):
        self.dovecot.start()
        self.login()   # starts the auth process
        self.pid = auth_pid(self.dovecot.master.pid)
        if self.pid is None:
            raise RuntimeError("%s: no auth process found" % self.label)

    def cpu_ns(self):
        with open("/proc/%d/schedstat" % self.pid) as f:
            return int(f.read().split()[0])

    def login(self):
        c = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port)
        c.login("alice", "secret")
        c.logout()

    def round(self, logins):
        if auth_pid(self.dovecot.master.pid) != self.pid:
            raise RuntimeError("%s: the auth process was restarted" % self.label)
        before = self.cpu_ns()
        for _ in range(logins):
            self.login()
        self.per_login_us.append((self.cpu_ns() - before) / logins / 1000.0)


CALLGRIND_WARMUP = 20


def make_dovecot(label, callgrind=False):
    if label == "plain":
        d = AuthDovecot("", mruby_passdb=None, settings=COMMON)
    elif label == "mruby":
        d = AuthDovecot(MRUBY_POLICY, settings=COMMON)
    else:
        d = AuthDovecot("", settings=COMMON)
        d.write_script("policy.lua", LUA_POLICY)
        d.policy_passdb = {"driver": "lua", "args": "file=%s blocking=no" % d.script("policy.lua")}
    if callgrind:
        out = os.path.join(d.dir, "callgrind")
        os.makedirs(out)
        os.chmod(out, 0o777)
        # As root: callgrind reopens its output file at exit, after the auth
        # process dropped its privileges.
        merge(d.services, {"auth": {
            "user": "root",
            "executable": "/usr/bin/valgrind --tool=callgrind --vgdb=no "
                          "--callgrind-out-file=%s/out.%%p /usr/lib/dovecot/auth" % out}})
    return d


def callgrind_instructions(label, logins):
    totals = []
    for n in (CALLGRIND_WARMUP, CALLGRIND_WARMUP + logins):
        d = make_dovecot(label, callgrind=True)
        try:
            d.start()
            for _ in range(n):
                c = imaplib.IMAP4("127.0.0.1", d.imap_port, timeout=60)
                c.login("alice", "secret")
                c.logout()
        finally:
            d.stop()
        time.sleep(1.0)
        best = 0
        for path in glob.glob(os.path.join(d.dir, "callgrind", "out.*")):
            with open(path) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        best = max(best, int(line.split()[1]))
        d.cleanup()
        if best == 0:
            raise RuntimeError("%s: no callgrind output" % label)
        totals.append(best)
    return (totals[1] - totals[0]) / logins


def main_callgrind(logins):
    results = [(label, callgrind_instructions(label, logins)) for label in ("plain", "mruby", "lua")]
    base = results[0][1]
    print("auth process instructions per login (callgrind, %d logins)" % logins)
    for label, value in results:
        print("  %-6s %7.1f k  (%+.1f%% vs plain)" % (label, value / 1000, (value / base - 1) * 100))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under callgrind instead of CPU time")
    args = parser.parse_args()
    if args.callgrind:
        main_callgrind(args.logins)
        return

    instances = [Instance(label, make_dovecot(label)) for label in ("plain", "mruby", "lua")]
    try:
        for inst in instances:
            inst.start()
        for inst in instances:   # warm up: first logins load modules, fill caches
            for _ in range(20):
                inst.login()
        for r in range(args.rounds):
            order = instances if r % 2 == 0 else list(reversed(instances))
            for inst in order:
                inst.round(args.logins)
        base = statistics.median(instances[0].per_login_us)
        print("auth process CPU per login (median of %d rounds x %d logins)" % (
            args.rounds, args.logins))
        for inst in instances:
            med = statistics.median(inst.per_login_us)
            # Paired per round (the instances ran back to back): less exposed
            # to load that changes between rounds than the ratio of medians.
            ratios = [x / p for x, p in zip(inst.per_login_us, instances[0].per_login_us)]
            print("  %-6s %7.1f us  (%+.1f%% vs plain; paired median %+.1f%%; rounds: %s)" % (
                inst.label, med, (med / base - 1) * 100,
                (statistics.median(ratios) - 1) * 100,
                " ".join("%.0f" % x for x in inst.per_login_us)))
    finally:
        for inst in instances:
            inst.dovecot.cleanup()
    time.sleep(0.2)


if __name__ == "__main__":
    main()
