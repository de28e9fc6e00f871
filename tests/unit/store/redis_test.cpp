// What only the Redis store promises: atomic scripts across processes, the
// EVALSHA/EVAL fallback, server time, and never hanging when the server dies
// or stalls: fail-open and fail-closed both observed.
#include <gtest/gtest.h>

#include <hiredis/hiredis.h>

#include <chrono>
#include <thread>

#include "shared_redis.hpp"
#include "core/coroutine.hpp"
#include "core/rate_limiter.hpp"
#include "store/redis_store.hpp"
#include "store/sha1.hpp"
#include "test_support.hpp"

namespace dmr::store {
namespace {

using core::FailMode;
using core::FailureLog;
using core::RateDecision;
using core::RateLimiter;

constexpr int64_t kSecond = 1'000'000;

using Clock = std::chrono::steady_clock;

int64_t elapsed_ms(Clock::time_point since)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

#define REQUIRE_REDIS_SERVER()                                                                    \
    if (!test::RedisServer::installed())                                                          \
    GTEST_SKIP() << test::RedisServer::kBinary << " is not installed"

// A raw connection for looking behind the store's back.
class RawRedis {
public:
    explicit RawRedis(int port)
    {
        struct timeval tv = {1, 0};
        c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    }
    ~RawRedis() { redisFree(c_); }
    std::string string(const char *format, const char *arg = "")
    {
        auto *reply = static_cast<redisReply *>(redisCommand(c_, format, arg));
        std::string out;
        if (reply != nullptr && (reply->type == REDIS_REPLY_STRING ||
                                 reply->type == REDIS_REPLY_STATUS))
            out.assign(reply->str, reply->len);
        else if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER)
            out = std::to_string(reply->integer);
        if (reply != nullptr)
            freeReplyObject(reply);
        return out;
    }

private:
    redisContext *c_;
};

std::unique_ptr<Store> open_or_fail(const std::string &spec, const core::Clock *clock = nullptr)
{
    std::string error;
    StoreOptions options;
    options.clock = clock;
    auto store = open_store(spec, error, options);
    EXPECT_TRUE(store) << error;
    return store;
}

TEST(Sha1, MatchesKnownVectors)
{
    EXPECT_EQ(detail::sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(detail::sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(detail::sha1_hex(std::string(1000, 'a')), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

TEST(RedisStore, ScriptShaIsWhatRedisComputesAndNoscriptFallsBackToEval)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    core::ManualClock clock;
    auto store = open_or_fail(server->spec(test::unique_prefix()), &clock);
    RawRedis raw(server->port());
    const std::string script(RedisStore::script_text());
    EXPECT_EQ(raw.string("SCRIPT LOAD %s", script.c_str()), RedisStore::script_sha());
    ASSERT_EQ(raw.string("SCRIPT FLUSH"), "OK");
    ASSERT_EQ(store->counter_incr("k", 1, kSecond).value, 1);   // NOSCRIPT, then EVAL
    ASSERT_EQ(store->counter_incr("k", 1, kSecond).value, 2);   // EVALSHA now
    ASSERT_EQ(raw.string("SCRIPT FLUSH"), "OK");
    ASSERT_EQ(store->counter_incr("k", 1, kSecond).value, 3);   // and again after a flush
}

TEST(RedisStore, KeysCarryHashTagsAndServerSideExpiry)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    const std::string prefix = test::unique_prefix();
    auto store = open_or_fail(server->spec(prefix));
    const auto rate = *core::GcraRate::make(10, 10 * kSecond, 5);
    ASSERT_TRUE(store->rate_hit("alice", rate, 1).ok());
    ASSERT_TRUE(store->counter_incr("fail:192.0.2.1", 1, 600 * kSecond).ok());
    ASSERT_TRUE(store->list_add("blocked", "192.0.2.0/24", 3600 * kSecond, "x").ok());
    RawRedis raw(server->port());
    const std::string rate_key = prefix + "r:{alice}";
    const std::string counter_key = prefix + "c:{fail:192.0.2.1}";
    const std::string list_key = prefix + "l:{blocked}";
    int64_t rate_ttl = std::stoll(raw.string("PTTL %s", rate_key.c_str()));
    // Redis' expiry only collects garbage, one second after the record's own.
    EXPECT_GT(rate_ttl, 1000);
    EXPECT_LE(rate_ttl, 2000);   // one emission interval
    int64_t counter_ttl = std::stoll(raw.string("PTTL %s", counter_key.c_str()));
    EXPECT_GT(counter_ttl, 591'000);
    EXPECT_LE(counter_ttl, 601'000);
    int64_t list_ttl = std::stoll(raw.string("PTTL %s", list_key.c_str()));
    EXPECT_GT(list_ttl, 3'590'000);
}

TEST(RedisStore, ServerClockDecidesWithoutTheClientClock)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    const std::string spec = "redis://127.0.0.1:" + std::to_string(server->port()) +
                             "/0?clock=server&prefix=" + test::unique_prefix();
    core::ManualClock wrong_clock(12345);   // must not matter
    auto store = open_or_fail(spec, &wrong_clock);
    const auto rate = *core::GcraRate::make(1, 3600 * kSecond, 1);
    EXPECT_TRUE(store->rate_hit("k", rate, 1).value.allowed);
    auto d = store->rate_hit("k", rate, 1);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d.value.allowed);
    EXPECT_GT(d.value.retry_after_us, 3599 * kSecond);
    EXPECT_EQ(store->counter_incr("c", 1, 60 * kSecond).value, 1);
    EXPECT_EQ(store->counter_get("c").value, 1);
}

TEST(RedisStore, UnixSocketAndDatabaseNumber)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    const std::string prefix = test::unique_prefix();
    auto store = open_or_fail("redis+unix://" + server->unix_socket() +
                              "?db=3&clock=client&prefix=" + prefix);
    ASSERT_EQ(store->counter_incr("k", 4, 60 * kSecond).value, 4);
    auto tcp_db3 = open_or_fail(server->spec(prefix, 3));
    EXPECT_EQ(tcp_db3->counter_get("k").value, 4);
    auto tcp_db0 = open_or_fail(server->spec(prefix, 0));
    EXPECT_EQ(tcp_db0->counter_get("k").value, 0);
}

TEST(RedisStore, ProcessesHammeringOneKeyLoseNoUpdate)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    const std::string spec = server->spec(test::unique_prefix());
    core::ManualClock clock;
    constexpr int kProcesses = 4, kHits = 500;
    const auto rate = *core::GcraRate::make(1, 3600 * kSecond, 700);
    auto results = test::run_children(kProcesses, [&](int) -> int64_t {
        std::string error;
        StoreOptions options;
        options.clock = &clock;
        auto store = open_store(spec + "&timeout=1s", error, options);
        int64_t allowed = 0;
        for (int i = 0; i < kHits; i++) {
            if (!store->counter_incr("shared", 1, 3600 * kSecond).ok())
                return -1;
            auto d = store->rate_hit("shared", rate, 1);
            if (!d.ok())
                return -1;
            allowed += d.value.allowed ? 1 : 0;
        }
        return allowed;
    });
    ASSERT_EQ(results.size(), size_t{kProcesses});
    int64_t allowed = 0;
    for (int64_t r : results) {
        ASSERT_GE(r, 0) << "a child saw a store error";
        allowed += r;
    }
    auto store = open_or_fail(spec, &clock);
    EXPECT_EQ(store->counter_get("shared").value, kProcesses * kHits);
    EXPECT_EQ(allowed, 700);
}

TEST(RedisStore, AForkedChildMayUseItsParentsStoreObject)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    auto store = open_or_fail(server->spec(test::unique_prefix()));
    ASSERT_EQ(store->counter_incr("k", 1, 60 * kSecond).value, 1);   // connected now
    auto results = test::run_children(3, [&](int) -> int64_t {
        int64_t last = 0;
        for (int i = 0; i < 100; i++)
            last = store->counter_incr("k", 1, 60 * kSecond).value;   // its own connection
        return last;
    });
    ASSERT_EQ(results.size(), 3u);
    EXPECT_EQ(store->counter_incr("k", 1, 60 * kSecond).value, 302);
}

