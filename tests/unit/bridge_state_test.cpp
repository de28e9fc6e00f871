// Dovecot::IP, RateLimit, Counter and List through a real VM: the Ruby API on
// the memory store with a manual clock, the same script on memory, LMDB and
// Redis giving the same transcript, and what a broken store does.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "core/clock.hpp"
#include "fakes.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"
#include "store/backends.hpp"
#include "store/memory_store.hpp"
#include "store/shared_redis.hpp"
#include "store/test_support.hpp"

using namespace dmr;
using dmr::testing::RecordingLogger;

namespace {

class StateTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        // This test program is its own composition root: every backend linked in.
        store::register_backends(core::store_registry());
        memory = std::make_unique<store::MemoryStore>(clock);
        handle = std::make_unique<core::StoreHandle>(*memory);
        session.user = "alice@example.com";
        session.service = "imap";
        session.remote_ip = "192.0.2.10";
        session.local_ip = "::ffff:127.0.0.1";
    }

    std::unique_ptr<mruby::Vm> make_vm(core::StoreHandle *store)
    {
        mruby::VmOptions options;
        options.logger = &logger;
        options.store = store;
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        core::ScriptError error;
        auto vm = mruby::Vm::create(options, error);
        EXPECT_NE(vm, nullptr) << error.describe();
        return vm;
    }

    // Runs `source` at top level; returns what it logged, or the error.
    std::string run(mruby::Vm &vm, const std::string &source)
    {
        logger.lines.clear();
        auto error = vm.load_source(source, "state.rb");
        if (error)
            return "ERROR " + error->describe();
        return logger.text();
    }

    core::ManualClock clock{1'700'000'000'000'000};
    RecordingLogger logger;
    std::unique_ptr<core::Store> memory;
    std::unique_ptr<core::StoreHandle> handle;
    core::SessionInfo session;
};

TEST_F(StateTest, IpParsesPrintsGroupsAndCompares)
{
    auto vm = make_vm(handle.get());
    EXPECT_EQ(run(*vm, R"(
        ip = Dovecot::IP.new("2001:DB8::1")
        log = Dovecot.log
        log.info [ip.to_s, ip.ipv6?, ip.ipv4?, ip.host?, ip.prefix_length].join(" ")
        net = ip.prefix(64)
        log.info [net.to_s, net.host?, net.include?(ip), net.include?("2001:db8::ffff"),
                  net.include?("2001:db8:0:1::1"), net.include?("not an ip")].join(" ")
        v4 = Dovecot::IP.new("::ffff:203.0.113.77")
        log.info [v4, v4.ipv4?, v4.prefix(24), v4.prefix(24).prefix(30), v4.prefix(0)].join(" ")
        log.info [v4 == "203.0.113.77", v4 == Dovecot::IP.new("203.0.113.77"), v4 == 3,
                  v4.eql?("203.0.113.77"), Dovecot::IP.new("192.0.2.0/24").include?("192.0.2.0/25")].join(" ")
        h = { Dovecot::IP.new("192.0.2.1") => 1 }
        h[Dovecot::IP.new("192.0.2.1")] = 2
        log.info [h.size, h[Dovecot::IP.new("192.0.2.1")], Dovecot::IP.parse("300.1.1.1").inspect,
                  Dovecot::IP.parse("[::1]").inspect, "ip: " + v4.to_s, "#{net}"].join(" ")
        begin
          Dovecot::IP.new("example.com")
        rescue ArgumentError => e
          log.info e.message
        end
        begin
          v4.prefix(33)
        rescue ArgumentError => e
          log.info e.message
        end
    )"),
              "2001:db8::1 true false true 128\n"
              "2001:db8::/64 false true true false false\n"
              "203.0.113.77 true 203.0.113.0/24 203.0.113.0/24 0.0.0.0/0\n"
              "true true false false true\n"
              "1 2 nil #<Dovecot::IP ::1> ip: 203.0.113.77 2001:db8::/64\n"
              "invalid IP address or network: example.com\n"
              "prefix length must be 0..32 for an IPv4 address\n");
}

