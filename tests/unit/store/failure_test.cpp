// Fail-open / fail-closed and once-per-interval logging, with a store that
// fails on demand.
#include <gtest/gtest.h>

#include "core/rate_limiter.hpp"
#include "store/memory_store.hpp"
#include "test_support.hpp"

namespace dmr::store {
namespace {

using core::fail_mode_name;
using core::FailMode;
using core::FailureLog;
using core::parse_fail_mode;
using core::RateDecision;
using core::RateLimiter;

constexpr int64_t kSecond = 1'000'000;

// Delegates to a memory store until told to fail.
class FlakyStore final : public Store {
public:
    explicit FlakyStore(const core::Clock &clock) : inner_(clock) {}
    bool down = false;

    const char *backend() const override { return "flaky"; }
    Result<core::GcraDecision> rate_hit(std::string_view key, const core::GcraRate &rate,
                                        int64_t cost) override
    {
        if (down)
            return outage();
        return inner_.rate_hit(key, rate, cost);
    }
    Result<core::GcraDecision> rate_peek(std::string_view key, const core::GcraRate &rate,
                                         int64_t cost) override
    {
        if (down)
            return outage();
        return inner_.rate_peek(key, rate, cost);
    }
    Status rate_reset(std::string_view key) override
    {
        return down ? outage() : inner_.rate_reset(key);
    }
    Result<int64_t> counter_incr(std::string_view, int64_t, int64_t) override { return outage(); }
    Result<int64_t> counter_get(std::string_view) override { return outage(); }
    Status counter_reset(std::string_view) override { return outage(); }
    Status list_add(std::string_view, std::string_view, int64_t, std::string_view) override
    {
        return outage();
    }
    Result<bool> list_remove(std::string_view, std::string_view) override { return outage(); }
    Result<std::optional<ListEntry>> list_match(std::string_view, std::string_view) override
    {
        return outage();
    }
    Result<std::vector<ListEntry>> list_entries(std::string_view) override { return outage(); }
    Result<int64_t> distinct_add(std::string_view, std::string_view, int64_t) override
    {
        return outage();
    }
    Result<int64_t> distinct_count(std::string_view, int64_t) override { return outage(); }

private:
    static Status outage() { return Status::error(Status::Code::Unavailable, "redis: gone"); }
    MemoryStore inner_;
};

class FailureTest : public ::testing::Test {
protected:
    core::ManualClock clock_;
    FlakyStore store_{clock_};
    test::RecordingLogger logger_;
    FailureLog failures_{logger_, clock_, 60 * kSecond};
    core::GcraRate rate_ = *core::GcraRate::make(10, 10 * kSecond, 2);
};

TEST_F(FailureTest, HealthyStoreDecidesAndNamesTheKey)
{
    RateLimiter limiter(store_, failures_, "imap-commands", rate_, FailMode::Closed);
    EXPECT_TRUE(limiter.hit("alice").allowed);
    EXPECT_TRUE(limiter.hit("alice").allowed);
    RateDecision d = limiter.hit("alice");
    EXPECT_FALSE(d.allowed);
    EXPECT_FALSE(d.store_failed);
    EXPECT_EQ(d.retry_after_us, kSecond);
    // The limit's name is part of the key: another limit has its own state.
    RateLimiter other(store_, failures_, "pop3-commands", rate_);
    EXPECT_TRUE(other.hit("alice").allowed);
    EXPECT_TRUE(limiter.peek("bob").allowed);
    EXPECT_TRUE(limiter.reset("alice"));
    EXPECT_TRUE(limiter.hit("alice").allowed);
    EXPECT_TRUE(logger_.lines.empty());
}

TEST_F(FailureTest, OpenAllowsClosedRefuses)
{
    RateLimiter open(store_, failures_, "a", rate_, FailMode::Open);
    RateLimiter closed(store_, failures_, "b", rate_, FailMode::Closed);
    store_.down = true;
    RateDecision a = open.hit("k"), b = closed.hit("k", 2);
    EXPECT_TRUE(a.allowed);
    EXPECT_TRUE(a.store_failed);
    EXPECT_FALSE(b.allowed);
    EXPECT_TRUE(b.store_failed);
    EXPECT_EQ(b.retry_after_us, 2 * kSecond);   // cost * T: a hint, not a promise
    EXPECT_TRUE(open.peek("k").allowed);
    EXPECT_FALSE(closed.peek("k").allowed);
    EXPECT_FALSE(open.reset("k"));
}

TEST_F(FailureTest, LogsOncePerIntervalWithTheCountInBetween)
{
    RateLimiter limiter(store_, failures_, "imap-commands", rate_, FailMode::Open);
    store_.down = true;
    for (int i = 0; i < 1000; i++)
        limiter.hit("k");
    ASSERT_EQ(logger_.lines.size(), 1u);
    EXPECT_EQ(logger_.lines[0].level, core::LogLevel::Error);
    EXPECT_EQ(logger_.lines[0].text,
              "mruby: store failure (unavailable) in rate limit imap-commands (failing open): "
              "redis: gone");
    clock_.advance(60 * kSecond - 1);
    limiter.hit("k");
    EXPECT_EQ(logger_.lines.size(), 1u);
    clock_.advance(1);
    limiter.hit("k");
    ASSERT_EQ(logger_.lines.size(), 2u);
    EXPECT_NE(logger_.lines[1].text.find("(1000 more failures since the last report)"),
              std::string::npos)
        << logger_.lines[1].text;
    EXPECT_EQ(failures_.failures(), 1002u);
}

TEST(FailMode, ParsesItsNames)
{
    EXPECT_EQ(parse_fail_mode("open"), FailMode::Open);
    EXPECT_EQ(parse_fail_mode("closed"), FailMode::Closed);
    EXPECT_FALSE(parse_fail_mode("maybe"));
    EXPECT_STREQ(fail_mode_name(FailMode::Closed), "closed");
}

} // namespace
} // namespace dmr::store
