"""Configuration that cannot fool the operator, on a real Dovecot:
- the Redis password in its own setting, which doveconf -n hides, works
  against a redis-server with requirepass (mail processes and auth);
- a misspelled mruby_* setting is warned about with the closest known name;
  a misspelled driver arg stops auth with a line naming it;
- the brute-force policy leaves loopback and trusted connections alone, and
  counts the client address a trusted proxy forwards."""

import imaplib
import os
import re
import shutil
import subprocess
import unittest

import harness
from auth_harness import AuthDovecot, AuthTestCase

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))

NO_PENALTY = {"anvil": {"unix_listener anvil-auth-penalty": {"mode": "0"}}}

COUNTING_SCRIPT = """
Dovecot.on_session_start do |s|
  n = Dovecot::Counter.incr("sessions:#{s.user}", ttl: 600)
  Dovecot.log.info("session count #{n}")
  nil
end
"""


class RedisWithPassword(harness.RedisServer):
    def __init__(self, password):
        self.password = password
        super().__init__("--requirepass", password)

    def keys(self):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "-a", self.password,
                              "--no-auth-warning", "DBSIZE"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class StorePasswordTest(AuthTestCase):
    PASSWORD = "s3cret-Redis-pw"

    def setUp(self):
        self.redis = RedisWithPassword(self.PASSWORD)
        self.addCleanup(self.redis.stop)
        self.spec = "redis://127.0.0.1:%d/0" % self.redis.port

    def doveconf(self, d):
        return subprocess.run(d.command_prefix() + ["doveconf", "-n", "-c", d.conf_path],
                              capture_output=True,
                              text=True, check=True).stdout

    def test_mail_processes_use_the_hidden_password_setting(self):
        d = self.dovecot(scripts={"policy.rb": COUNTING_SCRIPT},
                         plugin={"mruby_store": self.spec,
                                 "mruby_store_password": self.PASSWORD})
        out = self.doveconf(d)
        self.assertIn("mruby_store_password = # hidden, use -P to show it", out)
        self.assertNotIn(self.PASSWORD, out)
        d.imap("alice").logout()
        d.imap("alice").logout()
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Info: session count 2")
        self.assertNotRegex(d.log(), r"NOAUTH|store failure")
        self.assertGreater(self.redis.keys(), 0)

    def test_without_the_password_the_store_fails_and_says_so(self):
        d = self.dovecot(scripts={"policy.rb": COUNTING_SCRIPT},
                         plugin={"mruby_store": self.spec})
        with self.assertRaises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError, EOFError)):
            c = d.imap("alice")
            c.select("INBOX")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Error: .*Dovecot::Counter\.incr: "
                       r"unavailable: redis: NOAUTH Authentication required")
        self.assertNotIn("session count", d.log())

    def test_auth_reads_the_password_from_a_file(self):
        d = AuthDovecot("""
            Dovecot.on_auth do |a|
              Dovecot::Counter.incr("auth:#{a.user}", ttl: 600)
              nil
            end
        """, services={"auth": {"extra_groups": "nogroup"}})
        self.addCleanup(d.cleanup)
        # Not world-readable: root and the group the store's users share (as
        # the LMDB directory, docs/configuration.md); auth runs as dovecot.
        path = os.path.join(d.dir, "redis.pass")
        with open(path, "w") as f:
            f.write(self.PASSWORD + "\n")
        os.chown(path, 0, harness.MAIL_GID)
        os.chmod(path, 0o640)
        d.passdb_args = "store=%s store_password_file=%s" % (self.spec, path)
        d.start()
        out = self.doveconf(d)
        self.assertNotIn(self.PASSWORD, out)
        try:
            d.imap("alice").logout()
        except imaplib.IMAP4.error:
            self.fail(d.log())
        # The counter was written (a handler that raised would have failed
        # the login: mruby_on_error=tempfail).
        self.assertGreater(self.redis.keys(), 0)
        self.assertNotRegex(d.log(), r"NOAUTH|store failure|Permission denied")


