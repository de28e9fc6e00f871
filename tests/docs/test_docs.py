"""Every Ruby example in README.md and docs/*.md (and the example policies in
conf.d/mruby/) runs, so the docs stay true.

The extractor takes each ```ruby block. Unless the line before it (blank
lines aside) is the marker `<!-- fragment -->` (a piece that is not meant to
run alone; kept rare), the block is written to a file and:
- `doveadm mruby check` compiles it and runs its top level in a VM with the
  full API (the same VM factory as the mail plugin and the auth driver): it
  must load;
- every hook it registered a handler for is run once with
  `doveadm mruby dry-run` and doveadm's sample event: the handler must not
  fail (a misspelt method, a wrong type in an example shows here).
Then the blocks that document behaviour run on a real Dovecot (imaplib,
poplib) and the documented result is asserted: the login refused, the reply
text, the log line.

A broken example fails test_every_example_loads_and_its_handlers_run with
the file, line and doveadm's error (test_a_broken_example_is_reported shows
the extractor catches one)."""

import glob
import imaplib
import os
import poplib
import re
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
import test_doveadm  # noqa: E402  (a module, so its test classes do not run here)
from auth_harness import AuthTestCase  # noqa: E402

FRAGMENT = "<!-- fragment -->"
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))   # RFC 2971
PROTOCOLS = {"imap": "imap_mruby", "pop3": "pop3_mruby"}
SETTINGS = {
    # Lets a test client claim a remote address (IMAP ID x-originating-ip), as
    # a proxy in front of Dovecot does: the policies see that address.
    "login_trusted_networks": "127.0.0.1/32",
    # The examples log at info level in the auth process too.
    "auth_verbose": "yes",
}


class Block:
    def __init__(self, path, line, source, fragment, offset=None):
        self.path = path          # relative to the repository root
        self.line = line          # line of the opening fence
        # The doc's line number is the block's line number plus offset.
        self.offset = line if offset is None else offset
        self.source = source
        self.fragment = fragment

    @property
    def where(self):
        return "%s:%d" % (self.path, self.line)


