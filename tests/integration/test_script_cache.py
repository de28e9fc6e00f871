"""Issue 8 item 4: a broken edit of a policy script does not take mail down.
The last version that compiled and ran its top level is kept as bytecode in
the script cache (mruby_script_cache; by default the LMDB store directory's
scripts/) and enforced, loudly, until the file is fixed; mail and auth side
alike. Each test starts a real Dovecot and edits the real script file."""

import glob
import grp
import imaplib
import os
import re
import signal
import stat
import subprocess
import time

import harness
from auth_harness import AuthDovecot, AuthTestCase, auth_process_pid
from harness import DovecotTestCase

GOOD = """
Dovecot.on_session_start do |s|
  s.deny("v1: bob is suspended") if s.user == "bob"
end
"""
FIXED = """
Dovecot.on_session_start do |s|
  s.deny("v2: bob is still suspended") if s.user == "bob"
end
"""
SYNTAX_ERROR = "Dovecot.on_session_start do |s|\n  s.deny(\"x\"\nend\n"
FALLBACK = r"Error: mruby: %s:%s: %s.*enforcing the last good version from \d{4}-\d\d-\d\dT[0-9:]+Z"


EXPORT_FALLBACK_EVENT = {
    "event_exporter log": {"format": "json", "format_args": "time-rfc3339", "transport": "log"},
    "metric script_fallback": {"filter": "event=mruby_script_fallback", "exporter": "log",
                               "exporter_include": "name fields"},
}


def count(d, pattern):
    return len(re.findall(pattern, d.log()))


def wait_for_count(d, pattern, n, timeout=10):
    """Polls until the log has at least `n` matches of `pattern`."""
    deadline = time.time() + timeout
    while count(d, pattern) < n:
        if time.time() > deadline:
            raise AssertionError("log has %d < %d matches of %r; log:\n%s"
                                 % (count(d, pattern), n, pattern, d.log()[-6000:]))
        time.sleep(0.05)


class MailScriptCache(DovecotTestCase):
    def start(self, source=GOOD, **kwargs):
        d = self.dovecot(scripts={"policy.rb": source}, store="lmdb", **kwargs)
        self.path = re.escape(d.script("policy.rb"))
        return d

    def alice_gets_in(self, d):
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()

    def bob_is_denied(self, d, message):
        pattern = "session denied by policy: " + re.escape(message)
        before = count(d, pattern)
        self.assertLoginSessionRefused(d, "bob")
        wait_for_count(d, pattern, before + 1)

    def cache_files(self, d):
        return glob.glob(os.path.join(d.store_dir, "scripts", "*"))

    def test_syntax_error_after_a_good_load_enforces_the_last_good_version(self):
        # The named event, exported to the log (JSON) the way an operator
        # would count it with metric {} or ship it with an event exporter.
        d = self.start(settings=EXPORT_FALLBACK_EVENT)
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")

        d.write_script("policy.rb", SYNTAX_ERROR)
        fallback = FALLBACK % (self.path, 3, "syntax error")
        for n in (1, 2):
            self.alice_gets_in(d)
            self.bob_is_denied(d, "v1: bob is suspended")
            # Every session says so, not only the first.
            wait_for_count(d, fallback, 2 * n)
        self.assertNotIn("session refused by policy (temporary)", d.log())
        # The default cache: the store directory's scripts/, shared by the
        # mail users and auth the way the store is (group, setgid, 0660).
        scripts = os.path.join(d.store_dir, "scripts")
        st = os.stat(scripts)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o2770)
        self.assertEqual(st.st_gid, harness.MAIL_GID)
        [cache_file] = self.cache_files(d)
        self.assertEqual(stat.S_IMODE(os.stat(cache_file).st_mode), 0o660)
        self.assertIn("(%s) until the file is fixed" % cache_file, d.log())
        exported = d.wait_for_log(r'"event":"mruby_script_fallback".*')
        for field in ('"script":"%s"' % d.script("policy.rb"), '"error_kind":"syntax error"',
                      '"error_line":3', '"cache_file":"%s"' % cache_file, '"last_good_unix":'):
            self.assertIn(field, exported.group(0))

        d.write_script("policy.rb", FIXED)
        seen = count(d, fallback)
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v2: bob is still suspended")
        self.alice_gets_in(d)
        self.assertEqual(count(d, fallback), seen, "the fallback message stops once fixed")
        d.wait_for_log(r"mruby: saved .*policy\.rb as the last good version")

        # The fixed version is now the last good one.
        d.write_script("policy.rb", "raise 'top level fails'\n")
        self.bob_is_denied(d, "v2: bob is still suspended")
        self.alice_gets_in(d)
        d.wait_for_log(FALLBACK % (self.path, 1, r"exception: top level fails"))

    def test_missing_file_after_a_good_load(self):
        d = self.start()
        self.bob_is_denied(d, "v1: bob is suspended")
        os.remove(d.script("policy.rb"))
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")
        d.wait_for_log(r"Error: mruby: %s: load error: cannot open script: No such file or "
                       r"directory; enforcing the last good version from " % self.path)
        d.write_script("policy.rb", FIXED)
        self.bob_is_denied(d, "v2: bob is still suspended")
        self.alice_gets_in(d)

    def test_a_version_whose_top_level_raises_never_becomes_the_last_good(self):
        d = self.start()
        self.bob_is_denied(d, "v1: bob is suspended")
        d.write_script("policy.rb", "Dovecot.on_session_start { |s| s.deny('v2') }\n"
                                    "raise 'half way'\n")
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")
        d.write_script("policy.rb", SYNTAX_ERROR)
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")

    def test_no_good_version_ever_follows_on_error(self):
        # Compiles but its top level raises: never a good version.
        d = self.start("Dovecot.on_session_start { |s| s.deny('no') }\nraise 'not yet'\n")
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"session refused by policy \(temporary\)")
        d.write_script("policy.rb", SYNTAX_ERROR)
        self.assertLoginSessionRefused(d, "alice")
        d.wait_for_log(r"Error: mruby: %s:3: syntax error: .*\(mruby_on_error=tempfail\)" % self.path)
        self.assertNotIn("enforcing the last good version", d.log())
        self.assertEqual(self.cache_files(d), [])

    def test_no_good_version_with_on_error_allow(self):
        d = self.start(SYNTAX_ERROR, plugin={"mruby_on_error": "allow"})
        self.alice_gets_in(d)
        client = d.imap("bob")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        self.assertNotIn("enforcing the last good version", d.log())

    def test_a_corrupt_or_truncated_cache_file_is_ignored(self):
        for damage in ("truncate", "flip", "empty", "garbage"):
            with self.subTest(damage=damage):
                d = self.start()
                self.bob_is_denied(d, "v1: bob is suspended")
                [cache_file] = self.cache_files(d)
                with open(cache_file, "rb") as f:
                    data = f.read()
                if damage == "truncate":
                    data = data[:len(data) - 7]
                elif damage == "flip":
                    data = data[:-20] + bytes([data[-20] ^ 0x55]) + data[-19:]
                elif damage == "empty":
                    data = b""
                else:
                    data = b"RITE0300" + os.urandom(200)
                with open(cache_file, "wb") as f:
                    f.write(data)
                d.write_script("policy.rb", SYNTAX_ERROR)
                self.assertLoginSessionRefused(d, "alice")
                d.wait_for_log(r"Warning: mruby: ignoring the script cache file %s: "
                               % re.escape(cache_file))
                d.wait_for_log(r"session refused by policy \(temporary\)")
                self.assertNotIn("enforcing the last good version", d.log())
                # Fixing the file replaces the damaged copy.
                d.write_script("policy.rb", GOOD)
                self.alice_gets_in(d)
                d.write_script("policy.rb", SYNTAX_ERROR)
                self.alice_gets_in(d)
                self.bob_is_denied(d, "v1: bob is suspended")
                d.cleanup()

    def test_precompiled_bytecode_policy_falls_back_too(self):
        d = harness.Dovecot(scripts={"policy.rb": GOOD}, store="lmdb")
        self.addCleanup(d.cleanup)
        mrb = d.script("policy.mrb")
        subprocess.run(["mrbc", "-g", "-o", mrb, d.script("policy.rb")], check=True)
        os.chmod(mrb, 0o644)
        d.plugin["mruby_script"] = mrb
        d.start()
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")
        os.remove(mrb)
        self.alice_gets_in(d)
        self.bob_is_denied(d, "v1: bob is suspended")
        d.wait_for_log(r"Error: mruby: %s: load error: .*enforcing the last good version from "
                       % re.escape(mrb))


