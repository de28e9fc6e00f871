#!/usr/bin/env bash
# Sets up (packages, build) and runs the demo: a private Dovecot on 127.0.0.1
# with the plugin from ./build and the example policy conf.d/mruby/policy.rb.
# It never touches the system's Dovecot. Ctrl-C stops it.
#   IMAP 127.0.0.1:10143, POP3 127.0.0.1:10110; users alice, bob, carol
#   (role=auditor) and mallory (suspended), password "secret".
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

uid=$(id -u nobody); gid=$(getent group nogroup | cut -d: -f3)
cat > "$run/users" <<USERS
alice:{PLAIN}secret:$uid:$gid::$run/mail/alice::
bob:{PLAIN}secret:$uid:$gid::$run/mail/bob::
carol:{PLAIN}secret:$uid:$gid::$run/mail/carol::userdb_role=auditor
mallory:{PLAIN}secret:$uid:$gid::$run/mail/mallory::
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
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_plugin_dir = $root/build/src/dovecot
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
plugin {
  mruby_script = $run/mruby/policy.rb
}
CONF

cat <<MSG
dovecot-mruby demo: IMAP 127.0.0.1:$imap_port, POP3 127.0.0.1:$pop3_port
  users alice, bob, carol (auditor), mallory (suspended); password: secret
  policy: $run/mruby/policy.rb (edit it; new sessions pick it up)
Try:
  python3 -c 'import imaplib; c=imaplib.IMAP4("127.0.0.1",$imap_port); c.login("alice","secret"); print(c.select("Restricted")); print(c.select("INBOX"))'
  python3 -c 'import imaplib; c=imaplib.IMAP4("127.0.0.1",$imap_port); c.login("mallory","secret"); print(c.select("INBOX"))'
Log lines follow. Ctrl-C stops the demo.
MSG
exec dovecot -F -c "$run/dovecot.conf"
