"""A throwaway Dovecot whose auth process loads libauthdb_mruby.so from the
build tree, without touching the system's Dovecot: Dovecot runs in a private
mount namespace (`unshare -m`, as root) where a temporary directory holding
the stock /usr/lib/dovecot/modules/auth/* plus our module is bind-mounted over
/usr/lib/dovecot/modules/auth (the auth module directory is compiled in)."""

import os
import shutil
import socket
import subprocess
import time

import harness

AUTH_MODULE_DIR = "/usr/lib/dovecot/modules/auth"
AUTH_MODULE = os.path.join(harness.PLUGIN_DIR, "libauthdb_mruby.so")


class AuthDovecot(harness.Dovecot):
    """`auth_script` is the policy script (policy.rb in the script dir, shared
    with the mail plugin); `passdb_args` are extra args for the mruby passdb
    (on_error=, timeout=, blocking= ...). `mruby_passdb` places the mruby
    passdb before the passwd-file one ("first"), replaces it ("only") or
    leaves it out (None); `mruby_userdb` replaces the passwd-file userdb."""

    def __init__(self, auth_script, passdb_args="", mruby_passdb="first",
                 mruby_userdb=False, userdb_args="", mail_plugins="", **kwargs):
        kwargs.setdefault("scripts", {})
        kwargs["scripts"] = dict(kwargs["scripts"], **{"policy.rb": auth_script})
        super().__init__(mail_plugins=mail_plugins, **kwargs)
        if not mail_plugins:
            # The auth tests need no mail plugin; keep mail processes plain.
            self.plugin.pop("mruby_script", None)
        self.passdb_args = passdb_args
        self.mruby_passdb = mruby_passdb
        self.mruby_userdb = mruby_userdb
        self.userdb_args = userdb_args
        self.module_dir = os.path.join(self.dir, "auth-modules")

    def _write_config(self):
        super()._write_config()
        with open(self.conf_path, encoding="utf-8") as f:
            conf = f.read()
        script = self.script("policy.rb")
        mruby_passdb = "passdb {\n  driver = mruby\n  args = file=%s %s\n}\n" % (
            script, self.passdb_args)
        passwd_passdb = conf[conf.index("passdb {"):]
        passwd_passdb = passwd_passdb[:passwd_passdb.index("}\n") + 2]
        if self.mruby_passdb == "first":
            conf = conf.replace(passwd_passdb, mruby_passdb + passwd_passdb)
        elif self.mruby_passdb == "only":
            conf = conf.replace(passwd_passdb, mruby_passdb)
        if self.mruby_userdb:
            userdb = conf[conf.index("userdb {"):]
            userdb = userdb[:userdb.index("}\n") + 2]
            conf = conf.replace(userdb, "userdb {\n  driver = mruby\n  args = file=%s %s\n}\n" % (
                script, self.userdb_args))
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write(conf)

    def _prepare_modules(self):
        os.makedirs(self.module_dir, exist_ok=True)
        os.chmod(self.module_dir, 0o755)
        for name in os.listdir(AUTH_MODULE_DIR):
            if name != "libauthdb_mruby.so":
                shutil.copy2(os.path.join(AUTH_MODULE_DIR, name), self.module_dir)
        shutil.copy2(AUTH_MODULE, self.module_dir)

    def start(self):
        """As harness.Dovecot.start (foreground master as our child, so its
        stop() applies), inside the private mount namespace."""
        self._write_config()
        self._prepare_modules()
        self.startup_log = open(os.path.join(self.dir, "startup.log"), "w")
        # unshare and sh exec: the child's pid is the Dovecot master's.
        self.master = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" "$2" && exec dovecot -F -c "$3"', "sh",
             self.module_dir, AUTH_MODULE_DIR, self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self.startup_log, stderr=subprocess.STDOUT)
        self.proc_started = True
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.master.poll() is not None:
                with open(os.path.join(self.dir, "startup.log")) as f:
                    raise RuntimeError("dovecot failed to start:\n" + f.read() + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), 0.2).close()
                socket.create_connection(("127.0.0.1", self.pop3_port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start; log:\n" + self.log())


class AuthTestCase(harness.DovecotTestCase):
    def auth_dovecot(self, auth_script, **kwargs):
        instance = AuthDovecot(auth_script, **kwargs)
        self.addCleanup(instance.cleanup)
        return instance.start()
