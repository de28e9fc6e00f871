#!/usr/bin/env python3
"""Dovecot CPU per IMAP command, plain Dovecot vs Dovecot with the plugin and
an IMAP before_command and after_command handler, side by side in one run
(rounds alternate between the two instances).

Each instance serves one long IMAP session (imaplib) that runs a fixed mix of
commands many times: NOOP, SELECT INBOX, FETCH 1:* (FLAGS), UID SEARCH ALL,
STATUS INBOX (MESSAGES UNSEEN), on an INBOX of --messages messages. Two CPU
figures per command:
  - "dovecot": every Dovecot process of the instance (master, imap, log,
    stats, ...), read from a cgroup-v1 cpuacct group per instance, as
    bench/login_cpu.py does;
  - "imap": the session's imap process alone (/proc/PID/schedstat, ns),
    which leaves out the other services' background noise.

Run as root from the source tree after building:
  python3 bench/command_cpu.py --rounds 30 --iterations 300

The timings on a shared machine are noisy. --callgrind DIR instead runs every
imap process under valgrind's callgrind and counts instructions per command,
which do not depend on the machine's load: a session running --iterations
mixes minus a session running 20, per command (the difference takes out
login, SELECT caches and process start). The profiles stay in DIR for
callgrind_annotate.
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
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import is_24  # noqa: E402
from cgroup_dovecot import CgroupDovecot  # noqa: E402


POLICY = """
Dovecot::IMAP.before_command { |c| }
Dovecot::IMAP.after_command { |c| }
"""

IMAP_PLUGIN = {"imap": "imap_mruby"}   # protocol_mail_plugins

COMMANDS_PER_ITERATION = 5


class Instance(CgroupDovecot):
    def __init__(self, label, **kwargs):
        super().__init__(label, "cmd", **kwargs)
        self.client = None
        self.imap_pid = None

    def imap_ns(self):
        with open("/proc/%d/schedstat" % self.imap_pid) as f:
            return int(f.read().split()[0])

    def open_session(self, messages, find_pid=True):
        c = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port)
        c.login("alice", "secret")
        for i in range(messages):
            c.append("INBOX", None, None,
                     b"Message-ID: <bench-%d@example.test>\r\nSubject: message %d\r\n\r\nbody %d\r\n"
                     % (i, i, i))
        self.client = c
        if find_pid:
            self.imap_pid = self._find_imap_pid()

    def _find_imap_pid(self):
        found = self.imap_pids()
        if len(found) != 1:
            raise RuntimeError("%s: expected one imap process, found %r" % (self.label, found))
        return found[0]

    def iteration(self):
        c = self.client
        for typ, _ in (c.noop(),
                       c.select("INBOX"),
                       c.fetch("1:*", "(FLAGS)"),
                       c.uid("SEARCH", "ALL"),
                       c.status("INBOX", "(MESSAGES UNSEEN)")):
            if typ != "OK":
                raise RuntimeError("%s: command failed" % self.label)

    def close(self):
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:
                pass
        super().close()


def spread(values):
    return "min %.1f  max %.1f  (rounds: %s)" % (min(values), max(values),
                                               " ".join("%.1f" % x for x in values))


def callgrind_services(out_dir, label):
    return {
        "imap": {
            "executable": "/usr/bin/valgrind --tool=callgrind --callgrind-out-file=%s/%s.%%p "
                          "/usr/lib/dovecot/imap" % (out_dir, label),
            "vsz_limit": "unlimited" if is_24() else "0",   # 2.4 refuses 0
            # Already the mail user (nobody) at exec: callgrind's output file,
            # created at start, stays writable when the profile is dumped at exit.
            "user": "nobody",
            "drop_priv_before_exec": "yes",
        },
        "auth": {"unix_listener auth-master": {"mode": "0666"}},
        "config": {"unix_listener config": {"mode": "0666"}},
    }


def callgrind_session(inst, out_dir, iterations, messages=0):
    """Runs one session; returns the instructions (Ir) of its imap process."""
    before = set(glob.glob(os.path.join(out_dir, inst.label + ".*")))
    inst.open_session(messages, find_pid=False)
    if messages == 0:
        inst.client.select("INBOX")
    for _ in range(iterations):
        inst.iteration()
    inst.client.logout()
    inst.client = None
    deadline = time.time() + 60
    while time.time() < deadline:
        new = set(glob.glob(os.path.join(out_dir, inst.label + ".*"))) - before
        for path in new:
            with open(path) as f:
                for line in f:
                    if line.startswith("totals:") or line.startswith("summary:"):
                        return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError("%s: no callgrind output" % inst.label)


def run_callgrind(args):
    out_dir = os.path.abspath(args.callgrind)
    os.makedirs(out_dir, exist_ok=True)
    os.chmod(out_dir, 0o1777)
    plain = Instance("plain", mail_plugins="", services=callgrind_services(out_dir, "plain"))
    mruby = Instance("mruby", scripts={"policy.rb": POLICY}, protocol_mail_plugins=IMAP_PLUGIN,
                     services=callgrind_services(out_dir, "mruby"))
    low = 20
    per_command = {}
    try:
        for inst in (plain, mruby):
            inst.dovecot.start()
            callgrind_session(inst, out_dir, 0, args.messages)   # fills INBOX
            short = callgrind_session(inst, out_dir, low)
            long = callgrind_session(inst, out_dir, args.iterations)
            per_command[inst.label] = (long - short) / ((args.iterations - low) *
                                                        COMMANDS_PER_ITERATION)
    finally:
        plain.close()
        mruby.close()
    p, m = per_command["plain"], per_command["mruby"]
    print("callgrind: instructions per command (sessions of %d vs %d mixes, INBOX of %d messages)"
          % (args.iterations, low, args.messages))
    print("  plain %.0f  mruby %.0f  difference %+.0f  ratio %.3f (%+.1f%%)"
          % (p, m, m - p, m / p, (m / p - 1) * 100))
    print("  profiles: %s/{plain,mruby}.PID" % out_dir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--iterations", type=int, default=300,
                    help="command mixes per round and instance (5 commands each)")
    ap.add_argument("--messages", type=int, default=20, help="messages in INBOX")
    ap.add_argument("--callgrind", metavar="DIR",
                    help="count instructions under callgrind instead of timing")
    args = ap.parse_args()
    if args.callgrind:
        return run_callgrind(args)

    plain = Instance("plain", mail_plugins="")
    mruby = Instance("mruby", scripts={"policy.rb": POLICY}, protocol_mail_plugins=IMAP_PLUGIN)
    commands = args.iterations * COMMANDS_PER_ITERATION
    try:
        for inst in (plain, mruby):
            inst.dovecot.start()
            inst.open_session(args.messages)
            for _ in range(50):        # warm up: index, page cache, the VM's first calls
                inst.iteration()
        total = {plain.label: [], mruby.label: []}
        imap = {plain.label: [], mruby.label: []}
        for r in range(args.rounds):
            order = (plain, mruby) if r % 2 == 0 else (mruby, plain)
            for inst in order:
                time.sleep(0.1)
                before, before_imap = inst.cpu_ns(), inst.imap_ns()
                for _ in range(args.iterations):
                    inst.iteration()
                after, after_imap = inst.cpu_ns(), inst.imap_ns()
                total[inst.label].append((after - before) / commands / 1000.0)
                imap[inst.label].append((after_imap - before_imap) / commands / 1000.0)
        # The handlers really ran: after_command saw every command.
        log = mruby.dovecot.log()
        if "handler failed" in log or "Error" in log:
            print("WARNING: errors in the mruby instance's log:\n" + log[-2000:])
    finally:
        plain.close()
        mruby.close()

    print("rounds=%d commands/round=%d (NOOP, SELECT, FETCH 1:* (FLAGS), UID SEARCH ALL, STATUS;"
          " INBOX of %d messages)" % (args.rounds, commands, args.messages))
    for name, data in (("dovecot (all processes, cgroup)", total), ("imap process only", imap)):
        p = statistics.median(data["plain"])
        m = statistics.median(data["mruby"])
        ratios = sorted(b / a for a, b in zip(data["plain"], data["mruby"]))
        print(name)
        print("  plain  CPU/command: median %.1f us  %s" % (p, spread(data["plain"])))
        print("  mruby  CPU/command: median %.1f us  %s" % (m, spread(data["mruby"])))
        print("  ratio of medians mruby/plain: %.3f (%+.1f%%); per-round ratios: median %.3f,"
              " quartiles %.3f..%.3f" % (m / p, (m / p - 1) * 100, statistics.median(ratios),
                                        ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]))


if __name__ == "__main__":
    main()
