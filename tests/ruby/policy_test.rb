# The ready-made policies' Ruby half: enable! once per state name, and
# on_auth_result's internal_failure?.

BruteForce = Dovecot::Policy::BruteForce
NET_KEY = "bruteforce:net:192.0.2.0/24"

test "BruteForce enabled twice with the same options counts a failure once" do
  first = BruteForce.enable!(limit: 5)
  second = BruteForce.enable!(limit: 5)
  fire :auth_result, success: false, reason: "password mismatch", remote_ip: "192.0.2.7" do
    assert_equal 1, Dovecot::Counter.get(NET_KEY)
  end
  assert_same first, second
end

test "BruteForce enabled twice bans at its limit, not at half of it" do
  BruteForce.enable!(limit: 2)
  BruteForce.enable!(limit: 2)
  fire :auth_result, success: false, remote_ip: "192.0.2.7" do
    fire :auth, remote_ip: "192.0.2.8" do |answer|
      assert_equal "continue", answer
      fire :auth_result, success: false, remote_ip: "192.0.2.7" do
        fire :auth, remote_ip: "192.0.2.8" do |answer|
          assert_equal "reject: Too many failed logins, try again later", answer
        end
      end
    end
  end
end

test "BruteForce enabled again with other options raises ArgumentError" do
  BruteForce.enable!(limit: 5)
  assert_raises(ArgumentError, "already enabled") { BruteForce.enable!(limit: 6) }
  assert_raises(ArgumentError, "already enabled") { BruteForce.enable! }
  fire :auth_result, success: false, remote_ip: "192.0.2.7" do
    assert_equal 1, Dovecot::Counter.get(NET_KEY)
  end
end

test "BruteForce with another list is another policy with its own counts" do
  a = BruteForce.enable!(limit: 5)
  b = BruteForce.enable!(limit: 50, list: "slow")
  assert a != b, "two policies"
  fire :auth_result, success: false, remote_ip: "192.0.2.7" do
    assert_equal 1, Dovecot::Counter.get(NET_KEY)
    assert_equal 1, Dovecot::Counter.get("slow:net:192.0.2.0/24")
  end
end

test "BruteForce never counts nor refuses loopback or a trusted connection by default" do
  BruteForce.enable!(limit: 1)
  fire :auth_result, success: false, remote_ip: "127.0.0.1", trusted: "true" do
    fire :auth_result, success: false, remote_ip: "::1" do
      fire :auth_result, success: false, remote_ip: "192.0.2.7", trusted: "true",
                         real_remote_ip: "192.0.2.7" do
        assert_equal 0, Dovecot::Counter.get("bruteforce:net:127.0.0.0/24", fallback: 0)
        assert_equal 0, Dovecot::Counter.get(NET_KEY, fallback: 0)
        fire :auth, remote_ip: "127.0.0.1" do |answer|
          assert_equal "continue", answer
        end
      end
    end
  end
end

test "BruteForce counts the client address a trusted proxy forwards" do
  BruteForce.enable!(limit: 1)
  fire :auth_result, success: false, remote_ip: "192.0.2.7", trusted: "true",
                     real_remote_ip: "127.0.0.1" do
    assert_equal 1, Dovecot::Counter.get(NET_KEY)
    fire :auth, remote_ip: "192.0.2.8", trusted: "true", real_remote_ip: "127.0.0.1" do |answer|
      assert_equal "reject: Too many failed logins, try again later", answer
    end
  end
end

test "BruteForce with count_trusted: true counts loopback and trusted clients" do
  BruteForce.enable!(limit: 1, count_trusted: true)
  fire :auth_result, success: false, remote_ip: "127.0.0.1", trusted: "true" do
    assert_equal 1, Dovecot::Counter.get("bruteforce:net:127.0.0.0/24")
    fire :auth, remote_ip: "127.0.0.1", trusted: "true" do |answer|
      assert_equal "reject: Too many failed logins, try again later", answer
    end
  end
end

test "enable! validates its options before anything else" do
  assert_raises(ArgumentError, "limit") { BruteForce.enable!(limit: 0) }
  BruteForce.enable!(limit: 5)
end

test "CommandRate enabled twice with the same options counts a command once" do
  rate = Dovecot::Policy::CommandRate
  first = rate.enable!(limit: 2, period: 60, protocols: [:imap])
  assert_same first, rate.enable!(limit: 2, period: 60, protocols: [:imap])
  fire :imap_command, name: "NOOP" do |answer|
    assert_equal "continue", answer
    fire :imap_command, name: "NOOP" do |answer|
      assert_equal "continue", answer, "the second of a limit of 2"
      fire :imap_command, name: "NOOP" do |answer|
        assert answer.start_with?("reject: Too many commands"), answer
      end
    end
  end
end

test "CommandRate: the same name with other options raises, another name is another limit" do
  rate = Dovecot::Policy::CommandRate
  rate.enable!(limit: 300, period: 60)
  assert_raises(ArgumentError, '"commands" is already enabled') do
    rate.enable!(limit: 30, period: 60)
  end
  searches = rate.enable!(limit: 30, period: 60, commands: ["SEARCH"], name: "searches")
  assert_equal "searches", searches.rate_limit.name
end

test "an internal failure is not counted: internal_failure? says so" do
  BruteForce.enable!(limit: 5)
  Dovecot.on_auth_result do |res|
    $seen = [res.success?, res.internal_failure?]
    nil
  end
  fire :auth_result, success: false, reason: "some backend error", internal_failure: true do
    assert_equal [false, true], $seen
    assert_equal 0, Dovecot::Counter.get(NET_KEY)
    fire :auth_result, success: false, reason: "password mismatch" do
      assert_equal [false, false], $seen
      assert_equal 1, Dovecot::Counter.get(NET_KEY)
    end
  end
end

test "internal_failure? needs no reason text: only the flag counts" do
  BruteForce.enable!(limit: 5)
  # A reason that reads "internal failure" without the flag is a failed login.
  fire :auth_result, success: false, reason: "internal failure", internal_failure: false do
    assert_equal 1, Dovecot::Counter.get(NET_KEY)
  end
end
