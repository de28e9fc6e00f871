"""The README's "Install into Dovecot" section, executed as written.

Runs inside the throwaway root tests/install/run.sh prepares (an overlay of
the host in private mount/network/PID namespaces): every change here is lost
when it exits. On Dovecot 2.4 (the Debian 13 root scripts/test.sh runs the
suite in) it runs the README's Debian 13 block, which copies conf.d/2.4/. The host's Dovecot is Debian's; /etc/dovecot is reset to
Debian's stock configuration, users are system users checked by PAM, and
Dovecot is running (as on a mail host) before the README's commands, whose
last one is `doveadm reload`. Then real IMAP clients check the example login
policy (auth.rb: eve is closed, brute-force bans), the session policy
(policy.rb: mallory is suspended), the command limit (policy.rb: 30 searches
a minute), that auth and the mail users share the store, and the audit trail
they all write (Dovecot::Audit.enable! in both scripts, one file).
"""

import glob
import grp
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import imaplib

SRC = os.environ["DMR_SOURCE_ROOT"]
LOG = "/var/log/dovecot-install-test.log"
AUDIT = "/var/log/dovecot-mruby/audit.log"   # mruby_audit in the shipped 90-mruby.conf
SERVER = "192.0.2.1"      # the host's address (TEST-NET-1, on lo in this netns)
ATTACKER = "198.51.100.66"   # a client in another /24: not loopback, not "secured"
USERS = ["alice", "bob", "mallory", "eve"]
PASSWORD = "secret"
# Packages setup.sh's install path must not install on a mail host (removed
# from this copy first; this network namespace has no route to a mirror).
TEST_ONLY_PACKAGES = ["redis-server", "googletest"]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw).stdout


