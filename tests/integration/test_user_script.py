"""Issue 12 part 1 end to end: a user's own script (mruby_user_script) runs
after the operator's, in its own VM, with its own state namespace, limits and
error mode; it can tighten the operator's policy and never loosen it."""

import imaplib
import json
import os
import poplib

from harness import DovecotTestCase, is_24

OPERATOR = """
BAN = Dovecot::List.new("bruteforce")
Dovecot.on_session_start do |s|
  BAN.add("eve", reason: "operator ban") if s.user == "bob"
  s.deny("Banned by the operator") if BAN.include?(s.user)
  Dovecot.audit("operator.login")
end
Dovecot.on_mailbox_open do |box|
  box.deny("Sent is closed by the operator") if box.name == "Sent"
end
Dovecot::IMAP.before_command do |cmd|
  Dovecot::Counter.incr("cmds:#{cmd.session.user}", ttl: 600)
end
"""

USER_SCRIPTS = {
    # (a) IMAP only from some networks (not from 127.0.0.1, where the tests are).
    "carol": """
        MINE = ["192.0.2.0/24", "2001:db8::/32"]
        Dovecot.on_session_start do |s|
          ip = s.remote_ip
          if s.service == "imap" && MINE.none? { |net| Dovecot::IP.new(net).include?(ip) }
            s.deny("IMAP only from my networks")
          end
        end
    """,
    # (b) no POP3 and no Archive, (c) a personal command rate, (d) a personal audit record.
    "alice": """
        RATE = Dovecot::RateLimit.new("cmds", limit: 2, period: 3600)
        Dovecot.on_session_start do |s|
          s.deny("I do not use POP3") if s.service == "pop3"
          Dovecot.audit("my.login", note: "hello from my script")
        end
        Dovecot.on_mailbox_open do |box|
          box.deny("My Archive is closed") if box.name == "Archive"
        end
        Dovecot::IMAP.before_command do |cmd|
          cmd.reject("My own command rate", code: "LIMIT") unless RATE.hit("imap").allowed?
        end
        Dovecot::Counter.incr("secret", ttl: 600)
    """,
    "mallory": """
        # Patches that would undo the operator's policy if they reached its VM.
        class Dovecot::Session; def deny(*args); nil; end; end
        class Dovecot::Mailbox; def deny(*args); nil; end; end
        class Object; def ==(other); true; end; end
        class String; def ==(other); false; end; def include?(*args); false; end; end
        Dovecot.on_session_start do |s|
          removed = Dovecot::List.new("bruteforce").remove("eve")
          alice = Dovecot::Counter.get("secret")
          alice_full = Dovecot::Counter.get("user:5:alice:secret")
          ops = Dovecot::Counter.get("cmds:alice")
          Dovecot::Counter.reset("cmds:alice")
          Dovecot.log.info("mallory: removed=#{removed} alice=#{alice} #{alice_full} ops=#{ops}")
        end
    """,
    "looper": """
        Dovecot.on_session_start { |s| loop { } }
    """,
    "hog": """
        Dovecot.on_session_start { |s| hoard = []; loop { hoard << ("x" * 100_000) } }
    """,
    "broken": """
        Dovecot.on_session_start do |s|   # no end
    """,
    "locked": """
        Dovecot.on_session_start { |s| s.deny("never read") }
    """,
    "piped": "",     # replaced by a FIFO: an open that never returns, unless refused
    "zeros": "",     # replaced by a link to /dev/zero: endless input
}