TEST_F(StateTest, SessionAddressesAreIpsThatStillBehaveLikeStrings)
{
    auto vm = make_vm(handle.get());
    ASSERT_FALSE(vm->load_source(R"(
        Dovecot.on_session_start do |s|
          ip = s.remote_ip
          Dovecot.log.info [ip.class, ip == "192.0.2.10", "#{ip}", "rip=" + ip.to_s, ip.prefix(24),
                            s.local_ip, s.local_ip.ipv4?].join(" ")
        end
    )", "policy.rb"));
    auto event = core::Event::make<core::Hook::SessionStart>();
    event.session = &session;
    auto result = vm->run(event);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(logger.text(),
              "Dovecot::IP true 192.0.2.10 rip=192.0.2.10 192.0.2.0/24 127.0.0.1 true\n");
}

TEST_F(StateTest, RateLimitDecisionsFollowGcraInSeconds)
{
    auto vm = make_vm(handle.get());
    const char *show = R"(
        def show(d)
          Dovecot.log.info "#{d.allowed?} #{d.remaining} #{d.retry_after} #{d.reset_after}"
        end
    )";
    ASSERT_EQ(run(*vm, show), "");
    // 3 per minute, burst 3: T = 20 s, tau = 60 s.
    EXPECT_EQ(run(*vm, R"(
        $limit = Dovecot::RateLimit.new("imap-commands", limit: 3, period: 60)
        4.times { show($limit.hit("alice")) }
        show($limit.peek("alice"))
        show($limit.hit("bob", cost: 4))
        show($limit.peek("carol", cost: 2))
    )"),
              "true 2 0.0 20.0\n"
              "true 1 0.0 40.0\n"
              "true 0 0.0 60.0\n"
              "false 0 20.0 60.0\n"
              "false 0 20.0 60.0\n"
              "false 3 Infinity 0.0\n"
              "true 1 0.0 40.0\n");
    clock.advance(20'000'000);
    EXPECT_EQ(run(*vm, R"(
        show($limit.hit("alice"))
        show($limit.hit("alice"))
        $limit.reset("alice")
        show($limit.hit("alice", cost: 0.5.to_i + 1))
    )"),
              "true 0 0.0 60.0\n"
              "false 0 20.0 60.0\n"
              "true 2 0.0 20.0\n");
    // Limits with different names never share state; a fractional period works.
    EXPECT_EQ(run(*vm, R"(
        other = Dovecot::RateLimit.new("pop3-commands", limit: 2, period: 0.5, burst: 1)
        show(other.hit("alice"))
        show(other.hit("alice"))
        Dovecot.log.info other.inspect
    )"),
              "true 0 0.0 0.25\n"
              "false 0 0.25 0.25\n"
              "#<Dovecot::RateLimit pop3-commands 2/0.5s burst=1 fail=open>\n");
}

TEST_F(StateTest, RateLimitRejectsBadArguments)
{
    auto vm = make_vm(handle.get());
    EXPECT_EQ(run(*vm, R"(
        [
          -> { Dovecot::RateLimit.new("x", limit: 0, period: 60) },
          -> { Dovecot::RateLimit.new("x", limit: 5, period: 0) },
          -> { Dovecot::RateLimit.new("x", limit: 5, period: "1m") },
          -> { Dovecot::RateLimit.new("x", limit: 5, period: 60, fail: :sometimes) },
          -> { Dovecot::RateLimit.new("", limit: 5, period: 60) },
          -> { Dovecot::RateLimit.new("x", limit: 5, period: 60).hit("k", cost: -1) },
          -> { Dovecot::RateLimit.new("x", period: 60) },
        ].each do |f|
          begin
            f.call
            Dovecot.log.info "no error"
          rescue => e
            Dovecot.log.info "#{e.class}: #{e.message}"
          end
        end
    )"),
              "ArgumentError: limit must be at least 1\n"
              "ArgumentError: period must be between 1 microsecond and 10 years\n"
              "TypeError: period must be a number of seconds\n"
              "ArgumentError: fail: must be :open or :closed, not :sometimes\n"
              "ArgumentError: rate limit name must not be empty\n"
              "ArgumentError: cost must not be negative\n"
              "ArgumentError: missing keyword: limit\n");
}

