#!/usr/bin/env python3
"""Soak: a real Dovecot under steady IMAP, POP3 and LMTP traffic with the
audit policy, a command rate limit (Redis) and brute-force protection (LMDB
on a small tmpfs), while a fault is injected every minute:

  minute 1  Redis stopped for 20 s, then started again
  minute 2  the store's filesystem (tmpfs) filled for 20 s, then freed
  minute 3  the audit file rotated (mv + a new file), as logrotate does
  minute 4  both policy scripts broken (syntax error) for 20 s, then fixed
  minute 5  all of the above at once

Reported: sessions that failed although they should not have, audit records
lost (logins the clients saw against session.login records in every audit
file, rotated ones included; every line must parse), deliveries lost (LMTP
250 replies against messages in the maildirs), brute-force bans (an attacker
on another /24 must end up refused with the right password), and the auth
process's RSS over time. Exit status 1 if any loss or failure is not 0.

  python3 bench/soak.py [--duration 300] [--imap 200]

Needs root (mount, Dovecot as root), redis-server, and a build in ./build.
"""

import argparse
import glob
import imaplib
import json
import os
import poplib
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from auth_harness import AuthDovecot  # noqa: E402
sys.path.insert(0, HERE)
from auth_cpu import auth_pid as auth_pid_of  # noqa: E402

MAIL_POLICY = """
Dovecot::Audit.enable!
Dovecot::Policy::CommandRate.enable!(limit: 100_000, period: 60)
Dovecot.on_session_start do |s|
  s.deny("Account suspended") if s.user == "suspended"
end
"""

AUTH_POLICY = """
Dovecot::Policy::BruteForce.enable!(limit: 5, window: 600, ban: 600, count_trusted: true)
Dovecot.on_auth do |auth|
  auth.reject("closed") if auth.user == "closed"
end
"""

BROKEN = "Dovecot.on_session_start do |s|\n  s.deny(\n"   # a syntax error


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, key, error):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if len(self.errors) < 50:
                self.errors.append("%s: %r" % (key, error))


