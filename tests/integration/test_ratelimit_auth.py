"""The ready-made brute-force policy in a real Dovecot: failed logins counted
by the auth process in LMDB, the 11th attempt from one network within the
window refused over IMAP and POP3 alike (even with the right password), and
logins allowed again once the ban (by default: the window) has passed."""

import imaplib
import os
import poplib
import time
import unittest

from auth_harness import AuthDovecot, AuthTestCase

# Dovecot's own auth penalty (anvil: up to 15 s per failure from one IP) would
# slow the attempts down; production keeps it, next to this policy.
NO_PENALTY = {"anvil": {"unix_listener anvil-auth-penalty": {"mode": "0"}}}
WINDOW = 10   # failed logins here take about 0.5 s each


class BruteForceTest(AuthTestCase):
    def bruteforce_dovecot(self, policy):
        d = AuthDovecot(policy, services=NO_PENALTY, store="lmdb")
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        return d.start()

    def imap_refused(self, d, user, password):
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            d.imap(user, password).logout()
        return str(cm.exception)

    def pop3_refused(self, d, user, password):
        with self.assertRaises(poplib.error_proto) as cm:
            d.pop3(user, password).quit()
        return str(cm.exception)

    def test_the_eleventh_failed_login_is_refused_across_protocols_until_the_window_passes(self):
        d = self.bruteforce_dovecot(
            "Dovecot::Policy::BruteForce.enable!(limit: 10, window: %d, count_trusted: true)" % WINDOW)
        d.imap("alice").logout()   # a success counts nothing
        started = time.time()
        for i in range(10):
            if i % 2 == 0:
                self.assertIn("AUTHENTICATIONFAILED", self.imap_refused(d, "alice", "wrong"))
            else:
                self.pop3_refused(d, "bob", "wrong")
        banned_at = time.time()
        self.assertLess(banned_at - started, WINDOW, "the attempts were too slow for the test")
        d.wait_for_log(r"brute force: 127\.0\.0\.0/24 banned for %ds after 10 failed logins"
                       % WINDOW)
        # The 11th attempt, with the right password, over either protocol.
        self.assertIn("Too many failed logins", self.imap_refused(d, "alice", "secret"))
        self.assertIn("Too many failed logins", self.pop3_refused(d, "bob", "secret"))
        self.assertNotIn("store failure", d.log())
        # The ban was written by the auth process into the shared directory.
        self.assertTrue(os.path.exists(os.path.join(d.store_dir, "data.mdb")))

        time.sleep(max(0, banned_at + WINDOW + 0.5 - time.time()))
        d.imap("alice").logout()
        d.pop3("bob").quit()

    def test_failures_below_the_limit_change_nothing(self):
        d = self.bruteforce_dovecot(
            "Dovecot::Policy::BruteForce.enable!(limit: 3, window: 60, count_trusted: true)")
        for _ in range(2):
            self.imap_refused(d, "alice", "wrong")
        d.imap("alice").logout()
        self.imap_refused(d, "alice", "wrong")   # the third failure: banned from now on
        self.assertIn("Too many failed logins", self.imap_refused(d, "alice", "secret"))


if __name__ == "__main__":
    unittest.main()
