"""The audit file under operational faults, against a real Dovecot: logrotate's
rename + create and a deleted file during a long IMAP session, a real tmpfs
that fills up and is freed, a directory that appears later, and a script that
writes a 20 MB field. Records are always whole JSON lines in the file the
operator expects, and Dovecot.audit tells the script when one was not written."""

import json
import os
import re
import subprocess
import tempfile
import time
import unittest

from harness import Dovecot, MAIL_UID
from test_imap_commands import PROTOCOLS, RawImap

# Every NOOP writes a "probe" record and logs what Dovecot.audit returned;
# a tag starting with "long" pads it to more than a page, one starting with
# "big" writes a record with a 20 MB field.
POLICY = """
Dovecot::Audit.enable!
Dovecot::IMAP.before_command do |cmd|
  if cmd.name == "NOOP"
    if cmd.tag.start_with?("big")
      ok = Dovecot.audit("big", blob: "x" * 20_000_000, after: "tail",
                         nested: { "list" => ["y" * 5_000_000, 1, 2] })
    else
      pad = cmd.tag.start_with?("long") ? 5000 : 200
      ok = Dovecot.audit("probe", tag: cmd.tag, pad: "p" * pad)
    end
    Dovecot.log.info("probe #{cmd.tag} #{ok}")
  end
  nil
end
"""


