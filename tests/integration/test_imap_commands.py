"""IMAP command events against a real Dovecot: refused commands answer a
tagged NO and leave the connection in sync (literals included), disconnect
ends with BYE, after_command sees the outcome, hostile input stays harmless."""

import imaplib
import socket
import unittest

from harness import DovecotTestCase, PASSWORD

# The protocol plugins next to mruby (harness: protocol_mail_plugins=).
PROTOCOLS = {"imap": "imap_mruby", "pop3": "pop3_mruby"}

POLICY = """
$before = Hash.new(0)
Dovecot::IMAP.before_command do |cmd|
  $before[cmd.name] += 1
  Dovecot.log.info("before #{cmd.name} #{cmd.tag} count=#{$before[cmd.name]}")
  cmd.reject("Fetch limit reached", code: "LIMIT") if cmd.name == "UID FETCH"
  cmd.reject("No appends today", code: "limit") if cmd.name == "APPEND" && cmd.session.user == "bob"
  cmd.reject("No searching") if cmd.name == "SEARCH"
  cmd.disconnect("Go away") if cmd.name == "EXPUNGE"
end
Dovecot::IMAP.after_command do |cmd|
  Dovecot.log.info("after #{cmd.name} #{cmd.tag} reply=#{cmd.reply} text=#{cmd.reply_text} " +
                   "args=#{cmd.args} duration=#{cmd.duration.class}")
end
"""


