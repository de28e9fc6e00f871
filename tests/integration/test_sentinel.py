"""Redis Sentinel failover under load, with real servers from Debian's
packages: a redis-server master, a replica, three redis-sentinel (quorum 2)
and a real Dovecot whose mruby passdb runs Dovecot::Policy::BruteForce and a
RateLimit on redis-sentinel://. Logins run in a background thread while the
master is killed (SIGKILL): they continue (the fail mode decides during the
switch, and the log says so), a ban and a rate limit set after the switch are
enforced on the new master within a bounded time, and the replica was never
written to while it was one. The test prints the failover window and the
decisions made in it (docs/testing.md records a run)."""

import imaplib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from auth_harness import AuthDovecot, AuthTestCase

NO_PENALTY = {"anvil": {"unix_listener anvil-auth-penalty": {"mode": "0"}}}
MASTER_NAME = "mymaster"

# The background rate limit is registered first: its call is each login's
# first store call, so the first failure logged (then at most one line a
# minute) is the rate limit's, with its fail mode.
POLICY = """
BACKGROUND = Dovecot::RateLimit.new("background", limit: 1_000_000, period: 60, fail: :open)
CAROL = Dovecot::RateLimit.new("carol", limit: 3, period: 60, fail: :open)
Dovecot.on_auth do |auth|
  if auth.user == "alice"
    d = BACKGROUND.hit(auth.user)
    Dovecot.log.warning("sentinel-test decision #{d.allowed? ? 'allowed' : 'limited'}" \\
                     "#{d.store_failed? ? ' store_failed' : ''}")
  elsif auth.user == "carol"
    auth.reject("rate limited") unless CAROL.hit(auth.user).allowed?
  end
end
Dovecot::Policy::BruteForce.enable!(limit: 1000, user_limit: 3, window: 60, count_trusted: true)
"""


