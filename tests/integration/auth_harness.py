"""A throwaway Dovecot whose auth process loads libauthdb_mruby.so from the
build tree, without touching the system's Dovecot: Dovecot runs in a private
mount namespace (`unshare -m`, as root) where a temporary directory holding
the stock /usr/lib/dovecot/modules/auth/* plus our module is bind-mounted over
/usr/lib/dovecot/modules/auth (the auth module directory is compiled in;
harness.namespace_prefix)."""

import imaplib
import os
import shutil

import harness

AUTH_MODULE_DIR = "/usr/lib/dovecot/modules/auth"
AUTH_MODULE = os.path.join(harness.PLUGIN_DIR, "libauthdb_mruby.so")
# The store backends the driver loads on first use, looked for next to it.
STORE_BACKENDS = os.path.join(harness.PLUGIN_DIR, "dmr_store_backends.so")


# The 2.3 args of the mruby passdb/userdb (key=value words) as 2.4 settings
# inside `passdb mruby {}`: file= is the block's mruby_script, blocking= and
# scheme= are Dovecot's own settings, the others mruby_<name>.
def mruby_db_settings(kind, args):
    settings = {}
    for word in args.split():
        key, _, value = word.partition("=")
        if key == "file":
            settings["mruby_script"] = value
        elif key == "blocking":
            settings["%s_use_worker" % kind] = value
        elif key == "scheme":
            settings["passdb_default_password_scheme"] = value
        else:
            settings["mruby_" + key] = value
    return settings


# Other drivers a policy_passdb names (benchmarks compare auth-lua): their
# 2.3 args as 2.4 settings.
DRIVER_ARGS_24 = {
    "lua": {"file": "lua_file", "blocking": "passdb_use_worker"},
}


def db_block(kind, driver, args, settings=None):
    """One passdb or userdb block as (name, settings) in the syntax of the
    running Dovecot: 2.3 `passdb { driver = D  args = A }`, 2.4
    `passdb D { ... }` with the args as settings."""
    settings = dict(settings or {})
    if not harness.is_24():
        block = {"driver": driver}
        if args.strip():
            block["args"] = args.strip()
        block.update(settings)
        return (kind, block)
    if driver == "mruby":
        block = mruby_db_settings(kind, args)
    else:
        names = DRIVER_ARGS_24.get(driver, {})
        block = {}
        for word in args.split():
            key, _, value = word.partition("=")
            if key not in names:
                raise ValueError("%s %s: no 2.4 setting for %s=" % (kind, driver, key))
            block[names[key]] = value
    block.update(settings)
    return ("%s %s" % (kind, driver), block)


