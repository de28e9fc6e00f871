"""Issue 8 item 2: mail delivered through Dovecot's real LMTP service always
arrives, whatever the session policy says. Scripts see client sessions (imap,
pop3) by default; other services only when mruby_services names them, and
then no verdict, exception or timeout of theirs ever refuses a delivery.
Dovecot's internal raw mail user (the incoming message's storage) never
reaches a script."""

import json
import os
import subprocess
import time
import unittest

from harness import DovecotTestCase, Dovecot

# Every hook refuses: sessions and mailboxes.
DENY_ALL = """
Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: start user=<#{s.user}> service=#{s.service}")
  s.deny("No sessions today")
end
Dovecot.on_mailbox_open { |box| box.deny("No mailboxes today") }
"""

# Every hook raises (mruby_on_error: tempfail by default).
RAISING = """
Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: start user=<#{s.user}> service=#{s.service}")
  raise "policy bug"
end
Dovecot.on_mailbox_open { |box| raise "mailbox policy bug" }
"""

# Only known users may have sessions; bob may not.
ALLOW_LIST = """
ALLOWED = ["alice"]
Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: start user=<#{s.user}> service=#{s.service}")
  s.deny("Not on the allow list") unless ALLOWED.include?(s.user)
end
"""

# Session start runs past mruby_timeout (allocating, so it is stopped).
TIMEOUT = """
Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: start user=<#{s.user}> service=#{s.service}")
  a = []
  loop { a << "x" * 64; a.clear if a.size > 1000 }
end
"""

DELIVERIES = 3


class LmtpDeliveries(DovecotTestCase):
    def lmtp_dovecot(self, policy, services=None, plugin=None):
        settings = dict(plugin or {})
        if services is not None:
            settings["mruby_services"] = services
        return self.dovecot(scripts={"policy.rb": policy}, plugin=settings, lmtp=True)

    def assertAllDelivered(self, d, users=("alice",)):
        """DELIVERIES messages to each user, each on its own LMTP connection
        (Dovecot makes a raw user per connection), all accepted and stored."""
        for user in users:
            for i in range(DELIVERIES):
                code, text = d.deliver(user, subject="message %d" % i)
                self.assertEqual(code, 250, text)
            self.assertEqual(d.maildir_count(user), DELIVERIES, "stored for %s" % user)

    def assertNoInternalUserSeen(self, d):
        log = d.log()
        self.assertNotIn("raw mail user", log)
        self.assertNotIn("policy: start user=<>", log)
        self.assertNotIn("Fatal", log)

    # --- lmtp not in mruby_services (the default) ---------------------------
    def test_deny_all_policy_delivers_and_still_denies_imap(self):
        d = self.lmtp_dovecot(DENY_ALL)
        self.assertAllDelivered(d)
        self.assertNotIn("service=lmtp", d.log(), "the script never saw LMTP")
        self.assertNoInternalUserSeen(d)
        # Where it should, the policy still works.
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"No sessions today")

    def test_raising_policy_delivers(self):
        d = self.lmtp_dovecot(RAISING)
        self.assertAllDelivered(d)
        self.assertNotIn("policy bug", d.log())
        self.assertNoInternalUserSeen(d)
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Error: .*mruby: session_start handler failed: "
                       r".*policy bug")

    def test_allow_list_policy_delivers_to_everyone(self):
        d = self.lmtp_dovecot(ALLOW_LIST)
        self.assertAllDelivered(d, users=("alice", "bob"))
        self.assertNoInternalUserSeen(d)
        self.assertLoginSessionRefused(d, "bob")
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX"), ("OK", [str(DELIVERIES).encode()]))
        client.logout()

    # --- lmtp opted in: the script sees deliveries, never refuses them ------
    def test_opted_in_deny_all_is_logged_as_ignored(self):
        d = self.lmtp_dovecot(DENY_ALL, services="imap pop3 lmtp")
        self.assertAllDelivered(d)
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Info: .*policy: start user=<alice> service=lmtp")
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Warning: .*mruby: ignored in lmtp "
                       r"\(a delivery is never refused\): session denied by policy: "
                       r"No sessions today")
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Warning: .*mruby: ignored in lmtp "
                       r"\(a delivery is never refused\): mailbox open denied by policy: "
                       r"No mailboxes today")
        self.assertNoInternalUserSeen(d)
        self.assertLoginSessionRefused(d, "alice")

    def test_opted_in_raising_policy_delivers(self):
        d = self.lmtp_dovecot(RAISING, services="imap pop3 lmtp")
        self.assertAllDelivered(d)
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Error: .*mruby: session_start handler failed: "
                       r".*policy bug")
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Warning: .*mruby: ignored in lmtp "
                       r"\(a delivery is never refused\): session refused by policy "
                       r"\(temporary\): ")
        self.assertNoInternalUserSeen(d)

    def test_opted_in_raising_policy_with_on_error_reject_delivers(self):
        d = self.lmtp_dovecot(RAISING, services="imap pop3 lmtp",
                              plugin={"mruby_on_error": "reject"})
        self.assertAllDelivered(d)
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Warning: .*mruby: ignored in lmtp "
                       r"\(a delivery is never refused\): session denied by policy: ")
        self.assertNoInternalUserSeen(d)

    def test_opted_in_allow_list_policy_delivers_to_everyone(self):
        d = self.lmtp_dovecot(ALLOW_LIST, services="imap pop3 lmtp")
        self.assertAllDelivered(d, users=("alice", "bob"))
        d.wait_for_log(r"lmtp\(bob\)<\d+><[^>]+>: Warning: .*mruby: ignored in lmtp "
                       r"\(a delivery is never refused\): session denied by policy: "
                       r"Not on the allow list")
        self.assertNoInternalUserSeen(d)

    def test_opted_in_timeout_delivers(self):
        d = self.lmtp_dovecot(TIMEOUT, services="imap pop3 lmtp",
                              plugin={"mruby_timeout": "50ms"})
        self.assertAllDelivered(d)
        d.wait_for_log(r"lmtp\(alice\)<\d+><[^>]+>: Error: .*mruby: session_start handler failed: "
                       r".*timeout")
        self.assertNoInternalUserSeen(d)

    # --- the setting -------------------------------------------------------
    def test_unknown_service_name_is_logged_and_the_others_apply(self):
        d = self.lmtp_dovecot(DENY_ALL, services="imap pop3 lmpt")
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Error: mruby: mruby_services: unknown "
                       r"service 'lmpt' ignored \(known: imap pop3 ")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Info: mruby: session denied by policy")
        self.assertAllDelivered(d)
        self.assertNotIn("service=lmtp", d.log())

    def test_a_service_left_out_runs_no_script(self):
        d = self.lmtp_dovecot(DENY_ALL, services="pop3")
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        self.assertNotIn("policy: start", d.log())


