# Dovecot::Policy::CommandRate: per-user command rate limits for IMAP and
# POP3, one GCRA limit shared by every session of the user (IMAP and POP3,
# all processes: it lives in the store). Enable in the mail policy script
# (mruby_script) with one line:
#
#   Dovecot::Policy::CommandRate.enable!(limit: 300, period: 60)
#
# Over the limit, an IMAP command gets "NO [LIMIT] ..." (the session
# continues) and a POP3 command "-ERR ...". See docs/ruby-api.md.

module Dovecot
  module Policy
    class CommandRate
      attr_reader :rate_limit, :protocols, :commands, :exempt, :message

      # enable!(**options): registers the before_command handlers, once
      # (mrblib/policy.rb).
      extend Enable

      # limit, period, burst, fail: as Dovecot::RateLimit (burst defaults to limit)
      # protocols: [:imap, :pop3] or one of them
      # commands:  only these command names count (nil: every command)
      # exempt:    never counted or refused (LOGOUT, QUIT: a client can always leave)
      # name:      the RateLimit's name (limits of different names never share state)
      def initialize(limit: 300, period: 60, burst: nil, fail: :open, protocols: [:imap, :pop3],
                     commands: nil, exempt: ["LOGOUT", "QUIT"], name: "commands",
                     message: "Too many commands, slow down")
        @rate_limit = Dovecot::RateLimit.new(name, limit: limit, period: period, burst: burst,
                                             fail: fail)
        @protocols = protocols.is_a?(Array) ? protocols : [protocols]
        @commands = commands && commands.map { |c| c.to_s.upcase }
        @exempt = exempt.map { |c| c.to_s.upcase }
        @message = message
      end

      # The name its state is kept under (enable! enables one policy per name).
      def state_name
        @rate_limit.name
      end

      def install
        policy = self
        if @protocols.include?(:imap)
          Dovecot::IMAP.before_command { |cmd| policy.check(cmd, :imap) }
        end
        if @protocols.include?(:pop3)
          Dovecot::POP3.before_command { |cmd| policy.check(cmd, :pop3) }
        end
        self
      end

      def check(cmd, protocol)
        name = cmd.name.upcase
        return nil if @exempt.include?(name)
        return nil if @commands && !@commands.include?(name)
        decision = @rate_limit.hit(cmd.session.user)
        return nil if decision.allowed?
        text = "#{@message} (retry in #{decision.retry_after.ceil}s)"
        if protocol == :imap
          cmd.reject(text, code: "LIMIT")
        else
          cmd.reject(text)
        end
        nil
      end
    end
  end
end
