"""`doveadm mruby ...` (lib10_doveadm_mruby_plugin.so) against a real Dovecot
whose auth policy reads the same store, on LMDB and on Redis: a ban added
with `doveadm mruby list add` refuses the next IMAP login and `list remove`
lets it in again; a rate limit and a counter the script hit are shown as the
script sees them and reset; `doveadm mruby check` lists a good script's
handlers and exits 0, and names file:line with a non-zero exit for a broken
one; `dry-run` gives a sample event's verdict and writes the live store only
with -L. The same commands over doveadm's HTTP API.

doveadm loads its plugins from a compiled-in directory
(/usr/lib/dovecot/modules/doveadm): as for the auth module, every doveadm
here (the CLI and the instance's doveadm server) runs in a private mount
namespace where a copy of that directory plus our plugin is bind-mounted
over it."""

import base64
import json
import os
import shutil
import subprocess
import time
import unittest
import urllib.request

import harness
from auth_harness import AuthDovecot, AuthTestCase

DOVEADM_MODULE_DIR = "/usr/lib/dovecot/modules/doveadm"
DOVEADM_PLUGIN = os.path.join(harness.PLUGIN_DIR, "lib10_doveadm_mruby_plugin.so")
API_KEY = "dmr-test-key"

POLICY = """
BANS = Dovecot::List.new("bans")
LOGINS = Dovecot::RateLimit.new("logins", limit: 5, period: 3600)

Dovecot.on_auth do |auth|
  ban = BANS.match(auth.remote_ip)
  auth.reject("Banned: #{ban.reason}") if ban
end

Dovecot.on_auth_result do |res|
  next unless res.success?
  LOGINS.hit(res.user)
  Dovecot::Counter.incr("logins:#{res.user}", ttl: 3600)
end
"""