class AuthDovecot(harness.Dovecot):
    """`auth_script` is the policy script (policy.rb in the script dir, shared
    with the mail plugin); `passdb_args` are extra args for the mruby passdb
    (on_error=, timeout=, blocking= ..., the 2.3 words: on 2.4 they become
    the block's settings, mruby_db_settings()); `passdb_settings` are more
    settings of that passdb block (e.g. result_failure). `mruby_passdb`
    places the mruby passdb before the passwd-file one ("first"), replaces
    it ("only") or leaves it out (None); `policy_passdb` takes the mruby
    passdb's place (benchmarks compare auth-lua this way): a description
    {"driver": "lua", "args": "file=... blocking=no"} written per version,
    or a whole 2.3 passdb {} block as text; `mruby_userdb` replaces the
    passwd-file userdb. `start_prefix` runs before the namespace (e.g. to
    move Dovecot into a cgroup)."""

    def __init__(self, auth_script, passdb_args="", mruby_passdb="first",
                 mruby_userdb=False, userdb_args="", mail_plugins="", start_prefix=None,
                 policy_passdb=None, passdb_settings=None, **kwargs):
        kwargs.setdefault("scripts", {})
        kwargs["scripts"] = dict(kwargs["scripts"], **{"policy.rb": auth_script})
        super().__init__(mail_plugins=mail_plugins, start_prefix=start_prefix, **kwargs)
        if not mail_plugins:
            # The auth tests need no mail plugin; keep mail processes plain.
            self.plugin.pop("mruby_script", None)
        self.passdb_args = passdb_args
        self.passdb_settings = dict(passdb_settings or {})
        self.policy_passdb = policy_passdb
        self.mruby_passdb = mruby_passdb
        self.mruby_userdb = mruby_userdb
        self.userdb_args = userdb_args
        # The stock auth modules plus ours, bind-mounted over the compiled-in
        # auth module directory while Dovecot runs (harness.Dovecot.mounts).
        self.module_dir = os.path.join(self.dir, "auth-modules")
        self.mounts.append((self.module_dir, AUTH_MODULE_DIR))

    def plugin_conf(self, v24):
        if v24 and not self.mail_plugins:
            # Only the auth driver runs scripts: its block has its settings.
            # The harness's defaults for the mail plugin are not needed.
            self.plugin.pop("mruby_script_cache", None)
        return super().plugin_conf(v24)

    # The harness's config hooks (harness.Dovecot.passdbs/userdbs).
    def passdbs(self, users_path):
        passdb_args = self.passdb_args
        if "script_cache=" not in passdb_args and "store=lmdb:" not in passdb_args:
            passdb_args += " script_cache=" + self.script_cache_dir   # see harness.Dovecot
        if isinstance(self.policy_passdb, str):
            mruby_passdb = (None, self.policy_passdb)    # raw 2.3 text
        elif self.policy_passdb:
            mruby_passdb = db_block("passdb", self.policy_passdb["driver"],
                                    self.policy_passdb.get("args", ""),
                                    self.policy_passdb.get("settings"))
        else:
            mruby_passdb = db_block("passdb", "mruby", "file=%s %s" % (
                self.script("policy.rb"), passdb_args), self.passdb_settings)
        passwd_passdbs = super().passdbs(users_path)
        if self.mruby_passdb == "first":
            return [mruby_passdb] + passwd_passdbs
        if self.mruby_passdb == "only":
            return [mruby_passdb]
        return passwd_passdbs

    def userdbs(self, users_path):
        if self.mruby_userdb:
            return [db_block("userdb", "mruby", "file=%s %s" % (
                self.script("policy.rb"), self.userdb_args))]
        return super().userdbs(users_path)

    def _prepare_modules(self):
        super()._prepare_modules()
        os.makedirs(self.module_dir, exist_ok=True)
        os.chmod(self.module_dir, 0o755)
        for name in os.listdir(AUTH_MODULE_DIR):
            if name != "libauthdb_mruby.so":
                shutil.copy2(os.path.join(AUTH_MODULE_DIR, name), self.module_dir)
        shutil.copy2(AUTH_MODULE, self.module_dir)
        shutil.copy2(STORE_BACKENDS, self.module_dir)


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


def auth_log_prefix(user, level, ip=r"127\.0\.0\.1"):
    """The regex of what precedes the mruby passdb's own text in an auth
    process log line about `user`'s request:
    2.3 "auth: Info: mruby(bob,127.0.0.1,<SESSION>): ",
    2.4 "auth(bob,127.0.0.1,sasl:plain)<SESSION>: Info: mruby: "."""
    if harness.is_24():
        return r"auth\(%s,%s,[^)]*\)<[^>]+>: %s: mruby: " % (user, ip, level)
    return r"auth: %s: mruby\(%s,%s,<[^>]+>\): " % (level, user, ip)


# The auth process's own prefix on either version: 2.3 "auth", 2.4 also
# "auth(alice,127.0.0.1,sasl:plain)<SESSION>" for a line about a request.
AUTH_PROCESS = r"auth(\([^)]*\)(<[^>]*>)*)?"


def mruby_passdb_line(user):
    """The regex of the start of a line the mruby passdb logs about `user`
    (not another passdb's): 2.3 "mruby(bob,...): ...", 2.4
    "auth(bob,127.0.0.1,sasl:plain)<SESSION>: Info: mruby: ..."."""
    if harness.is_24():
        return r"auth\(%s,[^)]*\)<[^>]+>: \w+: mruby: " % user
    return r"mruby\(%s," % user
