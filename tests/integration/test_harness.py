"""The harness writes one description of an instance in the syntax of the
Dovecot that runs it (2.3 or 2.4): a plain Dovecot (no plugin) from the
harness starts and takes IMAP and POP3 logins, and doveconf accepts the
settings, service and event blocks the tests describe. Runs on both
versions; the plugin's own settings are covered by the other test files."""

import imaplib
import os
import subprocess
import unittest
from unittest import mock

import auth_harness
import harness
from harness import Dovecot, DovecotTestCase

V24 = harness.is_24()

# What the tests describe besides the plugin (settings=, services=), with
# the names 2.4 renamed (service_count, an exporter's transport/format_args,
# a listener's address).
SERVICES = {
    "imap": {"client_limit": "2", "process_limit": "1", "service_count": "0"},
    "anvil": {"unix_listener anvil-auth-penalty": {"mode": "0"}},
    "auth": {"extra_groups": "nogroup"},
}
SETTINGS = {
    "auth_verbose": "yes",
    "login_trusted_networks": "127.0.0.0/8",
    "auth_mechanisms": "plain login cram-md5",
    "auth_username_chars": "",
    "event_exporter log": {"format": "json", "format_args": "time-rfc3339", "transport": "log"},
    "metric harness_logins": {"filter": "event=auth_request_finished", "exporter": "log",
                              "exporter_include": "name fields"},
}


def doveconf(d, *args):
    return subprocess.run(d.command_prefix() + ["doveconf", "-c", d.conf_path] + list(args),
                          capture_output=True, text=True, timeout=30)


class PlainDovecot(DovecotTestCase):
    def test_a_plain_instance_takes_imap_and_pop3_logins(self):
        d = self.dovecot(mail_plugins="", lmtp=True)
        with open(d.conf_path) as f:
            conf = f.read()
        if V24:
            self.assertIn("dovecot_config_version = 2.4.1\n", conf)
            self.assertIn("passdb passwd-file {\n", conf)
            self.assertNotIn("plugin {", conf)
        else:
            self.assertIn("mail_location = maildir:~/Maildir\n", conf)
            self.assertIn("passdb {\n  driver = passwd-file\n", conf)
        client = d.imap("alice")
        self.assertEqual(client.select("INBOX")[0], "OK")
        client.append("INBOX", None, None, b"Subject: hi\r\n\r\nbody\r\n")
        client.logout()
        pop = d.pop3("alice")
        self.assertEqual(pop.stat()[0], 1)
        pop.quit()
        code, _ = d.deliver("bob")
        self.assertEqual(code, 250)
        self.assertEqual(d.maildir_count("bob"), 1)
        client = d.imap(login=False)
        try:
            with self.assertRaises(imaplib.IMAP4.error):
                client.login("alice", "wrong")
        finally:
            client.shutdown()
        # 2.3 "Login: user=<alice> rip=...", 2.4 "Logged in: user=<alice>, rip=...".
        d.wait_for_log(r"imap-login: Info: Log(in|ged in): user=<alice>,? rip=127\.0\.0\.1")

    def test_described_settings_and_services_are_the_running_dovecots(self):
        d = self.dovecot(mail_plugins="", services=SERVICES, settings=SETTINGS)
        result = doveconf(d, "-n")
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        self.assertIn("client_limit = 2", out)
        self.assertIn("extra_groups = nogroup", out)
        self.assertIn("auth_mechanisms = plain login cram-md5", out)
        self.assertIn("auth_verbose = yes", out)
        if V24:
            self.assertIn("restart_request_count = unlimited", out)
            self.assertIn("time_format = rfc3339", out)
            self.assertIn("driver = log", out)
        else:
            self.assertIn("service_count = 0", out)
            self.assertIn("format_args = time-rfc3339", out)
            self.assertIn("transport = log", out)
        client = d.imap(login=False)
        client.login_cram_md5("bob", harness.PASSWORD)
        client.logout()
        # The metric's events, exported to the log as JSON by the exporter.
        d.wait_for_log(r'stats: Info: \{"event":"auth_request_finished",.*"mechanism":"CRAM-MD5"'
                       r'.*"user":"bob"')


class Rendering(unittest.TestCase):
    """The 2.4 forms of what has no plain-Dovecot check yet (the plugin's
    settings and the mruby passdb), rendered whatever Dovecot is installed."""

    def instance(self, **kwargs):
        d = auth_harness.AuthDovecot("", **kwargs)
        self.addCleanup(d.cleanup)
        return d

    def test_the_mruby_passdb_args_become_2_4_settings(self):
        with mock.patch.object(harness, "is_24", return_value=True):
            d = self.instance(passdb_args="blocking=yes timeout=300ms on_error=allow scheme=PLAIN",
                              passdb_settings={"result_failure": "return-fail"})
            blocks = d.passdbs("/users")
            lua = auth_harness.db_block("passdb", "lua", "file=/x.lua blocking=no")
        name, block = blocks[0]
        self.assertEqual(name, "passdb mruby")
        self.assertEqual(block, {
            "mruby_script": d.script("policy.rb"),
            "passdb_use_worker": "yes",
            "mruby_timeout": "300ms",
            "mruby_on_error": "allow",
            "passdb_default_password_scheme": "PLAIN",
            "mruby_script_cache": d.script_cache_dir,
            "result_failure": "return-fail",
        })
        self.assertEqual(blocks[1][0], "passdb passwd-file")
        self.assertEqual(lua, ("passdb lua", {"lua_file": "/x.lua", "passdb_use_worker": "no"}))

    def test_the_mruby_passdb_keeps_its_2_3_args(self):
        with mock.patch.object(harness, "is_24", return_value=False):
            d = self.instance(passdb_args="blocking=yes")
            name, block = d.passdbs("/users")[0]
        self.assertEqual(name, "passdb")
        self.assertEqual(block, {"driver": "mruby", "args": "file=%s blocking=yes script_cache=%s"
                                 % (d.script("policy.rb"), d.script_cache_dir)})

    def test_plugin_settings_split_into_declared_settings_and_a_scripts_own(self):
        d = Dovecot(scripts={"policy.rb": ""}, plugin={"mruby_timeout": "1s",
                                                       "mruby_greeting": "hello"})
        self.addCleanup(d.cleanup)
        with mock.patch.object(os.path, "exists", return_value=True):
            items = d.plugin_conf(v24=True)
        self.assertEqual(items, [
            ("mruby_script", d.script("policy.rb")),
            ("mruby_timeout", "1s"),
            ("mruby_script_cache", d.script_cache_dir),
            ("mruby_settings", {"mruby_greeting": "hello"}),
        ])
        self.assertEqual(harness.render(dict(items), True)[-3:],
                         ["mruby_settings {", "  mruby_greeting = hello", "}"])
        self.assertEqual(d.plugin_conf(v24=False), [("plugin", d.plugin)])
        self.assertEqual(harness.render(harness.mail_plugins_conf("mruby imap_mruby", True), True),
                         ["mail_plugins {", "  mruby = yes", "  imap_mruby = yes", "}"])
        self.assertEqual(harness.render(harness.mail_plugins_conf("mruby", False), False),
                         ["mail_plugins = $mail_plugins mruby"])


if __name__ == "__main__":
    unittest.main()