def start_redis(port, data_dir):
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=300)
    ap.add_argument("--imap", type=int, default=200)
    ap.add_argument("--pop3", type=int, default=5)
    ap.add_argument("--lmtp", type=int, default=2)
    args = ap.parse_args()

    users = ["user%03d" % i for i in range(args.imap + args.pop3)]
    work = os.path.abspath(os.environ.get("SOAK_DIR", "/tmp/dmr-soak"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tmpfs = os.path.join(work, "store-fs")
    os.makedirs(tmpfs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=2770,gid=%d" % harness.MAIL_GID,
                    "tmpfs", tmpfs], check=True)
    redis_port = harness.free_port()
    redis_dir = os.path.join(work, "redis")
    os.makedirs(redis_dir)
    redis = start_redis(redis_port, redis_dir)
    assert wait_port(redis_port), "redis-server did not start"

    audit_dir = os.path.join(work, "audit")
    os.makedirs(audit_dir)
    os.chown(audit_dir, harness.MAIL_UID, harness.MAIL_GID)
    audit_path = os.path.join(audit_dir, "audit.log")

    def new_audit_file():
        # As logrotate's "create 0660 nobody nogroup" would: the mail users write it.
        with open(audit_path, "a"):
            pass
        os.chown(audit_path, harness.MAIL_UID, harness.MAIL_GID)
        os.chmod(audit_path, 0o660)
    new_audit_file()

    d = AuthDovecot(
        AUTH_POLICY, passdb_args="store=lmdb:" + tmpfs,
        mail_plugins="mruby",
        scripts={"mail.rb": MAIL_POLICY},
        users={u: {} for u in users},
        plugin={"mruby_store": "redis://127.0.0.1:%d/0" % redis_port,
                "mruby_audit": "file:" + audit_path},
        lmtp=True,
        services={"auth": {"extra_groups": "nogroup"},
                  "imap": {"process_limit": str(args.imap + 50)}},
        settings={"mail_max_userip_connections": "50"},
        protocol_mail_plugins={"imap": "imap_mruby", "pop3": "pop3_mruby"})
    d.plugin["mruby_script"] = d.script("mail.rb")
    d.start()
    lmtp_port = d.lmtp_port    # the harness's LMTP listener (lmtp=True)
    assert wait_port(lmtp_port)

    stats = Stats()
    stop = threading.Event()
    rss = []
    lmtp_sent = {}
    lmtp_lock = threading.Lock()
    pid0 = auth_pid_of(d.master.pid)

    def imap_worker(user):
        while not stop.is_set():
            try:
                c = d.imap(user)
                stats.add("imap.login")
                c.select("INBOX")
                for _ in range(20):
                    if stop.is_set():
                        break
                    c.noop()
                    if int(c.select("INBOX")[1][0]):
                        c.fetch("1:*", "(FLAGS)")
                    stats.add("imap.commands", 3)
                    time.sleep(0.5)
                c.logout()
                stats.add("imap.logout")
            except Exception as e:  # noqa: BLE001 - every failure counts
                stats.fail("imap.failed", e)
                time.sleep(0.5)

    def pop3_worker(user):
        while not stop.is_set():
            try:
                p = d.pop3(user)
                stats.add("pop3.login")
                p.stat()
                p.list()
                p.quit()
                stats.add("pop3.logout")
            except Exception as e:  # noqa: BLE001
                stats.fail("pop3.failed", e)
            time.sleep(0.3)

    def lmtp_worker(n):
        i = 0
        while not stop.is_set():
            user = users[(n * 7919 + i) % len(users)]
            i += 1
            try:
                with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=20) as s:
                    s.sendmail("soak@example.net", [user],
                               b"From: soak@example.net\r\nSubject: soak %d\r\n\r\nbody\r\n" % i)
                with lmtp_lock:
                    lmtp_sent[user] = lmtp_sent.get(user, 0) + 1
                stats.add("lmtp.delivered")
            except Exception as e:  # noqa: BLE001
                stats.fail("lmtp.failed", e)
            time.sleep(0.2)

    def attacker():
        # Another /24 than the real clients (127.0.0.1): bans must not hit them.
        # Loopback, so the policy counts it only with count_trusted: true.
        src = "127.0.1.%d" % (1 + int(time.time()) % 200)
        attempts = 0
        t0 = time.time()
        # imaplib cannot bind a source address: speak IMAP on a raw socket.
        while not stop.is_set():
            attempts += 1
            password = "wrong" if attempts <= 6 else harness.PASSWORD
            try:
                s = socket.create_connection(("127.0.0.1", d.imap_port), 10, (src, 0))
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"a LOGIN %s %s\r\n" % (users[0].encode(), password.encode()))
                line = f.readline()
                while line and not line.startswith(b"a "):
                    line = f.readline()
                s.close()
                if password == harness.PASSWORD:
                    if line.startswith(b"a OK"):
                        # Only the fail mode during a fault may let it in: reported with the time.
                        stats.fail("attack.let_in_after_failures", round(time.time() - t0))
                    else:
                        stats.add("attack.refused_with_right_password")
            except Exception as e:  # noqa: BLE001
                stats.fail("attack.error", e)
            time.sleep(1)

    def sampler():
        t0 = time.time()
        while not stop.is_set():
            pid = auth_pid_of(d.master.pid)
            rss.append((round(time.time() - t0), pid, rss_kib(pid) if pid else None))
            stop.wait(10)

    def faults():
        t0 = time.time()
        events = []

        def at(second):
            while not stop.is_set() and time.time() - t0 < second:
                time.sleep(0.2)
            return not stop.is_set()

        def redis_down():
            nonlocal redis
            redis.terminate()
            redis.wait()
            events.append((round(time.time() - t0), "redis stopped"))

        def redis_up():
            nonlocal redis
            redis = start_redis(redis_port, redis_dir)
            wait_port(redis_port)
            events.append((round(time.time() - t0), "redis started"))

        filler = os.path.join(tmpfs, "filler")

        def disk_full():
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            events.append((round(time.time() - t0), "store disk full"))

        def disk_free():
            os.unlink(filler)
            events.append((round(time.time() - t0), "store disk freed"))

        rotations = [0]

        def rotate():
            rotations[0] += 1
            os.rename(audit_path, "%s.%d" % (audit_path, rotations[0]))
            new_audit_file()
            events.append((round(time.time() - t0), "audit rotated"))

        def break_scripts():
            d.write_script("mail.rb", BROKEN)
            d.write_script("policy.rb", BROKEN)
            events.append((round(time.time() - t0), "scripts broken"))

        def fix_scripts():
            d.write_script("mail.rb", MAIL_POLICY)
            d.write_script("policy.rb", AUTH_POLICY)
            events.append((round(time.time() - t0), "scripts fixed"))

        minute = max(args.duration // 5, 30)
        plan = [(minute * 1, redis_down), (minute * 1 + 20, redis_up),
                (minute * 2, disk_full), (minute * 2 + 20, disk_free),
                (minute * 3, rotate),
                (minute * 4, break_scripts), (minute * 4 + 20, fix_scripts)]
        if args.duration >= 5 * minute + 30:
            plan += [(minute * 5 - 25, redis_down), (minute * 5 - 25, disk_full),
                     (minute * 5 - 25, break_scripts), (minute * 5 - 20, rotate),
                     (minute * 5 - 5, redis_up), (minute * 5 - 5, disk_free),
                     (minute * 5 - 5, fix_scripts)]
        plan.sort(key=lambda p: p[0])
        for second, action in plan:
            if not at(second):
                break
            action()
        faults.events = events

    threads = [threading.Thread(target=imap_worker, args=(u,)) for u in users[:args.imap]]
    threads += [threading.Thread(target=pop3_worker, args=(u,)) for u in users[args.imap:]]
    threads += [threading.Thread(target=lmtp_worker, args=(n,)) for n in range(args.lmtp)]
    threads += [threading.Thread(target=attacker), threading.Thread(target=sampler)]
    fault_thread = threading.Thread(target=faults)
    for t in threads:
        t.start()
        time.sleep(0.01)
    fault_thread.start()
    time.sleep(args.duration)
    stop.set()
    for t in threads + [fault_thread]:
        t.join(60)

    # Every client logged out: wait until the audit trail has caught up.
    def audit_records():
        recs, bad = [], 0
        for path in glob.glob(audit_path + "*"):
            with open(path, "rb") as f:
                for line in f.read().split(b"\n"):
                    if not line:
                        continue
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        bad += 1
        return recs, bad

    logins_seen = stats.counts.get("imap.login", 0) + stats.counts.get("pop3.login", 0)
    deadline = time.time() + 60
    while True:
        recs, bad = audit_records()
        logins = sum(1 for r in recs if r.get("kind") == "session.login"
                     and r.get("service") in ("imap", "pop3"))
        if logins >= logins_seen or time.time() > deadline:
            break
        time.sleep(0.5)
    logouts = sum(1 for r in recs if r.get("kind") == "session.logout"
                  and r.get("service") in ("imap", "pop3"))
    other_services = sum(1 for r in recs if r.get("service") not in ("imap", "pop3"))

    delivered_found = 0
    for user in users:
        for sub in ("new", "cur"):
            delivered_found += len(os.listdir(os.path.join(d.dir, "mail", user, "Maildir", sub))) \
                if os.path.isdir(os.path.join(d.dir, "mail", user, "Maildir", sub)) else 0
    delivered_sent = sum(lmtp_sent.values())
    log = d.log()
    signals = log.count("killed with signal")
    panics = log.count("Panic:")
    fatal = log.count("Fatal:")
    pid1 = auth_pid_of(d.master.pid)
    pid0 = next((pid for _, pid, _ in rss if pid), None)

    report = {
        "duration_s": args.duration,
        "clients": {"imap": args.imap, "pop3": args.pop3, "lmtp": args.lmtp},
        "counts": stats.counts,
        "faults": getattr(faults, "events", []),
        "sessions_failed": stats.counts.get("imap.failed", 0) + stats.counts.get("pop3.failed", 0),
        "audit": {"logins_seen_by_clients": logins_seen, "session_login_records": logins,
                  "session_logout_records": logouts, "invalid_lines": bad,
                  "records_of_other_services": other_services,
                  "records_lost": max(0, logins_seen - logins)},
        "deliveries": {"accepted": delivered_sent, "in_maildirs": delivered_found,
                       "lost": max(0, delivered_sent - delivered_found),
                       "failed": stats.counts.get("lmtp.failed", 0)},
        "auth_process": {"pid_start": pid0, "pid_end": pid1, "rss_kib": rss},
        "log": {"killed_with_signal": signals, "panics": panics, "fatal": fatal,
                # The faults were seen (and said so) where they should be:
                "store_failure_lines": log.count("store failure"),
                "script_fallback_lines": log.count("enforcing the last good version"),
                "audit_write_failure_lines": log.count("mruby: audit:")},
        "errors": stats.errors[:20],
    }
    print(json.dumps(report, indent=1))

    d.cleanup()
    redis.terminate()
    redis.wait()
    subprocess.run(["umount", tmpfs])
    bad_outcome = (report["sessions_failed"] or report["audit"]["records_lost"]
                   or report["audit"]["invalid_lines"] or report["deliveries"]["lost"]
                   or report["deliveries"]["failed"] or signals or panics)
    return 1 if bad_outcome else 0


if __name__ == "__main__":
    sys.exit(main())
