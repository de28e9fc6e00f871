"""Regexp on a real Dovecot (issue 12): in the auth process (an on_auth
handler of the mruby passdb refuses test accounts by a pattern, with a named
capture in its text), in a mail process (IMAP command hooks that decide and
log by named captures), and a catastrophic pattern (/(a+)+$/) that
mruby_timeout stops and mruby_on_error answers, in both processes."""

import imaplib

from auth_harness import AuthTestCase, auth_log_prefix
from harness import DovecotTestCase

FAST = {"login_trusted_networks": "127.0.0.0/8"}   # no anvil auth penalty between attempts
PROTOCOLS = {"imap": "imap_mruby", "pop3": "pop3_mruby"}

AUTH_POLICY = r"""
Dovecot.on_auth do |auth|
  if auth.user =~ /\Atest(?<n>\d+)@/
    auth.reject("test account #{$~[:n]} may not log in")
  elsif auth.user.start_with?(/slow[.]/)
    ("a" * 64 + "!") =~ /(a+)+$/     # catastrophic: stopped by mruby_timeout
    auth.reject("never reached")
  end
end
"""

AUTH_USERS = {"test42@example.com": {}, "contest7@example.com": {}, "slow.sam": {}}

MAIL_POLICY = r"""
Dovecot::IMAP.before_command do |cmd|
  if cmd.name =~ /\A(?<uid>UID )?(?<verb>SEARCH|SORT)\z/
    cmd.reject("no #{$~[:verb].downcase}#{$~[:uid] ? ' by UID' : ''} for " +
               cmd.session.user.sub(/\A(?<first>.)/) { $~[:first].upcase }, code: "LIMIT")
  elsif cmd.name == "NOOP" && cmd.session.user == "bob"
    begin
      ("a" * 64 + "!") =~ /(a+)+$/   # catastrophic: stopped by mruby_timeout
    rescue RegexpError
      cmd.reject("rescued")          # never runs: the handler cannot go on
    end
  end
end
Dovecot::IMAP.after_command do |cmd|
  m = /\A"?(?<mailbox>[^"]+)"?\z/.match(cmd.args.to_s)
  if cmd.name == "SELECT" && m && cmd.reply_text =~ /\A\[(?<code>[A-Z-]+)\]/
    Dovecot.log.info("selected #{m[:mailbox].inspect}, #{$~[:code].downcase}")
  end
end
"""


class RegexpAuthTest(AuthTestCase):
    def test_on_auth_refuses_by_a_pattern_and_the_client_sees_the_capture(self):
        d = self.auth_dovecot(AUTH_POLICY, users=AUTH_USERS,
                              passdb_args="on_error=reject timeout=300ms", settings=FAST)
        self.assertImapRefused(d, "test42@example.com",
                               contains="test account 42 may not log in")
        # \A anchors: a name that only contains the pattern logs in.
        client = d.imap("contest7@example.com")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        d.imap("alice").logout()

    def test_a_catastrophic_pattern_in_on_auth_ends_at_the_timeout(self):
        d = self.auth_dovecot(AUTH_POLICY, users=AUTH_USERS,
                              passdb_args="on_error=reject timeout=300ms", settings=FAST)
        reply = self.assertImapRefused(d, "slow.sam", contains="Access denied by policy")
        self.assertNotIn("never reached", reply)
        d.wait_for_log(auth_log_prefix("slow.sam", "Error") +
                       r".*timeout: auth handler exceeded mruby_timeout=300ms.*"
                       r"mruby_on_error=reject")
        # The auth process goes on answering, Regexp and all.
        d.imap("alice").logout()
        self.assertImapRefused(d, "test42@example.com",
                               contains="test account 42 may not log in")


class RegexpMailTest(DovecotTestCase):
    def start(self):
        return self.dovecot(scripts={"policy.rb": MAIL_POLICY}, protocol_mail_plugins=PROTOCOLS,
                            plugin={"mruby_timeout": "300ms", "mruby_on_error": "tempfail"})

    def assertRefused(self, reply, text):
        typ, data = reply
        self.assertEqual(typ, "NO")
        self.assertTrue(data[0].decode().startswith(text + " ("), data[0])

    def test_command_hooks_decide_and_log_by_named_captures(self):
        d = self.start()
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        d.wait_for_log(r"imap\(alice\).*selected \"INBOX\", read-write")
        self.assertRefused(client.search(None, "ALL"), "[LIMIT] no search for Alice")
        self.assertRefused(client.uid("SORT", "(DATE)", "UTF-8", "ALL"),
                           "[LIMIT] no sort by UID for Alice")
        self.assertEqual(client.noop()[0], "OK")
        client.logout()

    def test_a_catastrophic_pattern_in_a_command_hook_ends_at_the_timeout(self):
        d = self.start()
        bob = d.imap("bob")
        typ, data = bob.noop()
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNAVAILABLE]", data[0])
        self.assertNotIn(b"rescued", data[0])
        d.wait_for_log(r"imap\(bob\).*timeout: .*exceeded mruby_timeout=300ms")
        bob.logout()
        # Other sessions, in the same or a new process, match as before.
        alice = d.imap("alice")
        self.assertEqual(alice.noop()[0], "OK")
        alice.select("INBOX")
        self.assertRefused(alice.search(None, "ALL"), "[LIMIT] no search for Alice")
        alice.logout()


class OnigurumaOnFirstUseTest(DovecotTestCase):
    """Oniguruma is loaded by the process whose script compiles a Regexp,
    not by every mail process (docs/benchmarks.md): read in the open
    session's own /proc/PID/maps."""

    def imap_maps(self, d, user):
        """The libonig files mapped by `user`'s open imap process."""
        client = d.imap(user)
        client.noop()
        pid = d.wait_for_log(r"imap\(%s\)<(\d+)>" % user).group(1)
        with open("/proc/%s/maps" % pid) as f:
            onig = {line.split()[-1] for line in f if "libonig" in line}
        client.logout()
        return onig

    def test_a_script_without_a_regexp_never_loads_oniguruma(self):
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_session_start { |s| s.user == 'x' }"})
        self.assertEqual(self.imap_maps(d, "alice"), set())

    def test_a_script_with_a_regexp_loads_it_in_its_process(self):
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_session_start { |s| s.user =~ /x/ }"})
        self.assertNotEqual(self.imap_maps(d, "alice"), set())

if __name__ == "__main__":
    import unittest
    unittest.main()
