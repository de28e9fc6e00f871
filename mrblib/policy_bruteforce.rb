# Dovecot::Policy::BruteForce: failed logins counted per client network and
# (optionally) per user; a network with too many failures within the window
# is banned for a while through a Dovecot::List, so every auth process and
# every protocol (IMAP, POP3, SMTP AUTH ...) refuses it. Enable in the auth
# policy script (passdb driver = mruby) with one line:
#
#   Dovecot::Policy::BruteForce.enable!
#   Dovecot::Policy::BruteForce.enable!(limit: 5, window: 300, tarpit: 1)
#
# See docs/ruby-api.md ("Ready-made policies") for every option.

module Dovecot
  module Policy
    class BruteForce
      LOOPBACK = Trust::LOOPBACK
      attr_reader :limit, :window, :ban, :ipv4_prefix, :ipv6_prefix, :user_limit,
                  :tarpit, :tarpit_max, :list, :message

      # enable!(**options): registers the policy's on_auth and on_auth_result
      # handlers, once (mrblib/policy.rb).
      extend Enable

      # limit:       failed logins from one network within `window` seconds
      #              that trigger a ban (the next attempt is refused)
      # window:      seconds a failure counts (a fixed window from the first one)
      # ban:         seconds a network stays banned (default: window)
      # ipv4_prefix, ipv6_prefix: how clients are grouped (/24 and /64)
      # user_limit:  failed logins for one user name (from anywhere) within the
      #              window that ban the user name too; nil (default) = off,
      #              because anyone could then lock a victim out
      # tarpit:      seconds of auth delay per failure already counted for the
      #              client's network (nil = off), at most tarpit_max
      # exempt:      networks never counted or banned ("10.0.0.0/8", ...)
      # count_trusted: count (and ban) loopback clients and connections the
      #              login process trusts (login_trusted_networks, or from the
      #              host itself) too; false (default): they are never
      #              counted nor refused, so a webmail or a local script that
      #              mistypes a password cannot lock everyone out. A client
      #              address a trusted proxy forwards (IMAP ID
      #              x-originating-ip, XCLIENT) is counted either way. Over
      #              TLS Dovecot 2.3 does not say whether the connection is
      #              trusted: list such networks in exempt:.
      # list:        the Dovecot::List holding the bans (also the key prefix)
      # message:     what a refused client is told
      def initialize(limit: 10, window: 600, ban: nil, ipv4_prefix: 24, ipv6_prefix: 64,
                     user_limit: nil, tarpit: nil, tarpit_max: 5, exempt: [],
                     list: "bruteforce", message: "Too many failed logins, try again later",
                     count_trusted: false)
        raise ArgumentError, "limit must be at least 1" unless limit.is_a?(Integer) && limit >= 1
        raise ArgumentError, "window must be positive" unless window.is_a?(Numeric) && window > 0
        @limit = limit
        @window = window
        @ban = ban || window
        @ipv4_prefix = ipv4_prefix
        @ipv6_prefix = ipv6_prefix
        @user_limit = user_limit
        @tarpit = tarpit
        @tarpit_max = tarpit_max
        @exempt = exempt.map { |net| Dovecot::IP.new(net) }
        @list = list.to_s
        @bans = Dovecot::List.new(@list)
        @message = message
        @count_trusted = count_trusted ? true : false
      end

      # count_trusted, trusted_client?(req), state_name, install and
      # network(ip): Policy::NetworkPolicy (policy.rb), shared with
      # Policy::Distributed.
      include NetworkPolicy

      # on_auth: refuse banned networks and users; tarpit repeat offenders.
      # A store failure lets the login through (Dovecot's own penalty applies).
      def check(auth)
        return nil if trusted_client?(auth)
        net = network(auth.remote_ip)
        if net && @bans.include?(net, fallback: false)
          return auth.reject(@message)
        end
        if @user_limit && @bans.include?(user_key(auth.user), fallback: false)
          return auth.reject(@message)
        end
        if @tarpit && net
          failures = Dovecot::Counter.get(network_key(net), fallback: 0)
          if failures > 0
            delay = @tarpit * failures
            auth.delay(delay > @tarpit_max ? @tarpit_max : delay)
          end
        end
        nil
      end

      # on_auth_result: count a failed attempt; ban at the limit. Attempts
      # refused by an existing ban are not counted, so a ban ends on time.
      def record(res)
        return if res.success? || res.internal_failure?
        return if trusted_client?(res)
        net = network(res.remote_ip)
        if net && !@bans.include?(net, fallback: true)
          failures = Dovecot::Counter.incr(network_key(net), ttl: @window, fallback: nil)
          if failures && failures >= @limit
            @bans.add(net, ttl: @ban, reason: "#{failures} failed logins", fallback: nil)
            Dovecot.log.warning("brute force: #{net} banned for #{@ban}s after " \
                                "#{failures} failed logins")
          end
        end
        user = res.user
        if @user_limit && user && !user.empty? && !@bans.include?(user_key(user), fallback: true)
          failures = Dovecot::Counter.incr(user_key(user), ttl: @window, fallback: nil)
          if failures && failures >= @user_limit
            @bans.add(user_key(user), ttl: @ban, reason: "#{failures} failed logins",
                      fallback: nil)
            Dovecot.log.warning("brute force: user #{user} banned for #{@ban}s after " \
                                "#{failures} failed logins")
          end
        end
        nil
      end

      # Lifts a ban (of a network, an address in it, or a user name) and
      # forgets its failures.
      def unban(who)
        net = network(who)
        if net
          Dovecot::Counter.reset(network_key(net))
          @bans.remove(net)
        else
          Dovecot::Counter.reset(user_key(who))
          @bans.remove(user_key(who))
        end
      end

      def network_key(net)
        "#{@list}:net:#{net}"
      end

      def user_key(user)
        "user:#{user}"
      end
    end
  end
end
