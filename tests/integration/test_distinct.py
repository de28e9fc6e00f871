"""Dovecot::Policy::Distributed in a real Dovecot, with LMDB and with Redis:
credential stuffing (one network, many user names) ends in a ban an IMAP
client sees; distributed guessing (one user, many networks) gets a tarpit
that grows with the number of networks, read from the delay the policy logs;
loopback and trusted connections are left alone.

The many client networks are IMAP ID x-originating-ip addresses forwarded
by a trusted proxy (login_trusted_networks = 127.0.0.0/8, as a webmail or a
director does): the proxy itself, on loopback, is exempt."""

import imaplib
import os
import re
import shutil
import subprocess
import unittest

import harness
from auth_harness import AuthDovecot, AuthTestCase

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))   # as test_config

# Dovecot's own auth penalty would slow the attempts down (test_ratelimit_auth).
NO_PENALTY = {"anvil": {"unix_listener anvil-auth-penalty": {"mode": "0"}}}
TRUSTED_PROXY = {"login_trusted_networks": "127.0.0.0/8"}


class DistributedChecks:
    """The tests, run once per store (the subclasses' store())."""

    def distributed_dovecot(self, policy, settings=None):
        d = AuthDovecot(policy, services=NO_PENALTY, settings=settings, store=self.store())
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        return d.start()

    def forwarded_login(self, d, ip, user, password):
        """A login through the trusted proxy on behalf of client `ip`."""
        c = d.imap(login=False)
        try:
            typ, _ = c._simple_command("ID", '("x-originating-ip" "%s")' % ip)
            self.assertEqual(typ, "OK")
            c.login(user, password)
        finally:
            c.shutdown()

    def forwarded_refusal(self, d, ip, user, password):
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            self.forwarded_login(d, ip, user, password)
        return str(cm.exception)

    def test_credential_stuffing_from_one_network_ends_in_a_ban(self):
        d = self.distributed_dovecot(
            "Dovecot::Policy::Distributed.enable!(users: 5, window: 60)", TRUSTED_PROXY)
        # Six user names from one /24, one attempt each (under any per-user
        # or per-network failure limit): the sixth name bans the network.
        for i in range(6):
            self.assertIn("AUTHENTICATIONFAILED", self.forwarded_refusal(
                d, "203.0.113.%d" % (10 + i), "victim%d" % i, "guess"))
        d.wait_for_log(r"distributed: 203\.0\.113\.0/24 banned for 60s after failed logins "
                       r"for 6 distinct users")
        # Any address of that network, even with the right password.
        self.assertIn("Too many failed logins",
                      self.forwarded_refusal(d, "203.0.113.200", "alice", harness.PASSWORD))
        # Another network, and the proxy itself, are not concerned.
        self.forwarded_login(d, "198.51.100.7", "alice", harness.PASSWORD)
        d.imap("alice").logout()
        self.assertNotRegex(d.log(), r"127\.0\.0\.0/24 banned|store failure")
        self.assert_counted_in_the_store(d)

    def test_one_user_from_many_networks_gets_a_growing_capped_tarpit(self):
        d = self.distributed_dovecot(
            "Dovecot::Policy::Distributed.enable!(networks: 2, tarpit: 0.25, tarpit_max: 0.6, "
            "window: 60)", dict(TRUSTED_PROXY, auth_verbose="yes"))   # shows the tarpit lines
        # One failed guess for bob from each of 6 networks. Before each, the
        # policy sees the networks counted so far: 0, 1, 2 (no delay), then
        # 3, 4, 5 networks: 0.25 s per network above 2, at most 0.6 s.
        for i in range(6):
            self.forwarded_refusal(d, "10.%d.0.1" % i, "bob", "guess")
        d.wait_for_log(r"distributed: user bob failed from 5 networks, tarpit 0\.6s")
        delays = re.findall(r"distributed: user bob failed from (\d+) networks, tarpit ([\d.]+)s",
                            d.log())
        self.assertEqual(delays, [("3", "0.25"), ("4", "0.5"), ("5", "0.6")])
        # Never a lockout: the right password still gets in (after the delay).
        self.forwarded_login(d, "192.0.2.1", "bob", harness.PASSWORD)
        d.wait_for_log(r"distributed: user bob failed from 6 networks, tarpit 0\.6s")
        # Another user is not delayed; nor is bob from the proxy itself.
        self.forwarded_login(d, "192.0.2.1", "alice", harness.PASSWORD)
        d.imap("bob").logout()
        self.assertEqual(len(re.findall(r"tarpit \d", d.log())), 4)
        self.assertNotIn("alice failed from", d.log())
        self.assertNotIn("banned", d.log())

    def test_loopback_is_never_counted(self):
        # No trusted proxy: every attempt comes from loopback itself.
        d = self.distributed_dovecot(
            "Dovecot::Policy::Distributed.enable!(users: 2, networks: 1, window: 60)",
            {"auth_verbose": "yes"})
        for i in range(5):
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                d.imap("victim%d" % i, "guess")
            self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))
        d.imap("alice").logout()
        self.assertNotRegex(d.log(), r"banned|tarpit \d|store failure")

    def test_count_trusted_counts_loopback(self):
        # The same, with count_trusted: true: the test is able to fail.
        d = self.distributed_dovecot(
            "Dovecot::Policy::Distributed.enable!(users: 2, window: 60, count_trusted: true)")
        for i in range(3):
            with self.assertRaises(imaplib.IMAP4.error):
                d.imap("victim%d" % i, "guess")
        d.wait_for_log(r"distributed: 127\.0\.0\.0/24 banned for 60s")
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            d.imap("alice")
        self.assertIn("Too many failed logins", str(cm.exception))


class DistributedLmdbTest(DistributedChecks, AuthTestCase):
    def store(self):
        return "lmdb"

    def assert_counted_in_the_store(self, d):
        self.assertTrue(os.path.exists(os.path.join(d.store_dir, "data.mdb")))


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class DistributedRedisTest(DistributedChecks, AuthTestCase):
    def store(self):
        if not hasattr(self, "redis"):
            self.redis = harness.RedisServer()
            self.addCleanup(self.redis.stop)
        return "redis://127.0.0.1:%d/0" % self.redis.port

    def assert_counted_in_the_store(self, d):
        # The distinct counts are HyperLogLogs in Redis (PFADD), one per bucket.
        keys = subprocess.run(["redis-cli", "-p", str(self.redis.port), "--scan", "--pattern",
                               "dmr:d:*"], capture_output=True, text=True, check=True).stdout
        self.assertIn("dmr:d:{distributed:users:203.0.113.0/24}:60000000:", keys)
        key = keys.split()[0]
        kind = subprocess.run(["redis-cli", "-p", str(self.redis.port), "PFCOUNT", key],
                              capture_output=True, text=True, check=True).stdout
        self.assertGreater(int(kind), 0)


if __name__ == "__main__":
    unittest.main()