TEST(RedisStore, RefusedConnectionFailsFastAndBacksOff)
{
    const int port = test::free_loopback_port();   // nobody listens there
    auto store = open_or_fail("redis://127.0.0.1:" + std::to_string(port) + "/0");
    auto start = Clock::now();
    for (int i = 0; i < 100; i++)
        EXPECT_EQ(store->counter_get("k").status.code(), Status::Code::Unavailable);
    EXPECT_LT(elapsed_ms(start), 500);
}

// Redis is killed in the middle of a run: fail-open allows, fail-closed
// refuses, nothing hangs, the log says so once per interval, and the store
// comes back by itself once the server does.
TEST(RedisStore, KilledServerFailOpenAndClosedThenRecovery)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer server;
    std::string error;
    ASSERT_TRUE(server.start(error)) << error;
    const std::string spec = server.spec("kill:");
    auto store = open_or_fail(spec);
    test::RecordingLogger logger;
    core::ManualClock log_clock;
    FailureLog failures(logger, log_clock, 60 * kSecond);
    const auto rate = *core::GcraRate::make(100, 60 * kSecond, 100);
    RateLimiter open(*store, failures, "open", rate, FailMode::Open);
    RateLimiter closed(*store, failures, "closed", rate, FailMode::Closed);

    for (int i = 0; i < 10; i++) {
        RateDecision a = open.hit("alice"), b = closed.hit("alice");
        ASSERT_TRUE(a.allowed && !a.store_failed);
        ASSERT_TRUE(b.allowed && !b.store_failed);
    }
    EXPECT_TRUE(logger.lines.empty());

    server.kill();
    auto start = Clock::now();
    int open_allowed = 0, closed_refused = 0;
    for (int i = 0; i < 50; i++) {
        RateDecision a = open.hit("alice"), b = closed.hit("alice");
        EXPECT_TRUE(a.store_failed);
        EXPECT_TRUE(b.store_failed);
        open_allowed += a.allowed ? 1 : 0;
        closed_refused += b.allowed ? 0 : 1;
    }
    EXPECT_LT(elapsed_ms(start), 1000) << "a dead server must not slow decisions down";
    EXPECT_EQ(open_allowed, 50);
    EXPECT_EQ(closed_refused, 50);
    ASSERT_EQ(logger.lines.size(), 1u) << "one log line per interval, not one per event";
    EXPECT_NE(logger.lines[0].text.find("rate limit open (failing open)"), std::string::npos)
        << logger.lines[0].text;
    EXPECT_EQ(failures.failures(), 100u);

    log_clock.advance(60 * kSecond);
    closed.hit("alice");
    ASSERT_EQ(logger.lines.size(), 2u);
    EXPECT_NE(logger.lines[1].text.find("(99 more failures since the last report)"),
              std::string::npos)
        << logger.lines[1].text;

    // Same port again: the store reconnects on its own after its backoff.
    ASSERT_TRUE(server.start(error, server.port())) << error;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    RateDecision d;
    do {
        d = open.hit("bob");
        if (!d.store_failed)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (Clock::now() < deadline);
    EXPECT_FALSE(d.store_failed);
    EXPECT_TRUE(d.allowed);
}

