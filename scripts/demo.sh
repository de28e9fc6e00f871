#!/usr/bin/env bash
# Sets up (packages, build) and runs the demo: a private Dovecot on 127.0.0.1
# with the plugins from ./build: the login policy conf.d/mruby/auth.rb in the
# auth process (passdb driver mruby, brute-force protection on LMDB) and the
# session policy conf.d/mruby/policy.rb in the mail processes. It never
# touches the system's Dovecot: the auth module is loaded from the build tree
# through a private mount namespace. Ctrl-C stops it.
#   IMAP 127.0.0.1:10143, POP3 127.0.0.1:10110; users alice, bob, carol
#   (role=auditor), mallory (suspended) and eve (closed), password "secret".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup.sh

imap_port=${DEMO_IMAP_PORT:-10143}
pop3_port=${DEMO_POP3_PORT:-10110}
run=${DEMO_DIR:-/tmp/dovecot-mruby-demo}
rm -rf "$run"
mkdir -p "$run/mail" "$run/mruby"
chmod 755 "$run"
chown nobody:nogroup "$run/mail"
install -m 0644 conf.d/mruby/policy.rb "$run/mruby/policy.rb"
install -m 0644 conf.d/mruby/auth.rb "$run/mruby/auth.rb"
# The store every process shares (auth as dovecot, auth-workers as root,
# mail processes as nobody): one group, setgid directory, files 0660.
install -d -o root -g nogroup -m 2770 "$run/lmdb"
# The audit trail (policy.rb and auth.rb: Dovecot::Audit.enable!), shared the
# same way: $run/audit/audit.log.
install -d -o root -g nogroup -m 2770 "$run/audit"
# The plugins, where mail processes can read them after they became the mail
# user (a clone under /root is not readable to nobody).
install -d -m 0755 "$run/modules"
install -m 0644 build/src/dovecot/*.so "$run/modules/"
# Dovecot loads auth modules only from its compiled-in directory: give this
# Dovecot (alone) a copy of it with our module added.
mkdir -p "$run/auth-modules"
cp -a /usr/lib/dovecot/modules/auth/. "$run/auth-modules/"
cp build/src/dovecot/libauthdb_mruby.so build/src/dovecot/dmr_store_backends.so "$run/auth-modules/"

uid=$(id -u nobody); gid=$(getent group nogroup | cut -d: -f3)
cat > "$run/users" <<USERS
alice:{PLAIN}secret:$uid:$gid::$run/mail/alice::
bob:{PLAIN}secret:$uid:$gid::$run/mail/bob::
carol:{PLAIN}secret:$uid:$gid::$run/mail/carol::userdb_role=auditor
mallory:{PLAIN}secret:$uid:$gid::$run/mail/mallory::
eve:{PLAIN}secret:$uid:$gid::$run/mail/eve::
USERS

cat > "$run/dovecot.conf" <<CONF
base_dir = $run/run
state_dir = $run/state
instance_name = dovecot-mruby-demo
log_path = /dev/stderr
listen = 127.0.0.1
protocols = imap pop3
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Info lines of the auth process (the login policy's Dovecot.log.info too)
# are logged only with auth_verbose.
auth_verbose = yes
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_plugin_dir = $run/modules
service imap-login {
  inet_listener imap {
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $pop3_port
  }
  inet_listener pop3s {
    port = 0
  }
}
service auth {
  extra_groups = nogroup
}
# Login policy first: no verdict = the passwd-file passdb below decides.
passdb {
  driver = mruby
  args = file=$run/mruby/auth.rb store=lmdb:$run/lmdb audit=file:$run/audit/audit.log
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $run/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $run/users
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Restricted {
    auto = create
  }
}
!include $root/conf.d/90-mruby.conf
# The demo's store is shared through nogroup (above), not dovecot-mruby.
mail_access_groups =
plugin {
  mruby_script = $run/mruby/policy.rb
  mruby_store = lmdb:$run/lmdb
  mruby_audit = file:$run/audit/audit.log
}
CONF

cat <<MSG
dovecot-mruby demo: IMAP 127.0.0.1:$imap_port, POP3 127.0.0.1:$pop3_port
  users alice, bob, carol (auditor), mallory (suspended), eve (closed); password: secret
  login policy:   $run/mruby/auth.rb (brute-force protection; reloaded when changed)
  session policy: $run/mruby/policy.rb (edit it; new sessions pick it up)
  audit trail:    $run/audit/audit.log (one JSON line per login, session, command, ...)
Try:
  python3 -c 'import imaplib; c=imaplib.IMAP4("127.0.0.1",$imap_port); c.login("alice","secret"); print(c.select("Restricted")); print(c.select("INBOX"))'
  python3 -c 'import imaplib; c=imaplib.IMAP4("127.0.0.1",$imap_port); c.login("mallory","secret"); print(c.select("INBOX"))'
  python3 -c 'import imaplib; c=imaplib.IMAP4("127.0.0.1",$imap_port); c.login("eve","secret")'
  brute force: 127.0.0.1 is loopback, which BruteForce never counts; add count_trusted: true to
  its enable! line in auth.rb, and ten wrong passwords ban 127.0.0.0/24 for 10 minutes
Log lines follow. Ctrl-C stops the demo.
MSG
exec unshare -m --propagation private sh -c \
  'mount --bind "$1" /usr/lib/dovecot/modules/auth && exec dovecot -F -c "$2"' \
  sh "$run/auth-modules" "$run/dovecot.conf"
