"""A throwaway Dovecot whose auth process loads libauthdb_mruby.so from the
build tree, without touching the system's Dovecot: Dovecot runs in a private
mount namespace (`unshare -m`, as root) where a temporary directory holding
the stock /usr/lib/dovecot/modules/auth/* plus our module is bind-mounted over
/usr/lib/dovecot/modules/auth (the auth module directory is compiled in)."""

import imaplib
import os
import shutil

import harness

AUTH_MODULE_DIR = "/usr/lib/dovecot/modules/auth"
AUTH_MODULE = os.path.join(harness.PLUGIN_DIR, "libauthdb_mruby.so")
# The store backends the driver loads on first use, looked for next to it.
STORE_BACKENDS = os.path.join(harness.PLUGIN_DIR, "dmr_store_backends.so")


class AuthDovecot(harness.Dovecot):
    """`auth_script` is the policy script (policy.rb in the script dir, shared
    with the mail plugin); `passdb_args` are extra args for the mruby passdb
    (on_error=, timeout=, blocking= ...). `mruby_passdb` places the mruby
    passdb before the passwd-file one ("first"), replaces it ("only") or
    leaves it out (None); `policy_passdb`, a whole passdb {} block, takes the
    mruby passdb's place (benchmarks compare auth-lua this way);
    `mruby_userdb` replaces the passwd-file userdb. `start_prefix` runs
    before the namespace (e.g. to move Dovecot into a cgroup)."""

    def __init__(self, auth_script, passdb_args="", mruby_passdb="first",
                 mruby_userdb=False, userdb_args="", mail_plugins="", start_prefix=None,
                 policy_passdb=None, **kwargs):
        kwargs.setdefault("scripts", {})
        kwargs["scripts"] = dict(kwargs["scripts"], **{"policy.rb": auth_script})
        # Runs `dovecot -F ...` (appended by harness.Dovecot.start) in a private
        # mount namespace; unshare and sh exec, so the child's pid stays the
        # Dovecot master's and harness.Dovecot.stop() applies unchanged.
        namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                     'modules=$1; shift; mount --bind "$modules" "$0" && exec "$@"',
                     AUTH_MODULE_DIR]
        super().__init__(mail_plugins=mail_plugins, start_prefix=list(start_prefix or [])
                         + namespace, **kwargs)
        self.start_prefix.append(os.path.join(self.dir, "auth-modules"))
        if not mail_plugins:
            # The auth tests need no mail plugin; keep mail processes plain.
            self.plugin.pop("mruby_script", None)
        self.passdb_args = passdb_args
        self.policy_passdb = policy_passdb
        self.mruby_passdb = mruby_passdb
        self.mruby_userdb = mruby_userdb
        self.userdb_args = userdb_args
        self.module_dir = os.path.join(self.dir, "auth-modules")

    # The harness's config hooks (harness.Dovecot.passdbs/userdbs).
    def passdbs(self, users_path):
        passdb_args = self.passdb_args
        if "script_cache=" not in passdb_args and "store=lmdb:" not in passdb_args:
            passdb_args += " script_cache=" + self.script_cache_dir   # see harness.Dovecot
        mruby_passdb = self.policy_passdb or "passdb {\n  driver = mruby\n  args = file=%s %s\n}\n" % (
            self.script("policy.rb"), passdb_args)
        passwd_passdbs = super().passdbs(users_path)
        if self.mruby_passdb == "first":
            return [mruby_passdb] + passwd_passdbs
        if self.mruby_passdb == "only":
            return [mruby_passdb]
        return passwd_passdbs

    def userdbs(self, users_path):
        if self.mruby_userdb:
            return ["userdb {\n  driver = mruby\n  args = file=%s %s\n}\n" % (
                self.script("policy.rb"), self.userdb_args)]
        return super().userdbs(users_path)

    def _prepare_modules(self):
        os.makedirs(self.module_dir, exist_ok=True)
        os.chmod(self.module_dir, 0o755)
        for name in os.listdir(AUTH_MODULE_DIR):
            if name != "libauthdb_mruby.so":
                shutil.copy2(os.path.join(AUTH_MODULE_DIR, name), self.module_dir)
        shutil.copy2(AUTH_MODULE, self.module_dir)
        shutil.copy2(STORE_BACKENDS, self.module_dir)

    def start(self):
        self._prepare_modules()
        return super().start()


def auth_process_pid(d):
    """The pid of the instance's auth process (not an auth worker): a child
    of its master titled <instance_name>/auth."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % name, "rb") as f:
                title = f.read().split(b"\0")[0].split(b" ")[0]
        except (OSError, ValueError, IndexError):
            continue
        if ppid == d.master.pid and title.endswith(b"/auth"):
            return int(name)
    return None


class AuthTestCase(harness.DovecotTestCase):
    def auth_dovecot(self, auth_script, **kwargs):
        instance = AuthDovecot(auth_script, **kwargs)
        self.addCleanup(instance.cleanup)
        return instance.start()

    def assertImapRefused(self, d, user, password="secret", contains=None):
        client = d.imap(login=False)
        try:
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                client.login(user, password)
        finally:
            client.shutdown()
        if contains is not None:
            self.assertIn(contains, str(cm.exception))
        return str(cm.exception)