def dovecot_version():
    """(major, minor) of the Dovecot installed here: 2.3 on Debian 12, 2.4 in
    the Debian 13 root scripts/test.sh runs this suite in."""
    out = subprocess.run(["dovecot", "--version"], check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    return tuple(int(x) for x in out.split(".")[:2])


# 2.4: the README's Debian 13 block (it copies conf.d/2.4/).
DOVECOT_24 = dovecot_version() >= (2, 4)


def readme_install_commands():
    """The README's install block for this Dovecot: on 2.3 the first ```sh
    block under "## Install into Dovecot" (Debian 12), on 2.4 the one under
    its "### Debian 13 (Dovecot 2.4)" subsection."""
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    section = text.split("\n## Install into Dovecot\n", 1)[1].split("\n## ", 1)[0]
    if DOVECOT_24:
        section = section.split("\n### Debian 13 (Dovecot 2.4)\n", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md: no ```sh block in the install section"
    return block.group(1)


SYSTEMCTL_SHIM = """#!/bin/sh
# tests/install: systemd does not run in this test's namespaces. The README's
# `systemctl restart dovecot` (Debian 13) does what dovecot.service does:
# stop the master, wait until it is gone, start it again.
[ "$*" = "restart dovecot" ] || { echo "systemctl (test shim): only 'restart dovecot'" >&2; exit 1; }
pid=$(cat "$(doveconf -h base_dir)/master.pid" 2>/dev/null)
doveadm stop >/dev/null 2>&1 || true
i=0
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
exec dovecot </dev/null >/dev/null 2>&1
"""


def install_systemctl_shim():
    """/usr/local/sbin/systemctl in this throwaway root (run.sh's overlay),
    first on root's PATH, when no real one would work here."""
    path = "/usr/local/sbin/systemctl"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(SYSTEMCTL_SHIM)
    os.chmod(path, 0o755)


def installed(package):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return "install ok installed" in r.stdout


class Client(imaplib.IMAP4_SSL):
    """IMAP over TLS (Debian's default disable_plaintext_auth = yes) from a
    chosen source address; the certificate is the test's own."""

    def __init__(self, source, port=993):
        self.source = source
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        super().__init__(SERVER, port, ssl_context=ctx, timeout=20)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def login(user, password=PASSWORD, source=SERVER):
    c = Client(source)
    try:
        c.login(user, password)
    except Exception:
        try:
            c.shutdown()
        except Exception:
            pass
        raise
    return c


class InstallTest(unittest.TestCase):
    install_output = ""

    @classmethod
    def setUpClass(cls):
        # This netns: lo with the server's and the client's addresses.
        sh(f"ip link set lo up && ip addr add {SERVER}/32 dev lo && ip addr add {ATTACKER}/32 dev lo")
        # Never start services from maintainer scripts in this root.
        with open("/usr/sbin/policy-rc.d", "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod("/usr/sbin/policy-rc.d", 0o755)
        for p in TEST_ONLY_PACKAGES:
            if installed(p):
                sh(f"dpkg --remove --force-depends {p}")
        # A fresh /etc/dovecot and /var/lib/dovecot: Debian's stock files, as
        # dovecot-core's postinst installs them, with the snakeoil-style
        # certificate it makes.
        for d in ("/etc/dovecot", "/var/lib/dovecot", "/run/dovecot"):
            shutil.rmtree(d, ignore_errors=True)
        shutil.copytree("/usr/share/dovecot/conf.d", "/etc/dovecot/conf.d")
        # (2.3 ships dovecot-{dict-auth,dict-sql,sql}.conf.ext next to
        # dovecot.conf; 2.4 none.)
        for f in ["dovecot.conf"] + glob.glob("/usr/share/dovecot/*.conf.ext"):
            shutil.copy(os.path.join("/usr/share/dovecot", f), "/etc/dovecot/")
        os.makedirs("/etc/dovecot/private", mode=0o700)
        os.makedirs("/var/lib/dovecot", mode=0o755)
        sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example "
           "-keyout /etc/dovecot/private/dovecot.key -out /etc/dovecot/private/dovecot.pem")
        # The operator's own logging choice (stock: syslog, absent here).
        with open("/etc/dovecot/local.conf", "w") as f:
            f.write(f"log_path = {LOG}\nauth_verbose = yes\nauth_failure_delay = 0\n")
        for u in USERS:
            try:
                pwd.getpwnam(u)
            except KeyError:
                sh(f"useradd -m -s /bin/sh {u}")
            sh(f"echo '{u}:{PASSWORD}' | chpasswd")
        subprocess.run(["dovecot"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.wait_listening()
        # Before the install: the stock Dovecot lets eve in (so a refusal
        # later is the installed policy's doing).
        login("eve").logout()
        if DOVECOT_24:
            install_systemctl_shim()
        # The README's commands, literally, from the clone.
        out = "/tmp/readme-install.out"
        with open(out, "w") as f:   # a file: `doveadm reload` leaves daemons holding it
            r = subprocess.run(["bash", "-euxo", "pipefail", "-c", readme_install_commands()],
                               cwd=SRC, text=True, stdin=subprocess.DEVNULL, stdout=f,
                               stderr=subprocess.STDOUT)
        with open(out) as f:
            r.stdout = f.read()
        cls.install_output = r.stdout
        if r.returncode != 0:
            raise AssertionError(f"README install section failed ({r.returncode}):\n{r.stdout}"
                                 f"\n--- dovecot log:\n{cls.log()}")
        # doveadm reload: new processes get the new configuration.
        cls.wait_listening()
        time.sleep(1)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["doveadm", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def log():
        try:
            with open(LOG, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"

    @classmethod
    def wait_listening(cls):
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection((SERVER, 993), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("Dovecot is not listening on 993:\n" + cls.log())

    def assertLogged(self, pattern, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return
            time.sleep(0.1)
        self.fail(f"no log line matches {pattern!r}:\n{self.log()}")

    def test_1_install_path_installs_no_test_packages(self):
        for p in TEST_ONLY_PACKAGES:
            self.assertFalse(installed(p), f"setup.sh installed {p} on the mail host")

    def test_2_closed_account_is_refused(self):
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            login("eve")
        self.assertIn("This account was closed; contact the helpdesk", str(cm.exception))
        self.assertLogged(r"auth: eve from 192\.0\.2\.1: failed")

    def test_3_session_policy(self):
        c = login("alice")
        self.assertEqual(c.select("INBOX")[0], "OK")
        c.logout()
        self.assertLogged(r"policy: alice started imap from 192\.0\.2\.1")
        # mallory's password is right; the session policy ends the session.
        c = login("mallory")
        with self.assertRaises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
            c.select("INBOX")
            c.select("INBOX")
        self.assertLogged(r"Account suspended")

    def test_4_brute_force_ban_on_the_shared_store(self):
        # Ten wrong passwords from one network, then the right one: refused.
        for _ in range(10):
            with self.assertRaises(imaplib.IMAP4.error):
                login("bob", "wrong", source=ATTACKER)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            login("bob", source=ATTACKER)
        self.assertIn("Too many failed logins", str(cm.exception))
        # Another network is not banned.
        login("bob").logout()
        log = self.log()
        self.assertNotIn("Permission denied", log)
        self.assertNotRegex(log, r"store failure|cannot open /var/lib/dovecot/mruby")
        # The store is the one directory auth (dovecot) and the mail users
        # (alice, bob, ...) share: group dovecot-mruby, setgid, files 0660;
        # the mail processes wrote their script cache into it too.
        gid = grp.getgrnam("dovecot-mruby").gr_gid
        st = os.stat("/var/lib/dovecot/mruby")
        self.assertEqual((st.st_gid, st.st_mode & 0o7777), (gid, 0o2770))
        data = os.stat("/var/lib/dovecot/mruby/data.mdb")
        self.assertEqual((data.st_gid, data.st_mode & 0o777), (gid, 0o660))
        cached = [os.stat(os.path.join(d, f)) for d, _, fs in
                  os.walk("/var/lib/dovecot/mruby/scripts") for f in fs]
        mail_uids = {pwd.getpwnam(u).pw_uid for u in USERS}
        self.assertTrue(any(s.st_uid in mail_uids for s in cached),
                        "no mail process wrote the shared store directory")

    def test_5_search_limit(self):
        # policy.rb: 30 searches a minute per user (a RateLimit in the shared
        # store, imap_mruby's before_command). The tokens come back at one
        # every two seconds, so the first refusal comes after 30 searches
        # (a few more when the searches are slow).
        c = login("alice")
        try:
            self.assertEqual(c.select("INBOX")[0], "OK")
            allowed = 0
            for _ in range(40):
                typ, data = c.search(None, "ALL")
                if typ != "OK":
                    break
                allowed += 1
            self.assertEqual(typ, "NO", f"no search refused after {allowed}")
            self.assertIn(b"[LIMIT] Too many searches, slow down", data[0])
            self.assertGreaterEqual(allowed, 30)
            self.assertLess(allowed, 35)
            # The session goes on.
            self.assertEqual(c.noop()[0], "OK")
        finally:
            c.logout()

    def audit_records(self, want, timeout=5):
        """The audit file's records (one JSON object a line), once `want`
        (records -> bool) holds for them or the timeout ends."""
        deadline = time.time() + timeout
        while True:
            with open(AUDIT) as f:
                records = [json.loads(line) for line in f if line.strip()]
            if want(records) or time.time() > deadline:
                return records
            time.sleep(0.1)

    def test_6_audit_trail(self):
        # Audit.enable! in auth.rb (auth, user dovecot) and policy.rb (each
        # mail process as its mail user) into the one file of the shipped
        # configuration: /var/log/dovecot-mruby, root:dovecot-mruby 2770.
        gid = grp.getgrnam("dovecot-mruby").gr_gid
        d = os.stat(os.path.dirname(AUDIT))
        self.assertEqual((d.st_uid, d.st_gid, d.st_mode & 0o7777), (0, gid, 0o2770))
        c = login("bob")
        c.select("INBOX")
        c.logout()

        def kinds(records, kind, user):
            return [r for r in records if r["kind"] == kind and r["user"] == user]
        records = self.audit_records(lambda rs: kinds(rs, "session.logout", "bob"))
        # Logins, as auth saw them: eve refused by the policy, alice in.
        eve = kinds(records, "auth.login", "eve")
        self.assertTrue(any(r["result"] == "failure" and r["policy"] == "reject" and
                            "This account was closed" in r["reason"] for r in eve), eve)
        self.assertTrue(any(r["result"] == "success" and r["service"] == "imap"
                            for r in kinds(records, "auth.login", "alice")))
        # Sessions, written by the mail processes of alice and of bob (two
        # uids), and mallory's, whose session the policy then refused.
        for user in ("alice", "bob", "mallory"):
            self.assertTrue(kinds(records, "session.login", user), f"no session.login of {user}")
        self.assertTrue(kinds(records, "session.logout", "bob"))
        self.assertTrue(any(r["mailbox"] == "INBOX" for r in kinds(records, "mailbox.open", "bob")))
        # The refused command, with the limit's answer.
        refused = [r for r in kinds(records, "imap.command", "alice")
                   if r["command"] == "SEARCH" and r["reply"] == "NO"]
        self.assertTrue(refused, "no refused SEARCH in the audit file")
        self.assertIn("Too many searches, slow down", refused[0]["reply_text"])
        # One file, group-writable in the shared directory whoever created
        # it: its owner is one of the writers, and processes of other uids
        # (alice's, bob's, auth's) appended to it.
        st = os.stat(AUDIT)
        self.assertEqual((st.st_gid, st.st_mode & 0o777), (gid, 0o660))
        writers = {pwd.getpwnam(u).pw_uid for u in ("alice", "bob", "dovecot")}
        self.assertIn(st.st_uid, writers)
        log = self.log()
        self.assertNotRegex(log, r"mruby: audit: .*failed")


if __name__ == "__main__":
    unittest.main()
