"""The mruby passdb/userdb driver in a real Dovecot with real IMAP and POP3
clients (auth_harness: the module is loaded from the build tree inside a
private mount namespace). Handlers log at warning level: Dovecot shows auth
info lines only with auth_verbose. Nothing here turns on auth_debug, so
on_auth_result is shown to see every attempt without it."""

import imaplib
import os
import poplib
import re
import subprocess
import threading
import time
import unittest

import harness
from auth_harness import (AUTH_PROCESS, AuthDovecot, AuthTestCase, auth_process_pid,
                          mruby_passdb_line)
from harness import poll

FAST = {"login_trusted_networks": "127.0.0.0/8"}   # no anvil auth penalty between attempts


class AuthPolicyTest(AuthTestCase):
    def imap_login_works(self, d, user, password="secret"):
        client = d.imap(login=False)
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            client.shutdown()
            return False
        client.logout()
        return True

    def doveadm_user(self, d, user):
        return subprocess.run(d.command_prefix() + ["doveadm", "-c", d.conf_path, "user", user],
                              capture_output=True, text=True).stdout

    def assertPop3Refused(self, d, user, password="secret", contains=None):
        client = d.pop3(login=False)
        try:
            with self.assertRaises(poplib.error_proto) as cm:
                client.user(user)
                client.pass_(password)
        finally:
            client.close()
        if contains is not None:
            self.assertIn(contains, str(cm.exception))
        return str(cm.exception)

    def test_reject_shows_the_text_over_imap_and_pop3(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              auth.reject("Blocked network") if auth.user == "bob"
            end
        """, settings=FAST)
        self.assertImapRefused(d, "bob", contains="Blocked network")
        self.assertPop3Refused(d, "bob", contains="Blocked network")
        d.imap("alice").logout()
        d.pop3("alice").quit()

    def test_auth_starts_without_error_lines(self):
        # Dovecot's auth process loads every module in its directory at
        # start, the store backends installed beside the driver included.
        d = self.auth_dovecot("""
            Dovecot.on_auth { |auth| auth.reject("no") if auth.user == "bob" }
        """, settings=FAST, passdb_args="store=memory")
        d.imap("alice").logout()
        self.assertImapRefused(d, "bob", contains="no")
        self.assertNotRegex(d.log(), AUTH_PROCESS + r": (Error|Fatal|Panic):")

    def test_tempfail_is_unavailable_even_with_the_right_password(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              auth.tempfail("maintenance") if auth.user == "bob"
            end
        """, settings=dict(FAST, auth_verbose="yes"))
        self.assertImapRefused(d, "bob", contains="UNAVAILABLE")
        self.assertPop3Refused(d, "bob", contains="TEMP")
        d.imap("alice").logout()
        d.wait_for_log(r"temporary failure by policy: maintenance")

    def test_delay_is_a_tarpit_that_other_logins_pass(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                Dovecot.log.warning("tarpit bob")
                auth.delay(3)
              end
            end
        """, settings=FAST)
        bob = {}

        def bob_login():
            start = time.time()
            client = d.imap("bob")
            bob["elapsed"] = time.time() - start
            client.logout()

        thread = threading.Thread(target=bob_login)
        thread.start()
        d.wait_for_log(r"tarpit bob")   # bob is now in the tarpit
        start = time.time()
        d.imap("alice").logout()
        d.pop3("alice").quit()
        alice_elapsed = time.time() - start
        self.assertTrue(thread.is_alive(), "bob's login finished before alice's")
        thread.join(15)
        self.assertLess(alice_elapsed, 1.5)
        self.assertGreaterEqual(bob["elapsed"], 2.9)
        self.assertLess(bob["elapsed"], 6)

    def test_policy_applies_to_non_plaintext_mechanisms(self):
        # CRAM-MD5 asks passdbs for credentials (lookup_credentials) instead of
        # verifying a plaintext password: the policy stage runs there too.
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              Dovecot.log.warning("on_auth #{auth.user} #{auth.mechanism}")
              auth.reject("no cram for bob") if auth.user == "bob"
            end
        """, settings=dict(FAST, auth_mechanisms="plain login cram-md5"))
        client = d.imap(login=False)
        client.login_cram_md5("alice", "secret")
        client.logout()
        client = d.imap(login=False)
        try:
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                client.login_cram_md5("bob", "secret")
        finally:
            client.shutdown()
        self.assertIn("no cram for bob", str(cm.exception))
        client = d.imap(login=False)
        try:
            with self.assertRaises(imaplib.IMAP4.error):
                client.login_cram_md5("alice", "wrong")
        finally:
            client.shutdown()
        d.wait_for_log(r"on_auth alice CRAM-MD5")

    def test_delay_in_an_auth_worker(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                Dovecot.log.warning("tarpit bob")
                auth.delay(2)
              end
            end
        """, passdb_args="blocking=yes", settings=FAST)
        bob = {}

        def bob_login():
            start = time.time()
            d.pop3("bob").quit()
            bob["elapsed"] = time.time() - start

        thread = threading.Thread(target=bob_login)
        thread.start()
        d.wait_for_log(r"tarpit bob")
        start = time.time()
        d.imap("alice").logout()
        self.assertLess(time.time() - start, 1.5)
        thread.join(15)
        self.assertGreaterEqual(bob["elapsed"], 1.9)

    def test_set_nodelay_skips_the_failure_delay(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              auth.set("nodelay", "y") if auth.user == "bob"
            end
        """, settings=dict(FAST, auth_failure_delay="2s"))
        start = time.time()
        self.assertImapRefused(d, "bob", password="wrong")
        bob_elapsed = time.time() - start
        start = time.time()
        self.assertImapRefused(d, "alice", password="wrong")
        alice_elapsed = time.time() - start
        self.assertLess(bob_elapsed, 1.0)
        self.assertGreaterEqual(alice_elapsed, 1.5)

    def test_no_verdict_falls_through_and_the_password_still_counts(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth { |auth| auth.set("bad name", "x") }
        """, settings=FAST)
        d.imap("alice").logout()
        d.pop3("bob").quit()
        self.assertImapRefused(d, "alice", password="wrong", contains="AUTHENTICATIONFAILED")
        self.assertPop3Refused(d, "bob", password="wrong")
        self.assertImapRefused(d, "nobody-here")
        d.wait_for_log(r"Warning: .*mruby: ignoring field with an invalid name 'bad name'")

    def test_policy_is_never_answered_from_the_auth_cache(self):
        # One VM per auth process: Ruby state persists between requests. With
        # Dovecot's auth cache on, on_auth still runs for every attempt.
        d = self.auth_dovecot("""
            $seen = Hash.new(0)
            Dovecot.on_auth do |auth|
              $seen[auth.user] += 1
              auth.reject("attempt #{$seen[auth.user]}") if $seen[auth.user] > 2
            end
        """, settings=dict(FAST, auth_cache_size="1M", auth_cache_ttl="1h"))
        d.imap("bob").logout()
        d.pop3("bob").quit()
        self.assertImapRefused(d, "bob", contains="attempt 3")
        self.assertPop3Refused(d, "bob", contains="attempt 4")
        d.imap("alice").logout()

    def test_auth_result_sees_successes_and_failures(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth { |auth| auth.reject("no carol") if auth.user == "carol" }
            Dovecot.on_auth_result do |res|
              Dovecot.log.warning("result user=#{res.user} service=#{res.service} " \\
                                  "ip=#{res.remote_ip} success=#{res.success?} reason=#{res.reason.inspect}")
            end
        """, users={"carol": {}}, settings=FAST)
        d.imap("alice").logout()
        self.assertPop3Refused(d, "bob", password="wrong")
        self.assertImapRefused(d, "carol")
        self.assertImapRefused(d, "nobody-here")
        d.wait_for_log(r"result user=alice service=imap ip=127\.0\.0\.1 success=true reason=nil")
        d.wait_for_log(r'result user=bob service=pop3 ip=127\.0\.0\.1 success=false '
                       r'reason="password mismatch"')
        d.wait_for_log(r'result user=carol service=imap .*success=false '
                       r'reason="rejected by policy: no carol"')
        d.wait_for_log(r'result user=nobody-here .*success=false reason="unknown user"')

    def test_authoritative_passdb_and_userdb(self):
        from harness import MAIL_UID, MAIL_GID
        userdb = """
            Dovecot.on_userdb_lookup do |req|
              next unless %%w[dave erin].include?(req.user)
              req.set("uid", "%d")
              req.set("gid", "%d")
              req.set("home", "@DIR@/mail/#{req.user}")
              req.set("zip", "01234")
              req.set("bad=name", "x")
            end
        """ % (MAIL_UID, MAIL_GID)
        # v1 verifies plaintext passwords itself (auth-lua's auth_password_verify).
        d = self.auth_dovecot("""
            USERS = { "dave" => "hunter2" }
            Dovecot.on_password_verify do |req|
              next false unless USERS.key?(req.user)
              req.password == USERS[req.user]
            end
        """ + userdb, mruby_passdb="only", mruby_userdb=True,
            settings=dict(FAST, auth_verbose="yes"))
        # The home directory is only known once the instance exists.
        with open(d.script("policy.rb")) as f:
            source = f.read()
        d.write_script("policy.rb", source.replace("@DIR@", d.dir))
        # A script is checked for changes at most once a second, on a request:
        # ask (userdb lookups) until the new version answers.
        poll(lambda: d.dir in self.doveadm_user(d, "dave"), what="dave's home from the new script")
        client = d.imap("dave", "hunter2")
        client.select("INBOX")
        client.logout()
        d.pop3("dave", "hunter2").quit()
        self.assertImapRefused(d, "dave", password="wrong")
        d.wait_for_log(mruby_passdb_line("dave") + r".*Password mismatch")
        # passwd-file users are unknown to this script: no passdb knows them.
        self.assertImapRefused(d, "alice")
        out = subprocess.run(d.command_prefix() + ["doveadm", "-c", d.conf_path, "user", "dave"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"zip\s+01234\b")
        self.assertRegex(out.stdout, r"home\s+%s/mail/dave" % d.dir)
        d.wait_for_log(r"Warning: .*mruby: ignoring field with an invalid name 'bad=name'")

        # v2 returns a hash (auth-lua's auth_passdb_lookup); Dovecot verifies it.
        hashed = subprocess.run(["doveadm", "pw", "-s", "SHA256-CRYPT", "-p", "s3cret"],
                                check=True, capture_output=True, text=True).stdout.strip()
        d.write_script("policy.rb", """
            HASHES = { "erin" => %r }
            Dovecot.on_passdb_lookup do |req|
              req.set("password", HASHES[req.user]) if HASHES.key?(req.user)
            end
        """ % hashed + userdb.replace("@DIR@", d.dir))
        poll(lambda: self.imap_login_works(d, "erin", "s3cret"), what="erin known to v2")
        self.assertPop3Refused(d, "erin", password="secret")
        self.assertImapRefused(d, "dave", password="hunter2")

    def test_reload_of_a_changed_script_and_a_broken_reload_keeps_the_old(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth { |auth| auth.reject("v1 says no") if auth.user == "bob" }
        """, settings=FAST)
        self.assertImapRefused(d, "bob", contains="v1 says no")
        d.write_script("policy.rb", """
            Dovecot.on_auth { |auth| auth.reject("v2 says no") if auth.user == "alice" }
        """)
        # Checked for changes at most once a second, on a request: log in
        # until v2 answers (v1 refuses bob).
        poll(lambda: self.imap_login_works(d, "bob"), what="v2 loaded")
        self.assertImapRefused(d, "alice", contains="v2 says no")
        d.wait_for_log(r"policy\.rb changed: reloaded")
        d.write_script("policy.rb", "Dovecot.on_auth do |auth|\n  if\n")
        broken = r"Error: .*policy\.rb changed but cannot be loaded"

        def v2_refuses_until_the_change_is_seen():
            self.assertImapRefused(d, "alice", contains="v2 says no")
            return re.search(broken, d.log())
        poll(v2_refuses_until_the_change_is_seen, what="the broken version seen")
        self.assertImapRefused(d, "alice", contains="v2 says no")
        d.imap("bob").logout()
        d.wait_for_log(r"Error: .*policy\.rb changed but cannot be loaded, keeping the previous "
                       r"version: .*policy\.rb:\d+")

    def test_broken_script_follows_on_error(self):
        expectations = {
            "allow": None,
            "tempfail": "UNAVAILABLE",
            "reject": "Access denied by policy",
        }
        for on_error, refusal in expectations.items():
            with self.subTest(on_error=on_error):
                d = self.auth_dovecot("Dovecot.on_auth do |auth|\n  auth.reject(\n",
                                      passdb_args="on_error=" + on_error, settings=FAST)
                if refusal is None:
                    d.imap("alice").logout()
                    d.pop3("alice").quit()
                    self.assertImapRefused(d, "alice", password="wrong")
                else:
                    self.assertImapRefused(d, "alice", contains=refusal)
                    self.assertPop3Refused(d, "alice")
                d.wait_for_log(r"Error: .*mruby: .*policy\.rb:\d+.*mruby_on_error=" + on_error)
                d.stop()

    def test_raise_for_one_user_only(self):
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              raise "no policy for #{auth.user}" if auth.user == "bob"
            end
        """, passdb_args="on_error=reject", settings=FAST)
        self.assertImapRefused(d, "bob", contains="Access denied by policy")
        self.assertPop3Refused(d, "bob")
        d.imap("alice").logout()
        d.pop3("alice").quit()
        d.wait_for_log(r"Error: .*auth handler failed: .*policy\.rb:3: exception: no policy for bob .*mruby_on_error=reject")

    def test_allocating_endless_loop_fails_that_login_as_on_error_says(self):
        # In the auth process itself (blocking=no): the loop allocates, so the
        # timeout stops it at a safe point and mruby_on_error applies.
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                list = []
                loop { list << "x" * 10; list.clear if list.size > 1000 }
              end
            end
        """, passdb_args="on_error=reject timeout=300ms", settings=FAST)
        start = time.time()
        self.assertImapRefused(d, "bob", contains="Access denied by policy")
        self.assertLess(time.time() - start, 2.0)
        d.imap("alice").logout()
        d.pop3("alice").quit()
        d.wait_for_log(r"exceeded mruby_timeout=300ms")

    def test_a_script_disabled_in_on_auth_is_no_password_authority_under_allow(self):
        # A timeout in on_auth disables the VM for the rest of the request.
        # With mruby_on_error=allow that login must go on as with a script
        # that failed to load: this script has no on_password_verify, so the
        # mruby passdb does not decide (PASSDB_RESULT_NEXT) and the next
        # passdb checks the password, even where an admin made the mruby
        # passdb's failures final (result_failure = return-fail). The
        # disabled VM used to claim every hook: the password stage answered
        # "password mismatch" and bob was refused.
        script = """
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                list = []
                loop { list << "x" * 10; list.clear if list.size > 1000 }
              end
            end
        """
        d = AuthDovecot(script, settings=dict(FAST, auth_verbose="yes"),
                        passdb_args="on_error=allow timeout=300ms",
                        passdb_settings={"result_failure": "return-fail"})
        self.addCleanup(d.cleanup)
        d.start()
        d.imap("bob").logout()
        d.wait_for_log(r"exceeded mruby_timeout=300ms.*mruby_on_error=allow")
        # The restarted VM times out again; passwd-file refuses a wrong password.
        self.assertImapRefused(d, "bob", password="wrong", contains="AUTHENTICATIONFAILED")
        d.pop3("bob").quit()
        d.imap("alice").logout()
        self.assertNotRegex(d.log(), mruby_passdb_line("bob") + r".*Password mismatch")

    def test_non_allocating_endless_loop_in_the_auth_process_fails_only_that_login(self):
        # blocking=no: the handler runs in the auth process, which serves
        # every login. The loop is stopped at the deadline without ending it:
        # bob's login gets mruby_on_error (tempfail), alice's logins during
        # and after it succeed, the auth process keeps its pid, and the
        # failed VM is replaced by a fresh one.
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                i = 0
                while true
                  i += 1
                end
              end
            end
        """, passdb_args="timeout=300ms", settings=FAST)
        d.imap("alice").logout()
        pid = auth_process_pid(d)
        self.assertIsNotNone(pid)
        bob = {}

        def bob_login():
            start = time.time()
            client = d.imap(login=False)
            try:
                client.login("bob", "secret")
                bob["result"] = "logged in"
            except (imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError) as e:
                bob["result"] = "%s: %s" % (type(e).__name__, e)
            finally:
                client.shutdown()
            bob["elapsed"] = time.time() - start

        thread = threading.Thread(target=bob_login)
        thread.start()
        # Logins of others while bob's handler loops wait for the auth
        # process, then succeed.
        d.imap("alice").logout()
        d.pop3("alice").quit()
        thread.join(15)
        self.assertIn("UNAVAILABLE", bob["result"])
        self.assertLess(bob["elapsed"], 5.0)
        # The error line carries the request's prefix (user, ip, session).
        if harness.is_24():
            prefix = r"auth\(bob,127\.0\.0\.1,[^)]*\)<[^>]+>: Error: "
        else:
            prefix = r"auth: Error: mruby\(bob,127\.0\.0\.1,<[^>]+>\): "
        d.wait_for_log(prefix + r".*timeout: auth handler exceeded mruby_timeout=300ms")
        # Later logins: others succeed, bob's fails the same way again (a
        # fresh VM, which loops again), and the process is still the same.
        d.imap("alice").logout()
        self.assertImapRefused(d, "bob", contains="UNAVAILABLE")
        d.imap("alice").logout()
        d.wait_for_log(r"restarting the script after a failed call")
        self.assertEqual(auth_process_pid(d), pid)
        self.assertNotIn("ending this process", d.log())

    def test_endless_loop_in_an_auth_worker_leaves_other_logins_working(self):
        # blocking=yes: a loop that allocates nothing is stopped in its
        # auth-worker process as in the auth process; only bob's login fails.
        d = self.auth_dovecot("""
            Dovecot.on_auth do |auth|
              if auth.user == "bob"
                Dovecot.log.warning("looping for bob")
                while true
                end
              end
            end
            # Runs in the auth process even with blocking=yes.
            Dovecot.on_auth_result do |res|
              Dovecot.log.warning("result #{res.user} #{res.success?} #{res.reason.inspect}")
            end
        """, passdb_args="blocking=yes timeout=300ms", settings=FAST)
        bob = {}

        def bob_login():
            start = time.time()
            client = d.imap(login=False)
            try:
                client.login("bob", "secret")
                bob["result"] = "logged in"
            except imaplib.IMAP4.error as e:
                bob["result"] = str(e)
            finally:
                client.shutdown()
            bob["elapsed"] = time.time() - start

        thread = threading.Thread(target=bob_login)
        thread.start()
        d.wait_for_log(r"looping for bob")
        start = time.time()
        d.imap("alice").logout()
        d.pop3("alice").quit()
        self.assertLess(time.time() - start, 1.5)
        thread.join(15)
        self.assertIn("UNAVAILABLE", bob["result"])
        self.assertLess(bob["elapsed"], 3.0)
        # 2.3: "auth-worker(PID): Error: ..."; 2.4: "auth-worker(bob,IP)<PID><SESSION>: request [N]: Error: ..."
        d.wait_for_log(r"auth-worker\((\d+|bob,[^)]*\)<\d+>)[^:]*(: request \[\d+\])?: Error: "
                       r".*timeout: auth handler exceeded mruby_timeout=300ms")
        d.imap("alice").logout()
        d.wait_for_log(AUTH_PROCESS + r': Warning: .*result alice true nil')
        # Without the request at hand (the lookup ran in the worker) the reason is
        # Dovecot's coarse one.
        d.wait_for_log(AUTH_PROCESS + r': Warning: .*result bob false "authentication failed"')
        # The auth process, which runs on_auth_result, also picks up a change.
        d.write_script("policy.rb", """
            Dovecot.on_auth_result { |res| Dovecot.log.warning("v2 result #{res.user}") }
        """)

        def login_until_v2_result():
            d.imap("alice").logout()
            return re.search(AUTH_PROCESS + r": Warning: .*v2 result alice", d.log())
        poll(login_until_v2_result, what="v2's on_auth_result")


if __name__ == "__main__":
    unittest.main()
