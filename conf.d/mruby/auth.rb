# Example login policy for dovecot-mruby's passdb driver (auth process):
# what the README's demo runs in front of its passwd-file passdb. It acts
# before the password is checked; no verdict = the next passdb decides.

# The audit trail: one auth.login record per login attempt (result, reason,
# the policy's verdict), whichever passdb decided it, into the passdb's audit
# sinks (auth-mruby.conf.ext: the same file as the mail processes').
Dovecot::Audit.enable!

# Brute-force protection: 10 failed logins from one /24 (IPv4) or /64 (IPv6)
# within 10 minutes ban that network for 10 minutes (ban: defaults to the
# window; ban: 3600 for an hour), in every protocol, through a Dovecot::List
# kept in the store (LMDB: shared by every auth process). Loopback and
# login_trusted_networks clients are never counted (a webmail that mistypes
# cannot ban itself); count_trusted: true counts them too.
Dovecot::Policy::BruteForce.enable!(limit: 10, window: 600)

# An account closed for logins, with a text the client shows.
CLOSED = { "eve" => "This account was closed; contact the helpdesk" }

Dovecot.on_auth do |auth|
  reason = CLOSED[auth.user]
  auth.reject(reason) if reason
end

# Info lines of the auth process are shown with auth_verbose = yes only.
Dovecot.on_auth_result do |res|
  Dovecot.log.info("auth: #{res.user} from #{res.remote_ip}: " +
                   (res.success? ? "ok" : "failed (#{res.reason})"))
end