TEST_F(StateTest, CountersCountWithinAFixedWindow)
{
    auto vm = make_vm(handle.get());
    EXPECT_EQ(run(*vm, R"(
        c = Dovecot::Counter
        Dovecot.log.info [c.incr("fail:192.0.2.1", ttl: 10), c.incr("fail:192.0.2.1", ttl: 10),
                          c.incr("fail:192.0.2.1", by: 5, ttl: 99), c.get("fail:192.0.2.1"),
                          c.get("other")].join(" ")
    )"),
              "1 2 7 7 0\n");
    clock.advance(9'999'999);
    EXPECT_EQ(run(*vm, R"(Dovecot.log.info Dovecot::Counter.get("fail:192.0.2.1").to_s)"), "7\n");
    clock.advance(1);
    EXPECT_EQ(run(*vm, R"(
        c = Dovecot::Counter
        Dovecot.log.info [c.get("fail:192.0.2.1"), c.incr("fail:192.0.2.1", ttl: 10),
                          c.reset("fail:192.0.2.1"), c.get("fail:192.0.2.1")].join(" ")
    )"),
              "0 1 true 0\n");
}

TEST_F(StateTest, ListsMatchByLongestPrefixAndExpire)
{
    auto vm = make_vm(handle.get());
    EXPECT_EQ(run(*vm, R"(
        $blocked = Dovecot::List.new("blocked")
        $blocked.add("203.0.113.0/24", ttl: 30, reason: "brute force")
        $blocked.add(Dovecot::IP.new("203.0.113.7"))
        $blocked.add(Dovecot::IP.new("2001:db8::1").prefix(64), ttl: 60)
        $blocked.add("mallory", reason: "abuse")
        b = $blocked
        Dovecot.log.info [b.include?("203.0.113.9"), b.include?(Dovecot::IP.new("203.0.113.7")),
                          b.include?("203.0.114.1"), b.include?("2001:db8::abcd"),
                          b.include?("2001:db8:1::1"), b.include?("mallory"),
                          b.include?("Mallory")].join(" ")
        m = b.match("203.0.113.7")
        Dovecot.log.info [m.value, m.reason.inspect, m.expires_at.inspect].join(" ")
        m = b.match("203.0.113.8")
        Dovecot.log.info [m.value, m.reason, m.expires_at - 1_700_000_000].join(" ")
        Dovecot.log.info b.entries.map(&:to_s).sort.join(",")
        Dovecot.log.info [b.remove("mallory"), b.remove("mallory"), b.include?("mallory")].join(" ")
    )"),
              "true true false true false true false\n"
              "203.0.113.7 nil nil\n"
              "203.0.113.0/24 brute force 30.0\n"
              "2001:db8::/64,203.0.113.0/24,203.0.113.7,mallory\n"
              "true false false\n");
    clock.advance(30'000'000);
    EXPECT_EQ(run(*vm, R"(
        b = $blocked
        Dovecot.log.info [b.include?("203.0.113.9"), b.include?("203.0.113.7"),
                          b.include?("2001:db8::1"), b.entries.size].join(" ")
        begin
          Dovecot::List.new("")
        rescue ArgumentError => e
          Dovecot.log.info e.message
        end
    )"),
              "false true true 2\n"
              "list name must be 1 to 100 bytes without NUL\n");
}

// --- a broken store --------------------------------------------------------------

