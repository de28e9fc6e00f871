# A ready-made audit policy. Enable it with one line in the policy script:
#
#   Dovecot::Audit.enable!
#
# and choose sinks with the plugin setting mruby_audit (file:/path, syslog,
# event). Records (kind): session.login, mailbox.open, imap.command /
# pop3.command (every command with its outcome), message.read (a message's
# content read by the client: IMAP FETCH of a body, POP3 RETR/TOP; once per
# message per command, with mailbox, UID and Message-ID) and session.logout
# with Dovecot's counters. In the auth process (passdb driver mruby with the
# audit= arg) it records every login attempt, auth.login: mechanism, result
# (success, failure, internal_failure), reason, and the policy's verdict
# (policy: reject / tempfail, nil when no mruby policy refused it), and in
# shadow mode the verdict that was not applied (shadowed: reject / tempfail /
# delay, nil when none).
module Dovecot
  module Audit
    def self.enable!(commands: true, reads: true, mailboxes: true, logins: true)
      return false if @enabled
      @enabled = true
      Dovecot.on_auth_result { |res| audit_login(res) } if logins
      Dovecot.on_session_start do |s|
        Dovecot.audit("session.login", secured: s.secured?)
        nil
      end
      Dovecot.on_session_end do |s|
        Dovecot.audit("session.logout", stats: s.stats)
      end
      if mailboxes
        Dovecot.on_mailbox_open do |box|
          Dovecot.audit("mailbox.open", mailbox: box.name, readonly: box.readonly?)
          nil
        end
      end
      Dovecot::IMAP.after_command { |cmd| audit_command("imap.command", cmd) } if commands
      Dovecot::POP3.after_command { |cmd| audit_command("pop3.command", cmd) } if commands
      if reads
        # The command a read belongs to: reads are reported while it runs.
        Dovecot::IMAP.before_command { |cmd| @command = cmd.name; nil }
        Dovecot::POP3.before_command { |cmd| @command = cmd.name; nil }
        Dovecot.on_message_read do |m|
          Dovecot.audit("message.read", command: @command, mailbox: m.mailbox, uid: m.uid,
                        message_id: m.message_id)
        end
      end
      true
    end

    def self.audit_command(kind, cmd)
      Dovecot.audit(kind, command: cmd.name, tag: cmd.tag, args: cmd.args, reply: cmd.reply,
                    reply_text: cmd.reply_text, duration_ms: (cmd.duration * 1000).round(3))
    end

    # The policy verdict in on_auth_result's reason (core::policy_reason).
    POLICY_REASONS = { "rejected by policy" => "reject",
                       "temporary failure by policy" => "tempfail" }

    def self.audit_login(res)
      reason = res.reason
      policy = nil
      POLICY_REASONS.each do |prefix, verdict|
        policy = verdict if reason && reason[0, prefix.size] == prefix
      end
      result = if res.success? then "success"
               elsif res.internal_failure? then "internal_failure"
               else "failure"
               end
      Dovecot.audit("auth.login", mechanism: res.mechanism, result: result, reason: reason,
                    policy: policy, shadowed: res.shadowed)
      nil
    end
  end
end
