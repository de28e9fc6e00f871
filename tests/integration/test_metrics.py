"""Shadow mode, metric events and login audit records against a real
Dovecot: `mruby_shadow` / `shadow=yes` let a refused login or session in and
log "would have refused" with the session's prefix; the metric {} blocks of
conf.d/91-mruby-metrics.conf count a refused login, a refused command, a
script error, a store failure and a ban (`doveadm stats dump`); the auth
process writes one auth.login audit record per attempt (Dovecot::Audit)."""

import imaplib
import json
import os
import re
import subprocess
import time
import unittest
import urllib.request

import harness
from auth_harness import AuthDovecot, auth_log_prefix
from harness import DovecotTestCase, PASSWORD, poll
from test_imap_commands import PROTOCOLS

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The shipped file for the Dovecot under test (2.4's group_by is a block).
METRICS_CONF = os.path.join(REPO, "conf.d", *(("2.4",) if harness.is_24() else ()),
                            "91-mruby-metrics.conf")


def shipped_metric_blocks():
    """The metric {} blocks of conf.d/91-mruby-metrics.conf as shipped (its
    comment lines left out)."""
    lines = []
    with open(METRICS_CONF, encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines(True):
        if line.startswith("#"):
            continue
        lines.append(line)
    return "".join(lines)


def audit_records(path):
    """The JSON records of an audit file so far ([] before it exists)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        return []


def stats_dump(d):
    """{metric name: count} from `doveadm stats dump`."""
    out = subprocess.run(d.command_prefix() + ["doveadm", "-c", d.conf_path, "stats", "dump"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    header, rows = rows[0], rows[1:]
    name, count = header.index("metric_name"), header.index("count")
    return {row[name]: int(row[count]) for row in rows}


AUTH_POLICY = """
Dovecot.on_auth do |auth|
  auth.reject("not today") if auth.user == "bob"
  auth.delay(2) if auth.user == "carol"
  nil
end
Dovecot.on_auth_result do |res|
  unless res.success?
    Dovecot::List.new("bruteforce").add(res.remote_ip.to_s, ttl: 60, reason: "1 failed logins")
  end
  nil
end
"""

MAIL_POLICY = """
Dovecot::IMAP.before_command do |cmd|
  case cmd.name
  when "DELETE" then cmd.reject("deleting is off")
  when "RENAME" then raise "broken rename rule"
  when "SUBSCRIBE" then Dovecot::Counter.incr("subs", ttl: 60, fallback: 0)
  end
  nil
end
"""


class MetricsTest(DovecotTestCase):
    def test_doveadm_stats_dump_counts_verdicts_errors_store_failures_and_bans(self):
        http_port = harness.free_port()   # the stats process's OpenMetrics endpoint
        openmetrics = {"stats": {"inet_listener http": {"address": "127.0.0.1",
                                                        "port": http_port}}}
        # The shipped metric {} blocks as they are written (conf.d).
        d = AuthDovecot(AUTH_POLICY, passdb_args="store=memory", mail_plugins="mruby",
                        protocol_mail_plugins=PROTOCOLS, services=openmetrics,
                        extra_conf=shipped_metric_blocks())
        # The mail processes' store is a Redis nobody listens on: every
        # state call fails at once (connection refused).
        d.plugin["mruby_script"] = d.script("mail.rb")
        d.plugin["mruby_store"] = "redis://127.0.0.1:1"
        d.write_script("mail.rb", MAIL_POLICY)
        self.addCleanup(d.cleanup)
        d.start()

        with self.assertRaises(imaplib.IMAP4.error):
            d.imap("bob")                       # refused login (on_auth), a ban
        c = d.imap("alice")
        c.create("Old")
        typ, data = c.delete("Old")             # refused command
        self.assertEqual(typ, "NO")
        self.assertIn(b"deleting is off", data[0])
        typ, _ = c.rename("Old", "New")         # script error: mruby_on_error=tempfail
        self.assertEqual(typ, "NO")
        typ, _ = c.subscribe("Old")             # store failure, fallback 0
        self.assertEqual(typ, "OK")
        c.logout()
        d.wait_for_log(r"store failure .*Dovecot::Counter")

        expected = {
            "mruby_verdicts": 3,             # auth reject, DELETE, RENAME's on_error tempfail
            "mruby_refused_logins": 1,
            "mruby_refused_commands": 2,
            "mruby_script_errors": 1,
            "mruby_store_failures": 1,
            "mruby_bans": 1,
        }
        counts = {}

        def counted():
            counts.clear()
            counts.update(stats_dump(d))
            return all(counts.get(k) == v for k, v in expected.items())
        poll(counted, timeout=10, what="metrics %s in stats dump" % expected)
        self.assertEqual(counts.get("mruby_shadowed", 0), 0)
        # The same counts on Dovecot's OpenMetrics endpoint (Prometheus).
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port,
                                      timeout=10).read().decode()
        for name, count in expected.items():
            self.assertIn("dovecot_%s_total %d\n" % (name, count), body)


class ShadowTest(DovecotTestCase):
    def test_mail_shadow_lets_refused_sessions_and_commands_run(self):
        policy = """
        Dovecot.on_session_start { |s| s.deny("new policy") if s.user == "alice" }
        Dovecot::IMAP.before_command { |cmd| cmd.reject("no deleting") if cmd.name == "DELETE" }
        """
        # Per user: bob's userdb field mruby_shadow=yes; alice is enforced.
        d = self.dovecot(scripts={"policy.rb": policy}, protocol_mail_plugins=PROTOCOLS,
                         users={"bob": {"mruby_shadow": "yes"}})
        self.assertLoginSessionRefused(d, "alice")
        c = d.imap("bob")
        c.create("Old")
        typ, _ = c.delete("Old")
        self.assertEqual(typ, "OK")
        c.logout()
        # The would-be refusal at info, with the session's prefix.
        d.wait_for_log(r"imap\(bob\)<\d+><[^>]+>: Info: mruby: shadow: would have refused "
                       r"imap_before_command: reject \(no deleting\)")
        self.assertNotIn("imap(alice)", "".join(
            line for line in d.log().splitlines(True) if "would have" in line))

    def test_global_shadow_applies_to_every_session(self):
        policy = 'Dovecot.on_session_start { |s| s.deny("new policy") }\n'
        d = self.dovecot(scripts={"policy.rb": policy}, plugin={"mruby_shadow": "yes"})
        c = d.imap("alice")
        c.select("INBOX")
        c.logout()
        d.wait_for_log(r"imap\(alice\)<\d+><[^>]+>: Info: mruby: shadow: would have refused "
                       r"session_start: reject \(new policy\)")

    def test_auth_shadow_lets_a_refused_login_in_without_its_tarpit(self):
        d = AuthDovecot(AUTH_POLICY, passdb_args="store=memory shadow=yes",
                        users={"carol": {}}, settings={"auth_verbose": "yes"})
        self.addCleanup(d.cleanup)
        d.start()
        d.imap("bob").logout()                  # refused by on_auth: shadowed
        start = time.monotonic()
        d.imap("carol").logout()                # a 2 s tarpit: not applied
        d.wait_for_log(auth_log_prefix("bob", "Info") +
                       r"mruby: shadow: would have refused auth: reject \(not today\)")
        self.assertLess(time.monotonic() - start, 1.5)
        d.wait_for_log(auth_log_prefix("carol", "Info") +
                       r"mruby: shadow: would have applied auth: delay of 2000 ms")

    def test_auth_shadow_never_shadows_the_password_check(self):
        policy = """
        Dovecot.on_password_verify { |auth| auth.password == "right" }
        """
        d = AuthDovecot(policy, passdb_args="store=memory shadow=yes", mruby_passdb="only")
        self.addCleanup(d.cleanup)
        d.start()
        with self.assertRaises(imaplib.IMAP4.error):
            d.imap("alice", password="wrong")
        d.imap("alice", password="right").logout()
        self.assertNotIn("would have", d.log())


class LoginAuditTest(DovecotTestCase):
    def test_every_login_attempt_is_an_audit_record(self):
        policy = AUTH_POLICY + "Dovecot::Audit.enable!\n"
        d = AuthDovecot(policy, passdb_args="store=memory")
        path = os.path.join(d.dir, "auth-audit.log")
        os.chmod(d.dir, 0o777)   # auth runs as the dovecot user: it creates the file
        d.passdb_args += " audit=file:" + path
        self.addCleanup(d.cleanup)
        d.start()
        d.imap("alice").logout()
        with self.assertRaises(imaplib.IMAP4.error):
            d.imap("alice", password="wrong")
        with self.assertRaises(imaplib.IMAP4.error):
            d.imap("bob")

        poll(lambda: len(audit_records(path)) >= 3, what="3 auth.login records")
        recs = audit_records(path)
        for r in recs:
            self.assertEqual(r["kind"], "auth.login")
            self.assertEqual(r["service"], "imap")
            self.assertEqual(r["remote_ip"], "127.0.0.1")
            self.assertEqual(r["mechanism"], "PLAIN")
        by = [(r["user"], r["result"], r["reason"], r["policy"], r["shadowed"]) for r in recs]
        self.assertEqual(by, [
            ("alice", "success", None, None, None),
            ("alice", "failure", "password mismatch", None, None),
            ("bob", "failure", "rejected by policy: not today", "reject", None),
        ])

    def test_a_shadowed_verdict_is_in_the_login_record(self):
        policy = AUTH_POLICY + "Dovecot::Audit.enable!\n"
        d = AuthDovecot(policy, passdb_args="store=memory shadow=yes", users={"carol": {}})
        path = os.path.join(d.dir, "auth-audit.log")
        os.chmod(d.dir, 0o777)   # auth runs as the dovecot user: it creates the file
        d.passdb_args += " audit=file:" + path
        self.addCleanup(d.cleanup)
        d.start()
        d.imap("bob").logout()     # refused by on_auth: shadowed, so bob logs in
        d.imap("carol").logout()   # a tarpit: shadowed

        poll(lambda: len(audit_records(path)) >= 2, what="2 auth.login records")
        by = [(r["user"], r["result"], r["policy"], r["shadowed"]) for r in audit_records(path)]
        self.assertEqual(by, [("bob", "success", None, "reject"),
                              ("carol", "success", None, "delay")])


if __name__ == "__main__":
    unittest.main()