TEST_F(StateTest, ADeadStoreRaisesStoreErrorUnlessTheCallHasAFallback)
{
    core::StoreHandle broken("bogus:whatever");
    std::string why;
    ASSERT_EQ(broken.get(why), nullptr);
    auto vm = make_vm(&broken);
    EXPECT_EQ(run(*vm, R"(
        begin
          Dovecot::Counter.incr("k", ttl: 5)
        rescue Dovecot::StoreError => e
          Dovecot.log.info "#{e.class} < #{e.class.superclass}: #{e.message}"
        end
        l = Dovecot::List.new("blocked")
        3.times do
          Dovecot.log.info [Dovecot::Counter.incr("k", ttl: 5, fallback: 0),
                            Dovecot::Counter.get("k", fallback: nil).inspect,
                            l.include?("192.0.2.1", fallback: false),
                            l.entries(fallback: []).size,
                            l.add("192.0.2.1", fallback: :failed)].join(" ")
        end
    )"),
              "Dovecot::StoreError < Dovecot::Error: Dovecot::Counter.incr: unavailable: " + why +
                  "\n"
                  // The first fallback failure is logged at once, the others are counted.
                  "mruby: store failure (unavailable) in Dovecot::Counter.incr: " + why + "\n"
              "0 nil false 0 failed\n"
              "0 nil false 0 failed\n"
              "0 nil false 0 failed\n");
}

TEST_F(StateTest, RateLimitsApplyTheirFailModeAndLogOnce)
{
    core::StoreHandle none("redis://127.0.0.1:1/0?timeout=50ms&connect_timeout=50ms");
    auto vm = make_vm(&none);
    auto started = std::chrono::steady_clock::now();
    std::string out = run(*vm, R"(
        open = Dovecot::RateLimit.new("open", limit: 1, period: 60)
        closed = Dovecot::RateLimit.new("closed", limit: 1, period: 60, fail: :closed)
        3.times do
          a = open.hit("k")
          b = closed.hit("k")
          Dovecot.log.info "#{a.allowed?} #{a.store_failed?} #{b.allowed?} #{b.store_failed?} #{b.retry_after}"
        end
        Dovecot.log.info open.reset("k").to_s
    )");
    auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_LT(elapsed, std::chrono::seconds(2));
    size_t first_log = out.find("mruby: store failure (unavailable) in rate limit open (failing open)");
    EXPECT_EQ(first_log, 0u) << out;
    EXPECT_EQ(out.substr(out.find('\n') + 1),
              "true true false true 60.0\n"
              "true true false true 60.0\n"
              "true true false true 60.0\n"
              "false\n");
}

