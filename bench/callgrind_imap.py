"""The imap process of one login under valgrind's callgrind: what
bench/login_cpu.py --callgrind and bench/user_script_cpu.py measure
(instruction counts, repeatable on a shared machine)."""

import imaplib
import os
import pwd
import time


def callgrind_imap(label):
    """(services, out): a harness services= entry that runs imap under
    callgrind, writing to `out`, created here for the mail user (the imap
    process runs as nobody by the time callgrind writes its results)."""
    nobody = pwd.getpwnam("nobody")
    out = "/tmp/dmr-callgrind-%s.out" % label
    open(out, "w").close()
    os.chown(out, nobody.pw_uid, nobody.pw_gid)
    os.chmod(out, 0o666)
    services = {"imap": {"executable": "/usr/bin/valgrind --tool=callgrind "
                         "--callgrind-out-file=%s /usr/lib/dovecot/imap" % out}}
    return services, out


def one_login_instructions(d, out):
    """Starts Dovecot `d`, makes one login (LOGIN, SELECT INBOX, LIST, NOOP,
    LOGOUT), and returns the instructions its imap process executed; `d` is
    cleaned up either way."""
    d.start()
    try:
        c = imaplib.IMAP4("127.0.0.1", d.imap_port, timeout=120)
        c.login("alice", "secret")
        c.select("INBOX")
        c.list()
        c.noop()
        c.logout()
        deadline = time.time() + 60
        while time.time() < deadline and "totals:" not in open(out).read():
            time.sleep(0.2)
    except Exception:
        print(d.log()[-3000:])
        raise
    finally:
        d.cleanup()
    for line in open(out):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError("no callgrind totals in " + out)