def command(port, *args, timeout=1.0):
    """One command to a Redis server or sentinel; the reply as text (RESP
    parsed just enough for these tests), None when it cannot be reached."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout)
    except OSError:
        return None
    try:
        out = "*%d\r\n" % len(args)
        for a in args:
            a = str(a)
            out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
        conn.sendall(out.encode())
        reader = conn.makefile("rb")
        return _read_reply(reader)
    except OSError:
        return None
    finally:
        conn.close()


def _read_reply(reader):
    line = reader.readline().decode().rstrip("\r\n")
    kind, rest = line[:1], line[1:]
    if kind in "+-:":
        return rest if kind != "-" else "ERROR " + rest
    if kind == "$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data.decode()
    if kind == "*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(reader) for _ in range(n)]
    raise OSError("bad reply %r" % line)


def info(port, section):
    text = command(port, "INFO", section) or ""
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class RedisSet:
    """A master, a replica of it and three sentinels (quorum 2), each on a free
    loopback port, with their files in one temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dmr-sentinel-")
        self.procs = {}
        self.master_port = harness.free_port()
        self.replica_port = harness.free_port()
        self.sentinel_ports = []
        self.server("master", self.master_port)
        self.server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for i in range(3):
            port = harness.free_port()
            self.sentinel_ports.append(port)
            conf = os.path.join(self.dir, "sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 5000\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (port, self.dir, MASTER_NAME, self.master_port,
                           MASTER_NAME, MASTER_NAME, MASTER_NAME))
            self.spawn("sentinel%d" % i, ["redis-sentinel", conf], port)

    def server(self, name, port, *extra):
        self.spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.dir,
                          "--dbfilename", name + ".rdb", *extra], port)

    def spawn(self, name, argv, port):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        harness.poll(lambda: command(port, "PING") == "PONG", what=name + " answering PING")

    def ready(self):
        """Every sentinel sees the master, the replica and a quorum, and the
        replica is in sync: a failover can happen."""
        if info(self.replica_port, "replication").get("master_link_status") != "up":
            return False
        for port in self.sentinel_ports:
            if not str(command(port, "SENTINEL", "CKQUORUM", MASTER_NAME)).startswith("OK"):
                return False
            replicas = command(port, "SENTINEL", "REPLICAS", MASTER_NAME) or []
            if not any(str(self.replica_port) in r for r in replicas if isinstance(r, list)):
                return False
            others = command(port, "SENTINEL", "SENTINELS", MASTER_NAME) or []
            if len(others) < 2:
                return False
        return True

    def master_named(self):
        """The master's port as the sentinels agree on it (None if they don't)."""
        ports = set()
        for port in self.sentinel_ports:
            reply = command(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            ports.add(int(reply[1]) if isinstance(reply, list) else None)
        return ports.pop() if len(ports) == 1 else None

    def kill(self, name):
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def spec(self):
        return "redis-sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % p for p in self.sentinel_ports), MASTER_NAME)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def login(d, user, password=harness.PASSWORD):
    """Logs `user` in and out over IMAP: "ok", or the server's refusal."""
    client = d.imap(login=False)
    try:
        client.login(user, password)
    except imaplib.IMAP4.error as e:
        client.shutdown()
        return "refused: %s" % e
    client.logout()
    return "ok"


class Logins(threading.Thread):
    """Logs alice in and out, one login after another, until stopped; records
    (start, end, outcome) per login."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.stopping = threading.Event()
        self.records = []

    def run(self):
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                outcome = login(self.d, "alice")
            except OSError as e:
                outcome = "failed: %s" % e
            self.records.append((start, time.monotonic(), outcome))

    def stop(self):
        self.stopping.set()
        self.join(30)


@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-sentinel"),
                     "redis-server or redis-sentinel is not installed")
class SentinelFailoverTest(AuthTestCase):
    def test_logins_continue_through_a_failover_and_limits_hold_again_after_it(self):
        redis = RedisSet()
        self.addCleanup(redis.stop)
        harness.poll(redis.ready, timeout=30, what="sentinels ready for a failover")

        d = AuthDovecot(POLICY, services=NO_PENALTY, users={"carol": {}},
                        passdb_args="store=" + redis.spec())
        self.addCleanup(d.cleanup)
        d.start()

        logins = Logins(d)
        logins.start()
        self.addCleanup(logins.stop)
        # The store works before the failover: decisions are made on the master.
        harness.poll(lambda: d.log().count("sentinel-test decision allowed\n") >= 5,
                     what="five background decisions on the master")
        self.assertEqual(redis.master_named(), redis.master_port)

        killed_at = time.monotonic()
        redis.kill("master")
        harness.poll(lambda: redis.master_named() == redis.replica_port, timeout=30,
                     what="the sentinels promoting the replica")
        promoted_at = time.monotonic()

        # A ban set after the switch: three failed logins for bob ban him;
        # while the store still fails they count nothing, so keep trying.
        def bob_banned():
            login(d, "bob", "wrong")
            return "Too many failed logins" in login(d, "bob")
        harness.poll(bob_banned, timeout=20, interval=0.1, what="bob banned on the new master")
        ban_at = time.monotonic()

        # A rate limit after the switch: carol's fourth login within the minute.
        def carol_limited():
            return "rate limited" in login(d, "carol")
        harness.poll(carol_limited, timeout=20, interval=0.1, what="carol rate limited")
        limit_at = time.monotonic()

        # The background logins go on a little longer, then every decision is logged.
        done = len(logins.records)
        harness.poll(lambda: len(logins.records) >= done + 3, what="three more background logins")
        logins.stop()
        harness.poll(lambda: d.log().count("sentinel-test decision") == len(logins.records),
                     what="a logged decision per background login")

        # Every background login succeeded, before, during and after the switch.
        refused = [r for r in logins.records if r[2] != "ok"]
        self.assertEqual(refused, [])
        # Decisions, in login order (one login at a time): those the fail
        # mode made are the failover window.
        log = d.log()
        decisions = re.findall(r"sentinel-test decision (allowed|limited)( store_failed)?", log)
        self.assertEqual(len(decisions), len(logins.records))
        failed = [i for i, (_, store_failed) in enumerate(decisions) if store_failed]
        self.assertTrue(failed, "no login saw the failover")
        self.assertTrue(all(decisions[i][0] == "allowed" for i in failed))   # fail: :open
        first, last = logins.records[failed[0]], logins.records[failed[-1]]
        after = logins.records[failed[-1] + 1:]
        self.assertTrue(after and not any(s for _, s in decisions[failed[-1] + 1:]),
                        "the store did not come back for good")
        self.assertLess(failed[-1] - failed[0] + 1 - len(failed), 1,
                        "the window is not one stretch of logins")

        # The log says what happened: the failing-open decisions, and the move.
        # (2.3 prefixes "auth: Error: mruby(alice,...): ", 2.4 "auth(alice,...): Error: mruby: ".)
        self.assertRegex(log, r"Error: mruby[^:]*: mruby: store failure \(unavailable\) "
                              r"in rate limit background \(failing open\): redis-sentinel: "
                              r"master %s at 127\.0\.0\.1:%d: " % (MASTER_NAME, redis.master_port))
        d.wait_for_log(r"redis-sentinel: master %s moved to 127\.0\.0\.1:%d \(was 127\.0\.0\.1:%d\)"
                       % (MASTER_NAME, redis.replica_port, redis.master_port))
        # The ban and the rate limit live on the new master.
        keys = command(redis.replica_port, "KEYS", "dmr:*")
        self.assertIn("dmr:l:{bruteforce}", keys)
        self.assertIn("dmr:r:{carol:carol}", keys)
        # Nothing was written to the replica while it was one: a write there
        # would have been refused with READONLY, which Redis counts.
        errors = info(redis.replica_port, "errorstats")
        self.assertNotIn("errorstat_READONLY", errors)

        window = last[1] - first[0]
        print("\nsentinel failover: master killed at 0.00 s; sentinels named the replica at "
              "%.2f s; store failed for logins from %.2f s to %.2f s (window %.2f s); "
              "%d decisions in the window, all fail-open (allowed), %d logins in all, "
              "none refused; a ban enforced again at %.2f s, a rate limit at %.2f s"
              % (promoted_at - killed_at, first[0] - killed_at, last[1] - killed_at, window,
                 len(failed), len(logins.records), ban_at - killed_at, limit_at - killed_at))


if __name__ == "__main__":
    unittest.main()
