# Dovecot::Distinct (mrblib/state.rb, src/mruby/bind_distinct.cpp): distinct
# counts in the store, Dovecot::Counter's failure convention.

test "add answers the estimated count; duplicates do not count" do
  d = Dovecot::Distinct.new("users:203.0.113.0/24", window: 600)
  assert_equal 0, d.count
  assert_equal 1, d.add("alice")
  assert_equal 2, d.add("bob")
  assert_equal 2, d.add("alice")
  assert_equal 2, d.count(fallback: -1)
  # another object under the same name and window sees the same set
  assert_equal 2, Dovecot::Distinct.new("users:203.0.113.0/24", window: 600).count
  # another name, another window: another set
  assert_equal 0, Dovecot::Distinct.new("users:198.51.100.0/24", window: 600).count
  assert_equal 0, Dovecot::Distinct.new("users:203.0.113.0/24", window: 60).count
end

test "large counts are estimates within 3 standard errors (0.81% each)" do
  d = Dovecot::Distinct.new("many", window: 600)
  n = 500
  last = 0
  n.times { |i| last = d.add("user#{i}@example.com") }
  assert((last - n).abs <= 3 * 0.0081 * n, "estimate #{last} for #{n}")
  assert_equal last, d.count
end

test "members and names are any bytes, of any length" do
  d = Dovecot::Distinct.new("bytes\0name", window: 60)
  assert_equal 1, d.add("a\0b")
  assert_equal 2, d.add("a\0c")
  assert_equal 3, d.add("\xff" * 100_000)
  assert_equal 4, d.add("")
  assert_equal 5, d.add(:symbol)
  assert_equal 6, d.add(Dovecot::IP.new("2001:db8::/64"))
  assert_equal 0, Dovecot::Distinct.new("bytes", window: 60).count
  long = Dovecot::Distinct.new("n" * 10_000, window: 60)
  assert_equal 1, long.add("x")
  assert_equal 0, Dovecot::Distinct.new("n" * 10_001, window: 60).count
end

test "bad names and windows are ArgumentErrors" do
  assert_raises(ArgumentError, "name") { Dovecot::Distinct.new("", window: 60) }
  assert_raises(ArgumentError, "window") { Dovecot::Distinct.new("x", window: 0) }
  assert_raises(ArgumentError, "window") { Dovecot::Distinct.new("x", window: -1) }
  assert_raises(ArgumentError, "window") { Dovecot::Distinct.new("x", window: "60") }
  assert_raises(ArgumentError, "10 years") { Dovecot::Distinct.new("x", window: 10**9).add("m") }
  assert_raises(ArgumentError) { Dovecot::Distinct.new("x") }
  assert_equal 1, Dovecot::Distinct.new("x", window: 0.5).add("m")
end

test "a store failure raises without a fallback and answers it with one", store: :broken do
  d = Dovecot::Distinct.new("users", window: 60)
  assert_raises(Dovecot::StoreError, "Dovecot::Distinct#add: unavailable") { d.add("alice") }
  assert_raises(Dovecot::StoreError, "Dovecot::Distinct#count: unavailable") { d.count }
  assert_equal nil, d.add("alice", fallback: nil)
  assert_equal 0, d.count(fallback: 0)
  assert_same Dovecot::Store::FAILED, Dovecot::Distinct.__add("users", "alice", 60, true)
  assert_same Dovecot::Store::FAILED, Dovecot::Distinct.__count("users", 60, true)
end

test "inspect names the set and its window" do
  assert_equal "#<Dovecot::Distinct users window=60s>",
               Dovecot::Distinct.new("users", window: 60).inspect
end