def extract(path, text):
    """The ```ruby blocks of one Markdown text."""
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```ruby":
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            before = [line.strip() for line in lines[:i] if line.strip()]
            fragment = bool(before) and before[-1] == FRAGMENT
            blocks.append(Block(path, i + 1, "\n".join(lines[i + 1:end]) + "\n", fragment))
            i = end
        i += 1
    return blocks


def doc_files():
    return ["README.md"] + sorted(os.path.relpath(p, ROOT)
                                  for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def all_blocks():
    blocks = []
    for path in doc_files():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            blocks += extract(path, f.read())
    for path in sorted(glob.glob(os.path.join(ROOT, "conf.d", "mruby", "*.rb"))):
        with open(path, encoding="utf-8") as f:
            blocks.append(Block(os.path.relpath(path, ROOT), 1, f.read(), False, offset=0))
    return blocks


def block_containing(text, path=None):
    """The one block (of `path` when given) whose source contains `text`."""
    found = [b for b in all_blocks() if text in b.source and path in (None, b.path)]
    if len(found) != 1:
        raise AssertionError("%d doc blocks contain %r" % (len(found), text))
    return found[0]


def in_doc(text, path, block):
    """doveadm's file:line for the written file, as the doc's file:line."""
    return re.sub(re.escape(path) + r":(\d+)",
                  lambda m: "%s:%d" % (block.path, block.offset + int(m.group(1))), text)


def problems(d, blocks):
    """Runs check and a dry-run per registered hook for each block; returns
    one description per failure."""
    found = []
    for n, block in enumerate(blocks):
        if block.fragment:
            continue
        name = "example-%d.rb" % n
        d.write_script(name, block.source)
        path = d.script(name)
        check = d.doveadm("mruby", "check", path, formatter="tab")
        if check.returncode != 0:
            found.append("%s: does not load (check exit %d):\n%s" % (
                block.where, check.returncode, in_doc(check.stderr, path, block)))
            continue
        rows = check.stdout.splitlines()
        hooks = rows[1].split("\t")[1].split() if len(rows) > 1 else []
        for hook in hooks:
            run = d.doveadm("mruby", "dry-run", path, hook)
            if run.returncode != 0:
                found.append("%s: its %s handler fails (dry-run exit %d):\n%s%s" % (
                    block.where, hook, run.returncode, run.stdout,
                    in_doc(run.stderr, path, block)))
    return found


class DocsDovecot(test_doveadm.DoveadmDovecot):
    pass


class DocExamplesTest(AuthTestCase):
    def dovecot_with(self, script, users=None, plugin=None):
        # The scripts' state in a private LMDB store, shared by auth and mail
        # processes and doveadm, as the docs install it.
        d = DocsDovecot(script, mail_plugins="mruby", protocol_mail_plugins=PROTOCOLS,
                        settings=SETTINGS,
                        users=users, plugin=plugin, store="lmdb")
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def test_every_example_loads_and_its_handlers_run(self):
        blocks = all_blocks()
        # The extractor sees the docs (a moved or renamed file would hide them).
        self.assertGreaterEqual(len([b for b in blocks if b.path == "README.md"]), 4)
        self.assertGreaterEqual(len([b for b in blocks if b.path == "docs/ruby-api.md"]), 15)
        fragments = [b.where for b in blocks if b.fragment]
        self.assertLessEqual(len(fragments), 3, "too many fragments: %s" % fragments)
        d = self.dovecot_with("")
        found = problems(d, blocks)
        self.assertEqual(found, [], "\n\n".join(found))

    def test_a_broken_example_is_reported(self):
        d = self.dovecot_with("")
        text = ("Intro.\n\n```ruby\nDovecot.on_session_start do |s|\n  s.dny('x')\nend\n```\n\n"
                "```ruby\nDovecot.on_auth do |auth|\n  auth.reject('x'\nend\n```\n\n"
                "%s\n\n```ruby\ncmd.reject('x')\n```\n" % FRAGMENT)
        blocks = extract("docs/broken.md", text)
        self.assertEqual([(b.line, b.fragment) for b in blocks],
                         [(3, False), (9, False), (17, True)])
        found = problems(d, blocks)
        self.assertEqual(len(found), 2, found)
        self.assertIn("docs/broken.md:3: its session_start handler fails", found[0])
        self.assertIn("undefined method 'dny'", found[0])
        self.assertIn("docs/broken.md:9: does not load (check exit 65)", found[1])
        self.assertIn("docs/broken.md:12:", found[1].split("\n", 1)[1])   # the line in the doc (its end)

    # --- blocks that document behaviour, on a real Dovecot -------------------

    def test_readme_policy_logs_suspends_and_keeps_archives_read_only(self):
        block = block_containing("Account suspended\") if s[\"suspended\"]")
        d = self.dovecot_with(block.source, users={"mallory": {"suspended": "yes"}})
        client = d.imap("alice")
        d.wait_for_log(r"alice logged in to imap from 127\.0\.0\.1")
        typ, data = client.select("Archive")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM] Archives are read-only, use EXAMINE", data[0])
        self.assertEqual(client.select("Archive", readonly=True)[0], "OK")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.logout()
        # The session policy denies after login: with imap_mruby loaded IMAP
        # gets a BYE with the script's text ...
        mallory = d.imap(login=False)
        with self.assertRaises(imaplib.IMAP4.abort) as cm:
            mallory.login("mallory", harness.PASSWORD)
            mallory.select("INBOX")
        self.assertIn("Account suspended", str(cm.exception))
        d.wait_for_log(r"imap\(mallory\).*Info: mruby: session denied by policy: Account suspended")
        # ... POP3 the -ERR [AUTH] with it that docs/ruby-api.md names.
        pop = d.pop3(login=False)
        pop.user("mallory")
        with self.assertRaises(poplib.error_proto) as cm:
            pop.pass_(harness.PASSWORD)
        self.assertIn(b"-ERR [AUTH] Account suspended", cm.exception.args[0])

    def test_readme_login_policy_refuses_a_network_and_tarpits_pop3(self):
        block = block_containing('auth.delay(2) if auth.service == "pop3"')
        d = self.dovecot_with(block.source)
        client = d.imap(login=False)
        typ, _ = client._simple_command("ID", '("x-originating-ip" "203.0.113.5")')
        self.assertEqual(typ, "OK")
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            client.login("alice", harness.PASSWORD)
        self.assertIn("[ALERT] Blocked network", str(cm.exception))
        client.shutdown()
        d.wait_for_log(r"alice: rejected by policy: Blocked network")
        d.imap("alice").logout()
        d.wait_for_log(r"alice: ok")
        # POP3 without TLS from an untrusted address (127.0.0.2: not the
        # server's own, so Dovecot does not count it as secured) is tarpitted.
        with socket.create_connection(("127.0.0.1", d.pop3_port), timeout=20,
                                      source_address=("127.0.0.2", 0)) as sock:
            f = sock.makefile("rb")
            self.assertTrue(f.readline().startswith(b"+OK"))
            sock.sendall(b"USER bob\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
            started = time.monotonic()
            sock.sendall(b"PASS %s\r\n" % harness.PASSWORD.encode())
            self.assertTrue(f.readline().startswith(b"+OK"))
            self.assertGreaterEqual(time.monotonic() - started, 2.0)
        # From the server's own address (secured) no delay.
        started = time.monotonic()
        d.pop3("bob").quit()
        self.assertLess(time.monotonic() - started, 2.0)

    def test_readme_search_limit_answers_no_limit_at_the_31st_search(self):
        # (conf.d/mruby/policy.rb has the same limit: tests/install runs it.)
        block = block_containing("SEARCHES = Dovecot::RateLimit", "README.md")
        d = self.dovecot_with(block.source)
        client = d.imap("alice")
        client.select("INBOX")
        for _ in range(30):
            self.assertEqual(client.search(None, "ALL")[0], "OK")
        typ, data = client.search(None, "ALL")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[LIMIT] Too many searches, slow down", data[0])
        self.assertEqual(client.noop()[0], "OK")   # the session goes on
        client.logout()

    def test_ruby_api_command_example_refuses_disconnects_and_lets_clients_leave(self):
        block = block_containing('when "SEARCH" then cmd.reject("Slow down", code: "LIMIT")')
        d = self.dovecot_with(block.source)
        client = d.imap("alice")
        client.select("INBOX")
        typ, data = client.search(None, "ALL")
        self.assertEqual(typ, "NO")
        # Dovecot appends its timing to the text, as to every tagged reply.
        self.assertRegex(data[0], rb"^\[LIMIT\] Slow down \(\d+\.\d+ \+ \d+\.\d+ secs\)\.$")
        self.assertEqual(client.logout()[0], "BYE")   # LOGOUT is never refused
        client = d.imap("alice")
        with self.assertRaises(imaplib.IMAP4.abort) as cm:
            client.delete("Archive")
        self.assertIn("Bye", str(cm.exception))
        pop = d.pop3("alice")
        with self.assertRaises(poplib.error_proto) as cm:
            pop.retr(1)
        self.assertEqual(cm.exception.args[0], b"-ERR Downloads are paused")
        self.assertTrue(pop.quit().startswith(b"+OK"))

    def test_ruby_api_per_user_script_tightens_the_operators_policy(self):
        block = block_containing('s.deny("IMAP only from my networks")', "docs/ruby-api.md")
        operator = 'Dovecot.on_mailbox_open { |box| box.deny("Sent is closed") if box.name == "Sent" }\n'
        d = DocsDovecot(operator, mail_plugins="mruby", protocol_mail_plugins=PROTOCOLS,
                        settings=SETTINGS, users={"carol": {}}, store="lmdb")
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        d.write_script("user-carol.rb", block.source)   # alice has none
        d.plugin["mruby_user_script"] = os.path.join(
            d.script_dir, "user-%{user}.rb" if harness.is_24() else "user-%u.rb")
        d.start()
        # carol's script: IMAP only from her networks (the test connects from
        # 127.0.0.1, or the address it claims with IMAP ID: see SETTINGS).
        self.assertLoginSessionRefused(d, "carol")
        d.wait_for_log(r"imap\(carol\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"IMAP only from my networks")
        with self.assertRaises((poplib.error_proto, OSError, EOFError)):
            d.pop3("carol").stat()
        d.wait_for_log(r"pop3\(carol\)<\d+><[^>]+>: Info: mruby: session denied by policy: "
                       r"I do not use POP3")
        # alice has no script: only the operator's policy.
        alice = d.imap("alice")
        self.assertEqual(alice.select("Archive")[0], "OK")
        self.assertEqual(alice.select("Sent")[0], "NO")
        alice.logout()

    def test_auth_md_failure_counter_counts_and_warns_at_ten(self):
        block = block_containing('"#{n} failed logins from #{net}"')
        d = self.dovecot_with(block.source)
        for _ in range(10):
            self.assertImapRefused(d, "alice", password="wrong")
        d.wait_for_log(r"10 failed logins from 127\.0\.0\.0/24")

    def test_bruteforce_bans_for_the_window_as_conf_d_auth_rb_says(self):
        with open(os.path.join(ROOT, "conf.d", "mruby", "auth.rb"), encoding="utf-8") as f:
            source = f.read()
        self.assertIn("ban that network for 10 minutes", source)
        d = self.dovecot_with(source)
        # From a client address a proxy vouches for (not loopback, which the
        # policy may exempt).
        for _ in range(10):
            self.assertIn("AUTHENTICATIONFAILED", self.login_from(d, "203.0.113.5", "wrong"))
        d.wait_for_log(r"brute force: 203\.0\.113\.0/24 banned for 600s after 10 failed logins")
        self.assertIn("Too many failed logins, try again later",
                      self.login_from(d, "203.0.113.77", harness.PASSWORD))
        self.assertIn("This account was closed", self.login_from(d, "198.51.100.1", "x", "eve"))

    def login_from(self, d, ip, password, user="alice"):
        """The refusal text of a login that claims client address `ip`."""
        client = d.imap(login=False)
        try:
            typ, _ = client._simple_command("ID", '("x-originating-ip" "%s")' % ip)
            self.assertEqual(typ, "OK")
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                client.login(user, password)
            return str(cm.exception)
        finally:
            client.shutdown()

    def test_a_mailbox_tempfail_answers_unavailable_also_after_a_timeout(self):
        # docs/ruby-api.md: mruby_on_error = tempfail answers a mailbox open
        # with NO [UNAVAILABLE]; a timeout disables the VM, later opens the same.
        d = self.dovecot_with(
            'Dovecot.on_mailbox_open { |box| loop {} if box.name == "Archive" }\n',
            plugin={"mruby_timeout": "100ms"})
        client = d.imap("alice")
        for _ in range(2):
            typ, data = client.select("Archive")
            self.assertEqual(typ, "NO")
            self.assertIn(b"[UNAVAILABLE] Temporary policy failure, try again later", data[0])
        client.logout()

    def test_session_fields_show_userdb_fields_but_no_auth_token(self):
        d = self.dovecot_with(
            'Dovecot.on_session_start { |s| Dovecot.log.info("fields=#{s.fields.keys.sort.join(",")} '
            'token=#{s["auth_token"].inspect}") }\n', users={"alice": {"quota_rule": "*:storage=1G"}})
        d.imap("alice").logout()
        line = d.wait_for_log(r"fields=(\S*) token=(\S+)")
        self.assertIn("quota_rule", line.group(1).split(","))
        self.assertNotIn("auth_token", line.group(1))
        self.assertEqual(line.group(2), "nil")

    def test_cmd_args_keep_the_backslashes_the_client_sent(self):
        d = self.dovecot_with(
            'Dovecot::IMAP.after_command { |cmd| Dovecot.log.info("args=#{cmd.args.inspect} '
            'flagged=#{cmd.args.to_s.include?("\\\\Flagged")}") if cmd.name == "STORE" }\n')
        client = d.imap("alice")
        client.append("INBOX", None, None, b"Subject: x\r\n\r\nhi\r\n")
        client.select("INBOX")
        client.store("1:*", "+FLAGS", "(\\Flagged)")
        client.logout()
        line = d.wait_for_log(r'args="(.*)" flagged=(\w+)')
        self.assertEqual(line.group(2), "true")


if __name__ == "__main__":
    unittest.main()
