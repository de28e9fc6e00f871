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
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import Dovecot, is_24  # noqa: E402
from callgrind_imap import callgrind_imap, one_login_instructions  # noqa: E402

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
    services, out = callgrind_imap("user-script-" + label)
    # Valgrind runs the process ~50 times slower: limits that do not stop it.
    d = Dovecot(scripts={"policy.rb": policy}, services=services, store="memory",
                plugin={"mruby_timeout": "60s", "mruby_user_timeout": "60s"})
    if user_script is not None:
        d.plugin["mruby_user_script"] = os.path.join(
            d.script_dir, "user-%{user}.rb" if is_24() else "user-%u.rb")
        if user_script:
            d.write_script("user-alice.rb", user_script)
    return one_login_instructions(d, out)


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
