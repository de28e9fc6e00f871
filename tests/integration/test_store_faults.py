"""The LMDB store on a full disk, in a real Dovecot: the store directory is a
real small tmpfs that the test fills up. Writes then fail like any store
failure (rate limits fail open by default, lists use the script's fallback,
the failure is logged), logins over IMAP and POP3 keep working, and no process
dies with a signal (issue 8 item 3: LMDB with MDB_WRITEMAP over a sparse
data.mdb raised SIGBUS, the auth process crash-looped). Once space is freed,
writes succeed again."""

import os
import subprocess
import unittest

from auth_harness import AuthTestCase, AuthDovecot
from harness import MAIL_GID

# One script for both sides: the auth process (passdb driver mruby) and the
# mail processes (mail plugin). Each event stores a note big enough to need
# new pages (the mail side's more than a commit cut short by the full disk
# leaves behind), so a full disk is felt at once; the ban list is read at login.
SCRIPT = r"""
LOGINS = Dovecot::RateLimit.new("logins", limit: 1000, period: 60)
SESSIONS = Dovecot::RateLimit.new("sessions", limit: 1000, period: 60)
BANS = Dovecot::List.new("bans")
NOTES = Dovecot::List.new("notes")

def note(where, size)
  stored = NOTES.add("#{where}-#{rand(1 << 30)}-#{rand(1 << 30)}", ttl: 3600,
                     reason: "x" * size, fallback: nil)
  Dovecot.log.warning("#{where} note #{stored ? 'stored' : 'failed'}")
end

Dovecot.on_auth do |auth|
  if BANS.include?(auth.remote_ip, fallback: false)
    auth.reject("banned")
  else
    d = LOGINS.hit(auth.user)
    Dovecot.log.warning("login limit allowed=#{d.allowed?} store_failed=#{d.store_failed?}")
    note("auth", 1500)
    nil
  end
end

Dovecot.on_session_start do |s|
  d = SESSIONS.hit(s.user)
  Dovecot.log.info("session limit allowed=#{d.allowed?} store_failed=#{d.store_failed?}")
  note(s.service, 20000)
end
"""


class FullDiskTest(AuthTestCase):
    def setUp(self):
        self.d = AuthDovecot(SCRIPT, mail_plugins="mruby", store="lmdb")
        self.d.passdb_args = "store=" + self.d.store_spec
        self.addCleanup(self.d.cleanup)
        # The store directory becomes a real 6 MiB tmpfs (the LMDB map is the
        # default 64 MiB: far more than the disk holds), laid out as in production.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=2770", "tmpfs",
                        self.d.store_dir], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.d.store_dir])
        os.chown(self.d.store_dir, 0, MAIL_GID)
        self.filler = os.path.join(self.d.store_dir, "filler")
        self.d.start()

    def fill_disk(self):
        block = b"f" * 65536
        with open(self.filler, "wb") as f:
            try:
                while True:
                    f.write(block)
                    f.flush()
            except OSError:
                pass
        # Not even one more block fits.
        with self.assertRaises(OSError):
            with open(self.filler, "ab") as f:
                f.write(b"f" * 4096)
                f.flush()

    def login_and_work(self):
        try:
            imap = self.d.imap("alice")
            typ, _ = imap.select("INBOX")
            self.assertEqual(typ, "OK")
            imap.logout()
            pop = self.d.pop3("bob")
            pop.stat()
            pop.quit()
        except Exception as e:   # the client's view, with what the server logged
            self.fail("a login failed: %r; log:\n%s" % (e, self.d.log()[-4000:]))

    def test_a_full_disk_is_a_store_failure_and_logins_go_on(self):
        d = self.d
        self.login_and_work()
        d.wait_for_log(r"auth note stored")
        d.wait_for_log(r"imap note stored")

        self.fill_disk()
        for _ in range(20):
            self.login_and_work()
            log = d.log()
            if "auth note failed" in log and "imap note failed" in log:
                break
        # The writes failed as store failures: logged, the fail modes applied.
        d.wait_for_log(r"auth note failed")
        d.wait_for_log(r"imap note failed")
        d.wait_for_log(r"store failure \(full\) in .*No space left on device")
        log = d.log()
        self.assertNotIn("killed with signal", log)
        self.assertNotIn("Panic", log)
        self.assertNotIn("Fatal", log)

        # Space is back: the next writes succeed, on both sides.
        os.unlink(self.filler)
        before = d.log().count("auth note stored"), d.log().count("imap note stored")
        self.login_and_work()
        after = d.log().count("auth note stored"), d.log().count("imap note stored")
        self.assertGreater(after[0], before[0], "the auth process never stored again")
        self.assertGreater(after[1], before[1], "the imap process never stored again")
        self.assertNotIn("killed with signal", d.log())


if __name__ == "__main__":
    unittest.main()
