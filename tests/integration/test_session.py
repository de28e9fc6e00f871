"""Issue 2 end to end: session and mailbox hooks in a real Dovecot, driven by
real IMAP and POP3 clients."""

import imaplib
import os
import poplib
import re
import socket
import threading
import unittest

import harness

from harness import DovecotTestCase, poll

BASIC_POLICY = """
Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: start #{s.user} #{s.service} #{s.remote_ip} #{s.session_id}")
  s.deny("Account suspended") if s.user == "bob"
end

Dovecot.on_mailbox_open do |box|
  box.deny("Archive is closed") if box.name == "Archive"
end

Dovecot.on_session_end do |s|
  Dovecot.log.info("policy: end #{s.user}")
end
"""


class SessionPolicy(DovecotTestCase):
    def test_allowed_session_works_as_without_the_plugin(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        self.assertEqual(client.append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")[0], "OK")
        typ, data = client.search(None, "ALL")
        self.assertEqual((typ, data), ("OK", [b"1"]))
        self.assertEqual(client.list()[0], "OK")
        client.logout()
        match = d.wait_for_log(r"imap\(alice\)<\d+><([^>]+)>: Info: policy: start alice imap 127\.0\.0\.1 (\S+)")
        self.assertEqual(match.group(1), match.group(2), "session id reaches the script")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Info: policy: end alice")

    def test_denied_session_ends_after_login(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY})
        self.assertLoginSessionRefused(d, "bob")
        denied = d.wait_for_log(r"imap\(bob\)<(\d+)><[^>]+>: Info: mruby: session denied by policy: Account suspended")
        # Others are unaffected.
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        # A denied session never started: no session end for it, once bob's
        # process is gone and a later session's end is logged.
        bob_pid = int(denied.group(1))
        poll(lambda: not os.path.exists("/proc/%d" % bob_pid), what="bob's imap process exits")
        d.wait_for_log(r"policy: end alice")
        self.assertNotIn("policy: end bob", d.log())

    def test_denied_pop3_session(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY})
        with self.assertRaises((poplib.error_proto, OSError, EOFError)):
            client = d.pop3("bob")
            client.stat()
        d.wait_for_log(r"pop3\(bob\)<\d+><[^>]+>: Info: mruby: session denied by policy: Account suspended")
        client = d.pop3("alice")
        self.assertEqual(client.stat(), (0, 0))
        client.quit()

    def test_mailbox_denied_for_select_examine_status_and_append(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY})
        client = d.imap("alice")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Archive is closed", data[0])
        typ, data = client.select("Archive", readonly=True)   # EXAMINE
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Archive is closed", data[0])
        typ, data = client.status("Archive", "(MESSAGES)")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Archive is closed", data[0])
        typ, data = client.append("Archive", None, None, b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Archive is closed", data[0])
        # Other mailboxes and the session itself keep working.
        self.assertEqual(client.status("Sent", "(MESSAGES)")[0], "OK")
        self.assertEqual(client.select("INBOX")[0], "OK")
        self.assertEqual(client.noop()[0], "OK")
        client.logout()

    def test_per_user_script_from_a_userdb_field(self):
        d = self.dovecot(
            scripts={"policy.rb": BASIC_POLICY,
                     "carol.rb": """
                        Dovecot.on_mailbox_open do |box|
                          box.deny("Carol may not open #{box.name}") if box.name == "Sent"
                        end
                     """},
            users={"carol": {}})
        # The userdb field mruby_script overrides plugin { mruby_script } for carol only.
        d.stop()
        d.users["carol"] = {"mruby_script": d.script("carol.rb")}
        d.start()
        carol = d.imap("carol")
        typ, data = carol.select("Sent")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Carol may not open Sent", data[0])
        self.assertEqual(carol.select("Archive")[0], "OK", "carol does not run the global policy")
        carol.logout()
        alice = d.imap("alice")
        self.assertEqual(alice.select("Sent")[0], "OK")
        self.assertEqual(alice.select("Archive")[0], "NO")
        alice.logout()

    def test_utf8_username(self):
        d = self.dovecot(
            scripts={"policy.rb": """
                Dovecot.on_session_start do |s|
                  Dovecot.log.info("policy: hello #{s.user} (#{s.user.bytesize} bytes)")
                  s.deny("not jürgen") unless s.user == "jürgen"
                end
            """},
            users={"jürgen": {}},
            settings={"auth_username_chars": ""})
        client = d.imap_auth_plain("jürgen")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        d.wait_for_log(r"Info: policy: hello jürgen \(7 bytes\)")


PROTOCOL_PLUGINS = {"imap": "imap_mruby", "pop3": "pop3_mruby"}


def converse(port, lines, until_closed=True):
    """Sends `lines` (bytes, pipelined in one write after the greeting) and
    returns everything the server sent until it closed the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.sendall(lines)
        while until_closed:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")
    finally:
        sock.close()


class RefusedSessionText(DovecotTestCase):
    """With imap_mruby / pop3_mruby loaded, a session refused at its start
    gets the script's own text, and the log one prefixed Info (or Warning)
    line and no Error line."""

    def assertNoErrorLine(self, d, user):
        for line in d.log().splitlines():
            self.assertFalse("Error:" in line and ("session denied" in line or "refused" in line
                                                   or "(%s)" % user in line),
                             "an Error line for a policy refusal: %s" % line)

    def test_imap_client_gets_the_scripts_text(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY},
                         protocol_mail_plugins=PROTOCOL_PLUGINS)
        reply = converse(d.imap_port, b"a LOGIN bob " + harness.PASSWORD.encode() + b"\r\n")
        self.assertRegex(reply, r"\r\na OK .*\r\n\* BYE Account suspended\r\n$")
        self.assertNotIn("Internal error", reply)
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"Account suspended")
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Info: Disconnected")
        self.assertNoErrorLine(d, "bob")
        self.assertNotIn("policy: end bob", d.log())
        # Others are unaffected.
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()

    def test_imap_pipelined_commands_after_login_never_run(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY + """
                Dovecot.on_mailbox_open do |box|
                  Dovecot.log.info("policy: open #{box.name}")
                end
            """}, protocol_mail_plugins=PROTOCOL_PLUGINS)
        maildir = os.path.join(d.dir, "mail", "bob", "Maildir", "new")
        os.makedirs(maildir, exist_ok=True)
        with open(os.path.join(maildir, "1.msg"), "wb") as f:
            f.write(b"Subject: secret\r\n\r\nsecret body\r\n")
        reply = converse(d.imap_port, b"a LOGIN bob " + harness.PASSWORD.encode() +
                         b"\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\nd LIST \"\" *\r\n")
        self.assertIn("* BYE Account suspended", reply)
        self.assertNotIn("EXISTS", reply)
        self.assertNotIn("secret body", reply)
        self.assertNotRegex(reply, r"(?m)^[bcd] (OK|NO|BAD)")
        self.assertNotIn("* LIST", reply)
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Info: Disconnected")
        self.assertNotIn("policy: open", d.log())
        self.assertNoErrorLine(d, "bob")

    def test_pop3_client_gets_the_scripts_text(self):
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY},
                         protocol_mail_plugins=PROTOCOL_PLUGINS)
        reply = converse(d.pop3_port, b"USER bob\r\nPASS " + harness.PASSWORD.encode() +
                         b"\r\nSTAT\r\nRETR 1\r\n")
        self.assertRegex(reply, r"\r\n-ERR \[AUTH\] Account suspended\r\n$")
        self.assertNotIn("Logged in", reply)
        d.wait_for_log(r"pop3\(bob\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"Account suspended")
        d.wait_for_log(r"pop3\(bob\)<\d+><[^>]+>: Info: Disconnected")
        self.assertNoErrorLine(d, "bob")
        client = d.pop3("alice")
        self.assertEqual(client.stat(), (0, 0))
        client.quit()

    def test_broken_script_tempfails_with_a_warning(self):
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_session_start do |s|\n  s.deny(\"x\"\nend\n"},
                         protocol_mail_plugins=PROTOCOL_PLUGINS)
        reply = converse(d.imap_port, b"a LOGIN alice " + harness.PASSWORD.encode() + b"\r\n")
        self.assertRegex(reply, r"\r\na OK .*\r\n\* BYE \[UNAVAILABLE\] \S.*\r\n$")
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Warning: mruby: session refused by policy "
                       r"\(temporary\): ")
        reply = converse(d.pop3_port, b"USER alice\r\nPASS " + harness.PASSWORD.encode() + b"\r\n")
        self.assertRegex(reply, r"\r\n-ERR \[SYS/TEMP\] \S.*\r\n$")
        d.wait_for_log(r"pop3\(alice\)<\d+><[^>]+>: Warning: mruby: session refused by policy "
                       r"\(temporary\): ")
        for line in d.log().splitlines():
            self.assertFalse("Error:" in line and "refused by policy" in line, line)

    def test_without_the_protocol_plugin_the_session_is_still_refused(self):
        # Only pop3_mruby: imap sessions take the old way (Dovecot's generic
        # BYE), and are refused all the same.
        d = self.dovecot(scripts={"policy.rb": BASIC_POLICY},
                         protocol_mail_plugins={"pop3": "pop3_mruby"})
        reply = converse(d.imap_port, b"a LOGIN bob " + harness.PASSWORD.encode() +
                         b"\r\nb SELECT INBOX\r\n")
        self.assertIn("* BYE", reply)
        self.assertNotIn("Account suspended", reply)
        self.assertNotRegex(reply, r"(?m)^b OK")
        self.assertLoginSessionRefused(d, "bob")
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"Account suspended")
        d.wait_for_log(r"Error: mruby: session denied by policy: Account suspended")


class ScriptFailures(DovecotTestCase):
    def test_syntax_error_is_logged_with_file_and_line_and_tempfails(self):
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_session_start do |s|\n  s.deny(\"x\"\nend\n"})
        self.assertLoginSessionRefused(d, "alice")
        path = d.script("policy.rb")
        d.wait_for_log(r"Error: mruby: %s:3: syntax error: " % path.replace(".", r"\."))
        d.wait_for_log(r"session refused by policy \(temporary\)")

    def test_syntax_error_with_on_error_allow_lets_sessions_in(self):
        d = self.dovecot(scripts={"policy.rb": "def broken(\n"},
                         plugin={"mruby_on_error": "allow"})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        d.wait_for_log(r"policy\.rb:\d+: syntax error: .*mruby_on_error=allow")

    def test_runtime_exception_names_file_line_and_backtrace(self):
        d = self.dovecot(scripts={"policy.rb": """
            def lookup(user)
              raise KeyError, "no plan for #{user}"
            end
            Dovecot.on_session_start { |s| lookup(s.user) }
        """}, plugin={"mruby_on_error": "reject"})
        self.assertLoginSessionRefused(d, "alice")
        path = d.script("policy.rb").replace(".", r"\.")
        d.wait_for_log(r"mruby: session_start handler failed: %s:3: exception: no plan for alice "
                       r"\(KeyError\) \[backtrace: %s:3:in lookup <- %s:5.*\] \(mruby_on_error=reject\)"
                       % (path, path, path))
        d.wait_for_log(r"session denied by policy: Access denied by policy")

    def test_exception_for_one_mailbox_with_on_error_tempfail(self):
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot.on_mailbox_open do |box|
              raise "cannot decide" if box.name == "Sent"
            end
        """})
        client = d.imap("alice")
        typ, data = client.select("Sent")
        self.assertEqual(typ, "NO")
        self.assertIn(b"Temporary policy failure", data[0])
        self.assertEqual(client.select("INBOX")[0], "OK", "an ordinary exception does not disable the VM")
        client.logout()

    def test_missing_script_file(self):
        d = self.dovecot(plugin={"mruby_script": "/nonexistent/policy.rb"})
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"mruby: /nonexistent/policy\.rb: load error: cannot open script: No such file or directory")

    def test_missing_script_file_with_on_error_allow(self):
        d = self.dovecot(plugin={"mruby_script": "/nonexistent/policy.rb", "mruby_on_error": "allow"})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()

    def test_bad_settings_are_reported_and_safe_defaults_apply(self):
        if harness.is_24():
            # 2.4 knows the settings' types: Dovecot refuses the file.
            for key, value, error in (("mruby_on_error", "whatever", "Invalid value"),
                                      ("mruby_timeout", "soon", "Invalid time interval")):
                d = harness.Dovecot(scripts={"policy.rb": "nil\n"}, plugin={key: value})
                self.addCleanup(d.cleanup)
                result = d.doveconf("-n")
                self.assertNotEqual(result.returncode, 0)
                self.assertRegex(result.stderr, r"%s: %s" % (key, error))
            # A value of the right type but out of range is the plugin's to
            # refuse: logged, and the default applies.
            d = self.dovecot(scripts={"policy.rb": "Dovecot.on_mailbox_open { |b| raise 'x' }\n"},
                             plugin={"mruby_timeout": "2h"})
            client = d.imap("alice")
            self.assertEqual(client.select("INBOX")[0], "NO", "tempfail is the default")
            client.logout()
            d.wait_for_log(r"mruby: mruby_timeout: invalid duration '7200000'")
            return
        d = self.dovecot(scripts={"policy.rb": "Dovecot.on_mailbox_open { |b| raise 'x' }\n"},
                         plugin={"mruby_on_error": "whatever", "mruby_timeout": "soon"})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "NO", "tempfail is the default")
        client.logout()
        d.wait_for_log(r"mruby: mruby_on_error: invalid value 'whatever'")
        d.wait_for_log(r"mruby: mruby_timeout: invalid duration 'soon'")

    def test_memory_limit_exceeded(self):
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot.on_mailbox_open do |box|
              if box.name == "Archive"
                hoard = []
                loop { hoard << ("x" * 100_000) }
              end
            end
        """}, plugin={"mruby_memory_limit": "8M"})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"Temporary policy failure", data[0])
        d.wait_for_log(r"mailbox_open handler failed: .*memory limit exceeded: mailbox_open handler "
                       r"exceeded mruby_memory_limit=8388608 bytes")
        # The VM is disabled for the rest of the session: on_error applies, the session lives on.
        self.assertEqual(client.select("INBOX")[0], "NO")
        self.assertEqual(client.noop()[0], "OK")
        client.logout()

    def test_endless_loop_that_allocates(self):
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot.on_mailbox_open do |box|
              loop { "spinning #{box.name}" } if box.name == "Archive"
            end
        """}, plugin={"mruby_timeout": "100ms"})
        client = d.imap("alice")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"Temporary policy failure", data[0])
        d.wait_for_log(r"timeout: mailbox_open handler exceeded mruby_timeout=100ms")
        self.assertEqual(client.noop()[0], "OK", "the session survives")
        client.logout()

    def test_endless_loop_without_allocation_stops_only_that_handler(self):
        # One imap process serves both sessions (client_limit=2,
        # process_limit=1, reused): the loop is stopped at the deadline
        # without ending that process, so bob's session is untouched and
        # alice's goes on with her VM disabled (mruby_on_error applies).
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot.on_mailbox_open do |box|
              if box.name == "Archive"
                i = 0
                while true
                  i += 1
                end
              end
            end
        """}, plugin={"mruby_timeout": "100ms"}, services={
            "imap": {"client_limit": "2", "process_limit": "1", "service_count": "0"}})
        other = d.imap("bob")
        self.assertEqual(other.select("INBOX")[0], "OK")
        client = d.imap("alice")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"Temporary policy failure", data[0])
        # The error line has the session's prefix (user, pid, session id).
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Error: mruby: .*timeout: mailbox_open handler "
                       r"exceeded mruby_timeout=100ms")
        self.assertEqual(client.noop()[0], "OK", "alice's session goes on")
        self.assertEqual(client.select("INBOX")[0], "NO", "with her VM disabled")
        self.assertEqual(other.noop()[0], "OK", "bob's session in the same process is untouched")
        self.assertEqual(other.select("Sent")[0], "OK")
        other.logout()
        client.logout()
        fresh = d.imap("alice")
        self.assertEqual(fresh.select("INBOX")[0], "OK")
        fresh.logout()
        # Both sessions were served by the same process, which never ended.
        log = d.log()
        self.assertNotIn("ending this process", log)
        alice_pids = set(re.findall(r"imap\(alice\)<(\d+)>", log))
        bob_pids = set(re.findall(r"imap\(bob\)<(\d+)>", log))
        self.assertEqual(len(alice_pids), 1, log)
        self.assertEqual(alice_pids, bob_pids, log)

    def test_event_object_kept_in_a_global_raises_later(self):
        d = self.dovecot(scripts={"policy.rb": """
            Dovecot.on_session_start { |s| $session = s }
            Dovecot.on_mailbox_open do |box|
              box.deny("kept: #{$session.user}") if box.name == "Archive"
            end
        """}, plugin={"mruby_on_error": "reject"})
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Access denied by policy", data[0])
        d.wait_for_log(r"policy\.rb:4: exception: Dovecot::Session used outside of its event "
                       r"\(event objects are valid only while their handler runs\) \(Dovecot::StaleEventError\)")
        client.logout()


if __name__ == "__main__":
    unittest.main()
