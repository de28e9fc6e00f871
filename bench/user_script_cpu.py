#!/usr/bin/env python3
"""Per-login CPU of an imap process with the operator's policy alone, with
mruby_user_script set but no file for the user (the common case: no second
VM), and with a small user script (a second VM), side by side in one run.

Each instance runs the imap process of one login (LOGIN, SELECT INBOX, LIST,
NOOP, LOGOUT) under valgrind's callgrind and prints its instruction count,
as bench/login_cpu.py --callgrind does: repeatable on a shared machine.

Run as root from the source tree after building:
  python3 bench/user_script_cpu.py [--policy conf.d/mruby/policy.rb]
"""

import argparse
import imaplib
import os
import pwd
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Dovecot, is_24  # noqa: E402

USER_SCRIPT = """
MINE = ["127.0.0.0/8", "192.0.2.0/24"]
Dovecot.on_session_start do |s|
  if s.service == "imap" && MINE.none? { |net| Dovecot::IP.new(net).include?(s.remote_ip) }
    s.deny("IMAP only from my networks")
  end
end
Dovecot.on_mailbox_open { |box| box.deny("My Archive is closed") if box.name == "Archive" }
"""


def instructions(label, policy, user_script):
    nobody = pwd.getpwnam("nobody")
    out = "/tmp/dmr-user-script-callgrind-%s.out" % label
    open(out, "w").close()
    os.chown(out, nobody.pw_uid, nobody.pw_gid)
    os.chmod(out, 0o666)
    imap = "/usr/lib/dovecot/imap"
    services = {"imap": {"executable": "/usr/bin/valgrind --tool=callgrind "
                         "--callgrind-out-file=%s %s" % (out, imap)}}
    # Valgrind runs the process ~50 times slower: limits that do not stop it.
    d = Dovecot(scripts={"policy.rb": policy}, services=services, store="memory",
                plugin={"mruby_timeout": "60s", "mruby_user_timeout": "60s"})
    if user_script is not None:
        d.plugin["mruby_user_script"] = os.path.join(
            d.script_dir, "user-%{user}.rb" if is_24() else "user-%u.rb")
        if user_script:
            d.write_script("user-alice.rb", user_script)
    d.start()
    try:
        c = imaplib.IMAP4("127.0.0.1", d.imap_port, timeout=120)
        c.login("alice", "secret")
        c.select("INBOX")
        c.list()
        c.noop()
        c.logout()
    except Exception:
        print(d.log()[-3000:])
        raise
    try:
        deadline = time.time() + 60
        while time.time() < deadline and "totals:" not in open(out).read():
            time.sleep(0.2)
    finally:
        d.cleanup()
    for line in open(out):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError("no callgrind totals in " + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default=os.path.join(ROOT, "conf.d", "mruby", "policy.rb"))
    args = ap.parse_args()
    with open(args.policy) as f:
        policy = f.read()
    runs = (("operator", None), ("no-file", ""), ("user-script", USER_SCRIPT))
    totals = {label: instructions(label, policy, script) for label, script in runs}
    base = totals["operator"]
    for label, _ in runs:
        print("%-12s %12d instructions in the imap process (%+d, %+.1f%%)"
              % (label, totals[label], totals[label] - base, (totals[label] / base - 1) * 100))


if __name__ == "__main__":
    main()
