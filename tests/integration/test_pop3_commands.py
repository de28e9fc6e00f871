"""POP3 command events against a real Dovecot: RETR refused with -ERR, the
session keeps working, pipelined commands keep their order, after_command
sees each status line, session end carries the counters."""

import poplib
import socket
import unittest

from harness import DovecotTestCase, PASSWORD
from test_imap_commands import PROTOCOLS

POLICY = """
Dovecot::POP3.before_command do |cmd|
  Dovecot.log.info("before #{cmd.name} args=#{cmd.args}")
  cmd.reject("Downloads are paused") if cmd.name == "RETR" && cmd.args == "2"
  cmd.disconnect("Bye now") if cmd.name == "RSET"
end
Dovecot::POP3.after_command do |cmd|
  Dovecot.log.info("after #{cmd.name} reply=#{cmd.reply} text=#{cmd.reply_text}")
end
Dovecot.on_session_end do |s|
  st = s.stats
  Dovecot.log.info("end retr=#{st['retr']} top=#{st['top']} deleted=#{st['deleted']} out=#{st['bytes_out'] > 0}")
end
"""


class Pop3CommandTest(DovecotTestCase):
    def start(self):
        d = self.dovecot(scripts={"policy.rb": POLICY}, protocol_mail_plugins=PROTOCOLS)
        c = d.imap("alice")
        for i in range(3):
            c.append("INBOX", None, None, b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
        c.logout()
        return d

    def test_retr_rejected_and_the_session_goes_on(self):
        d = self.start()
        p = d.pop3("alice")
        self.assertTrue(p.retr(1)[0].startswith(b"+OK"))
        with self.assertRaisesRegex(poplib.error_proto, "-ERR Downloads are paused"):
            p.retr(2)
        self.assertTrue(p.retr(3)[0].startswith(b"+OK"))
        self.assertTrue(p.top(1, 0)[0].startswith(b"+OK"))
        p.dele(3)
        p.quit()
        d.wait_for_log(r"after RETR reply=-ERR text=Downloads are paused")
        d.wait_for_log(r"after QUIT reply=\+OK")
        d.wait_for_log(r"end retr=2 top=1 deleted=1 out=true")

    def test_pipelined_commands_keep_their_order(self):
        d = self.start()
        s = socket.create_connection(("127.0.0.1", d.pop3_port), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER alice\r\n")
        f.readline()
        s.sendall(b"PASS %s\r\n" % PASSWORD.encode())
        self.assertTrue(f.readline().startswith(b"+OK"))
        # pop3 reads a line as a C string: "retr  2\0..." is its RETR 2, and
        # the handlers see the command as pop3 runs it.
        s.sendall(b"NOOP\r\nRETR 2\r\nSTAT\r\nRETR 2\r\nNOOP\r\nbad\xff\x00junk\r\n" +
                  b"X" * 200 + b"\r\n" + b"retr  2\x00 3\r\n" + b"QUIT\r\n")
        replies = [f.readline() for _ in range(9)]
        self.assertTrue(replies[0].startswith(b"+OK"))
        self.assertEqual(replies[1], b"-ERR Downloads are paused\r\n")
        self.assertTrue(replies[2].startswith(b"+OK 3 "), replies[2])
        self.assertEqual(replies[3], b"-ERR Downloads are paused\r\n")
        self.assertTrue(replies[4].startswith(b"+OK"))
        self.assertTrue(replies[5].startswith(b"-ERR"))
        self.assertTrue(replies[6].startswith(b"-ERR"))
        self.assertEqual(replies[7], b"-ERR Downloads are paused\r\n")
        self.assertTrue(replies[8].startswith(b"+OK Logging out"))
        s.close()
        log = d.wait_for_log(r"after QUIT").string
        # The name is escaped once by the adapter, and its backslashes again by Dovecot.log.
        self.assertIn("before BAD\\\\xff args=\n", log)

    def test_commands_pipelined_behind_the_login_pass_before_command(self):
        # pop3-login hands the rest of its buffer to pop3 with the login:
        # those commands are the session's first and meet the policy too.
        d = self.start()
        s = socket.create_connection(("127.0.0.1", d.pop3_port), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER alice\r\nPASS %s\r\nRETR 2\r\nSTAT\r\nQUIT\r\n" % PASSWORD.encode())
        replies = [f.readline() for _ in range(5)]
        self.assertTrue(replies[1].startswith(b"+OK Logged in"), replies)
        self.assertEqual(replies[2], b"-ERR Downloads are paused\r\n")
        self.assertTrue(replies[3].startswith(b"+OK 3 "), replies)
        self.assertTrue(replies[4].startswith(b"+OK Logging out"), replies)
        s.close()
        d.wait_for_log(r"after RETR reply=-ERR text=Downloads are paused")
        d.wait_for_log(r"end retr=0 ")

    def test_disconnect(self):
        d = self.start()
        s = socket.create_connection(("127.0.0.1", d.pop3_port), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER alice\r\nPASS %s\r\n" % PASSWORD.encode())
        f.readline()
        f.readline()
        s.sendall(b"RSET\r\nNOOP\r\n")
        self.assertEqual(f.readline(), b"-ERR Bye now\r\n")
        self.assertEqual(f.readline(), b"")
        s.close()


if __name__ == "__main__":
    unittest.main()
