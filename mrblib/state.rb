# The Ruby half of the state API: Dovecot::IP, RateLimit, Counter, Distinct and List.
# The primitives (__-prefixed) are in src/mruby/bind_{ip,ratelimit,counter,distinct,list}.cpp.
# Everything is kept by the store named by mruby_store (memory, lmdb:DIR,
# redis://...): the same script gives the same answers on every backend.
#
# Store failures: RateLimit applies its fail mode (fail: :open by default:
# allowed, logged at most once a minute). Counter, Distinct and List raise
# Dovecot::StoreError, unless the call passes `fallback:` — then a failure
# returns that value and is logged at most once a minute.
#
# The return convention of every Counter, Distinct and List primitive (__incr,
# __get, __reset, __add, __count, __remove, __match, __entries), one rule for
# all of them:
# - the last argument says whether the caller gave a fallback;
# - success: the primitive's value, which may be nil or false ("no match",
#   "nothing removed");
# - a store failure with a fallback: Dovecot::Store::FAILED (defined by
#   src/mruby/state.cpp, a frozen object equal to nothing else), logged at
#   most once a minute;
# - a store failure without one: raises Dovecot::StoreError.
# Dovecot::Store.answer is the one place that turns FAILED into the fallback.
# (RateLimit#__decide takes no fallback: its fail mode answers, and the
# Decision says store_failed?.)

