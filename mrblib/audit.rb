# A ready-made audit policy. Enable it with one line in the policy script:
#
#   Dovecot::Audit.enable!
#
# and choose sinks with the plugin setting mruby_audit (file:/path, syslog,
# event). Records (kind): session.login, mailbox.open, imap.command /
# pop3.command (every command with its outcome), message.read (IMAP FETCH of
# a body, POP3 RETR/TOP) and session.logout with Dovecot's counters.
module Dovecot
  module Audit
    # FETCH items that return message content (not only flags or envelope).
    BODY_ITEMS = ["BODY[", "BODY.PEEK[", "BINARY[", "BINARY.PEEK[", "RFC822 ", "RFC822)",
                  "RFC822.TEXT"]

    def self.reads_body?(args)
      items = args.to_s.upcase + " "
      BODY_ITEMS.any? { |item| items.include?(item) }
    end

    def self.enable!(commands: true, reads: true, mailboxes: true)
      return false if @enabled
      @enabled = true
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
      Dovecot::IMAP.before_command do |cmd|
        @selected = nil if cmd.name == "CLOSE" || cmd.name == "UNSELECT"
        nil
      end
      Dovecot::IMAP.after_command do |cmd|
        if (cmd.name == "SELECT" || cmd.name == "EXAMINE") && cmd.reply == "OK"
          name = cmd.args.to_s
          name = name[1..-2] if name.size >= 2 && name[0] == '"' && name[-1] == '"'
          @selected = name
        end
        audit_command("imap.command", cmd) if commands
        if reads && cmd.reply == "OK" && cmd.name.end_with?("FETCH") && reads_body?(cmd.args)
          Dovecot.audit("message.read", command: cmd.name, mailbox: @selected,
                        messages: cmd.args.to_s.split(" ", 2)[0], uid: cmd.name.start_with?("UID"))
        end
      end
      Dovecot::POP3.after_command do |cmd|
        audit_command("pop3.command", cmd) if commands
        if reads && cmd.reply == "+OK" && (cmd.name == "RETR" || cmd.name == "TOP")
          Dovecot.audit("message.read", command: cmd.name, mailbox: "INBOX",
                        message: cmd.args.to_s.split(" ", 2)[0])
        end
      end
      true
    end

    def self.audit_command(kind, cmd)
      Dovecot.audit(kind, command: cmd.name, tag: cmd.tag, args: cmd.args, reply: cmd.reply,
                    reply_text: cmd.reply_text, duration_ms: (cmd.duration * 1000).round(3))
    end
  end
end
