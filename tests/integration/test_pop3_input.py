"""Issue 8 item 1: with pop3_mruby loaded, a POP3 session reads its input
exactly as plain Dovecot does. Each conversation below is sent over a raw
socket, byte for byte the same, to a Dovecot without the plugin and to
Dovecots with pop3_mruby (a script without POP3 handlers, and one whose
handlers watch every command); the replies must be identical, byte for byte,
up to the server closing the connection, and no process may panic."""

import collections
import re
import socket
import unittest

from harness import Dovecot, PASSWORD
from test_imap_commands import PROTOCOLS

NO_POP3_HANDLERS = """
Dovecot.on_session_start { |s| Dovecot.log.info("start #{s.user}") }
"""

WATCHING = """
Dovecot::POP3.before_command { |cmd| Dovecot.log.info("before #{cmd.name}") }
Dovecot::POP3.after_command { |cmd| Dovecot.log.info("after #{cmd.name} #{cmd.reply}") }
"""

# Pop3's input buffer holds 2048 bytes: a line of 2048 bytes with its CRLF
# fits, one byte more does not.
def line_of(total, end=b"\r\n"):
    head = b"NOOP "
    return head + b"X" * (total - len(head) - len(end)) + end


BIG_BODY = b"".join(b"line %06d of a message larger than any socket buffer\r\n" % i
                    for i in range(150000))
MESSAGES = [
    b"Subject: one\r\n\r\nbody one\r\n",
    b"Subject: two\r\n\r\nbody two\r\n",
    b"Subject: big\r\n\r\n" + BIG_BODY,
]
BIG_RETR_LINES = 1 + 2 + BIG_BODY.count(b"\n") + 1   # +OK, header and blank, body, "."

LOGIN = b"USER alice\r\nPASS %s\r\n" % PASSWORD.encode()

# Each conversation: a list of steps (bytes to send, reply lines to read
# before the next step; None: half-close the socket). After the last step
# the client reads until the server closes the connection.
CONVERSATIONS = {
    "long line": [(line_of(3000), 0)],
    "long line after commands in the same packet": [(b"STAT\r\nNOOP\r\n" + line_of(3000), 0)],
    "full buffer without a line end, then the client's end of input":
        [(b"STAT\r\nNOOP\r\n" + b"NOOP " + b"X" * 2043, 2), (None, 0)],
    "long line in many small packets": [(b"NOOP " + b"X" * 99, 0)] * 30,
    "line of 2047 bytes": [(line_of(2047) + b"QUIT\r\n", 0)],
    "line of 2048 bytes": [(line_of(2048) + b"QUIT\r\n", 0)],
    "line of 2049 bytes": [(line_of(2049) + b"QUIT\r\n", 0)],
    "line of 2048 bytes with a bare LF": [(line_of(2048, b"\n") + b"QUIT\r\n", 0)],
    "line of 2049 bytes with a bare LF": [(line_of(2049, b"\n") + b"QUIT\r\n", 0)],
    "long line after a partial line was read": [(b"STAT\r\nNOOP XX", 1),
                                                (b"X" * 2100 + b"\r\nQUIT\r\n", 0)],
    "NUL bytes": [(b"NO\x00OP\r\n\x00\r\nSTAT\x00junk\r\nLIST 1\x002\r\n\x00\x00\x00\r\nQUIT\r\n", 0)],
    "pipelining": [(b"STAT\r\nLIST\r\nNOOP\r\nRETR 1\r\nTOP 2 0\r\nLIST 2\r\nbogus\r\n"
                    b"RETR 9\r\nQUIT\r\n", 0)],
    "pipelining beyond the input buffer": [(b"NOOP\r\n" * 500 + b"STAT\r\nQUIT\r\n", 0)],
    "pipelining behind a long RETR": [(b"RETR 3\r\nSTAT\r\nLIST 1\r\nQUIT\r\n", 0)],
    "pipelining behind a long RETR, no QUIT": [(b"RETR 3\r\nSTAT\r\nNOOP\r\n", BIG_RETR_LINES + 2),
                                               (b"QUIT\r\n", 0)],
    "one byte per packet": [(bytes([b]), 0) for b in b"STAT\r\nLIST\r\nNOOP\r\nQUIT\r\n"],
    "CRLF split across packets": [(b"STAT\r\nNOOP\r", 1), (b"\n", 1), (b"QUIT\r", 0), (b"\n", 0)],
    "bare LF and empty lines": [(b"STAT\nNOOP\n\n\r\n\r\r\nQUIT\n", 0)],
    "disconnect mid-line": [(b"STAT\r\nNOO", 1), (None, 0)],
    "disconnect mid long line": [(b"STAT\r\nNOOP " + b"X" * 1500, 1), (None, 0)],
    "disconnect after complete lines": [(b"STAT\r\nNOOP\r\n", 0), (None, 0)],
    "disconnect behind a long RETR": [(b"RETR 3\r\nSTAT\r\n", 0), (None, 0)],
    "bad commands until Dovecot gives up": [(b"bogus\r\n" * 25, 0)],
    # pop3-login hands what follows PASS in its buffer to pop3 with the login.
    "commands pipelined behind the login": [(LOGIN + b"STAT\r\nLIST\r\nRETR 1\r\nNO\x00OP\r\nQUIT\r\n", 0)],
    "a long RETR pipelined behind the login": [(LOGIN + b"RETR 3\r\nSTAT\r\nQUIT\r\n", 0)],
    "a partial line behind the login": [(LOGIN + b"STAT\r\nLI", 3), (b"ST\r\nQUIT\r\n", 0)],
}


