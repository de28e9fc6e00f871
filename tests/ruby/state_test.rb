# The state API's Ruby half (mrblib/state.rb): the one fallback helper
# (Dovecot::Store.answer) and the return convention of the store primitives.

test "Counter and List answer their values on a working store" do
  assert_equal 1, Dovecot::Counter.incr("k", ttl: 60)
  assert_equal 3, Dovecot::Counter.incr("k", by: 2, ttl: 60, fallback: -1)
  assert_equal 3, Dovecot::Counter.get("k", fallback: -1)
  assert_equal true, Dovecot::Counter.reset("k")
  assert_equal 0, Dovecot::Counter.get("k")
  list = Dovecot::List.new("blocked")
  assert_equal true, list.add("192.0.2.0/24", reason: "test", fallback: :failed)
  entry = list.match("192.0.2.7", fallback: :failed)
  assert_equal Dovecot::List::Entry, entry.class
  assert_equal ["192.0.2.0/24", "test"], [entry.value, entry.reason]
  assert_equal true, list.include?("192.0.2.7", fallback: :failed)
  assert_equal ["192.0.2.0/24"], list.entries(fallback: :failed).map(&:value)
  assert_equal true, list.remove("192.0.2.0/24", fallback: :failed)
end

test "nil and false are answers, not failures, on a working store" do
  list = Dovecot::List.new("blocked")
  assert_equal nil, list.match("192.0.2.7", fallback: :failed)
  assert_equal false, list.include?("192.0.2.7", fallback: :failed)
  assert_equal false, list.remove("192.0.2.7", fallback: :failed)
  assert_equal [], list.entries(fallback: :failed)
end

test "every primitive answers Dovecot::Store::FAILED for a survivable failure", store: :broken do
  failed = Dovecot::Store::FAILED
  assert failed.frozen?, "FAILED is frozen"
  list = Dovecot::List.new("blocked")
  assert_same failed, Dovecot::Counter.__incr("k", 1, 60, true)
  assert_same failed, Dovecot::Counter.__get("k", true)
  assert_same failed, Dovecot::Counter.__reset("k", true)
  assert_same failed, list.__add("192.0.2.1", nil, "", true)
  assert_same failed, list.__remove("192.0.2.1", true)
  assert_same failed, list.__match("192.0.2.1", true)
  assert_same failed, list.__entries(true)
end

test "without a fallback every primitive raises Dovecot::StoreError", store: :broken do
  list = Dovecot::List.new("blocked")
  [-> { Dovecot::Counter.__incr("k", 1, 60, false) },
   -> { Dovecot::Counter.__get("k", false) },
   -> { Dovecot::Counter.__reset("k", false) },
   -> { list.__add("192.0.2.1", nil, "", false) },
   -> { list.__remove("192.0.2.1", false) },
   -> { list.__match("192.0.2.1", false) },
   -> { list.__entries(false) }].each do |call|
    assert_raises(Dovecot::StoreError, "unavailable") { call.call }
  end
  assert_raises(Dovecot::StoreError) { Dovecot::Counter.incr("k", ttl: 60) }
  assert_raises(Dovecot::StoreError) { list.include?("192.0.2.1") }
end

test "a failure returns the fallback as given, whatever it is", store: :broken do
  list = Dovecot::List.new("blocked")
  # nil and false are fallbacks like any other (nil used to mean "failed").
  assert_equal nil, Dovecot::Counter.incr("k", ttl: 60, fallback: nil)
  assert_equal false, Dovecot::Counter.get("k", fallback: false)
  assert_equal :x, Dovecot::Counter.reset("k", fallback: :x)
  assert_equal nil, list.add("192.0.2.1", fallback: nil)
  assert_equal :kept, list.remove("192.0.2.1", fallback: :kept)
  # Not wrapped in an Entry, not turned into a boolean, not mapped.
  assert_equal "none", list.match("192.0.2.1", fallback: "none")
  assert_equal nil, list.include?("192.0.2.1", fallback: nil)
  assert_equal :none, list.entries(fallback: :none)
end

test "Dovecot::Store.answer is the one fallback helper" do
  none = Dovecot::Store::NO_FALLBACK
  failed = Dovecot::Store::FAILED
  assert_equal false, Dovecot::Store.given?(none)
  assert_equal true, Dovecot::Store.given?(nil)
  assert_equal true, Dovecot::Store.given?(false)
  assert_equal 1, Dovecot::Store.answer(1, :fb)
  assert_equal nil, Dovecot::Store.answer(nil, :fb)
  assert_equal false, Dovecot::Store.answer(false, :fb)
  assert_equal :fb, Dovecot::Store.answer(failed, :fb)
  assert_equal nil, Dovecot::Store.answer(failed, nil)
  assert_equal 2, Dovecot::Store.answer(1, :fb) { |v| v + 1 }
  assert_equal :fb, Dovecot::Store.answer(failed, :fb) { |_| raise "the block must not run" }
  assert_same none, Dovecot::Counter::NO_FALLBACK
end