TEST_F(StateTest, ASessionThatNeverTouchesStateNeverOpensTheStore)
{
    core::StoreHandle lazy("lmdb:/nonexistent/dir");
    auto vm = make_vm(&lazy);
    ASSERT_FALSE(vm->load_source(R"(
        LIMIT = Dovecot::RateLimit.new("x", limit: 1, period: 1)
        BLOCKED = Dovecot::List.new("blocked")
        Dovecot.on_session_start { |s| Dovecot.log.info s.user }
    )", "policy.rb"));
    auto event = core::Event::make<core::Hook::SessionStart>();
    event.session = &session;
    ASSERT_FALSE(vm->run(event).error);
    EXPECT_FALSE(lazy.opened());
    EXPECT_NE(run(*vm, "LIMIT.hit('k')").find("cannot open /nonexistent/dir"), std::string::npos);
    EXPECT_TRUE(lazy.opened());
}

// --- the same script on every backend ---------------------------------------------

// Steps of one script, with the clock advanced (microseconds) before each.
struct Step {
    int64_t advance_us;
    const char *source;
};

const Step kScript[] = {
    {0, R"(
        $limit = Dovecot::RateLimit.new("conformance", limit: 2, period: 10, burst: 3)
        $list = Dovecot::List.new("conformance")
        def show(d)
          Dovecot.log.info "#{d.allowed?} #{d.remaining} #{d.retry_after} #{d.reset_after}"
        end
        4.times { show($limit.hit("k")) }
        show($limit.hit("k2", cost: 3))
        Dovecot.log.info [Dovecot::Counter.incr("conf:c", ttl: 10),
                          Dovecot::Counter.incr("conf:c", by: 2, ttl: 10)].join(" ")
        $list.add("198.51.100.0/24", ttl: 30, reason: "scan")
        $list.add("198.51.100.128/25", ttl: 10, reason: "worse")
        $list.add(Dovecot::IP.new("2001:db8:aa::5").prefix(64), ttl: 20)
        $list.add("eve")
        Dovecot.log.info [$list.match("198.51.100.200").reason, $list.match("198.51.100.1").reason,
                          $list.include?("2001:db8:aa::1"), $list.include?("2001:db8:ab::1"),
                          $list.include?("eve")].join(" ")
    )"},
    {4'999'999, R"(
        show($limit.peek("k"))
    )"},
    {1, R"(
        show($limit.hit("k"))
        show($limit.hit("k"))
        Dovecot.log.info Dovecot::Counter.get("conf:c").to_s
    )"},
    {5'000'000, R"(
        Dovecot.log.info [Dovecot::Counter.get("conf:c"), $list.match("198.51.100.200").reason,
                          $list.entries.map(&:to_s).sort.join(",")].join(" ")
        show($limit.peek("k"))
    )"},
    {20'000'000, R"(
        show($limit.hit("k"))
        Dovecot.log.info [$list.include?("198.51.100.1"), $list.include?("2001:db8:aa::1"),
                          $list.remove("eve"), $list.entries.size].join(" ")
    )"},
};

const char *kTranscript =
    "true 2 0.0 5.0\n"
    "true 1 0.0 10.0\n"
    "true 0 0.0 15.0\n"
    "false 0 5.0 15.0\n"
    "true 0 0.0 15.0\n"
    "1 3\n"
    "worse scan true false true\n"
    "false 0 1.0e-06 10.000001\n"
    "true 0 0.0 15.0\n"
    "false 0 5.0 15.0\n"
    "3\n"
    "0 scan 198.51.100.0/24,2001:db8:aa::/64,eve\n"
    "true 0 0.0 15.0\n"
    "true 2 0.0 5.0\n"
    "false false true 0\n";

class BackendTest : public StateTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(BackendTest, TheSameScriptGivesTheSameDecisions)
{
    store::test::TempDir dir;
    std::string spec;
    if (GetParam() == "memory") {
        spec = "memory";
    } else if (GetParam() == "lmdb") {
        spec = "lmdb:" + dir.path();
    } else {
        std::string why;
        store::test::RedisServer *redis = store::test::shared_redis(why);
        if (redis == nullptr)
            GTEST_SKIP() << why;
        spec = redis->spec(store::test::unique_prefix());
    }
    core::StoreHandle backend(spec, core::StoreOptions{&clock, nullptr, {}});
    auto vm = make_vm(&backend);
    std::string transcript;
    for (const Step &step : kScript) {
        clock.advance(step.advance_us);
        transcript += run(*vm, step.source);
    }
    EXPECT_EQ(transcript, kTranscript) << "backend " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Stores, BackendTest, ::testing::Values("memory", "lmdb", "redis"),
                         [](const auto &info) { return info.param; });

} // namespace

// --- ready-made policies ------------------------------------------------------------

class PolicyTest : public StateTest {
protected:
    // One login attempt: on_auth (the verdict and delay it asks for), then,
    // unless refused there, on_auth_result with `password_ok`.
    struct Attempt {
        core::Verdict verdict;
        uint32_t delay_ms = 0;
    };
    Attempt login(mruby::Vm &vm, const std::string &user, const std::string &ip, bool password_ok)
    {
        core::AuthRequestInfo info;
        info.user = user;
        info.service = "imap";
        info.remote_ip = ip;
        core::AuthOutput output;
        auto auth = core::Event::make<core::Hook::Auth>(info, output);
        auto result = vm.run(auth);
        EXPECT_FALSE(result.error) << result.error->describe();
        Attempt attempt{result.verdict, output.delay_ms};
        info.success = !result.verdict.decided() && password_ok;
        info.reason = result.verdict.decided() ? result.verdict.text
                      : password_ok           ? ""
                                              : "password mismatch";
        auto finished = core::Event::make<core::Hook::AuthResult>(info);
        auto after = vm.run(finished);
        EXPECT_FALSE(after.error) << after.error->describe();
        return attempt;
    }