# Dovecot closes a connection whose input it has not read (the rest of a long
# line) with a TCP reset, which discards its last reply if that was still
# waiting in the send queue (Nagle, behind an unacknowledged earlier reply):
# whether the client sees "-ERR Input line too long." then depends on timing,
# with or without the plugin. For these the comparison ignores that last
# line; the logs show that pop3 ended each of these sessions for the long
# line (see DISCONNECTS).
RESET_PRONE = {"long line after commands in the same packet", "line of 2049 bytes",
               "line of 2049 bytes with a bare LF", "long line after a partial line was read",
               "long line in many small packets", "long line"}
TOO_LONG = b"-ERR Input line too long.\r\n"


def comparable(name, replies):
    if name in RESET_PRONE and replies and replies[-1].endswith(TOO_LONG):
        return replies[:-1] + [replies[-1][:-len(TOO_LONG)]]
    return replies


def disconnects(log):
    """How pop3 ended its sessions: reason -> count."""
    return collections.Counter(re.findall(r"pop3\(alice\)<\d+><[^>]*>: Info: Disconnected: ([^:]*?)(?: top=|$)",
                                          log, re.M))


def converse(port, steps):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: a long RETR fills the socket, so pop3 goes on
    # with it later from its output callback (client->cmd), with the rest of
    # the pipeline waiting in its input.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    try:
        assert f.readline().startswith(b"+OK")
        if not steps[0][0].startswith(LOGIN):
            s.sendall(b"USER alice\r\n")
            assert f.readline().startswith(b"+OK")
            s.sendall(b"PASS %s\r\n" % PASSWORD.encode())
            assert f.readline().startswith(b"+OK Logged in")
        replies = []
        for data, lines in steps:
            try:
                if data is None:
                    s.shutdown(socket.SHUT_WR)
                else:
                    s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break   # the server closed: what it said is read below
            for _ in range(lines):
                replies.append(f.readline())
        # Up to the server's close. Dovecot closes a connection with unread
        # input (the rest of a long line) with a reset: keep what came before.
        rest = b""
        while True:
            try:
                chunk = f.read1(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            rest += chunk
        replies.append(rest)
        return replies
    finally:
        f.close()
        s.close()


def summary(replies):
    """The replies, long ones cut, for a readable failure message."""
    text = b"".join(replies)
    return text if len(text) < 600 else text[:300] + b"..." + text[-300:]


class Pop3InputLikeDovecot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.instances = {}
        try:
            cls.instances["plain"] = Dovecot(mail_plugins="").start()
            cls.instances["pop3_mruby without POP3 handlers"] = Dovecot(
                scripts={"policy.rb": NO_POP3_HANDLERS}, protocol_mail_plugins=PROTOCOLS).start()
            cls.instances["pop3_mruby watching every command"] = Dovecot(
                scripts={"policy.rb": WATCHING}, protocol_mail_plugins=PROTOCOLS).start()
            for d in cls.instances.values():
                c = d.imap("alice")
                for m in MESSAGES:
                    c.append("INBOX", None, None, m)
                c.logout()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for d in cls.instances.values():
            d.cleanup()

    def test_every_conversation_gets_the_replies_plain_dovecot_gives(self):
        plain = self.instances["plain"]
        for name, steps in CONVERSATIONS.items():
            expected = converse(plain.pop3_port, steps)
            for label, d in self.instances.items():
                if d is plain:
                    continue
                with self.subTest(conversation=name, instance=label):
                    try:
                        got = converse(d.pop3_port, steps)
                    except (socket.timeout, AssertionError) as e:
                        self.fail("no answer like plain Dovecot's (%r); expected %r" %
                                  (e, summary(expected)))
                    got, exp = comparable(name, got), comparable(name, expected)
                    self.assertEqual(summary(got), summary(exp))
                    self.assertEqual(got, exp)
        expected_ends = disconnects(plain.log())
        self.assertEqual(expected_ends["Input line too long"], 7, expected_ends)
        for label, d in self.instances.items():
            with self.subTest(log=label):
                bad = [l for l in d.log().splitlines() if re.search(r"Panic|Fatal", l)]
                self.assertEqual(bad, [])
                if d is not plain:
                    self.assertEqual(disconnects(d.log()), expected_ends)

    def test_the_plain_replies_are_what_this_test_means(self):
        """Guards the comparison: plain Dovecot refuses a full buffer without
        a line end and takes a 2048-byte line, so both sides of the boundary
        are tested, and it answers what was pipelined behind a long RETR."""
        plain = self.instances["plain"]
        replies = converse(plain.pop3_port, CONVERSATIONS[
            "full buffer without a line end, then the client's end of input"])
        self.assertEqual(replies[-1], TOO_LONG)
        replies = converse(plain.pop3_port, CONVERSATIONS["line of 2048 bytes"])
        self.assertTrue(replies[-1].endswith(b"+OK Logging out.\r\n"), replies)
        replies = converse(plain.pop3_port, CONVERSATIONS["pipelining behind a long RETR"])
        self.assertTrue(replies[-1].endswith(b"+OK Logging out.\r\n"), summary(replies))
        self.assertEqual(replies[-1].count(b"\r\n"), BIG_RETR_LINES + 3)   # STAT, LIST 1, QUIT


if __name__ == "__main__":
    unittest.main()