class AuthScriptCache(AuthTestCase):
    POLICY = """
        Dovecot.on_auth { |auth| auth.reject("v1 says no to bob") if auth.user == "bob" }
    """

    def restart_auth(self, d):
        pid = auth_process_pid(d)
        self.assertIsNotNone(pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)

    def test_auth_restart_with_a_broken_script_keeps_the_last_good_policy(self):
        d = AuthDovecot(self.POLICY, store="lmdb",
                        settings={"login_trusted_networks": "127.0.0.0/8"})
        d.passdb_args = "store=" + d.store_spec   # the cache: the store directory's scripts/
        self.addCleanup(d.cleanup)
        d.start()
        d.imap("alice").logout()
        self.assertImapRefused(d, "bob", contains="v1 says no to bob")

        d.write_script("policy.rb", "Dovecot.on_auth do |auth|\n  if\n")
        self.restart_auth(d)
        path = re.escape(d.script("policy.rb"))
        for _ in range(2):
            self.assertImapRefused(d, "bob", contains="v1 says no to bob")
            d.imap("alice").logout()
        d.wait_for_log(r"auth: Error: mruby: %s:\d+: syntax error: .*enforcing the last good "
                       r"version from " % path)
        self.assertNotIn("UNAVAILABLE", d.log())

        # Missing file, after another restart: the same.
        os.remove(d.script("policy.rb"))
        self.restart_auth(d)
        self.assertImapRefused(d, "bob", contains="v1 says no to bob")
        d.imap("alice").logout()
        d.wait_for_log(r"auth: Error: mruby: %s: load error: .*enforcing the last good "
                       r"version from " % path)

        # Fixed: the new version applies (reload, no restart needed).
        d.write_script("policy.rb", """
            Dovecot.on_auth { |auth| auth.reject("v2 says no to alice") if auth.user == "alice" }
        """)
        deadline = time.time() + 10
        while True:
            client = d.imap(login=False)
            try:
                client.login("bob", "secret")
                client.logout()
                break
            except imaplib.IMAP4.error:
                client.shutdown()
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.assertImapRefused(d, "alice", contains="v2 says no to alice")


if __name__ == "__main__":
    import unittest
    unittest.main()