class SettingNamesTest(AuthTestCase):
    def test_a_misspelled_setting_is_refused_by_dovecot_24(self):
        if not harness.is_24():
            self.skipTest("2.3 has no declared settings: the warnings below cover it")
        # On 2.4 a top-level mruby_* name that is not declared is a config
        # error, for doveconf and for Dovecot's start alike.
        for name in ("mruby_timout", "mruby_scirpt"):
            d = harness.Dovecot(scripts={"policy.rb": "nil\n"}, settings={name: "2s"})
            self.addCleanup(d.cleanup)
            result = d.doveconf("-n")
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("%s: Unknown setting: %s" % (name, name), result.stderr)

    def test_a_misspelled_setting_is_warned_about_with_the_closest_name(self):
        if harness.is_24():
            self.skipTest("2.4 refuses the file instead (the test above)")
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_session_start { |s| nil }"},
                         plugin={"mruby_timout": "2s", "mruby_greeting": "hello"})
        d.imap("alice").logout()
        line = d.wait_for_log(
            r"imap\(alice\)<\d+><[^>]+>: Warning: mruby: mruby_timout is not a setting "
            r"\(did you mean mruby_timeout\?\): ignored")
        self.assertIsNotNone(line)
        self.assertEqual(len(re.findall("mruby_timout", d.log())), 1)
        # A script's own setting, far from every known name, is not reported.
        self.assertNotIn("mruby_greeting", d.log())

    def test_a_misspelled_script_setting_is_not_silent(self):
        if harness.is_24():
            self.skipTest("2.4 refuses the file instead (test_a_misspelled_setting_is_refused_by_dovecot_24)")
        d = self.dovecot(plugin={"mruby_scirpt": "/nonexistent.rb"})
        d.imap("alice").logout()
        d.wait_for_log(r"Warning: mruby: mruby_scirpt is not a setting "
                       r"\(did you mean mruby_script\?\)")

    def test_a_misspelled_driver_arg_stops_auth_with_a_line_naming_it(self):
        # process_min_avail = 1 starts auth with Dovecot (docs/configuration.md):
        # the error shows at start, not at the first login.
        d = AuthDovecot("Dovecot.on_auth { |a| nil }", passdb_args="tmeout=2s",
                        services={"auth": {"process_min_avail": "1"}})
        self.addCleanup(d.cleanup)
        if harness.is_24():
            # The block's settings are Dovecot's: it refuses the file, naming it.
            result = d.doveconf("-n")
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("mruby_tmeout: Unknown setting: mruby_tmeout", result.stderr)
            return
        d.start()
        d.wait_for_log(r"auth: Fatal: passdb mruby: unknown parameter 'tmeout=2s' "
                       r"\(did you mean timeout=\?\)")

    def test_a_bad_store_in_the_driver_args_stops_auth_at_start(self):
        d = AuthDovecot("Dovecot.on_auth { |a| nil }", passdb_args="store=lmbd:/tmp/x",
                        services={"auth": {"process_min_avail": "1"}})
        self.addCleanup(d.cleanup)
        d.start()
        name = "mruby_store" if harness.is_24() else "store"   # 2.4: the block's setting
        d.wait_for_log(r"auth: Fatal: passdb mruby: %s=lmbd:/tmp/x: unknown store" % name)


class BruteForceTrustedTest(AuthTestCase):
    def bruteforce_dovecot(self, policy, settings=None):
        d = AuthDovecot(policy, services=NO_PENALTY, settings=settings, store="lmdb")
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        return d.start()

    def forwarded_login(self, d, ip, user, password):
        """A login through a trusted proxy that forwards the client's address
        (IMAP ID x-originating-ip, as a webmail or a director does)."""
        c = d.imap(login=False)
        try:
            typ, _ = c._simple_command("ID", '("x-originating-ip" "%s")' % ip)
            self.assertEqual(typ, "OK")
            c.login(user, password)
        finally:
            c.shutdown()

    def test_loopback_failures_are_never_counted(self):
        d = self.bruteforce_dovecot("Dovecot::Policy::BruteForce.enable!(limit: 3, window: 60)")
        for _ in range(5):
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                d.imap("alice", "wrong")
            self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))
        d.imap("alice").logout()
        self.assertNotIn("banned", d.log())

    def test_a_client_address_forwarded_by_a_trusted_proxy_is_counted(self):
        d = self.bruteforce_dovecot(
            "Dovecot::Policy::BruteForce.enable!(limit: 3, window: 60)",
            settings={"login_trusted_networks": "127.0.0.0/8"})
        for _ in range(3):
            with self.assertRaises(imaplib.IMAP4.error):
                self.forwarded_login(d, "203.0.113.5", "alice", "wrong")
        d.wait_for_log(r"brute force: 203\.0\.113\.0/24 banned for 60s after 3 failed logins")
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            self.forwarded_login(d, "203.0.113.9", "alice", "secret")
        self.assertIn("Too many failed logins", str(cm.exception))
        # The proxy itself (trusted, speaking for itself) is neither counted
        # nor refused.
        for _ in range(4):
            with self.assertRaises(imaplib.IMAP4.error):
                d.imap("bob", "wrong")
        d.imap("bob").logout()
        self.forwarded_login(d, "198.51.100.7", "bob", "secret")
        self.assertNotRegex(d.log(), r"127\.0\.0\.0/24 banned")


if __name__ == "__main__":
    unittest.main()
