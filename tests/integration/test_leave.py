"""Issue 8 item 8: a client can always leave. IMAP LOGOUT and POP3 QUIT are
never refused, whatever the script or mruby_on_error says: not after a
memory or time limit disabled the session's VM, not when the script rejects
every command. Their handlers still run and see them."""

import socket
import unittest

from harness import DovecotTestCase, PASSWORD
from test_imap_commands import PROTOCOLS

# NOOP exhausts the VM (memory or time); every later event finds it disabled
# and follows mruby_on_error.
EXHAUST = """
def exhaust(cmd)
  Dovecot.log.info("before #{cmd.name}")
  return unless cmd.name == "NOOP"
  hog = []
  loop { hog << ("x" * 4096) }
end
Dovecot::IMAP.before_command { |cmd| exhaust(cmd) }
Dovecot::POP3.before_command { |cmd| exhaust(cmd) }
"""

# Spends time without keeping memory: the timeout, not the memory limit.
SPIN = """
def spin(cmd)
  Dovecot.log.info("before #{cmd.name}")
  loop { "x" * 64 } if cmd.name == "NOOP"
end
Dovecot::IMAP.before_command { |cmd| spin(cmd) }
Dovecot::POP3.before_command { |cmd| spin(cmd) }
"""

REJECT_ALL = """
Dovecot::IMAP.before_command do |cmd|
  Dovecot.log.info("saw #{cmd.name}")
  cmd.reject("Nothing is allowed")
end
Dovecot::POP3.before_command do |cmd|
  Dovecot.log.info("saw #{cmd.name}")
  cmd.name == "QUIT" ? cmd.disconnect("Not even leaving") : cmd.reject("Nothing is allowed")
end
Dovecot::IMAP.after_command { |cmd| Dovecot.log.info("after #{cmd.name} #{cmd.reply}") }
Dovecot::POP3.after_command { |cmd| Dovecot.log.info("after #{cmd.name} #{cmd.reply}") }
"""


# Dovecot's answer to LOGOUT, then it closes the connection.
LOGGED_OUT = rb"\A\* BYE Logging out\r\n%s OK Logout completed[^\r\n]*\r\n\Z"


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def line(self):
        return self.file.readline()

    def send(self, data):
        self.sock.sendall(data)

    def rest(self):
        """Everything up to the server's close; fails if it does not close."""
        data = b""
        try:
            while True:
                chunk = self.file.read1(4096)
                if not chunk:
                    return data
                data += chunk
        except socket.timeout:
            raise AssertionError("the server did not close the connection; it said %r" % data)

    def close(self):
        self.file.close()
        self.sock.close()


def imap_session(d):
    c = Conn(d.imap_port)
    assert c.line().startswith(b"* OK")
    c.send(b"a1 LOGIN alice %s\r\n" % PASSWORD.encode())
    while not (line := c.line()).startswith(b"a1 "):
        pass
    assert line.startswith(b"a1 OK"), line
    return c


def imap_command(c, tag, command):
    c.send(b"%s %s\r\n" % (tag, command))
    lines = []
    while True:
        line = c.line()
        assert line, lines
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def pop3_session(d):
    c = Conn(d.pop3_port)
    assert c.line().startswith(b"+OK")
    c.send(b"USER alice\r\n")
    assert c.line().startswith(b"+OK")
    c.send(b"PASS %s\r\n" % PASSWORD.encode())
    assert c.line().startswith(b"+OK Logged in")
    return c


class ClientsCanAlwaysLeave(DovecotTestCase):
    def start(self, script, **plugin):
        return self.dovecot(scripts={"policy.rb": script}, protocol_mail_plugins=PROTOCOLS, plugin=plugin)

    def assert_imap_leaves_after_the_vm_is_disabled(self, d, expected_log):
        c = imap_session(d)
        reply = imap_command(c, b"a2", b"NOOP")
        self.assertTrue(reply[-1].startswith(b"a2 NO"), reply)
        d.wait_for_log(expected_log)
        reply = imap_command(c, b"a3", b"SELECT INBOX")   # the VM is disabled: on_error
        self.assertTrue(reply[-1].startswith(b"a3 NO"), reply)
        c.send(b"a4 LOGOUT\r\n")
        self.assertRegex(c.rest(), LOGGED_OUT % b"a4")
        c.close()

    def assert_pop3_leaves_after_the_vm_is_disabled(self, d, expected_log):
        c = pop3_session(d)
        c.send(b"NOOP\r\n")
        self.assertTrue(c.line().startswith(b"-ERR"))
        d.wait_for_log(expected_log)
        c.send(b"STAT\r\n")   # the VM is disabled: on_error
        self.assertTrue(c.line().startswith(b"-ERR"))
        c.send(b"QUIT\r\n")
        self.assertEqual(c.rest(), b"+OK Logging out.\r\n")
        c.close()

    def test_memory_limit_then_logout_and_quit(self):
        d = self.start(EXHAUST, mruby_memory_limit="8M")
        limit = r"exceeded mruby_memory_limit"
        self.assert_imap_leaves_after_the_vm_is_disabled(d, r"imap\(alice\).*" + limit)
        self.assert_pop3_leaves_after_the_vm_is_disabled(d, r"pop3\(alice\).*" + limit)
        d.wait_for_log(r"imap\(alice\).*Info: mruby: LOGOUT is always allowed")
        d.wait_for_log(r"pop3\(alice\).*Info: mruby: QUIT is always allowed")
        self.assertNotRegex(d.log(), r"Panic|Fatal")

    def test_timeout_then_logout_and_quit_with_on_error_reject(self):
        d = self.start(SPIN, mruby_timeout="100ms", mruby_on_error="reject")
        limit = r"exceeded mruby_timeout=100ms"
        self.assert_imap_leaves_after_the_vm_is_disabled(d, r"imap\(alice\).*" + limit)
        self.assert_pop3_leaves_after_the_vm_is_disabled(d, r"pop3\(alice\).*" + limit)
        self.assertNotRegex(d.log(), r"Panic|Fatal")

    def test_a_script_that_refuses_everything_cannot_keep_a_client_in(self):
        d = self.start(REJECT_ALL)
        c = imap_session(d)
        reply = imap_command(c, b"a2", b"NOOP")
        self.assertEqual(len(reply), 1, reply)
        self.assertTrue(reply[0].startswith(b"a2 NO Nothing is allowed"), reply)
        c.send(b"a3 LOGOUT\r\n")
        self.assertRegex(c.rest(), LOGGED_OUT % b"a3")
        c.close()

        c = pop3_session(d)
        c.send(b"NOOP\r\n")
        self.assertEqual(c.line(), b"-ERR Nothing is allowed\r\n")
        c.send(b"QUIT\r\n")
        self.assertEqual(c.rest(), b"+OK Logging out.\r\n")
        c.close()

        # The handlers saw the commands (an audit still records them), and
        # the ignored refusal is logged once per session at info level.
        d.wait_for_log(r"imap\(alice\).*Info: saw LOGOUT")
        d.wait_for_log(r"imap\(alice\).*Info: after LOGOUT OK")
        d.wait_for_log(r"pop3\(alice\).*Info: saw QUIT")
        d.wait_for_log(r"pop3\(alice\).*Info: after QUIT \+OK")
        log = d.log()
        self.assertEqual(log.count("mruby: LOGOUT is always allowed: imap_before_command refused "
                                   "it (Nothing is allowed), ignored"), 1, log)
        self.assertEqual(log.count("mruby: QUIT is always allowed: pop3_before_command refused "
                                   "it (Not even leaving), ignored"), 1, log)


if __name__ == "__main__":
    unittest.main()
