"""Dovecot.audit and the ready-made Dovecot::Audit policy against a real
Dovecot: one valid JSON object per line, none lost across 20 concurrent
sessions, hostile client input never breaks a record."""

import json
import os
import socket
import threading
import unittest

from harness import DovecotTestCase, PASSWORD, poll
from test_imap_commands import PROTOCOLS, RawImap

POLICY = """
Dovecot::Audit.enable!
"""


class AuditTest(DovecotTestCase):
    def audit_dovecot(self):
        from harness import Dovecot
        d = Dovecot(scripts={"policy.rb": POLICY}, protocol_mail_plugins=PROTOCOLS)
        path = os.path.join(d.dir, "audit.log")
        # Mail processes run as nobody: the file is created by them.
        os.chmod(d.dir, 0o777)
        d.plugin["mruby_audit"] = "file:" + path + " event"
        self.addCleanup(d.cleanup)
        d.start()
        return d, path

    def records(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"))
        return [json.loads(line.decode("utf-8")) for line in data.split(b"\n")[:-1]]

    def test_session_records_login_commands_reads_and_logout(self):
        d, path = self.audit_dovecot()
        c = d.imap("alice")
        c.append("INBOX", None, None, b"Message-ID: <m1@x>\r\nSubject: a\r\n\r\nbody\r\n")
        c.select("INBOX")
        c.uid("FETCH", "1", "(BODY.PEEK[])")
        c.fetch("1", "(FLAGS)")
        c.logout()
        p = d.pop3("bob")
        p.stat()
        p.quit()
        d.wait_for_log(r"pop3\(bob\).*Disconnected")
        recs = self.records(path)
        kinds = [(r["service"], r["kind"]) for r in recs]
        self.assertIn(("imap", "session.login"), kinds)
        self.assertIn(("imap", "mailbox.open"), kinds)
        self.assertIn(("imap", "message.read"), kinds)
        self.assertIn(("imap", "session.logout"), kinds)
        self.assertIn(("pop3", "pop3.command"), kinds)
        for r in recs:
            for field in ("ts", "host", "service", "session", "user", "remote_ip", "local_ip"):
                self.assertIn(field, r)
            self.assertRegex(r["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        read = [r for r in recs if r["kind"] == "message.read"]
        self.assertEqual(len(read), 1)   # FETCH (FLAGS) reads no body
        self.assertEqual(read[0]["mailbox"], "INBOX")
        self.assertEqual(read[0]["uid"], 1)
        self.assertEqual(read[0]["message_id"], "<m1@x>")
        cmds = [r for r in recs if r["kind"] == "imap.command"]
        self.assertIn({"command": "UID FETCH", "reply": "OK"},
                      [{"command": r["command"], "reply": r["reply"]} for r in cmds])
        logout = [r for r in recs if r["kind"] == "session.logout" and r["service"] == "imap"][0]
        self.assertEqual(logout["stats"]["fetch_body"], 1)
        self.assertEqual(logout["stats"]["appended"], 1)

    STANDARD = {"ts", "kind", "host", "service", "session", "user", "remote_ip", "local_ip"}

    def test_message_reads_carry_mailbox_uid_and_message_id_once_per_command(self):
        d, path = self.audit_dovecot()
        c = d.imap("alice")
        c.append("INBOX", None, None,
                 b"Message-ID: <read-1@example.test>\r\nSubject: one\r\n\r\nfirst body\r\n")
        # Hostile Message-ID: NUL, invalid UTF-8 and a folded (CRLF) value.
        c.append("INBOX", None, None,
                 b"Message-ID: <evil\x00\xff\xfe\r\n \"x\"@example.test>\r\n"
                 b"Subject: two\r\n\r\nsecond body\r\n")
        c.append("INBOX", None, None, b"Subject: three, no Message-ID\r\n\r\nthird\r\n")
        c.select("INBOX")
        # Header-only fetches are not reads.
        self.assertEqual(c.fetch("1:3", "(BODY.PEEK[HEADER] ENVELOPE RFC822.SIZE)")[0], "OK")
        self.assertEqual(c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.HEADER)")[0],
                         "OK")
        # One message read twice in one command: one record.
        typ, data = c.fetch("1", "(BODY[] BODY[TEXT])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"first body", data[0][1])
        self.assertEqual(c.uid("FETCH", "2:3", "(BODY.PEEK[1])")[0], "OK")
        self.assertEqual(c.fetch("1", "(BINARY.PEEK[1])")[0], "OK")
        c.logout()
        p = d.pop3("alice")
        self.assertIn(b"first body", b"\n".join(p.retr(1)[1]))
        p.top(2, 0)
        p.quit()
        d.wait_for_log(r"pop3\(alice\).*Disconnected")
        recs = self.records(path)
        reads = [r for r in recs if r["kind"] == "message.read"]
        for r in reads:
            self.assertEqual(set(r), self.STANDARD | {"command", "mailbox", "uid", "message_id"})
            self.assertEqual(r["user"], "alice")
        # Dovecot turns the NUL into U+FFFD and keeps the fold as LF; the rest
        # is escaped as text, so the value is one printable line.
        evil = "<evil\ufffd\\xff\\xfe\\x0a \"x\"@example.test>"
        got = [(r["service"], r["command"], r["mailbox"], r["uid"], r["message_id"])
               for r in reads]
        self.assertEqual(got, [
            ("imap", "FETCH", "INBOX", 1, "<read-1@example.test>"),
            ("imap", "UID FETCH", "INBOX", 2, evil),
            ("imap", "UID FETCH", "INBOX", 3, None),
            ("imap", "FETCH", "INBOX", 1, "<read-1@example.test>"),
            ("pop3", "RETR", "INBOX", 1, "<read-1@example.test>"),
            ("pop3", "TOP", "INBOX", 2, evil),
        ])
        # Reads appear before their command's record, in the same session.
        imap_fetch = [r for r in recs if r["kind"] == "imap.command" and r["command"] == "FETCH"]
        self.assertEqual(len(imap_fetch), 4)

    def test_twenty_concurrent_sessions_lose_no_record(self):
        d, path = self.audit_dovecot()
        errors = []
        commands = 15

        def session(n):
            try:
                raw = RawImap(d.imap_port, "alice" if n % 2 else "bob")
                for i in range(commands):
                    raw.send(b"c%d NOOP\r\n" % i)
                    raw.until_tagged(b"c%d" % i)
                raw.send(b"z LOGOUT\r\n")
                raw.until_tagged(b"z")
                raw.close()
            except Exception as e:   # reported below
                errors.append(e)

        threads = [threading.Thread(target=session, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        # Counted, not matched with (Logged out.*){20}: that regex backtracks
        # for seconds while fewer than 20 are logged, past the deadline.
        import time
        deadline = time.monotonic() + 10
        while d.log().count("Logged out") < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while True:
            recs = self.records(path)
            logouts = [r for r in recs if r["kind"] == "session.logout"]
            if len(logouts) == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        sessions = {r["session"] for r in recs}
        self.assertEqual(len(sessions), 20)
        per_session_commands = {}
        for r in recs:
            if r["kind"] == "imap.command":
                per_session_commands[r["session"]] = per_session_commands.get(r["session"], 0) + 1
        # LOGIN happens in imap-login; each session: NOOP x15 + LOGOUT.
        self.assertEqual(sorted(per_session_commands.values()), [commands + 1] * 20)
        self.assertEqual(len(logouts), 20)

    def test_hostile_arguments_stay_inside_one_valid_record(self):
        d, path = self.audit_dovecot()
        raw = RawImap(d.imap_port, "alice")
        hostile = [b"h1 SELECT \"a\\\"}\r\n",
                   b"h2 SELECT \"\xff\xfe\xc3\x28\"\r\n",
                   b"h3 EXAMINE " + b"B" * 60000 + b"\r\n",
                   b"h4 EXAMINE {9+}\r\nIN\r\nBOX\x00\xff\r\n"]
        for line in hostile:
            raw.send(line)
            raw.until_tagged(line.split(b" ", 1)[0])
        raw.send(b"z LOGOUT\r\n")
        raw.until_tagged(b"z")
        raw.close()
        d.wait_for_log(r"Logged out")
        # The LOGOUT record is the last one the session writes.
        poll(lambda: any(r.get("tag") == "z" for r in self.records(path)), what="z's record")
        recs = self.records(path)   # every line parses as JSON
        tags = [r.get("tag") for r in recs if r["kind"] == "imap.command"]
        self.assertEqual(tags, ["h1", "h2", "h3", "h4", "z"])
        for r in recs:
            for value in r.values():
                if isinstance(value, str):
                    self.assertNotIn("\n", value)
                    self.assertNotIn("\r", value)


if __name__ == "__main__":
    unittest.main()