    core::HookResult command(mruby::Vm &vm, core::Hook hook, const std::string &name)
    {
        core::CommandInfo info;
        info.name = name;
        auto event = core::Event::make_any<core::CommandPayload>(hook, info);
        event.session = &session;
        return vm.run(event);
    }
};

TEST_F(PolicyTest, BruteForceBansTheNetworkAtTheLimitUntilTheBanEnds)
{
    auto vm = make_vm(handle.get());
    ASSERT_FALSE(vm->load_source("Dovecot::Policy::BruteForce.enable!(window: 60)", "policy.rb"));
    for (int i = 1; i <= 10; i++) {
        Attempt a = login(*vm, "alice", "203.0.113." + std::to_string(i), false);
        EXPECT_FALSE(a.verdict.decided()) << "attempt " << i;
        EXPECT_EQ(a.delay_ms, 0u);
    }
    EXPECT_NE(logger.text().find("brute force: 203.0.113.0/24 banned for 60s after 10 failed logins"),
              std::string::npos)
        << logger.text();
    // The 11th, from anywhere in the /24 and even with the right password: refused.
    Attempt eleventh = login(*vm, "bob", "203.0.113.200", true);
    EXPECT_EQ(eleventh.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(eleventh.verdict.text, "Too many failed logins, try again later");
    // Another network is not affected; refused attempts do not extend the ban.
    EXPECT_FALSE(login(*vm, "alice", "198.51.100.1", true).verdict.decided());
    clock.advance(59'000'000);
    EXPECT_TRUE(login(*vm, "alice", "203.0.113.9", false).verdict.decided());
    clock.advance(1'000'000);
    EXPECT_FALSE(login(*vm, "alice", "203.0.113.9", true).verdict.decided());
}

TEST_F(PolicyTest, BruteForceGroupsIpv6By64AndCanTarpitAndBanUsers)
{
    auto vm = make_vm(handle.get());
    ASSERT_FALSE(vm->load_source(R"(
        $bf = Dovecot::Policy::BruteForce.enable!(limit: 3, window: 30, tarpit: 1.5, tarpit_max: 2,
                                                 user_limit: 4, exempt: ["192.0.2.0/24"])
    )", "policy.rb"));
    EXPECT_EQ(login(*vm, "carol", "2001:db8:1:2::1", false).delay_ms, 0u);
    EXPECT_EQ(login(*vm, "carol", "2001:db8:1:2::ffff", false).delay_ms, 1500u);
    EXPECT_EQ(login(*vm, "carol", "2001:db8:1:2:abcd::1", false).delay_ms, 2000u);
    EXPECT_EQ(login(*vm, "dave", "2001:db8:1:2::7", true).verdict.kind,
              core::Verdict::Kind::Reject);
    EXPECT_FALSE(login(*vm, "dave", "2001:db8:1:3::7", true).verdict.decided());
    // Exempt networks are never counted (user names still are: erin stays below
    // user_limit); the fourth failure for carol bans her name.
    for (int i = 0; i < 3; i++)
        EXPECT_FALSE(login(*vm, "erin", "192.0.2.1", false).verdict.decided());
    EXPECT_FALSE(login(*vm, "carol", "192.0.2.1", false).verdict.decided());
    EXPECT_EQ(login(*vm, "carol", "192.0.2.1", true).verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(run(*vm, R"(
        $bf.unban("carol")
        $bf.unban("2001:db8:1:2::1")
        Dovecot.log.info Dovecot::List.new("bruteforce").entries.size.to_s
    )"),
              "0\n");
    EXPECT_FALSE(login(*vm, "carol", "2001:db8:1:2::1", true).verdict.decided());
}

TEST_F(PolicyTest, BruteForceLetsLoginsThroughWhenTheStoreIsDown)
{
    core::StoreHandle broken("lmdb:/nonexistent/dir");
    auto vm = make_vm(&broken);
    ASSERT_FALSE(vm->load_source("Dovecot::Policy::BruteForce.enable!(limit: 1)", "policy.rb"));
    for (int i = 0; i < 3; i++)
        EXPECT_FALSE(login(*vm, "alice", "203.0.113.1", false).verdict.decided());
    EXPECT_EQ(logger.count(core::LogLevel::Error), 1u) << logger.text();
}

TEST_F(PolicyTest, CommandRateLimitsEachUserAcrossImapAndPop3)
{
    auto vm = make_vm(handle.get());
    ASSERT_FALSE(vm->load_source(
        "Dovecot::Policy::CommandRate.enable!(limit: 3, period: 30, burst: 3)", "policy.rb"));
    EXPECT_FALSE(command(*vm, core::Hook::ImapCommandBefore, "SELECT").verdict.decided());
    EXPECT_FALSE(command(*vm, core::Hook::ImapCommandBefore, "UID FETCH").verdict.decided());
    EXPECT_FALSE(command(*vm, core::Hook::Pop3CommandBefore, "STAT").verdict.decided());
    auto imap = command(*vm, core::Hook::ImapCommandBefore, "NOOP");
    EXPECT_EQ(imap.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(imap.verdict.code, "LIMIT");
    EXPECT_EQ(imap.verdict.text, "Too many commands, slow down (retry in 10s)");
    auto pop3 = command(*vm, core::Hook::Pop3CommandBefore, "RETR");
    EXPECT_EQ(pop3.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(pop3.verdict.text, "Too many commands, slow down (retry in 10s)");
    // A client can always leave; another user has its own budget.
    EXPECT_FALSE(command(*vm, core::Hook::ImapCommandBefore, "LOGOUT").verdict.decided());
    session.user = "bob";
    EXPECT_FALSE(command(*vm, core::Hook::ImapCommandBefore, "NOOP").verdict.decided());
    session.user = "alice@example.com";
    clock.advance(10'000'000);
    EXPECT_FALSE(command(*vm, core::Hook::Pop3CommandBefore, "RETR").verdict.decided());
}

TEST_F(StateTest, AStalledRedisCostsAtMostItsTimeoutAndTheFailModeDecides)
{
    std::string why;
    store::test::RedisServer *redis = store::test::shared_redis(why);
    if (redis == nullptr)
        GTEST_SKIP() << why;
    core::StoreHandle backend(redis->spec(store::test::unique_prefix()) +
                               "&timeout=50ms&connect_timeout=50ms");
    auto vm = make_vm(&backend);
    ASSERT_EQ(run(*vm, R"(
        $open = Dovecot::RateLimit.new("stall", limit: 5, period: 60)
        $closed = Dovecot::RateLimit.new("stall", limit: 5, period: 60, fail: :closed)
        Dovecot.log.info $open.hit("k").remaining.to_s
    )"),
              "4\n");
    redis->pause();
    auto started = std::chrono::steady_clock::now();
    std::string out = run(*vm, R"(
        a = $open.hit("k")
        b = $closed.hit("k")
        c = Dovecot::Counter.get("k", fallback: -1)
        Dovecot.log.info "#{a.allowed?} #{a.store_failed?} #{b.allowed?} #{c}"
    )");
    auto elapsed = std::chrono::steady_clock::now() - started;
    redis->resume();
    // One timeout, then the connection is down and the other calls fail at once.
    EXPECT_LT(elapsed, std::chrono::milliseconds(190)) << out;
    EXPECT_NE(out.find("true true false -1\n"), std::string::npos) << out;
}