// A server that accepts but never answers (stopped, overloaded): every call
// returns within its timeout instead of hanging the login.
TEST(RedisStore, StalledServerTimesOut)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer server;
    std::string error;
    ASSERT_TRUE(server.start(error)) << error;
    auto store = open_or_fail(server.spec("stall:") + "&timeout=50ms&connect_timeout=50ms");
    ASSERT_TRUE(store->counter_incr("k", 1, kSecond).ok());
    server.pause();
    auto start = Clock::now();
    auto r = store->counter_incr("k", 1, kSecond);
    int64_t ms = elapsed_ms(start);
    EXPECT_EQ(r.status.code(), Status::Code::Unavailable) << r.status.message();
    EXPECT_GE(ms, 40);
    EXPECT_LT(ms, 500);
    // While backing off, further calls fail at once.
    start = Clock::now();
    EXPECT_FALSE(store->counter_get("k").ok());
    EXPECT_LT(elapsed_ms(start), 20);
    server.resume();
}

} // namespace
} // namespace dmr::store

namespace dmr::store {
namespace {

// A waiter as the auth process's (src/dovecot/auth_async.cpp), with the
// ioloop replaced by the test: every wait suspends the calling coroutine,
// and the test decides who runs next.
class InterleavingWaiter final : public core::IoWaiter {
public:
    core::WaitResult wait(int fd, core::IoEvent event, int64_t deadline_us) override
    {
        waits.push_back({core::Coroutine::current(), fd});
        if (core::Coroutine::current() == nullptr)
            return core::poll_wait(fd, event, deadline_us);
        core::Coroutine::suspend();
        if (time_out)
            return core::WaitResult::TimedOut;
        return core::poll_wait(fd, event, deadline_us);
    }
    struct Wait {
        core::Coroutine *co;
        int fd;
    };
    std::vector<Wait> waits;
    bool time_out = false;
};

std::unique_ptr<Store> open_with_waiter(const std::string &spec, core::IoWaiter &waiter)
{
    std::string error;
    StoreOptions options;
    options.waiter = &waiter;
    auto store = open_store(spec, error, options);
    EXPECT_TRUE(store) << error;
    return store;
}

// Two calls waiting at the same time: the second is sent while the first
// waits for its reply, on a connection of its own, and both get their own
// answers.
TEST(RedisStoreAsync, TwoCallsWaitAtTheSameTimeOnConnectionsOfTheirOwn)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    InterleavingWaiter waiter;
    auto store = open_with_waiter(server->spec(test::unique_prefix()), waiter);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->counter_incr("a", 5, kSecond).ok());   // connected, script cached
    waiter.waits.clear();