class DoveadmDovecot(AuthDovecot):
    """An AuthDovecot whose namespace also has our doveadm plugin, with
    doveadm's HTTP API on a loopback port."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.doveadm_dir = os.path.join(self.dir, "doveadm-modules")
        # Both module directories bind-mounted (harness.Dovecot.mounts).
        self.mounts.append((self.doveadm_dir, DOVEADM_MODULE_DIR))
        self.services = harness.merge(self.services, {
            "doveadm": {"inet_listener http": {"address": "127.0.0.1", "port": 0}}})
        self.settings["doveadm_api_key"] = API_KEY

    # doveadm's HTTP API on a port of its own, picked again with the others
    # when Dovecot finds one taken (harness.Dovecot.start).
    def pick_ports(self):
        super().pick_ports()
        self.http_port = harness.free_port()

    def ports(self):
        return super().ports() + [self.http_port]

    def _write_config(self):
        self.services["doveadm"]["inet_listener http"]["port"] = self.http_port
        super()._write_config()

    def _prepare_modules(self):
        super()._prepare_modules()
        os.makedirs(self.doveadm_dir, exist_ok=True)
        os.chmod(self.doveadm_dir, 0o755)
        for name in os.listdir(DOVEADM_MODULE_DIR):
            if name != os.path.basename(DOVEADM_PLUGIN):
                shutil.copy2(os.path.join(DOVEADM_MODULE_DIR, name), self.doveadm_dir)
        shutil.copy2(DOVEADM_PLUGIN, self.doveadm_dir)
        # The store backends, found next to the plugin.
        shutil.copy2(os.path.join(harness.PLUGIN_DIR, "dmr_store_backends.so"),
                     self.doveadm_dir)

    def doveadm(self, *args, formatter=None):
        """Runs `doveadm -c CONF [-f FORMATTER] ARGS` with our plugin loaded."""
        command = ["doveadm", "-c", self.conf_path]
        if formatter:
            command += ["-f", formatter]
        return subprocess.run(
            self.command_prefix() + command + list(args),
            capture_output=True, text=True, timeout=30)

    def doveadm_json(self, *args):
        result = self.doveadm(*args, formatter="json")
        if result.returncode != 0:
            raise AssertionError("doveadm %s: exit %d\n%s" % (args, result.returncode,
                                                              result.stderr))
        return json.loads(result.stdout)

    def http(self, command, parameters):
        body = json.dumps([[command, parameters, "t1"]]).encode()
        request = urllib.request.Request(
            "http://127.0.0.1:%d/doveadm/v1" % self.http_port, data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": "X-Dovecot-API " + base64.b64encode(
                         API_KEY.encode()).decode()})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())[0]


class DoveadmTests:
    """The tests, run by one subclass per store backend (store_spec())."""

    def store_spec(self):
        raise NotImplementedError

    def start(self, script=POLICY):
        spec = self.store_spec()
        d = DoveadmDovecot(script, store=spec)
        d.passdb_args = "store=" + d.store_spec
        self.addCleanup(d.cleanup)
        d.start()
        # The auth process opens the store first (LMDB: creates its files
        # with the shared group), as on a live server.
        d.imap("alice").logout()
        return d

    def test_a_ban_added_by_doveadm_refuses_the_login_until_it_is_removed(self):
        d = self.start()
        added = d.doveadm("mruby", "list", "add", "-t", "600", "-r", "manual ban",
                          "bans", "127.0.0.1")
        self.assertEqual(added.returncode, 0, added.stderr)
        rows = d.doveadm_json("mruby", "list", "show", "bans")
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["value"], "127.0.0.1")
        self.assertEqual(rows[0]["reason"], "manual ban")
        self.assertAlmostEqual(int(rows[0]["expires_at"]), time.time() + 600, delta=30)
        self.assertIn("Banned: manual ban", self.assertImapRefused(d, "alice"))

        removed = d.doveadm("mruby", "list", "remove", "bans", "127.0.0.1")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(d.doveadm_json("mruby", "list", "show", "bans"), [])
        d.imap("alice").logout()
        # Removing what is not there: doveadm's "not found" exit code.
        again = d.doveadm("mruby", "list", "remove", "bans", "127.0.0.1")
        self.assertEqual(again.returncode, 68, again.stderr)
        self.assertIn("list bans has no entry 127.0.0.1", again.stderr)

    def test_a_rate_limit_and_a_counter_show_what_the_script_hit_and_reset(self):
        d = self.start()   # one login
        d.imap("alice").logout()
        # 5 per hour: each hit takes 720 s of the burst; two logins so far.
        [shown] = d.doveadm_json("mruby", "ratelimit", "show", "-l", "5", "-p", "3600",
                                 "logins", "alice")
        self.assertEqual(shown["name"], "logins")
        self.assertEqual(shown["key"], "alice")
        self.assertAlmostEqual(float(shown["idle_after"]), 1440, delta=30)
        self.assertEqual(shown["allowed"], "yes")
        self.assertEqual(shown["remaining"], "2")   # what LOGINS.peek("alice") says
        [counter] = d.doveadm_json("mruby", "counter", "show", "logins:alice")
        self.assertEqual(counter, {"key": "logins:alice", "value": "2"})
        # Without the rate: how long until the key is idle, nothing else.
        [bare] = d.doveadm_json("mruby", "ratelimit", "show", "logins", "alice")
        self.assertEqual(set(bare), {"name", "key", "idle_after"})

        for args in (("ratelimit", "reset", "logins", "alice"),
                     ("counter", "reset", "logins:alice")):
            result = d.doveadm("mruby", *args)
            self.assertEqual(result.returncode, 0, result.stderr)
        [shown] = d.doveadm_json("mruby", "ratelimit", "show", "-l", "5", "-p", "3600",
                                 "logins", "alice")
        self.assertEqual((shown["idle_after"], shown["remaining"]), ("0", "4"))
        self.assertEqual(d.doveadm_json("mruby", "counter", "show", "logins:alice")[0]["value"],
                         "0")
        d.imap("alice").logout()   # the script counts from zero again
        self.assertEqual(d.doveadm_json("mruby", "counter", "show", "logins:alice")[0]["value"],
                         "1")

    def test_check_lists_handlers_or_names_file_and_line(self):
        d = self.start()
        good = d.doveadm("mruby", "check", d.script("policy.rb"), formatter="tab")
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertEqual(good.stdout.splitlines(),
                         ["script\thandlers", d.script("policy.rb") + "\tauth auth_result"])

        d.write_script("broken.rb", 'Dovecot.on_auth do |auth|\n  auth.reject("x"\nend\n')
        broken = d.doveadm("mruby", "check", d.script("broken.rb"))
        self.assertNotEqual(broken.returncode, 0)
        self.assertEqual(broken.returncode, 65, broken.stderr)
        self.assertRegex(broken.stderr, "%s:[23]: " % d.script("broken.rb"))
        self.assertEqual(broken.stdout, "")

        d.write_script("raises.rb", 'x = 1\nDovecot::List.new("")\n')
        raises = d.doveadm("mruby", "check", d.script("raises.rb"))
        self.assertEqual(raises.returncode, 65, raises.stderr)
        self.assertIn("%s:2: " % d.script("raises.rb"), raises.stderr)
        self.assertIn("list name must be 1 to 100 bytes without NUL (ArgumentError)",
                      raises.stderr)

    def test_dry_run_prints_the_verdict_and_writes_live_state_only_when_asked(self):
        d = self.start()   # one login: logins:alice is 1
        added = d.doveadm("mruby", "list", "add", "-r", "manual ban", "bans", "127.0.0.1")
        self.assertEqual(added.returncode, 0, added.stderr)
        policy = d.script("policy.rb")
        # A private empty store by default: the live ban is not seen ...
        [run] = d.doveadm_json("mruby", "dry-run", policy, "auth", "remote_ip=127.0.0.1")
        self.assertEqual((run["event"], run["handled"], run["verdict"]), ("auth", "yes", "continue"))
        # ... and with -L it is, as the auth process sees it.
        [run] = d.doveadm_json("mruby", "dry-run", "-L", policy, "auth", "remote_ip=127.0.0.1")
        self.assertEqual((run["verdict"], run["text"]), ("reject", "Banned: manual ban"))
        [run] = d.doveadm_json("mruby", "dry-run", "-L", policy, "auth", "remote_ip=192.0.2.1")
        self.assertEqual(run["verdict"], "continue")
        self.assertEqual(d.doveadm_json("mruby", "dry-run", policy, "session_start")[0]["handled"],
                         "no")

        # A successful attempt hits the counter in the live store only with -L.
        d.doveadm_json("mruby", "dry-run", policy, "auth_result", "user=alice", "success=yes")
        self.assertEqual(d.doveadm_json("mruby", "counter", "show", "logins:alice")[0]["value"],
                         "1")
        d.doveadm_json("mruby", "dry-run", "-L", policy, "auth_result", "user=alice",
                       "success=yes")
        self.assertEqual(d.doveadm_json("mruby", "counter", "show", "logins:alice")[0]["value"],
                         "2")

        # A handler that raises: the mruby_on_error verdict, the error, exit 65.
        d.write_script("raises.rb", 'Dovecot.on_auth { |auth| raise "boom" }\n')
        failed = d.doveadm("mruby", "dry-run", d.script("raises.rb"), "auth")
        self.assertEqual(failed.returncode, 65, failed.stderr)
        self.assertIn("verdict=tempfail", failed.stdout)
        self.assertIn("%s:1: " % d.script("raises.rb"), failed.stderr)
        unknown = d.doveadm("mruby", "dry-run", policy, "auth", "colour=red")
        self.assertEqual(unknown.returncode, 64, unknown.stderr)
        self.assertIn("unknown field 'colour'", unknown.stderr)

    def test_dry_run_takes_its_fields_from_a_json_file(self):
        d = self.start()
        added = d.doveadm("mruby", "list", "add", "-r", "manual ban", "bans", "198.51.100.7")
        self.assertEqual(added.returncode, 0, added.stderr)
        policy = d.script("policy.rb")
        sample = os.path.join(d.dir, "sample.json")
        with open(sample, "w") as f:
            json.dump({"user": "bob", "remote_ip": "198.51.100.7", "secured": True,
                       "remote_port": 2525}, f)
        [run] = d.doveadm_json("mruby", "dry-run", "-L", "-j", sample, policy, "auth")
        self.assertEqual((run["verdict"], run["text"]), ("reject", "Banned: manual ban"))
        # Fields on the command line come after the file's: they win.
        [run] = d.doveadm_json("mruby", "dry-run", "-L", "-j", sample, policy, "auth",
                               "remote_ip=192.0.2.1")
        self.assertEqual(run["verdict"], "continue")
        # Bad JSON, a nested value, a missing file: usage errors naming the file.
        for text, message in (('{"user": ', "invalid JSON"),
                              ('{"user": {"name": "bob"}}', "field 'user': a string, number or "
                                                            "boolean was expected, not object")):
            with open(sample, "w") as f:
                f.write(text)
            bad = d.doveadm("mruby", "dry-run", "-j", sample, policy, "auth")
            self.assertEqual(bad.returncode, 64, bad.stderr)
            self.assertIn("-j %s: %s" % (sample, message), bad.stderr)
        missing = d.doveadm("mruby", "dry-run", "-j", sample + ".none", policy, "auth")
        self.assertEqual(missing.returncode, 64, missing.stderr)
        self.assertIn("cannot open: No such file or directory", missing.stderr)

    def test_bad_arguments_and_a_store_that_fails_have_their_exit_codes(self):
        d = self.start()
        usage = d.doveadm("mruby", "ratelimit", "show", "-l", "5", "logins", "alice")
        self.assertEqual(usage.returncode, 64, usage.stderr)
        self.assertIn("-l <limit> and -p <period> go together", usage.stderr)
        usage = d.doveadm("mruby", "list", "show", "x" * 101)
        self.assertEqual(usage.returncode, 64, usage.stderr)
        # The store named by mruby_store cannot be opened: tempfail, and why.
        override = "mruby_store" if harness.is_24() else "plugin/mruby_store"   # 2.4: no plugin {}
        down = d.doveadm("-o", override + "=lmdb:/nonexistent/dmr", "mruby", "list",
                         "show", "bans")
        self.assertEqual(down.returncode, 75, down.stderr)
        self.assertIn("/nonexistent/dmr", down.stderr)

    def test_the_commands_work_over_the_http_api(self):
        d = self.start()
        answer = d.http("mrubyListAdd", {"list": "bans", "entry": "127.0.0.1",
                                         "reason": "via http", "ttl": 600})
        self.assertEqual(answer[0], "doveadmResponse", answer)
        answer = d.http("mrubyListShow", {"list": "bans"})
        self.assertEqual(answer[0], "doveadmResponse", answer)
        self.assertEqual([(row["value"], row["reason"]) for row in answer[1]],
                         [("127.0.0.1", "via http")])
        self.assertIn("Banned: via http", self.assertImapRefused(d, "alice"))
        answer = d.http("mrubyListRemove", {"list": "bans", "entry": "127.0.0.1"})
        self.assertEqual(answer[0], "doveadmResponse", answer)
        d.imap("alice").logout()
        answer = d.http("mrubyListRemove", {"list": "bans", "entry": "127.0.0.1"})
        self.assertEqual(answer[0], "error", answer)
        self.assertEqual(answer[1].get("exitCode"), 68, answer)


class LmdbDoveadmTest(DoveadmTests, AuthTestCase):
    def store_spec(self):
        return "lmdb"


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class RedisDoveadmTest(DoveadmTests, AuthTestCase):
    def store_spec(self):
        if not hasattr(self, "redis"):
            self.redis = harness.RedisServer()
            self.addCleanup(self.redis.stop)
        return "redis://127.0.0.1:%d" % self.redis.port


if __name__ == "__main__":
    unittest.main()
