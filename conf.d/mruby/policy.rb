# Example policy for dovecot-mruby: what the README's demo and install run.
# Handlers run in registration order; the first verdict wins.

# The audit trail: one JSON line per login, mailbox open, IMAP/POP3 command
# (a refused one with its NO), message read and logout, into the sinks of
# mruby_audit (90-mruby.conf: /var/log/dovecot-mruby/audit.log). First, so
# that sessions the handlers below refuse are recorded too.
Dovecot::Audit.enable!

# Accounts an operator has locked: the session ends right after login.
SUSPENDED = ["mallory"]

Dovecot.on_session_start do |s|
  Dovecot.log.info("policy: #{s.user} started #{s.service} from #{s.remote_ip}")
  s.deny("Account suspended") if SUSPENDED.include?(s.user)
end

# A mailbox only some users may open: others get NO [NOPERM].
Dovecot.on_mailbox_open do |box|
  if box.name == "Restricted" && box.session["role"] != "auditor"
    box.deny("Restricted is for auditors only")
  end
end

# A command limit: 30 searches a minute per user, in the store every mail
# process shares (IMAP command events need imap_mruby: 90-mruby.conf). The
# 31st gets a tagged NO [LIMIT] and the session goes on.
SEARCHES = Dovecot::RateLimit.new("imap-search", limit: 30, period: 60)
Dovecot::IMAP.before_command do |cmd|
  if cmd.name.end_with?("SEARCH") && !SEARCHES.hit(cmd.session.user).allowed?
    cmd.reject("Too many searches, slow down", code: "LIMIT")
  end
end

Dovecot.on_session_end do |s|
  Dovecot.log.info("policy: #{s.user} ended #{s.service}")
end