    Result<int64_t> a, b;
    core::Coroutine first([&] { a = store->counter_incr("a", 1, kSecond); });
    core::Coroutine second([&] { b = store->counter_incr("b", 10, kSecond); });
    first.resume();
    ASSERT_FALSE(first.done());   // sent, waiting for the reply
    second.resume();
    ASSERT_FALSE(second.done());
    ASSERT_EQ(waiter.waits.size(), 2u);
    EXPECT_EQ(waiter.waits[0].co, &first);
    EXPECT_EQ(waiter.waits[1].co, &second);
    EXPECT_NE(waiter.waits[0].fd, waiter.waits[1].fd);
    // Replies taken in the other order.
    while (!second.done())
        second.resume();
    while (!first.done())
        first.resume();
    ASSERT_TRUE(a.ok()) << a.status.message();
    ASSERT_TRUE(b.ok()) << b.status.message();
    EXPECT_EQ(a.value, 6);
    EXPECT_EQ(b.value, 10);

    // Both connections are kept and reused: no reconnection, values intact.
    core::Coroutine third([&] { a = store->counter_get("a"); });
    core::Coroutine fourth([&] { b = store->counter_get("b"); });
    third.resume();
    fourth.resume();
    while (!third.done() || !fourth.done()) {
        if (!third.done())
            third.resume();
        if (!fourth.done())
            fourth.resume();
    }
    EXPECT_EQ(a.value, 6);
    EXPECT_EQ(b.value, 10);
}

// A wait that ends at the deadline is a failed call (the fail mode decides),
// and drops only that connection.
TEST(RedisStoreAsync, AWaitPastTheDeadlineFailsTheCallAsUnavailable)
{
    std::string why;
    auto *server = test::shared_redis(why);
    if (server == nullptr)
        GTEST_SKIP() << why;
    InterleavingWaiter waiter;
    auto store = open_with_waiter(server->spec(test::unique_prefix()), waiter);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->counter_incr("a", 1, kSecond).ok());
    Result<int64_t> a;
    core::Coroutine co([&] { a = store->counter_incr("a", 1, kSecond); });
    co.resume();
    ASSERT_FALSE(co.done());
    waiter.time_out = true;
    co.resume();
    ASSERT_TRUE(co.done());
    EXPECT_EQ(a.status.code(), Status::Code::Unavailable);
    EXPECT_NE(a.status.message().find("redis:"), std::string::npos) << a.status.message();
}

} // namespace
} // namespace dmr::store
