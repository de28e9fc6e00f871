"""A throwaway Dovecot on free loopback ports, with the plugin loaded from the
build tree, for integration tests. Runs as root (Dovecot drops privileges to
the mail user `nobody` for mail processes, as in production)."""

import base64
import functools
import imaplib
import os
import poplib
import pwd
import grp
import re
import shlex
import shutil
import smtplib
import socket
import subprocess
import tempfile
import textwrap
import time
import unittest

BUILD_DIR = os.environ.get("DMR_BUILD_DIR", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
BUILD_DIR = os.path.abspath(BUILD_DIR)
PLUGIN_DIR = os.path.join(BUILD_DIR, "src", "dovecot")
MAIL_UID = pwd.getpwnam("nobody").pw_uid
MAIL_GID = grp.getgrnam("nogroup").gr_gid
PASSWORD = "secret"
# Built by meson next to the plugins on Dovecot 2.4: doveconf and the config
# process load it from <moduledir>/settings to know the mruby_* settings.
SETTINGS_MODULE = os.path.join(PLUGIN_DIR, "libmruby_settings.so")
MODULE_DIR = "/usr/lib/dovecot/modules"   # compiled into Dovecot
SETTINGS_MODULE_DIR = os.path.join(MODULE_DIR, "settings")


@functools.lru_cache(maxsize=None)
def dovecot_version():
    """(major, minor) of the `dovecot` binary the tests run, asked once per
    process: "2.3.19.1 (9b53102964)" -> (2, 3), "2.4.1-4 (7d8c0e5759)" -> (2, 4)."""
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.match(r"(\d+)\.(\d+)", out.strip())
    if not match:
        raise RuntimeError("dovecot --version: unexpected output %r" % out)
    return int(match.group(1)), int(match.group(2))


def is_24():
    return dovecot_version() >= (2, 4)


# The settings the plugins declare on Dovecot 2.4 (one setting_parser_info
# "mruby", libmruby_settings.so). On 2.3 they are plugin {} entries; on 2.4 a
# name in this set is a top-level setting, any other plugin {} name (a
# script's own, read with s.setting) goes into the mruby_settings {} list.
MRUBY_SETTINGS = frozenset("""
    mruby_script mruby_on_error mruby_timeout mruby_memory_limit mruby_services
    mruby_script_cache mruby_store mruby_store_password mruby_store_password_file
    mruby_audit mruby_audit_syslog_facility mruby_shadow
    mruby_user_script mruby_user_timeout mruby_user_memory_limit mruby_user_on_error
""".split())


def merge(base, extra):
    """`extra` merged into the dict `base` (in place): a dict value merges
    into the block of the same name, anything else replaces the setting."""
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        elif isinstance(value, dict):
            base[key] = merge({}, value)
        else:
            base[key] = value
    return base


# Settings whose name or value differ on 2.4, for the structured descriptions
# the tests pass (settings=, services=): (enclosing block kind, 2.3 name) ->
# function of the 2.3 value returning the 2.4 (name, value).
RENAMED_24 = {
    ("inet_listener", "address"): lambda v: ("listen", v),
    ("service", "service_count"):
        lambda v: ("restart_request_count", "unlimited" if v == "0" else v),
    ("event_exporter", "transport"): lambda v: ("driver", v),
    ("event_exporter", "format_args"):
        lambda v: ("time_format", v[len("time-"):] if v.startswith("time-") else v),
}


def render(items, v24, depth=0, kind=""):
    """Dovecot config text for a description: a dict of name -> value
    (a string: `name = value`) or name -> dict (a block `name { ... }`, e.g.
    "service auth", "protocol imap", "passdb passwd-file"). On 2.4 the names
    of RENAMED_24 are translated, inside the kind of block they belong to."""
    pad = "  " * depth
    lines = []
    for key, value in items.items():
        if isinstance(value, dict):
            lines.append("%s%s {" % (pad, key))
            lines.extend(render(value, v24, depth + 1, key.split()[0]))
            lines.append("%s}" % pad)
            continue
        value = str(value)
        if v24 and (kind, key) in RENAMED_24:
            key, value = RENAMED_24[(kind, key)](value)
        lines.append(("%s%s = %s" % (pad, key, value)).rstrip())
    return lines


def render_item(key, value, v24):
    """One setting or block (render() of a one-entry description); with
    `key` None, `value` is config text used as is."""
    if key is None:
        return value.rstrip("\n").splitlines()
    return render({key: value}, v24)


def mail_plugins_conf(names, v24):
    """`mail_plugins` adding `names` (space separated) to the inherited list:
    2.3 `mail_plugins = $mail_plugins a b`, 2.4 `mail_plugins { a = yes }`."""
    if v24:
        return {"mail_plugins": {name: "yes" for name in names.split()}}
    return {"mail_plugins": ("$mail_plugins " + names).rstrip()}


def namespace_prefix(mounts):
    """Command words that run the rest in a private mount namespace where
    each (source, target) directory of `mounts` is bind-mounted (as root):
    the module directories are compiled into Dovecot, so our modules join
    copies of the stock ones there. sh execs the command, so its pid is the
    one Popen returned."""
    if not mounts:
        return []
    script = " && ".join("mount --bind %s %s" % (shlex.quote(src), shlex.quote(dst))
                         for src, dst in mounts)
    return ["unshare", "-m", "--propagation", namespace_propagation(), "sh", "-c",
            script + ' && exec "$@"', "sh"]


@functools.lru_cache(maxsize=None)
def namespace_propagation():
    """unshare's --propagation: "private" makes every mount of the new
    namespace private, so our bind mounts never reach the system's. In a
    chroot whose / is no mount point (the Debian 13 root the 2.4 tests run
    in) that is refused (EINVAL); there the mounts are copied as they are
    ("unchanged"), which keeps ours inside only when the mount holding the
    root is not shared: make such a root a private mount of its own
    (`mount --bind R R && mount --make-private R`) and "private" applies."""
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    if any(row[4] == "/" for row in rows):
        return "private"
    if any(field.startswith("shared:") for row in rows for field in row[6:row.index("-")]):
        raise RuntimeError("in a chroot with shared mounts: bind mounts for the tests "
                           "would reach the system; make the root a private mount")
    return "unchanged"


def free_port():
    """A loopback port that was free a moment ago: another process may take
    it before it is used (Dovecot.start copes with that, see there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_socket_inodes(port):
    """Inodes of the sockets listening on 127.0.0.1:`port` (/proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port and addr in ("0100007F", "00000000"):
                inodes.add(fields[9])
    return inodes


def process_socket_inodes(pid):
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def poll(condition, timeout=10, interval=0.05, what=None):
    """Calls `condition` until it returns a true value, which is returned;
    fails the test after `timeout` seconds. For what the tests wait for
    (a reload, a process exit, a record written): never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %ss: %s"
                                 % (timeout, what or getattr(condition, "__name__", condition)))
        time.sleep(interval)


class RedisServer:
    """A private redis-server on a free loopback port, nothing persisted;
    `extra` are more server options (e.g. "--requirepass", "secret")."""

    def __init__(self, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        try:
            poll(listening, what="redis-server listening on %d" % self.port)
        except AssertionError:
            self.stop()
            raise

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Dovecot:
    """One Dovecot instance, described once and written in the syntax of the
    `dovecot` binary that runs it (2.3 or 2.4, dovecot_version()).

    `scripts` maps file names to Ruby source written into the instance's
    script directory; `plugin` holds the plugin's settings by their 2.3
    plugin {} names (on 2.4: the declared mruby_* settings, the rest in
    mruby_settings {}); `users` maps user name to extra userdb fields.
    `settings` are more top-level settings or blocks (a dict value is a
    block: {"auth_verbose": "yes", "event_exporter log": {...}}), merged
    over the harness's own; `services` are settings of service {} blocks by
    service name ({"auth": {"extra_groups": "nogroup"}}, a dict value is a
    listener block); `protocol_mail_plugins` adds mail plugins per protocol
    ({"imap": "imap_mruby"}). `extra_conf` is raw config text appended as
    is, in whatever syntax the caller wrote it (benchmarks and docs tests
    that only run on 2.3): tests describe their config with the others."""

    def __init__(self, scripts=None, plugin=None, users=None, extra_conf="",
                 mail_plugins="mruby", start_prefix=None, store=None, lmtp=False,
                 settings=None, services=None, protocol_mail_plugins=None):
        self.dir = tempfile.mkdtemp(prefix="dmr-it-")
        os.chmod(self.dir, 0o755)
        self.script_dir = os.path.join(self.dir, "scripts")
        os.makedirs(self.script_dir)
        for name, source in (scripts or {}).items():
            self.write_script(name, source)
        self.lmtp = lmtp   # Dovecot's LMTP service on a loopback TCP port as well
        self.pick_ports()
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.users = {"alice": {}, "bob": {}}
        self.users.update(users or {})
        self.plugin = {}
        if scripts:
            self.plugin["mruby_script"] = self.script("policy.rb")
        self.plugin.update(plugin or {})
        self.extra_conf = extra_conf
        self.settings = merge({}, settings)
        self.services = merge({}, services)
        self.protocol_mail_plugins = dict(protocol_mail_plugins or {})
        self.mail_plugins = mail_plugins
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.proc_started = False
        # Command words put before "dovecot -F ..." (e.g. to start it in a cgroup).
        self.start_prefix = list(start_prefix or [])
        # Directories bind-mounted over Dovecot's compiled-in module
        # directories while it runs, (source, target) (namespace_prefix()):
        # on 2.4 the settings module, when the build has one; subclasses add
        # the auth and doveadm module directories.
        self.mounts = []
        self.settings_dir = os.path.join(self.dir, "settings-modules")
        if is_24() and os.path.exists(SETTINGS_MODULE):
            self.mounts.append((self.settings_dir, SETTINGS_MODULE_DIR))
        # store="lmdb": a private LMDB state directory as docs/configuration.md
        # lays it out for production: owned by root and a group every process
        # running scripts has (here nogroup: the mail processes' gid, and an
        # extra group of the auth service), mode 2770 so new files keep the
        # group; the store creates its files 0660. Any other value is used as
        # the mruby_store spec as is.
        self.store_spec = None
        if store == "lmdb":
            self.store_dir = os.path.join(self.dir, "state-store")
            os.makedirs(self.store_dir)
            os.chown(self.store_dir, 0, MAIL_GID)
            os.chmod(self.store_dir, 0o2770)
            self.store_spec = "lmdb:" + self.store_dir
            merge(self.services, {"auth": {"extra_groups": "nogroup"}})
        elif store:
            self.store_spec = store
        if self.store_spec:
            self.plugin.setdefault("mruby_store", self.store_spec)
        # The last good version of each script (mruby_script_cache): with
        # store="lmdb" the default, the store directory's scripts/; otherwise
        # a private directory laid out the same way, never the system's.
        self.script_cache_dir = os.path.join(self.dir, "script-cache")
        os.makedirs(self.script_cache_dir)
        os.chown(self.script_cache_dir, 0, MAIL_GID)
        os.chmod(self.script_cache_dir, 0o2770)
        if store != "lmdb":
            self.plugin.setdefault("mruby_script_cache", self.script_cache_dir)

    def script(self, name):
        return os.path.join(self.script_dir, name)

    def write_script(self, name, source):
        path = self.script(name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(source))
        os.chmod(path, 0o644)

    def module_dir_for_mail(self):
        """A throwaway install of the built plugins in this instance's
        directory. Mail processes load dmr_store_backends.so after they
        became the mail user, who may not be able to read the build tree
        (a clone in a 0700 directory)."""
        modules = os.path.join(self.dir, "modules")
        os.makedirs(modules, exist_ok=True)
        os.chmod(modules, 0o755)
        if os.path.isdir(PLUGIN_DIR):
            for name in os.listdir(PLUGIN_DIR):
                if name.endswith(".so"):
                    shutil.copy2(os.path.join(PLUGIN_DIR, name), modules)
        return modules

    def _prepare_modules(self):
        """Fills the directories of self.mounts before a start: here the
        stock settings modules plus ours (2.4)."""
        if (self.settings_dir, SETTINGS_MODULE_DIR) in self.mounts:
            os.makedirs(self.settings_dir, exist_ok=True)
            os.chmod(self.settings_dir, 0o755)
            for name in os.listdir(SETTINGS_MODULE_DIR):
                if name != os.path.basename(SETTINGS_MODULE):
                    shutil.copy2(os.path.join(SETTINGS_MODULE_DIR, name), self.settings_dir)
            shutil.copy2(SETTINGS_MODULE, self.settings_dir)

    def command_prefix(self):
        """What runs a Dovecot command (dovecot, doveconf, doveadm) with this
        instance's modules: the private mount namespace of self.mounts."""
        return namespace_prefix(self.mounts)

    def doveconf(self, *args):
        """doveconf on this instance's configuration (written first), with its
        modules: a finished subprocess (returncode, stdout, stderr)."""
        self._write_config()
        self._prepare_modules()
        return subprocess.run(self.command_prefix() + ["doveconf", "-c", self.conf_path]
                              + list(args), capture_output=True, text=True)

    def plugin_conf(self, v24):
        """The plugin's settings: 2.3 a plugin {} block; 2.4 top-level
        mruby_* settings and mruby_settings {} for a script's own names."""
        if not v24:
            return [("plugin", dict(self.plugin))]
        plugin = dict(self.plugin)
        if not os.path.exists(SETTINGS_MODULE):
            # Plain Dovecot 2.4 (the build has no settings module yet): the
            # harness's own default is left out; anything a test asked for
            # cannot be said to this Dovecot.
            if plugin.get("mruby_script_cache") == self.script_cache_dir:
                del plugin["mruby_script_cache"]
            if plugin or self.mail_plugins:
                raise RuntimeError("Dovecot 2.4 needs %s for the plugin's settings (%s)"
                                   % (SETTINGS_MODULE, ", ".join(plugin) or self.mail_plugins))
            return []
        items = [(k, v) for k, v in plugin.items() if k in MRUBY_SETTINGS]
        own = {k: v for k, v in plugin.items() if k not in MRUBY_SETTINGS}
        if own:
            items.append(("mruby_settings", own))
        return items

    def _write_config(self):
        v24 = is_24()
        mail_root = os.path.join(self.dir, "mail")
        os.makedirs(mail_root, exist_ok=True)
        os.chown(mail_root, MAIL_UID, MAIL_GID)
        users_path = os.path.join(self.dir, "users")
        with open(users_path, "w", encoding="utf-8") as f:
            for name, fields in self.users.items():
                # userdb_NAME=value: a userdb field for passwd-file on both
                # versions (2.4: userdb_fields_import_all, on by default).
                extra = " ".join("userdb_%s=%s" % kv for kv in fields.items())
                f.write("%s:{PLAIN}%s:%d:%d::%s/%s::%s\n" % (
                    name, PASSWORD, MAIL_UID, MAIL_GID, mail_root, name, extra))
        protocols = "imap pop3"
        if self.lmtp_port:
            protocols += " lmtp"
        conf = {}
        if v24:
            conf["dovecot_config_version"] = "2.4.1"
            conf["dovecot_storage_version"] = "2.4.1"
        conf.update({
            "base_dir": self.dir + "/run",
            "state_dir": self.dir + "/state",
            "instance_name": "dmr-%d" % self.imap_port,
            "log_path": self.log_path,
            "listen": "127.0.0.1",
            "protocols": protocols,
            "ssl": "no",
        })
        if v24:
            conf["auth_allow_cleartext"] = "yes"
        else:
            conf["disable_plaintext_auth"] = "no"
        conf.update({
            "auth_mechanisms": "plain login",
            "auth_failure_delay": "0",
            "default_login_user": "dovenull",
            "default_internal_user": "dovecot",
            "first_valid_uid": "1",
        })
        if v24:
            # 2.4 also holds back an internal failure's reply (2 s plus up to
            # 1 s at random) unless told not to: the tests time tempfails.
            conf["auth_internal_failure_delay"] = "0"
            conf["mail_driver"] = "maildir"
            conf["mail_path"] = "~/Maildir"
        else:
            conf["mail_location"] = "maildir:~/Maildir"
        conf["mail_plugin_dir"] = self.module_dir_for_mail()
        if self.mail_plugins or not v24:
            conf.update(mail_plugins_conf(self.mail_plugins, v24))
        if v24:
            conf["login_log_format_elements"] = \
                "user=<%{user}> rip=%{remote_ip} session=<%{session}>"
        else:
            conf["login_log_format_elements"] = "user=<%u> rip=%r session=<%{session}>"
        services = {
            "imap-login": {
                "inet_listener imap": {"address": "127.0.0.1", "port": self.imap_port},
                "inet_listener imaps": {"port": 0},
            },
            "pop3-login": {
                "inet_listener pop3": {"address": "127.0.0.1", "port": self.pop3_port},
                "inet_listener pop3s": {"port": 0},
            },
        }
        if self.lmtp_port:
            services["lmtp"] = {
                "inet_listener lmtp": {"address": "127.0.0.1", "port": self.lmtp_port}}
        services["stats"] = {"unix_listener stats-writer": {"mode": "0666"}}
        merge(services, self.services)
        for name, block in services.items():
            conf["service " + name] = block
        merge(conf, self.settings)
        blocks = list(self.passdbs(users_path)) + list(self.userdbs(users_path))
        blocks.append(("namespace inbox", {
            "inbox": "yes",
            "separator": "/",
            "mailbox Archive": {"auto": "create"},
            "mailbox Sent": {"auto": "create"},
        }))
        for protocol, names in self.protocol_mail_plugins.items():
            blocks.append(("protocol " + protocol, mail_plugins_conf(names, v24)))
        blocks += self.plugin_conf(v24)
        lines = render(conf, v24)
        for key, value in blocks:
            lines += render_item(key, value, v24)
        text = "\n".join(lines) + "\n"
        if self.extra_conf:
            text += textwrap.dedent(self.extra_conf) + "\n"
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write(text)

    # Extension points of the generated configuration: subclasses add to or
    # replace these lists of (name, settings) blocks (auth_harness.AuthDovecot
    # does). A name is "passdb" on 2.3 and "passdb DRIVER" on 2.4.
    def passdbs(self, users_path):
        """The passdb {} blocks, in the order Dovecot asks them."""
        if is_24():
            return [("passdb passwd-file", {"passwd_file_path": users_path,
                                            "default_password_scheme": "PLAIN"})]
        return [("passdb", {"driver": "passwd-file",
                            "args": "scheme=PLAIN username_format=%%u %s" % users_path})]

    def userdbs(self, users_path):
        """The userdb {} blocks, in the order Dovecot asks them."""
        if is_24():
            return [("userdb passwd-file", {"passwd_file_path": users_path})]
        return [("userdb", {"driver": "passwd-file",
                            "args": "username_format=%%u %s" % users_path})]

    def pick_ports(self):
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.lmtp_port = free_port() if self.lmtp else None

    def ports(self):
        return [p for p in (self.imap_port, self.pop3_port, self.lmtp_port) if p]

    def listening(self):
        """Whether every port of ours is listened on by our own master (not
        merely accepting connections: that could be another test's server)."""
        try:
            ours = process_socket_inodes(self.master.pid)
        except OSError:
            return False
        return all(listening_socket_inodes(port) & ours for port in self.ports())

    def start(self):
        """Starts Dovecot. Its ports come from free_port(), so another
        process (a parallel test's Dovecot, a redis-server) may bind one of
        them first; Dovecot then fails with "Address already in use" and we
        start again on new ports (up to 5 times). And the instance counts as
        started only when its own master holds a listening socket on each
        port (listening()), so a client never reaches another test's server
        on a port we were also handed. Ports held open for the instance's
        life (SO_REUSEPORT) do not work with Dovecot: its reuse_port = yes
        spreads connections over per-process sockets, and a held socket
        joins that group. Unix sockets would avoid ports, but the tests and
        scripts check the client's address, 127.0.0.1."""
        self._prepare_modules()
        for _ in range(5):
            if self._start_once():
                return self
            self.pick_ports()
        raise RuntimeError("dovecot: every port pick was taken; log:\n" + self.log())

    def _start_once(self):
        self._write_config()
        # Foreground master as our child: we reap it ourselves on stop.
        startup_path = os.path.join(self.dir, "startup.log")
        self.startup_log = open(startup_path, "w")
        log_before = len(self.log())
        self.master = subprocess.Popen(self.start_prefix + self.command_prefix()
                                       + ["dovecot", "-F", "-c", self.conf_path],
                                       stdin=subprocess.DEVNULL, stdout=self.startup_log,
                                       stderr=subprocess.STDOUT)
        self.proc_started = True
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.master.poll() is not None:
                self.startup_log.close()
                self.proc_started = False
                with open(startup_path) as f:
                    output = f.read() + self.log()[log_before:]
                if "Address already in use" in output:
                    return False
                raise RuntimeError("dovecot failed to start:\n" + output)
            if self.listening():
                return True
            time.sleep(0.05)
        raise RuntimeError("dovecot did not start; log:\n" + self.log())

    def stop(self):
        if not self.proc_started:
            return
        self.master.terminate()
        try:
            self.master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait()
        self.startup_log.close()
        self.proc_started = False

    def cleanup(self):
        self.stop()
        if os.environ.get("DMR_KEEP_TMP"):
            print("kept", self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- clients --------------------------------------------------------
    def imap(self, user="alice", password=PASSWORD, login=True):
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        if login:
            client.login(user, password)
        return client

    def imap_auth_plain(self, user, password=PASSWORD):
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        token = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
        client.authenticate("PLAIN", lambda _: token)
        return client

    def pop3(self, user="alice", password=PASSWORD, login=True):
        client = poplib.POP3("127.0.0.1", self.pop3_port, timeout=10)
        if login:
            client.user(user)
            client.pass_(password)
        return client

    def deliver(self, rcpt="alice", subject="test", sender="sender@example.com"):
        """Delivers one message to `rcpt` through LMTP (Dovecot's service, as
        an MTA would). Returns the server's reply to DATA as (code, text);
        raises smtplib's exceptions when the server refuses or hangs up."""
        message = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n"
                   % (sender, rcpt, subject)).encode("ascii")
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as client:
            client.ehlo_or_helo_if_needed()
            code, text = client.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            code, text = client.rcpt(rcpt)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
            code, text = client.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, text)
            return code, text.decode("utf-8", "replace")

    def maildir_count(self, user="alice", folder=""):
        """Messages stored in `user`'s maildir (INBOX, or `folder`)."""
        base = os.path.join(self.dir, "mail", user, "Maildir")
        if folder:
            base = os.path.join(base, "." + folder)
        return sum(len(os.listdir(os.path.join(base, sub)))
                   for sub in ("new", "cur") if os.path.isdir(os.path.join(base, sub)))

    # --- log --------------------------------------------------------------
    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=10):
        """Returns the first match of `pattern` (a regex) in the log."""
        regex = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            match = regex.search(self.log())
            if match:
                return match
            if time.time() > deadline:
                raise AssertionError("log has no match for %r; log:\n%s" % (pattern, self.log()[-6000:]))
            time.sleep(0.05)


class DovecotTestCase(unittest.TestCase):
    """Starts a Dovecot per test from `self.dovecot(...)`; stops it after."""

    def dovecot(self, **kwargs):
        instance = Dovecot(**kwargs)
        self.addCleanup(instance.cleanup)
        return instance.start()

    def assertLoginSessionRefused(self, instance, user="alice"):
        """The IMAP session ends right after login: the client cannot work."""
        with self.assertRaises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError, EOFError)):
            client = instance.imap(user)
            client.select("INBOX")
            client.noop()
