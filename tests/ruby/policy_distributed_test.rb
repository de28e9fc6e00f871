# Dovecot::Policy::Distributed (mrblib/policy_distributed.rb): credential
# stuffing banned per network, distributed guessing tarpitted per user.
# (The runner answers an on_auth verdict with the delay asked for:
# "continue delay=2000ms".)

Distributed = Dovecot::Policy::Distributed

test "a network failing for more than `users` distinct user names is banned" do
  Distributed.enable!(users: 3, window: 600)
  %w[a b c c c].each do |user|
    fire :auth_result, success: false, remote_ip: "192.0.2.7", user: user
  end
  fire :auth, remote_ip: "192.0.2.99", user: "d" do |answer|
    assert_equal "continue", answer   # 3 distinct names: not more than 3
    assert_equal 3, Dovecot::Distinct.new("distributed:users:192.0.2.0/24", window: 600).count
  end
  fire :auth_result, success: false, remote_ip: "192.0.2.8", user: "d"
  fire :auth, remote_ip: "192.0.2.200", user: "alice" do |answer|
    assert_equal "reject: Too many failed logins, try again later", answer
    entry = Dovecot::List.new("distributed").match("192.0.2.1")
    assert_equal ["192.0.2.0/24", "failed logins for 4 users"], [entry.value, entry.reason]
  end
  fire :auth, remote_ip: "198.51.100.1", user: "alice" do |answer|
    assert_equal "continue", answer   # another network
  end
end

test "successful logins are not counted" do
  Distributed.enable!(users: 1, window: 600)
  %w[a b c].each { |user| fire :auth_result, success: true, remote_ip: "192.0.2.7", user: user }
  fire :auth, remote_ip: "192.0.2.7", user: "a" do |answer|
    assert_equal "continue", answer
  end
end

test "a user failing from more than `networks` networks is tarpitted, growing and capped" do
  Distributed.enable!(networks: 2, tarpit: 2, tarpit_max: 5, window: 600)
  # Two addresses of one /24 are one network.
  ["192.0.2.1", "192.0.2.2", "198.51.100.1"].each do |ip|
    fire :auth_result, success: false, remote_ip: ip, user: "alice"
  end
  fire :auth, remote_ip: "203.0.113.1", user: "alice" do |answer|
    assert_equal "continue", answer   # 2 networks
  end
  fire :auth_result, success: false, remote_ip: "2001:db8:1:2::1", user: "alice"
  fire :auth, remote_ip: "203.0.113.1", user: "alice" do |answer|
    assert_equal "continue delay=2000ms", answer   # 3 networks: 1 above
  end
  fire :auth_result, success: false, remote_ip: "2001:db8:1:2::ffff", user: "alice"   # same /64
  fire :auth_result, success: false, remote_ip: "2001:db8:1:3::1", user: "alice"
  fire :auth, remote_ip: "203.0.113.1", user: "alice" do |answer|
    assert_equal "continue delay=4000ms", answer   # 4 networks: 2 above
  end
  fire :auth_result, success: false, remote_ip: "10.1.1.1", user: "alice"
  fire :auth_result, success: false, remote_ip: "10.1.2.1", user: "alice"
  fire :auth, remote_ip: "203.0.113.1", user: "alice" do |answer|
    assert_equal "continue delay=5000ms", answer   # capped
  end
  fire :auth, remote_ip: "203.0.113.1", user: "bob" do |answer|
    assert_equal "continue", answer   # another user
  end
  fire :auth, remote_ip: "127.0.0.1", user: "alice" do |answer|
    assert_equal "continue", answer   # loopback: left alone
  end
end

test "loopback, trusted connections and exempt networks are never counted" do
  Distributed.enable!(users: 1, networks: 1, window: 600, exempt: ["10.0.0.0/8"])
  fire :auth_result, success: false, remote_ip: "127.0.0.1", user: "a"
  fire :auth_result, success: false, remote_ip: "127.0.0.1", user: "b"
  fire :auth_result, success: false, remote_ip: "::1", user: "c"
  fire :auth_result, success: false, remote_ip: "192.0.2.7", trusted: "true",
                     real_remote_ip: "192.0.2.7", user: "a"
  fire :auth_result, success: false, remote_ip: "192.0.2.7", trusted: "true",
                     real_remote_ip: "192.0.2.7", user: "b"
  fire :auth_result, success: false, remote_ip: "10.1.1.1", user: "a"
  fire :auth_result, success: false, remote_ip: "10.2.1.1", user: "b"
  fire :auth_result, success: false, remote_ip: "10.2.1.1", user: "c"
  fire :auth, remote_ip: "127.0.0.1", user: "a" do |answer|
    assert_equal "continue", answer
    assert_equal 0, Dovecot::Distinct.new("distributed:networks:a", window: 600).count
    assert_equal 0, Dovecot::Distinct.new("distributed:users:127.0.0.0/24", window: 600).count
    assert_equal 0, Dovecot::Distinct.new("distributed:users:192.0.2.0/24", window: 600).count
    assert_equal 0, Dovecot::Distinct.new("distributed:users:10.2.1.0/24", window: 600).count
    assert_equal [], Dovecot::List.new("distributed").entries
  end
end

test "count_trusted: true counts loopback too" do
  Distributed.enable!(users: 1, window: 600, count_trusted: true)
  fire :auth_result, success: false, remote_ip: "127.0.0.1", user: "a"
  fire :auth_result, success: false, remote_ip: "127.0.0.2", user: "b"
  fire :auth, remote_ip: "127.0.0.1", user: "a" do |answer|
    assert_equal "reject: Too many failed logins, try again later", answer
  end
end

test "a store failure lets logins through", store: :broken do
  Distributed.enable!(users: 1, networks: 1)
  fire :auth_result, success: false, remote_ip: "192.0.2.7", user: "a"
  fire :auth_result, success: false, remote_ip: "192.0.2.7", user: "b"
  fire :auth, remote_ip: "192.0.2.7", user: "a" do |answer|
    assert_equal "continue", answer
  end
end

test "options are checked; enable! twice with the same options is one policy" do
  assert_raises(ArgumentError, "users") { Distributed.new(users: 0) }
  assert_raises(ArgumentError, "networks") { Distributed.new(networks: 0) }
  assert_raises(ArgumentError, "window") { Distributed.new(window: 0) }
  assert_raises(ArgumentError, "tarpit") { Distributed.new(tarpit: -1) }
  assert_same Distributed.enable!(users: 5), Distributed.enable!(users: 5)
  assert_raises(ArgumentError, "already enabled") { Distributed.enable!(users: 6) }
  p = Distributed.new(networks: 3, tarpit: 0.5, tarpit_max: 2)
  assert_equal [0, 0, 0.5, 1.5, 2], [1, 3, 4, 6, 10].map { |n| p.tarpit_delay(n) }
end