def parse_lines(path):
    """Every line of the file as JSON (a torn or merged line fails here)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if data:
        assert data.endswith(b"\n"), "audit file ends in a partial record: %r" % data[-200:]
    records = []
    for n, line in enumerate(data.split(b"\n")[:-1]):
        try:
            records.append(json.loads(line.decode("utf-8")))
        except ValueError as e:
            raise AssertionError("line %d of %s is not JSON (%s): %r"
                                 % (n + 1, path, e, line[:300] + b"..." + line[-300:]))
    return records


class AuditFaultTest(unittest.TestCase):
    def start(self, audit_path=None, audit_dir=None):
        d = Dovecot(scripts={"policy.rb": POLICY}, protocol_mail_plugins=PROTOCOLS,
                    plugin={"mruby_memory_limit": "128M", "mruby_timeout": "5s"})
        self.addCleanup(d.cleanup)
        os.chmod(d.dir, 0o777)   # mail processes run as nobody and create the file
        path = audit_path or os.path.join(audit_dir or d.dir, "audit.log")
        d.plugin["mruby_audit"] = "file:" + path
        d.start()
        return d, path

    def noop(self, raw, tag):
        raw.send(tag.encode() + b" NOOP\r\n")
        _, tagged = raw.until_tagged(tag.encode())
        self.assertIn(b" OK", tagged)

    def noop_until(self, d, raw, prefix, condition, timeout=20):
        """NOOPs (tags prefix1, prefix2, ...) until condition() holds; the tags sent."""
        deadline = time.monotonic() + timeout
        tags = []
        while True:
            tag = "%s%d" % (prefix, len(tags) + 1)
            self.noop(raw, tag)
            tags.append(tag)
            d.wait_for_log(r"probe %s (true|false)" % tag)
            if condition():
                return tags
            if time.monotonic() > deadline:
                self.fail("condition not met after %d NOOPs; log:\n%s" % (len(tags), d.log()[-3000:]))
            time.sleep(0.05)

    def probe_tags(self, records, session):
        return [r["tag"] for r in records if r["kind"] == "probe" and r["session"] == session]

    def session_id(self, path):
        logins = [r for r in parse_lines(path) if r["kind"] == "session.login"]
        self.assertEqual(len(logins), 1)
        return logins[0]["session"]

    # --- item 9: rotation --------------------------------------------------
    def test_rename_and_create_moves_a_long_session_to_the_new_file(self):
        d, path = self.start()
        raw = RawImap(d.imap_port, "alice")
        for i in range(3):
            self.noop(raw, "a%d" % i)
        session = self.session_id(path)
        # logrotate without copytruncate: rename, then create an empty file
        # with the owner and mode of the old one.
        os.rename(path, path + ".1")
        with open(path, "x"):
            pass
        st = os.stat(path + ".1")
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, st.st_mode & 0o777)
        tags = self.noop_until(d, raw, "b",
                               lambda: self.probe_tags(parse_lines(path), session))
        for i in range(3):
            self.noop(raw, "c%d" % i)
        raw.send(b"z LOGOUT\r\n")
        raw.until_tagged(b"z")
        raw.close()
        d.wait_for_log(r"imap\(alice\).*Logged out")
        old = parse_lines(path + ".1")
        new = parse_lines(path)
        # The session's later records are all in the new file, none lost.
        self.assertEqual(self.probe_tags(old, session) + self.probe_tags(new, session),
                         ["a0", "a1", "a2"] + tags + ["c0", "c1", "c2"])
        self.assertEqual(self.probe_tags(new, session)[-3:], ["c0", "c1", "c2"])
        self.wait_for(lambda: [r for r in parse_lines(path) if r["kind"] == "session.logout"])
        self.assertEqual([r["kind"] for r in parse_lines(path + ".1")
                          if r["kind"] == "session.logout"], [])

    def test_a_deleted_file_is_created_again(self):
        d, path = self.start()
        raw = RawImap(d.imap_port, "alice")
        self.noop(raw, "a0")
        session = self.session_id(path)
        mode = os.stat(path).st_mode & 0o777
        os.unlink(path)
        tags = self.noop_until(d, raw, "b",
                               lambda: self.probe_tags(parse_lines(path), session))
        self.noop(raw, "c0")
        raw.send(b"z LOGOUT\r\n")
        raw.until_tagged(b"z")
        raw.close()
        self.assertEqual(os.stat(path).st_mode & 0o777, mode)
        self.assertEqual(os.stat(path).st_uid, MAIL_UID)
        # The first record after the deletion may have gone to the unlinked
        # file (the path is checked at most once a second); every one after
        # the re-creation is in the new file.
        new = self.probe_tags(parse_lines(path), session)
        self.assertEqual(new, [tags[-1], "c0"])
        self.wait_for(lambda: [r for r in parse_lines(path) if r["kind"] == "session.logout"])

    # --- item 10: full disk, retried opens, record cap -----------------------
    def tmpfs(self, size):
        mount = tempfile.mkdtemp(prefix="dmr-audit-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0777" % size, "tmpfs", mount],
                       check=True)
        self.addCleanup(os.rmdir, mount)
        self.addCleanup(subprocess.run, ["umount", "-l", mount], check=True)
        return mount

    def fill(self, mount):
        filler = os.path.join(mount, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        return filler

    def test_a_full_disk_never_leaves_a_torn_record_and_is_reported(self):
        mount = self.tmpfs("1m")
        d, path = self.start(audit_dir=mount)
        raw = RawImap(d.imap_port, "alice")
        self.noop(raw, "a0")
        session = self.session_id(path)
        # tmpfs allocates whole pages: with the file's last page partly
        # used, the first record after the file system is full is written
        # in part (up to the end of that page: it is longer than a page),
        # then every write fails.
        extra = []
        while True:
            extra.append("a%d" % (len(extra) + 1))
            self.noop(raw, extra[-1])
            # The command's own record (written after the reply) is in.
            self.wait_for(lambda: [r for r in parse_lines(path) if r["kind"] == "imap.command"
                                   and r["tag"] == extra[-1]])
            if os.path.getsize(path) % 4096 != 0:
                break
        filler = self.fill(mount)
        self.noop(raw, "long1")
        # parse_lines: the file holds whole records at every moment.
        full = ["long1"] + self.noop_until(
            d, raw, "f", lambda: parse_lines(path) and
            len(re.findall(r"probe f\d+ false", d.log())) >= 5)
        os.unlink(filler)
        after = self.noop_until(d, raw, "g", lambda: True)
        for i in range(5):
            after.append("h%d" % i)
            self.noop(raw, after[-1])
        raw.send(b"z LOGOUT\r\n")
        raw.until_tagged(b"z")
        raw.close()
        d.wait_for_log(r"imap\(alice\).*Logged out")
        log = d.log()
        results = dict((tag, ok) for tag, ok in
                       (line.split(" probe ", 1)[1].split()[:2]
                        for line in log.splitlines() if " probe " in line))
        written = self.probe_tags(parse_lines(path), session)   # every line parses
        # What the script was told is what the file holds.
        self.assertEqual(written,
                         [t for t in ["a0"] + extra + full + after if results[t] == "true"])
        self.assertEqual(results["long1"], "false")
        self.assertEqual([results[t] for t in after], ["true"] * len(after))
        # Logged once (with the path and the errno text), not per record,
        # and once more when records are written again.
        errors = [l for l in log.splitlines() if "mruby: audit:" in l and "Error:" in l]
        self.assertEqual(len(errors), 1, errors)
        self.assertRegex(errors[0], r"write\(%s\) failed: No space left on device \(\d+ of \d+ "
                         r"bytes were written, then removed\); 1 record not written"
                         % re.escape(path))
        self.assertRegex(log, r"mruby: audit: %s: writing again, \d+ records? not written"
                         % re.escape(path))

    def test_an_open_that_failed_is_retried(self):
        base = tempfile.mkdtemp(prefix="dmr-audit-later-")
        os.chmod(base, 0o755)
        self.addCleanup(subprocess.run, ["rm", "-rf", base], check=True)
        audit_dir = os.path.join(base, "later")
        d, path = self.start(audit_path=os.path.join(audit_dir, "audit.log"))
        raw = RawImap(d.imap_port, "alice")
        self.noop(raw, "a0")
        d.wait_for_log(r"probe a0 false")
        os.mkdir(audit_dir)
        os.chmod(audit_dir, 0o777)
        tags = self.noop_until(d, raw, "b", lambda: [r for r in parse_lines(path)
                                                     if r["kind"] == "probe"])
        raw.send(b"z LOGOUT\r\n")
        raw.until_tagged(b"z")
        raw.close()
        d.wait_for_log(r"imap\(alice\).*Logged out")
        self.wait_for(lambda: [r for r in parse_lines(path) if r["kind"] == "session.logout"])
        self.assertEqual([r["tag"] for r in parse_lines(path) if r["kind"] == "probe"],
                         [tags[-1]])
        errors = [l for l in d.log().splitlines() if "mruby: audit:" in l and "Error:" in l]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("No such file or directory", errors[0])

    def test_a_20_mb_field_becomes_one_capped_valid_record(self):
        d, path = self.start()
        raw = RawImap(d.imap_port, "alice")
        self.noop(raw, "big1")
        self.noop(raw, "a1")
        raw.close()
        d.wait_for_log(r"probe big1 true")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        self.assertLessEqual(max(len(l) + 1 for l in lines), 65536)
        big = [json.loads(l) for l in lines if b'"kind":"big"' in l]
        self.assertEqual(len(big), 1)
        self.assertIs(big[0]["truncated"], True)
        self.assertGreater(len(big[0]["blob"]), 60000)
        self.assertEqual(big[0]["blob"], "x" * len(big[0]["blob"]))
        self.assertEqual([r["tag"] for r in parse_lines(path) if r["kind"] == "probe"], ["a1"])

    def wait_for(self, condition, timeout=10):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail("condition not met within %ss" % timeout)
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
