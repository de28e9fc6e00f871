# What every ready-made policy (Dovecot::Policy::BruteForce, CommandRate,
# Distributed) shares: enable!, once per state name and script; and which
# clients the login policies leave alone (Trust), and what the network login
# policies share (NetworkPolicy).
#
# A policy keeps its state under a name (BruteForce: `list:`, CommandRate:
# `name:`). enable! again with the same name and the same options (a script
# included twice, a copy-pasted line) returns the policy the first call made
# and registers no handler, so nothing is counted twice. The same name with
# other options raises ArgumentError: one state under two sets of rules is a
# mistake. Another name is another policy (CommandRate: a general limit and
# one for SEARCH, each with its own name).

module Dovecot
  module Policy
    module Enable
      # Creates the policy with `options`, registers its handlers and returns it.
      def enable!(**options)
        policy = new(**options)   # validates the options, touches no state
        @enabled ||= {}
        key = policy.state_name
        earlier = @enabled[key]
        if earlier
          return earlier[1] if earlier[0] == options
          raise ArgumentError, "#{name} #{key.inspect} is already enabled with options " \
                               "#{earlier[0].inspect}, not #{options.inspect}"
        end
        policy.install
        @enabled[key] = [options, policy]
        policy
      end
    end

    # The clients a login policy (BruteForce, Distributed) leaves alone unless
    # it was created with count_trusted: true: loopback addresses, and
    # trusted connections (login_trusted_networks, or from the host itself)
    # that speak for themselves. A client address a trusted proxy forwards
    # (IMAP ID x-originating-ip, XCLIENT) is the client's, counted either way.
    # The including class sets @count_trusted.
    module Trust
      LOOPBACK = [Dovecot::IP.new("127.0.0.0/8"), Dovecot::IP.new("::1")]

      def count_trusted
        @count_trusted
      end

      # Whether the request (an Auth or AuthResult) comes from such a client.
      def trusted_client?(req)
        return false if @count_trusted
        ip = req.remote_ip
        ip = Dovecot::IP.parse(ip.to_s) if ip && !ip.is_a?(Dovecot::IP)
        return true if ip && LOOPBACK.any? { |net| net.include?(ip) }
        return false unless req.trusted?
        real = req.real_remote_ip
        real.nil? || ip.nil? || real.to_s == ip.to_s
      end
    end

    # What the network login policies (BruteForce, Distributed) share: their
    # state's name, their two auth handlers, and the network a client
    # address counts under. The including class sets @list, @exempt,
    # @ipv4_prefix, @ipv6_prefix and @count_trusted, and defines check(auth)
    # and record(res).
    module NetworkPolicy
      include Trust

      # The name its state is kept under (enable! enables one policy per name).
      def state_name
        @list
      end

      def install
        policy = self
        Dovecot.on_auth { |auth| policy.check(auth) }
        Dovecot.on_auth_result { |res| policy.record(res) }
        self
      end

      # The client's network (a Dovecot::IP), nil for no or an exempt address.
      def network(ip)
        return nil if ip.nil?
        ip = Dovecot::IP.parse(ip.to_s) unless ip.is_a?(Dovecot::IP)
        return nil if ip.nil? || @exempt.any? { |net| net.include?(ip) }
        ip.prefix(ip.ipv4? ? @ipv4_prefix : @ipv6_prefix)
      end
    end
  end
end