class LdaDeliveries(DovecotTestCase):
    """dovecot-lda (a delivery too, with its own raw mail user)."""

    def deliver_with_lda(self, d, user="alice"):
        return subprocess.run(
            d.command_prefix() + ["/usr/lib/dovecot/dovecot-lda", "-c", d.conf_path, "-d", user,
             "-f", "sender@example.com"],
            input=b"From: sender@example.com\r\nSubject: lda\r\n\r\nbody\r\n",
            capture_output=True, timeout=30)

    def test_deny_all_policy_delivers(self):
        for services in (None, "imap pop3 lda"):
            with self.subTest(mruby_services=services):
                d = self.dovecot(scripts={"policy.rb": DENY_ALL},
                                 plugin={"mruby_services": services} if services else {})
                for _ in range(DELIVERIES):
                    result = self.deliver_with_lda(d)
                    self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(d.maildir_count("alice"), DELIVERIES)
                self.assertNotIn("raw mail user", d.log())
                if services:
                    d.wait_for_log(r"lda\(alice\)<\d+><[^>]+>: Warning: mruby: ignored in lda "
                                   r"\(a delivery is never refused\): session denied by policy: "
                                   r"No sessions today")
                else:
                    self.assertNotIn("service=lda", d.log())
                d.cleanup()


class LmtpAudit(DovecotTestCase):
    """Dovecot::Audit writes session records for client sessions only."""

    def audit_dovecot(self, services=None):
        d = Dovecot(scripts={"policy.rb": "Dovecot::Audit.enable!\n"}, lmtp=True)
        path = os.path.join(d.dir, "audit.log")
        os.chmod(d.dir, 0o777)   # the mail processes create the file
        d.plugin["mruby_audit"] = "file:" + path
        if services:
            d.plugin["mruby_services"] = services
        self.addCleanup(d.cleanup)
        d.start()
        return d, path

    def records(self, path):
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            return [json.loads(line) for line in f.read().splitlines()]

    def wait_for_records(self, path, predicate, timeout=10):
        deadline = time.time() + timeout
        while True:
            records = self.records(path)
            if predicate(records):
                return records
            if time.time() > deadline:
                self.fail("audit records never matched: %r" % records)
            time.sleep(0.05)

    def test_deliveries_write_no_session_records(self):
        d, path = self.audit_dovecot()
        for i in range(DELIVERIES):
            self.assertEqual(d.deliver("alice", subject="m%d" % i)[0], 250)
        self.assertEqual(d.maildir_count("alice"), DELIVERIES)
        self.assertEqual(self.records(path), [])
        # An IMAP session is audited as before (the audit works).
        client = d.imap("alice")
        client.logout()
        records = self.wait_for_records(
            path, lambda rs: any(r["kind"] == "session.logout" for r in rs))
        kinds = [(r["kind"], r["service"]) for r in records]
        self.assertIn(("session.login", "imap"), kinds)
        self.assertTrue(all(service == "imap" for _, service in kinds), kinds)

    def test_opted_in_deliveries_are_audited_as_the_recipient(self):
        d, path = self.audit_dovecot(services="imap pop3 lmtp")
        for i in range(DELIVERIES):
            self.assertEqual(d.deliver("alice", subject="m%d" % i)[0], 250)
        self.assertEqual(d.maildir_count("alice"), DELIVERIES)
        records = self.wait_for_records(
            path, lambda rs: sum(r["kind"] == "session.logout" for r in rs) == DELIVERIES)
        logins = [r for r in records if r["kind"] == "session.login"]
        self.assertEqual(len(logins), DELIVERIES, records)
        self.assertTrue(all(r["user"] == "alice" and r["service"] == "lmtp" for r in records),
                        records)


if __name__ == "__main__":
    unittest.main()
