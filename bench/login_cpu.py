#!/usr/bin/env python3
"""Dovecot CPU per login, plain Dovecot vs Dovecot with the plugin and the
example policy, side by side in one run (rounds alternate between the two).

Each login: connect, LOGIN, SELECT INBOX, LIST, NOOP, LOGOUT (imaplib). The
CPU of every Dovecot process of an instance (master, login, auth, imap
processes, including the ones that exited) is read from a cgroup-v1 cpuacct
group per instance, in nanoseconds. Also reports the resident memory of one
IMAP session process of each instance.

Run as root from the source tree after building:
  python3 bench/login_cpu.py --rounds 8 --logins 150

Timings on a shared machine are noisy. --callgrind instead runs the imap
process of one login (same commands) under valgrind's callgrind, for each
instance, and prints its instruction count: repeatable, and it shows where
the difference goes (callgrind_annotate on the files it names).
"""

import argparse
import imaplib
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import Dovecot  # noqa: E402
from callgrind_imap import callgrind_imap, one_login_instructions  # noqa: E402
from cgroup_dovecot import CgroupDovecot  # noqa: E402


class Instance(CgroupDovecot):
    def __init__(self, label, **kwargs):
        super().__init__(label, "login", **kwargs)

    def login_once(self):
        c = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port)
        c.login("alice", "secret")
        c.select("INBOX")
        c.list()
        c.noop()
        c.logout()

    def session_memory_kb(self):
        """(RSS, private dirty) KiB of an IMAP process serving one logged-in,
        idle session. RSS also counts the library pages it maps, which all
        sessions share through the page cache; private dirty memory (heap,
        relocated data, stack) is what each further session really costs."""
        c = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port)
        c.login("alice", "secret")
        c.select("INBOX")
        time.sleep(0.2)
        rss = []
        for pid in self.imap_pids():
            try:
                with open("/proc/%d/smaps_rollup" % pid) as f:
                    fields = dict((l.split()[0].rstrip(":"), int(l.split()[1]))
                                  for l in f if l.split() and l.split()[-1] == "kB")
                rss.append((fields["Rss"], fields["Private_Dirty"]))
            except OSError:
                pass
        c.logout()
        return max(rss) if rss else None


def run_callgrind(policy):
    """Instructions executed by the imap process of one login, per instance."""
    totals = {}
    for label, kwargs in (("plain", dict(mail_plugins="")),
                          ("mruby", dict(scripts={"policy.rb": policy}))):
        services, out = callgrind_imap("login-" + label)
        totals[label] = one_login_instructions(Dovecot(services=services, **kwargs), out)
        print("%s: %s instructions in the imap process (%s)" % (label, totals.get(label), out))
    if len(totals) == 2:
        print("difference: %+d instructions (%+.1f%% of the imap process)"
              % (totals["mruby"] - totals["plain"], (totals["mruby"] / totals["plain"] - 1) * 100))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--logins", type=int, default=150, help="logins per round and instance")
    ap.add_argument("--policy", default=os.path.join(ROOT, "conf.d", "mruby", "policy.rb"))
    ap.add_argument("--callgrind", action="store_true",
                    help="count the imap process's instructions for one login instead")
    args = ap.parse_args()
    if args.callgrind:
        with open(args.policy) as f:
            run_callgrind(f.read())
        return

    with open(args.policy) as f:
        policy = f.read()
    plain = Instance("plain", mail_plugins="")
    mruby = Instance("mruby", scripts={"policy.rb": policy})
    try:
        for inst in (plain, mruby):
            inst.dovecot.start()
            for _ in range(20):        # warm up: auth cache, page cache
                inst.login_once()
        per_login = {plain.label: [], mruby.label: []}
        for r in range(args.rounds):
            order = (plain, mruby) if r % 2 == 0 else (mruby, plain)
            for inst in order:
                time.sleep(0.3)        # let exiting processes be reaped
                before = inst.cpu_ns()
                for _ in range(args.logins):
                    inst.login_once()
                time.sleep(0.3)
                per_login[inst.label].append((inst.cpu_ns() - before) / args.logins / 1000.0)
        mem = {inst.label: inst.session_memory_kb() for inst in (plain, mruby)}
    finally:
        plain.close()
        mruby.close()

    p = statistics.median(per_login["plain"])
    m = statistics.median(per_login["mruby"])
    print("rounds=%d logins/round=%d" % (args.rounds, args.logins))
    print("plain  CPU/login: median %.0f us  (rounds: %s)" % (p, " ".join("%.0f" % x for x in per_login["plain"])))
    print("mruby  CPU/login: median %.0f us  (rounds: %s)" % (m, " ".join("%.0f" % x for x in per_login["mruby"])))
    print("ratio mruby/plain: %.3f (%+.1f%%)" % (m / p, (m / p - 1) * 100))
    if mem["plain"] and mem["mruby"]:
        (pr, pp), (mr, mp) = mem["plain"], mem["mruby"]
        print("IMAP session RSS:     plain %d KiB, mruby %d KiB, difference %+d KiB" % (pr, mr, mr - pr))
        print("IMAP session private dirty: plain %d KiB, mruby %d KiB, difference %+d KiB" % (pp, mp, mp - pp))


if __name__ == "__main__":
    main()