module Dovecot
  class StoreError < Error; end

  module Store
    # The default of every `fallback:` keyword: no fallback given.
    NO_FALLBACK = Object.new.freeze

    # The primitives' last argument: whether the caller gave a fallback.
    def self.given?(fallback)
      !NO_FALLBACK.equal?(fallback)
    end

    # The primitive's answer, or the fallback for a failure the caller
    # survives (`value` is FAILED). The one place FAILED becomes a fallback;
    # a block, if given, builds Ruby objects from a real answer only.
    # (Plain calls, no block or splat: it is on the login path.)
    def self.answer(value, fallback)
      return fallback if FAILED.equal?(value)
      block_given? ? yield(value) : value
    end
  end

  class RateLimit
    attr_reader :name, :limit, :period, :burst, :fail

    # limit hits per period seconds (Integer or Float); burst hits may pass
    # at once from an idle key (default: limit). fail: :open or :closed.
    def initialize(name, limit:, period:, burst: nil, fail: :open)
      burst ||= limit   # (a keyword default cannot name another keyword in mruby 3.1)
      @name = name.to_s
      raise ArgumentError, "rate limit name must not be empty" if @name.empty?
      @limit = limit
      @period = period
      @burst = burst
      @fail = fail
      __configure(limit, period, burst, fail.to_s)
    end

    # Records cost hits on key when they are allowed.
    def hit(key, cost: 1)
      Decision.new(*__decide(key.to_s, cost, true))
    end

    # What hit would answer now, without recording anything.
    def peek(key, cost: 1)
      Decision.new(*__decide(key.to_s, cost, false))
    end

    def inspect
      "#<Dovecot::RateLimit #{@name} #{@limit}/#{@period}s burst=#{@burst} fail=#{@fail}>"
    end

    # The answer to one hit or peek. Times are seconds (Float).
    class Decision
      # Hits still allowed right now after this one.
      attr_reader :remaining
      # 0.0 when allowed; else seconds until this hit would be allowed
      # (Float::INFINITY when its cost exceeds the burst).
      attr_reader :retry_after
      # Seconds until the key is back to its idle state (full burst).
      attr_reader :reset_after

      def initialize(allowed, remaining, retry_after, reset_after, store_failed)
        @allowed = allowed
        @remaining = remaining
        @retry_after = retry_after
        @reset_after = reset_after
        @store_failed = store_failed
      end

      def allowed?
        @allowed
      end

      def limited?
        !@allowed
      end

      # True when the store failed and the limit's fail mode decided.
      def store_failed?
        @store_failed
      end

      def inspect
        "#<Dovecot::RateLimit::Decision #{@allowed ? 'allowed' : 'limited'} " \
          "remaining=#{@remaining} retry_after=#{@retry_after} reset_after=#{@reset_after}" \
          "#{@store_failed ? ' store_failed' : ''}>"
      end
    end
  end

  # Counters with a fixed window: the first incr of an absent or expired
  # counter starts it at 0 and sets its expiry to now + ttl seconds.
  class Counter
    NO_FALLBACK = Store::NO_FALLBACK

    def self.incr(key, by: 1, ttl:, fallback: NO_FALLBACK)
      Store.answer(__incr(key.to_s, by, ttl, Store.given?(fallback)), fallback)
    end

    def self.get(key, fallback: NO_FALLBACK)
      Store.answer(__get(key.to_s, Store.given?(fallback)), fallback)
    end

    def self.reset(key, fallback: NO_FALLBACK)
      Store.answer(__reset(key.to_s, Store.given?(fallback)), fallback)
    end
  end

  # How many distinct members (any bytes: user names, networks ...) were
  # added under a name within a window, estimated by a HyperLogLog (the
  # store's distinct_add / distinct_count; Redis PFADD / PFCOUNT): standard
  # error 0.81%, exact or one off for small counts, 12 KiB at most per name
  # whatever the count. Time is cut into buckets of `window` seconds; a count
  # covers the current and the previous bucket, so a member counts for at
  # least `window` seconds and less than twice that.
  class Distinct
    attr_reader :name, :window

    def initialize(name, window:)
      @name = name.to_s
      raise ArgumentError, "distinct name must not be empty" if @name.empty?
      unless window.is_a?(Numeric) && window > 0
        raise ArgumentError, "window must be a positive number of seconds"
      end
      @window = window
    end

    # Adds member (anything: its to_s bytes); returns the estimated count,
    # member included.
    def add(member, fallback: Store::NO_FALLBACK)
      Store.answer(Distinct.__add(@name, member.to_s, @window, Store.given?(fallback)), fallback)
    end

    # The estimated count (0: nothing added within the window).
    def count(fallback: Store::NO_FALLBACK)
      Store.answer(Distinct.__count(@name, @window, Store.given?(fallback)), fallback)
    end

    def inspect
      "#<Dovecot::Distinct #{@name} window=#{@window}s>"
    end
  end

  # A named list of IPs, CIDRs (IPv4 and IPv6) and strings, each with an
  # optional expiry and reason. IPs match by longest prefix, strings exactly.
  class List
    attr_reader :name

    # One entry as stored: value ("203.0.113.0/24", "192.0.2.1", "alice"),
    # reason (nil if none), expires_at (Unix time in seconds, nil: never).
    class Entry
      attr_reader :value, :reason, :expires_at

      def initialize(value, reason, expires_at)
        @value = value
        @reason = reason
        @expires_at = expires_at
      end

      def to_s
        @value
      end

      def inspect
        "#<Dovecot::List::Entry #{@value}#{@reason ? " (#{@reason})" : ''}" \
          "#{@expires_at ? " expires_at=#{@expires_at}" : ''}>"
      end
    end

    def initialize(name)
      @name = name.to_s
      if @name.empty? || @name.bytesize > 100 || @name.include?("\0")
        raise ArgumentError, "list name must be 1 to 100 bytes without NUL"
      end
    end

    # ttl: seconds until the entry expires (nil: never). Replaces an equal entry.
    def add(entry, ttl: nil, reason: nil, fallback: Store::NO_FALLBACK)
      Store.answer(__add(entry.to_s, ttl, reason.to_s, Store.given?(fallback)), fallback)
    end

    # true if a live entry was removed.
    def remove(entry, fallback: Store::NO_FALLBACK)
      Store.answer(__remove(entry.to_s, Store.given?(fallback)), fallback)
    end

    # The live Entry matching value (a Dovecot::IP, an address, a CIDR or a
    # string), or nil.
    def match(value, fallback: Store::NO_FALLBACK)
      found = __match(value.to_s, Store.given?(fallback))
      Store.answer(found, fallback) { found && Entry.new(*found) }
    end

    def include?(value, fallback: Store::NO_FALLBACK)
      found = __match(value.to_s, Store.given?(fallback))
      Store.answer(found, fallback) { !found.nil? }
    end

    # Every live entry (in no particular order).
    def entries(fallback: Store::NO_FALLBACK)
      found = __entries(Store.given?(fallback))
      Store.answer(found, fallback) { found.map { |values| Entry.new(*values) } }
    end

    def inspect
      "#<Dovecot::List #{@name}>"
    end
  end
end
