"""Shared state in a real Dovecot: a rate limit kept in LMDB is shared by
separate IMAP and POP3 processes (each running as the mail user), and the
ready-made CommandRate policy limits one user's commands across protocols."""

import imaplib
import os
import poplib
import stat
import unittest

from harness import DovecotTestCase, MAIL_GID

SESSION_LIMIT = """
SESSIONS = Dovecot::RateLimit.new("sessions", limit: 3, period: 3600)
Dovecot.on_session_start do |s|
  d = SESSIONS.hit(s.user)
  Dovecot.log.info("session #{s.service} #{s.user} from #{s.remote_ip}: allowed=#{d.allowed?} remaining=#{d.remaining} store_failed=#{d.store_failed?}")
  s.deny("Too many sessions, retry in #{d.retry_after.ceil}s") unless d.allowed?
end
"""

# The protocol plugins next to mruby (harness: protocol_mail_plugins=).
PROTOCOLS = {"imap": "imap_mruby", "pop3": "pop3_mruby"}


class SharedStateTest(DovecotTestCase):
    def test_a_session_limit_is_shared_by_imap_and_pop3_processes_through_lmdb(self):
        d = self.dovecot(scripts={"policy.rb": SESSION_LIMIT}, store="lmdb")
        imap = d.imap("alice")
        imap.select("INBOX")
        imap.logout()
        d.pop3("alice").quit()
        imap = d.imap("alice")
        imap.logout()
        # The fourth session, in yet another process: refused.
        with self.assertRaises(poplib.error_proto):
            d.pop3("alice").quit()
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"session imap alice from 127\.0\.0\.1: allowed=false remaining=0 "
                       r"store_failed=false")
        # Another user has a budget of its own.
        d.pop3("bob").quit()
        d.imap("bob").logout()
        self.assertNotIn("store failure", d.log())
        self.assertEqual(len(d.log().split("allowed=true")), 6)   # 3 alice + 2 bob

        # The files the mail processes (uid nobody) created: group-shared, 0660.
        for name in ("data.mdb", "lock.mdb"):
            st = os.stat(os.path.join(d.store_dir, name))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, name)
            self.assertEqual(st.st_gid, MAIL_GID, name)

    def test_state_survives_a_restart_of_dovecot(self):
        d = self.dovecot(scripts={"policy.rb": SESSION_LIMIT}, store="lmdb")
        for _ in range(3):
            d.imap("alice").logout()
        d.stop()
        d.start()
        self.assertLoginSessionRefused(d, "alice")

    def test_a_store_that_cannot_open_fails_open(self):
        d = self.dovecot(scripts={"policy.rb": SESSION_LIMIT},
                         store="lmdb:/nonexistent/mruby-state")
        for _ in range(4):
            d.imap("alice").logout()
        d.wait_for_log(r"store failure \(unavailable\) in rate limit sessions \(failing open\)")
        self.assertEqual(len(d.log().split("store_failed=true")), 5)

    def test_command_rate_policy_limits_a_user_across_imap_and_pop3(self):
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot::Policy::CommandRate.enable!(limit: 4, period: 3600)
        """}, store="lmdb", protocol_mail_plugins=PROTOCOLS)
        imap = d.imap("alice")
        imap.select("INBOX")            # 1
        imap.noop()                     # 2
        pop = d.pop3("alice")
        pop.stat()                      # 3
        pop.noop()                      # 4
        with self.assertRaises(poplib.error_proto) as cm:
            pop.stat()
        self.assertIn("Too many commands", str(cm.exception))
        typ, data = imap.noop()
        self.assertEqual(typ, "NO")
        self.assertIn(b"[LIMIT] Too many commands, slow down (retry in", data[0])
        imap.logout()                   # exempt: a client can always leave
        pop.quit()
        # bob is not limited by alice's use.
        other = d.imap("bob")
        other.noop()
        other.logout()


if __name__ == "__main__":
    unittest.main()