class RawImap:
    """A line-level IMAP client for cases imaplib cannot produce."""

    def __init__(self, port, user="bob"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.readline()   # greeting
        self.send(b"L LOGIN %s %s\r\n" % (user.encode(), PASSWORD.encode()))
        self.until_tagged(b"L")

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until_tagged(self, tag):
        """Returns (untagged lines, tagged line)."""
        lines = []
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                return lines, line
            lines.append(line)

    def close(self):
        self.sock.close()


class ImapCommandTest(DovecotTestCase):
    def start(self):
        return self.dovecot(scripts={"policy.rb": POLICY}, protocol_mail_plugins=PROTOCOLS)

    def test_rejected_fetch_answers_no_limit_and_the_session_goes_on(self):
        d = self.start()
        c = d.imap("alice")
        c.append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")
        c.select("INBOX")
        typ, data = c.uid("FETCH", "1:*", "(BODY[])")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[LIMIT] Fetch limit reached", data[0])
        self.assertEqual(c.noop()[0], "OK")
        typ, data = c.fetch("1", "(FLAGS)")   # plain FETCH is allowed
        self.assertEqual(typ, "OK")
        c.logout()
        d.wait_for_log(r"after UID FETCH \S+ reply=NO text=\[LIMIT\] Fetch limit reached args=1:\* \(BODY\[\]\)")
        d.wait_for_log(r"after FETCH \S+ reply=OK text=Fetch completed.* args=1 \(FLAGS\) duration=Float")

    def test_other_users_are_not_refused(self):
        d = self.start()
        c = d.imap("alice")
        typ, _ = c.append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")
        self.assertEqual(typ, "OK")
        typ, data = d.imap("bob").append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[LIMIT]", data[0])
        c.logout()

    def test_rejected_commands_with_literals_keep_the_stream_in_sync(self):
        d = self.start()
        raw = RawImap(d.imap_port)
        # Synchronizing literal: NO instead of "+", the client sends nothing more.
        raw.send(b"a1 APPEND INBOX {5}\r\n")
        untagged, tagged = raw.until_tagged(b"a1")
        self.assertTrue(tagged.startswith(b"a1 NO [LIMIT] No appends today ("), tagged)
        self.assertEqual(untagged, [])
        raw.send(b"a2 NOOP\r\n")
        self.assertTrue(raw.until_tagged(b"a2")[1].startswith(b"a2 OK"))
        # Non-synchronizing literal whose data looks like commands.
        raw.send(b"a3 APPEND INBOX {18+}\r\na4 LOGOUT\r\nxxxxxx\r\n")
        self.assertTrue(raw.until_tagged(b"a3")[1].startswith(b"a3 NO [LIMIT] No appends today ("))
        raw.send(b"a5 NOOP\r\n")
        self.assertTrue(raw.until_tagged(b"a5")[1].startswith(b"a5 OK"))
        # Several literals on one line, in a command that parses its own args.
        raw.send(b"a6 SEARCH OR SUBJECT {3+}\r\nfoo SUBJECT {4+}\r\na7 X\r\n")
        self.assertTrue(raw.until_tagged(b"a6")[1].startswith(b"a6 NO No searching ("))
        # A large APPEND (8 MiB, far beyond imap_max_line_length) is skipped as it streams.
        size = 8 << 20
        raw.send(b"a8 APPEND INBOX (\\Seen) {%d+}\r\n" % size)
        chunk = (b"a9 LOGOUT\r\n" * 100000)[:1 << 20]
        for _ in range(size // len(chunk)):
            raw.send(chunk)
        raw.send(b"\r\n")
        self.assertTrue(raw.until_tagged(b"a8")[1].startswith(b"a8 NO [LIMIT] No appends today ("))
        raw.send(b"b1 SELECT INBOX\r\n")
        untagged, tagged = raw.until_tagged(b"b1")
        self.assertTrue(tagged.startswith(b"b1 OK"), tagged)
        self.assertIn(b"* 0 EXISTS", untagged)   # nothing was appended
        raw.close()

    def test_disconnect_ends_the_session_with_bye(self):
        d = self.start()
        raw = RawImap(d.imap_port, "alice")
        raw.send(b"s SELECT INBOX\r\n")
        raw.until_tagged(b"s")
        raw.send(b"e EXPUNGE\r\n")
        self.assertEqual(raw.readline(), b"* BYE Go away")
        with self.assertRaises((EOFError, OSError)):
            raw.readline()
        d.wait_for_log(r"after EXPUNGE e reply=BYE text=Go away")

    def test_policy_runs_once_per_command_not_per_continuation(self):
        d = self.start()
        c = d.imap("alice")
        for i in range(30):
            c.append("INBOX", None, None, b"Subject: %d\r\n\r\n%s\r\n" % (i, b"x" * 20000))
        c.select("INBOX")
        typ, data = c.fetch("1:*", "(BODY[])")   # output larger than the buffer: continuations
        self.assertEqual(typ, "OK")
        c.logout()
        log = d.wait_for_log(r"after LOGOUT").string
        self.assertEqual(log.count("before FETCH "), 1)
        self.assertEqual(log.count("after FETCH "), 1)
        self.assertEqual(log.count("before APPEND "), 30)

    def test_hostile_arguments_never_break_the_log_or_the_session(self):
        d = self.start()
        raw = RawImap(d.imap_port, "alice")
        hostile = [
            b"h1 SELECT \"INBOX\\\"\r\n* BYE injected\"\r\n",
            b"h2 SELECT \"\xff\xfe\xc3\"\r\n",
            b"h3 LIST \"\" " + b"A" * 65536 + b"\r\n",
            b"h4 SELECT IN\x00BOX\r\n",
            b"h5 EXAMINE {9+}\r\nIN\r\nBOX\x00\xff\r\n",
        ]
        for line in hostile:
            raw.send(line)
            tag = line.split(b" ", 1)[0]
            _, tagged = raw.until_tagged(tag)
            self.assertRegex(tagged, rb"^h\d (OK|NO|BAD)")
        raw.send(b"z NOOP\r\n")
        self.assertTrue(raw.until_tagged(b"z")[1].startswith(b"z OK"))
        raw.close()
        d.wait_for_log(r"after NOOP z ")
        for line in d.log().splitlines():
            self.assertFalse(line.startswith("* BYE"), line)
            self.assertNotIn("\x00", line)
        self.assertNotRegex(d.log(), r"(?m)^BOX")


if __name__ == "__main__":
    unittest.main()