class UserScripts(DovecotTestCase):
    def start(self, plugin=None):
        from harness import Dovecot
        scripts = {"policy.rb": OPERATOR}
        for user, source in USER_SCRIPTS.items():
            scripts["user-%s.rb" % user] = source
        users = {name: {} for name in list(USER_SCRIPTS) + ["eve"]}
        d = Dovecot(scripts=scripts, users=users, store="lmdb",
                    protocol_mail_plugins={"imap": "imap_mruby", "pop3": "pop3_mruby"},
                    settings={"mail_debug": "yes"})
        self.addCleanup(d.cleanup)
        os.chmod(d.dir, 0o777)   # the audit file is created by the mail processes
        self.audit_path = os.path.join(d.dir, "audit.log")
        d.plugin["mruby_audit"] = "file:" + self.audit_path
        # Expanded by Dovecot itself, per user.
        d.plugin["mruby_user_script"] = os.path.join(
            d.script_dir, "user-%{user}.rb" if is_24() else "user-%u.rb")
        d.plugin.update(plugin or {})
        # A file its user's mail process (uid nobody) cannot read.
        os.chmod(d.script("user-locked.rb"), 0o600)
        os.unlink(d.script("user-piped.rb"))
        os.mkfifo(d.script("user-piped.rb"), 0o666)
        os.unlink(d.script("user-zeros.rb"))
        os.symlink("/dev/zero", d.script("user-zeros.rb"))
        d.start()
        return d

    def audit_records(self):
        with open(self.audit_path, "rb") as f:
            return [json.loads(line) for line in f.read().split(b"\n") if line]

    def test_a_user_script_allows_imap_only_from_its_networks(self):
        d = self.start()
        self.assertLoginSessionRefused(d, "carol")
        d.wait_for_log(r"imap\(carol\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"IMAP only from my networks")
        p = d.pop3("carol")   # POP3 is not hers to restrict here
        self.assertEqual(p.stat(), (0, 0))
        p.quit()

    def test_a_user_script_tightens_mailboxes_pop3_and_its_own_rate(self):
        d = self.start()
        c = d.imap("alice")
        typ, data = c.select("Archive")                      # her rule
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] My Archive is closed", data[0])
        typ, data = c.select("Sent")                         # the operator's rule first
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Sent is closed by the operator", data[0])
        typ, data = c.select("INBOX")                        # her third command: over 2
        self.assertEqual(typ, "NO")
        self.assertIn(b"[LIMIT] My own command rate", data[0])
        c.logout()
        # Her limit is hers: bob (no user script) is not limited.
        b = d.imap("bob")
        for _ in range(5):
            self.assertEqual(b.noop()[0], "OK")
        b.logout()
        with self.assertRaises((poplib.error_proto, OSError, EOFError)):
            p = d.pop3("alice")
            p.stat()
        d.wait_for_log(r"pop3\(alice\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"I do not use POP3")

    def test_a_users_audit_records_are_marked_as_hers(self):
        d = self.start()
        c = d.imap("alice")
        c.logout()
        records = []

        def written():
            records[:] = [r for r in self.audit_records() if r["user"] == "alice"]
            return any(r["kind"] == "my.login" for r in records)
        from harness import poll
        poll(written, what="alice's own audit record")
        mine = [r for r in records if r["kind"] == "my.login"]
        ops = [r for r in records if r["kind"] == "operator.login"]
        self.assertEqual(mine[0]["origin"], "user")
        self.assertEqual(mine[0]["note"], "hello from my script")
        self.assertEqual(mine[0]["service"], "imap")
        self.assertTrue(ops and "origin" not in ops[0], ops)

    def test_a_hostile_user_script_cannot_loosen_the_operators_policy(self):
        d = self.start()
        b = d.imap("bob")        # the operator's script bans eve
        b.logout()
        a = d.imap("alice")      # alice's own counter "secret" and the operator's cmds:alice
        a.logout()
        m = d.imap("mallory")
        d.wait_for_log(r"imap\(mallory\)<\d+><[^>]+>: Info: mallory: removed=false alice=0 0 ops=0")
        # Her patches of Session#deny, Mailbox#deny, Object#== and String#== live
        # in her VM: the operator's handlers in her session are untouched.
        typ, data = m.select("Sent")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Sent is closed by the operator", data[0])
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        # The global ban still holds.
        self.assertLoginSessionRefused(d, "eve")
        d.wait_for_log(r"imap\(eve\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"Banned by the operator")

    def test_a_looping_or_hoarding_or_broken_user_script_does_not_lock_its_user_out(self):
        d = self.start()
        for user, error in (("looper", r"timeout: session_start handler exceeded mruby_user_timeout=50ms"),
                            ("hog", r"memory limit exceeded: session_start handler exceeded "
                                    r"mruby_user_memory_limit=8388608 bytes"),
                            ("broken", r"syntax error"),
                            ("locked", r"load error"),
                            ("piped", r"cannot open script: not a regular file"),
                            ("zeros", r"cannot open script: not a regular file")):
            c = d.imap(user)   # mruby_user_on_error=allow (the default)
            d.wait_for_log(r"imap\(%s\)<\d+><[^>]+>: Error: mruby: user script: .*%s.*"
                           r"\(mruby_user_on_error=allow\)" % (user, error))
            typ, data = c.select("Sent")   # the operator's policy still holds
            self.assertEqual(typ, "NO")
            self.assertIn(b"Sent is closed by the operator", data[0])
            self.assertEqual(c.select("INBOX")[0], "OK")
            c.logout()

    def test_mruby_user_on_error_tempfail_refuses_the_broken_users_session(self):
        d = self.start(plugin={"mruby_user_on_error": "tempfail", "mruby_user_timeout": "20ms"})
        self.assertLoginSessionRefused(d, "looper")
        d.wait_for_log(r"imap\(looper\)<\d+><[^>]+>: Error: mruby: user script: .*"
                       r"mruby_user_timeout=20ms.*\(mruby_user_on_error=tempfail\)")
        c = d.imap("bob")   # users without a script are unaffected
        self.assertEqual(c.select("INBOX")[0], "OK")
        c.logout()

    def test_a_user_without_a_script_gets_no_second_vm(self):
        d = self.start()
        c = d.imap("bob")
        self.assertEqual(c.select("INBOX")[0], "OK")
        c.logout()
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Debug: mruby: no user script \(.*user-bob\.rb "
                       r"does not exist\)")
        a = d.imap("alice")
        a.logout()
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Debug: mruby: user script .*user-alice\.rb "
                       r"loaded \(a second VM\)")
        self.assertNotRegex(d.log(), r"imap\(bob\).*user script .* loaded")
