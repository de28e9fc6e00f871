# What every ready-made policy (Dovecot::Policy::BruteForce, CommandRate)
# shares: enable!, once per state name and script.
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
  end
end
