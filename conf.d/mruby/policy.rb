# Example policy for dovecot-mruby: what the README's demo runs.
# Handlers run in registration order; the first verdict wins.

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

Dovecot.on_session_end do |s|
  Dovecot.log.info("policy: #{s.user} ended #{s.service}")
end
