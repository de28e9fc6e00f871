# Dovecot::Policy::Distributed: the attacks BruteForce does not see, counted
# as distinct counts (Dovecot::Distinct, HyperLogLog) of failed logins:
#
# - credential stuffing: one network failing logins for many different user
#   names (a few attempts each, under any per-user limit). More than `users`
#   distinct user names from one network within the window ban the network
#   (a Dovecot::List, as BruteForce does).
# - distributed guessing: one user failing from many networks (a few
#   attempts each, under any per-network limit). More than `networks`
#   distinct networks within the window give that user's logins a growing
#   tarpit: `tarpit` seconds per network above the threshold, at most
#   `tarpit_max`. Never a lockout (an attacker could use one against the
#   user): the right password still gets in, after the delay.
#
#   Dovecot::Policy::Distributed.enable!
#   Dovecot::Policy::Distributed.enable!(users: 20, networks: 5, window: 3600)
#
# See docs/ruby-api.md ("Ready-made policies") for every option.

module Dovecot
  module Policy
    class Distributed
      attr_reader :users, :networks, :window, :ban, :ipv4_prefix, :ipv6_prefix, :tarpit,
                  :tarpit_max, :list, :message

      # enable!(**options): registers the policy's on_auth and on_auth_result
      # handlers, once (mrblib/policy.rb).
      extend Enable
      # count_trusted, trusted_client?(req), state_name, install and
      # network(ip): Policy::NetworkPolicy (mrblib/policy.rb).
      include NetworkPolicy

      # users:       distinct user names with failed logins from one network
      #              within the window above which the network is banned
      # networks:    distinct networks with failed logins for one user within
      #              the window above which that user's logins are tarpitted
      # window:      seconds an attempt counts (at least this, under twice
      #              it: Dovecot::Distinct's buckets)
      # ban:         seconds a network stays banned (default: window)
      # ipv4_prefix, ipv6_prefix: how clients are grouped (/24 and /64)
      # tarpit:      seconds of auth delay per network above `networks`
      # tarpit_max:  the most a login is delayed
      # exempt:      networks never counted, banned or delayed
      # count_trusted: as BruteForce: false (default) leaves loopback and
      #              trusted connections alone (Policy::Trust)
      # list:        the Dovecot::List holding the bans (also the key prefix)
      # message:     what a refused client is told
      def initialize(users: 20, networks: 5, window: 3600, ban: nil, ipv4_prefix: 24,
                     ipv6_prefix: 64, tarpit: 1, tarpit_max: 15, exempt: [],
                     list: "distributed", message: "Too many failed logins, try again later",
                     count_trusted: false)
        raise ArgumentError, "users must be at least 1" unless users.is_a?(Integer) && users >= 1
        unless networks.is_a?(Integer) && networks >= 1
          raise ArgumentError, "networks must be at least 1"
        end
        raise ArgumentError, "window must be positive" unless window.is_a?(Numeric) && window > 0
        unless tarpit.is_a?(Numeric) && tarpit >= 0 && tarpit_max.is_a?(Numeric) && tarpit_max >= 0
          raise ArgumentError, "tarpit and tarpit_max must be seconds (>= 0)"
        end
        @users = users
        @networks = networks
        @window = window
        @ban = ban || window
        @ipv4_prefix = ipv4_prefix
        @ipv6_prefix = ipv6_prefix
        @tarpit = tarpit
        @tarpit_max = tarpit_max
        @exempt = exempt.map { |net| Dovecot::IP.new(net) }
        @list = list.to_s
        @bans = Dovecot::List.new(@list)
        @message = message
        @count_trusted = count_trusted ? true : false
      end

      # The delay (seconds) for a user failed from `count` distinct networks.
      def tarpit_delay(count)
        return 0 if count <= @networks
        delay = @tarpit * (count - @networks)
        delay > @tarpit_max ? @tarpit_max : delay
      end

      # on_auth: refuse banned networks; tarpit a user tried from too many
      # networks. A store failure lets the login through undelayed.
      def check(auth)
        return nil if trusted_client?(auth)
        net = network(auth.remote_ip)
        return nil unless net
        return auth.reject(@message) if @bans.include?(net, fallback: false)
        user = auth.user
        return nil if user.nil? || user.empty?
        count = Dovecot::Distinct.new(user_key(user), window: @window).count(fallback: 0)
        delay = tarpit_delay(count)
        if delay > 0
          auth.delay(delay)
          Dovecot.log.info("distributed: user #{user} failed from #{count} networks, " \
                           "tarpit #{delay}s")
        end
        nil
      end

      # on_auth_result: a failed login adds its user name to the network's
      # set and its network to the user's; a network over `users` is banned.
      # Attempts refused by an existing ban are not counted again.
      def record(res)
        return if res.success? || res.internal_failure?
        return if trusted_client?(res)
        net = network(res.remote_ip)
        user = res.user
        return if net.nil? || user.nil? || user.empty?
        Dovecot::Distinct.new(user_key(user), window: @window).add(net, fallback: nil)
        return if @bans.include?(net, fallback: true)
        count = Dovecot::Distinct.new(network_key(net), window: @window).add(user, fallback: nil)
        if count && count > @users
          @bans.add(net, ttl: @ban, reason: "failed logins for #{count} users", fallback: nil)
          Dovecot.log.warning("distributed: #{net} banned for #{@ban}s after failed logins " \
                              "for #{count} distinct users")
        end
        nil
      end

      # Lifts a network's ban (its distinct count ends with its window).
      def unban(who)
        net = network(who)
        @bans.remove(net || who)
      end

      def network_key(net)
        "#{@list}:users:#{net}"
      end

      def user_key(user)
        "#{@list}:networks:#{user}"
      end
    end
  end
end
