// One suite, every backend: the same calls at the same (manual) times must
// give the same answers on memory, LMDB and Redis, and those answers are the
// definitions in core/ratelimit.hpp and core/iplist.hpp.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "conformance.hpp"
#include "core/hll.hpp"

namespace dmr::store {
namespace {

using test::StoreConformance;

constexpr int64_t kSecond = 1'000'000;

void expect_same(const core::GcraDecision &got, const core::GcraDecision &want, const char *what)
{
    EXPECT_EQ(got.allowed, want.allowed) << what;
    EXPECT_EQ(got.remaining, want.remaining) << what;
    EXPECT_EQ(got.retry_after_us, want.retry_after_us) << what;
    EXPECT_EQ(got.reset_after_us, want.reset_after_us) << what;
}

TEST_P(StoreConformance, GcraBoundaries)
{
    const auto r = rate(10, 10 * kSecond, 3);   // T = 1 s, burst 3
    for (int i = 0; i < 3; i++)
        EXPECT_TRUE(hit("alice", r).allowed);
    core::GcraDecision d = hit("alice", r);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, kSecond);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);
    EXPECT_TRUE(hit("bob", r).allowed);   // keys are independent

    clock_.advance(kSecond - 1);
    d = hit("alice", r);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, 1);
    clock_.advance(1);
    d = hit("alice", r);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);
}

TEST_P(StoreConformance, GcraMatchesTheDefinitionOnRandomTraffic)
{
    // A model that applies core::gcra_step to its own map, against the store.
    std::map<std::string, int64_t> model;
    const core::GcraRate rates[] = {rate(10, 10 * kSecond, 3), rate(7, 60 * kSecond, 5),
                                    rate(1000, kSecond, 1)};
    const std::string keys[] = {"a", "b", std::string("c\0d", 3), "{e}"};
    std::mt19937 random(7);
    for (int i = 0; i < 400; i++) {
        clock_.advance(random() % 700'000);
        const std::string &key = keys[random() % 4];
        const core::GcraRate &r = rates[key.size() % 3];
        const int64_t cost = random() % 7 == 0 ? 2 + random() % 5 : 1;
        const int op = random() % 10;
        std::optional<int64_t> stored;
        if (auto it = model.find(key); it != model.end())
            stored = it->second;
        core::GcraStep step = core::gcra_step(stored, clock_.now_us(), r, cost);
        if (op == 0) {
            ASSERT_TRUE(store_->rate_reset(key).ok());
            model.erase(key);
        } else if (op == 1) {
            auto got = store_->rate_peek(key, r, cost);
            ASSERT_TRUE(got.ok()) << got.status.message();
            expect_same(got.value, step.decision, "peek");
        } else {
            expect_same(hit(key, r, cost), step.decision, "hit");
            if (step.write)
                model[key] = step.new_tat_us;
        }
        if (HasFailure())
            FAIL() << "diverged at step " << i;
    }
}

TEST_P(StoreConformance, PeekRecordsNothingAndResetForgets)
{
    const auto r = rate(1, 60 * kSecond, 2);
    for (int i = 0; i < 5; i++) {
        auto peek = store_->rate_peek("k", r, 1);
        ASSERT_TRUE(peek.ok());
        EXPECT_TRUE(peek.value.allowed);
        EXPECT_EQ(peek.value.remaining, 1);
    }
    EXPECT_TRUE(hit("k", r).allowed);
    EXPECT_TRUE(hit("k", r).allowed);
    EXPECT_FALSE(hit("k", r).allowed);
    auto peek = store_->rate_peek("k", r, 1);
    ASSERT_TRUE(peek.ok());
    EXPECT_FALSE(peek.value.allowed);
    EXPECT_EQ(peek.value.retry_after_us, 60 * kSecond);
    ASSERT_TRUE(store_->rate_reset("k").ok());
    ASSERT_TRUE(store_->rate_reset("never-seen").ok());
    EXPECT_TRUE(hit("k", r).allowed);
}

TEST_P(StoreConformance, CostAboveBurstIsNeverAllowed)
{
    core::GcraDecision d = hit("k", rate(10, kSecond, 3), 4);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, core::kRetryNever);
    EXPECT_EQ(store_->rate_hit("k", rate(10, kSecond, 3), -1).status.code(),
              Status::Code::Invalid);
}

TEST_P(StoreConformance, CounterWindowBoundaries)
{
    auto incr = [&](std::string_view key, int64_t by, int64_t ttl) {
        auto r = store_->counter_incr(key, by, ttl);
        EXPECT_TRUE(r.ok()) << r.status.message();
        return r.value;
    };
    auto get = [&](std::string_view key) {
        auto r = store_->counter_get(key);
        EXPECT_TRUE(r.ok()) << r.status.message();
        return r.value;
    };
    EXPECT_EQ(get("fail:192.0.2.1"), 0);
    EXPECT_EQ(incr("fail:192.0.2.1", 1, 600 * kSecond), 1);
    clock_.advance(600 * kSecond - 1);
    EXPECT_EQ(incr("fail:192.0.2.1", 2, 600 * kSecond), 3);   // the window is not extended
    EXPECT_EQ(get("fail:192.0.2.1"), 3);
    clock_.advance(1);
    EXPECT_EQ(get("fail:192.0.2.1"), 0);
    EXPECT_EQ(incr("fail:192.0.2.1", 1, 600 * kSecond), 1);
    EXPECT_EQ(incr("fail:192.0.2.1", -5, 600 * kSecond), -4);
    ASSERT_TRUE(store_->counter_reset("fail:192.0.2.1").ok());
    EXPECT_EQ(get("fail:192.0.2.1"), 0);
    EXPECT_EQ(store_->counter_incr("x", 1, 0).status.code(), Status::Code::Invalid);
    EXPECT_EQ(store_->counter_incr("x", 1, -1).status.code(), Status::Code::Invalid);
}

TEST_P(StoreConformance, NamespacesAndKeysAreSeparate)
{
    EXPECT_EQ(store_->counter_incr("same", 5, kSecond).value, 5);
    EXPECT_TRUE(hit("same", rate(1, kSecond, 1)).allowed);
    EXPECT_EQ(store_->counter_get("same").value, 5);
    EXPECT_EQ(store_->counter_incr(std::string("a\0b", 3), 1, kSecond).value, 1);
    EXPECT_EQ(store_->counter_get("a").value, 0);
    EXPECT_EQ(store_->counter_incr("{tag}", 1, kSecond).value, 1);
    EXPECT_EQ(store_->counter_incr("", 1, kSecond).value, 1);
    // Long keys: shortened the same way everywhere, still distinct.
    std::string long_a(1000, 'x'), long_b(1000, 'x');
    long_b.back() = 'y';
    EXPECT_EQ(store_->counter_incr(long_a, 1, kSecond).value, 1);
    EXPECT_EQ(store_->counter_incr(long_b, 7, kSecond).value, 7);
    EXPECT_EQ(store_->counter_get(long_a).value, 1);
}

TEST_P(StoreConformance, ListLongestPrefixWins)
{
    ASSERT_TRUE(store_->list_add("blocked", "203.0.113.0/24", 3600 * kSecond, "brute force").ok());
    ASSERT_TRUE(store_->list_add("blocked", "203.0.113.7", 60 * kSecond, "this one").ok());
    ASSERT_TRUE(store_->list_add("blocked", "2001:db8::/32", 0, "v6 net").ok());
    ASSERT_TRUE(store_->list_add("blocked", "2001:db8:1::/48", 0, "v6 site").ok());
    ASSERT_TRUE(store_->list_add("blocked", "alice@example.com", 0, "user").ok());

    auto match = [&](std::string_view value) -> std::optional<ListEntry> {
        auto r = store_->list_match("blocked", value);
        EXPECT_TRUE(r.ok()) << r.status.message();
        return r.value;
    };
    auto m = match("203.0.113.7");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "203.0.113.7");
    EXPECT_EQ(m->reason, "this one");
    EXPECT_EQ(m->expires_at_us, clock_.now_us() + 60 * kSecond);
    m = match("203.0.113.8");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "203.0.113.0/24");
    EXPECT_EQ(m->reason, "brute force");
    m = match("::ffff:203.0.113.9");   // IPv4-mapped is IPv4
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "203.0.113.0/24");
    EXPECT_FALSE(match("203.0.114.1"));
    m = match("2001:db8:1:2::5");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "2001:db8:1::/48");
    m = match("2001:db8:2::5");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "2001:db8::/32");
    EXPECT_EQ(m->expires_at_us, 0);
    m = match("203.0.113.128/25");   // a network value: matched by a wider entry
    ASSERT_TRUE(m);
    EXPECT_EQ(m->entry, "203.0.113.0/24");
    EXPECT_FALSE(match("203.0.112.0/23"));
    EXPECT_TRUE(match("alice@example.com"));
    EXPECT_FALSE(match("Alice@example.com"));   // strings: exact, case-sensitive
    EXPECT_FALSE(match("alice"));

    // Expiry boundaries: the /32 expires first and the /24 shows through.
    clock_.advance(60 * kSecond - 1);
    EXPECT_EQ(match("203.0.113.7")->entry, "203.0.113.7");
    clock_.advance(1);
    EXPECT_EQ(match("203.0.113.7")->entry, "203.0.113.0/24");
    clock_.advance(3540 * kSecond);
    EXPECT_FALSE(match("203.0.113.7"));
    EXPECT_TRUE(match("2001:db8::1"));   // ttl 0: never expires
}

TEST_P(StoreConformance, ListAddReplacesRemoveAndEntries)
{
    ASSERT_TRUE(store_->list_add("l", "192.0.2.1", 10 * kSecond, "first").ok());
    ASSERT_TRUE(store_->list_add("l", "192.0.2.1", 20 * kSecond, "second").ok());
    ASSERT_TRUE(store_->list_add("l", "198.51.100.7/24", 5 * kSecond, "net").ok());
    ASSERT_TRUE(store_->list_add("l", "bob", 0, "").ok());
    ASSERT_TRUE(store_->list_add("other", "carol", 0, "elsewhere").ok());

    auto entries = store_->list_entries("l");
    ASSERT_TRUE(entries.ok()) << entries.status.message();
    std::map<std::string, ListEntry> by_name;
    for (auto &e : entries.value)
        by_name[e.entry] = e;
    ASSERT_EQ(by_name.size(), 3u);
    EXPECT_EQ(by_name["192.0.2.1"].reason, "second");
    EXPECT_EQ(by_name["192.0.2.1"].expires_at_us, clock_.now_us() + 20 * kSecond);
    EXPECT_EQ(by_name["198.51.100.0/24"].reason, "net");   // canonical form
    EXPECT_EQ(by_name["bob"].expires_at_us, 0);

    clock_.advance(5 * kSecond);
    EXPECT_EQ(store_->list_entries("l").value.size(), 2u);   // expired ones are not listed

    auto removed = store_->list_remove("l", "192.0.2.1");
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(removed.value);
    EXPECT_FALSE(store_->list_remove("l", "192.0.2.1").value);
    EXPECT_FALSE(store_->list_remove("l", "198.51.100.0/24").value);   // already expired
    EXPECT_FALSE(store_->list_match("l", "192.0.2.1").value);
    EXPECT_EQ(store_->list_entries("l").value.size(), 1u);
    EXPECT_EQ(store_->list_entries("nothing-here").value.size(), 0u);

    EXPECT_EQ(store_->list_add("", "x", 0, "").code(), Status::Code::Invalid);
    EXPECT_EQ(store_->list_add(std::string("a\0b", 3), "x", 0, "").code(), Status::Code::Invalid);
    EXPECT_EQ(store_->list_add("l", "x", -5, "").code(), Status::Code::Invalid);
    EXPECT_EQ(store_->list_match(std::string(101, 'n'), "x").status.code(), Status::Code::Invalid);
}

TEST_P(StoreConformance, ReasonsKeepEveryByte)
{
    const std::string reason = std::string("line1\nline2 \0 end", 17);
    ASSERT_TRUE(store_->list_add("r", "user name with spaces", 0, reason).ok());
    auto m = store_->list_match("r", "user name with spaces");
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(m.value);
    EXPECT_EQ(m.value->reason, reason);
}

// Issue 8 item 12: the wall clock steps. Stored times are clamped to what the
// limit allows: a TAT never beyond now + burst interval, an expiry never beyond
// now + its ttl. What a user sees: retry_after and the end of a ban.
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kDay = 24 * kHour;

TEST_P(StoreConformance, ClockStepForwardAndBackKeepsRetryAfterWithinTheLimit)
{
    const auto r = rate(5, 60 * kSecond, 5);   // 5 per 60 s: T = 12 s, tau = 60 s
    clock_.advance(kHour);                      // the clock jumps an hour ahead
    for (int i = 0; i < 5; i++)
        EXPECT_TRUE(hit("alice", r).allowed);
    clock_.advance(-kHour + 24 * kSecond);      // ... and is set right 24 s later
    core::GcraDecision d = hit("alice", r);
    EXPECT_FALSE(d.allowed);
    // At worst the key counts as fully used now: one emission interval, not an hour.
    EXPECT_LE(d.retry_after_us, 12 * kSecond);
    EXPECT_LE(d.reset_after_us, 60 * kSecond);
    auto peek = store_->rate_peek("alice", r, 1);
    ASSERT_TRUE(peek.ok()) << peek.status.message();
    EXPECT_LE(peek.value.retry_after_us, 12 * kSecond);
    // And the retry_after it gave is the truth: the hit passes then, and the
    // limit goes on at its rate.
    clock_.advance(d.retry_after_us);
    EXPECT_TRUE(hit("alice", r).allowed);
    EXPECT_FALSE(hit("alice", r).allowed);
    clock_.advance(12 * kSecond);
    EXPECT_TRUE(hit("alice", r).allowed);
}

TEST_P(StoreConformance, PeekAloneSeesTheClampedStateEnd)
{
    const auto r = rate(5, 60 * kSecond, 5);
    clock_.advance(kDay);
    for (int i = 0; i < 5; i++)
        EXPECT_TRUE(hit("bob", r).allowed);
    clock_.advance(-kDay);
    // A script that only peeks is told to wait one interval at most, and
    // that is true: the key is free then.
    auto peek = store_->rate_peek("bob", r, 1);
    ASSERT_TRUE(peek.ok()) << peek.status.message();
    EXPECT_FALSE(peek.value.allowed);
    EXPECT_LE(peek.value.retry_after_us, 12 * kSecond);
    clock_.advance(peek.value.retry_after_us);
    peek = store_->rate_peek("bob", r, 1);
    ASSERT_TRUE(peek.ok()) << peek.status.message();
    EXPECT_TRUE(peek.value.allowed);
}

TEST_P(StoreConformance, ABanOutlastsAClockStepBackByNoMoreThanItsTtl)
{
    clock_.advance(kDay);   // the ban is written while the clock is a day ahead
    ASSERT_TRUE(store_->list_add("bans", "203.0.113.0/24", 60 * kSecond, "brute force").ok());
    clock_.advance(-kDay);   // the clock is set right
    auto match = store_->list_match("bans", "203.0.113.7");
    ASSERT_TRUE(match.ok()) << match.status.message();
    ASSERT_TRUE(match.value);
    EXPECT_LE(match.value->expires_at_us, clock_.now_us() + 60 * kSecond);
    auto entries = store_->list_entries("bans");
    ASSERT_TRUE(entries.ok());
    ASSERT_EQ(entries.value.size(), 1u);
    EXPECT_LE(entries.value[0].expires_at_us, clock_.now_us() + 60 * kSecond);
    clock_.advance(60 * kSecond);
    match = store_->list_match("bans", "203.0.113.7");
    ASSERT_TRUE(match.ok());
    EXPECT_FALSE(match.value) << "a 60 s ban still applies after 60 s";
    // Entries that never expire are not touched.
    ASSERT_TRUE(store_->list_add("bans", "mallory", 0, "forever").ok());
    clock_.advance(-kDay);
    match = store_->list_match("bans", "mallory");
    ASSERT_TRUE(match.value);
    EXPECT_EQ(match.value->expires_at_us, 0);
}

TEST_P(StoreConformance, ACounterWindowOutlastsAClockStepBackByNoMoreThanItsTtl)
{
    clock_.advance(kDay);
    EXPECT_EQ(store_->counter_incr("fail:net", 1, 60 * kSecond).value, 1);
    EXPECT_EQ(store_->counter_incr("fail:net", 1, 60 * kSecond).value, 2);
    clock_.advance(-kDay);
    EXPECT_EQ(store_->counter_get("fail:net").value, 2);   // the window still counts
    clock_.advance(60 * kSecond);
    EXPECT_EQ(store_->counter_get("fail:net").value, 0);   // ... for at most its ttl
    EXPECT_EQ(store_->counter_incr("fail:net", 1, 60 * kSecond).value, 1);

    // Incrementing alone also ends the window on time.
    clock_.advance(kDay);
    EXPECT_EQ(store_->counter_incr("other", 1, 60 * kSecond).value, 1);
    clock_.advance(-kDay);
    EXPECT_EQ(store_->counter_incr("other", 1, 60 * kSecond).value, 2);
    clock_.advance(60 * kSecond);
    EXPECT_EQ(store_->counter_incr("other", 1, 60 * kSecond).value, 1);
}

int64_t distinct_add(Store &store, std::string_view key, std::string_view member, int64_t window)
{
    auto r = store.distinct_add(key, member, window);
    EXPECT_TRUE(r.ok()) << r.status.message();
    return r.value;
}

int64_t distinct_count(Store &store, std::string_view key, int64_t window)
{
    auto r = store.distinct_count(key, window);
    EXPECT_TRUE(r.ok()) << r.status.message();
    return r.value;
}

// The store's estimate is core::Hll's for the same members, on every backend
// (Redis' PFCOUNT included: same hash, same registers, same estimator), and
// duplicates do not count.
TEST_P(StoreConformance, DistinctIsTheHllEstimateOfTheMembersAdded)
{
    const int64_t window = 600 * kSecond;
    core::Hll local;
    for (int i = 1; i <= 3000; i++) {
        const std::string user = "user" + std::to_string(i) + "@example.com";
        local.add(user);
        const int64_t count = distinct_add(*store_, "users:203.0.113.0/24", user, window);
        if (i <= 100) {
            EXPECT_LE(std::abs(count - i), 1) << i;   // a collision costs at most one
        }
        if (i % 500 == 0 || i <= 100) {
            ASSERT_EQ(count, static_cast<int64_t>(local.estimate())) << i;
        }
        if (i % 3 == 0) {   // a duplicate changes nothing
            EXPECT_EQ(distinct_add(*store_, "users:203.0.113.0/24", "user1@example.com", window),
                      count);
        }
    }
    const int64_t count = distinct_count(*store_, "users:203.0.113.0/24", window);
    EXPECT_EQ(count, static_cast<int64_t>(local.estimate()));
    EXPECT_LE(std::abs(count - 3000), 3 * 3000 * core::Hll::kStandardError);
    EXPECT_EQ(distinct_count(*store_, "users:203.0.113.1/24", window), 0);
}

// Buckets of `window` aligned on its multiples; a count covers the current
// and the previous bucket: a member counts for at least `window` and less
// than 2 x `window`.
TEST_P(StoreConformance, DistinctWindowBoundaries)
{
    const int64_t window = 60 * kSecond;
    const int64_t start = (clock_.now_us() / window + 1) * window;   // a bucket's first instant
    clock_.set(start);
    EXPECT_EQ(distinct_add(*store_, "k", "a", window), 1);
    clock_.set(start + window - 1);
    EXPECT_EQ(distinct_add(*store_, "k", "b", window), 2);
    clock_.set(start + window);                    // next bucket: both still count
    EXPECT_EQ(distinct_count(*store_, "k", window), 2);
    EXPECT_EQ(distinct_add(*store_, "k", "c", window), 3);
    EXPECT_EQ(distinct_add(*store_, "k", "a", window), 3);   // a again, in this bucket
    clock_.set(start + 2 * window - 1);
    EXPECT_EQ(distinct_count(*store_, "k", window), 3);
    clock_.set(start + 2 * window);                // the first bucket is gone: b is not counted
    EXPECT_EQ(distinct_count(*store_, "k", window), 2);
    clock_.set(start + 3 * window);
    EXPECT_EQ(distinct_count(*store_, "k", window), 0);
    EXPECT_EQ(distinct_add(*store_, "k", "b", window), 1);
}

TEST_P(StoreConformance, DistinctKeysWindowsAndMembersAreSeparateBytes)
{
    const int64_t window = 60 * kSecond;
    EXPECT_EQ(distinct_add(*store_, "same", "x", window), 1);
    EXPECT_EQ(distinct_count(*store_, "same", 2 * window), 0);   // another window, another count
    EXPECT_EQ(store_->counter_get("same").value, 0);             // another namespace
    EXPECT_EQ(distinct_add(*store_, std::string("a\0b", 3), "x", window), 1);
    EXPECT_EQ(distinct_count(*store_, "a", window), 0);
    EXPECT_EQ(distinct_add(*store_, "{tag}", "x", window), 1);
    EXPECT_EQ(distinct_add(*store_, "", "x", window), 1);
    const std::string long_a(5000, 'a');
    const std::string long_b = long_a + "b";
    EXPECT_EQ(distinct_add(*store_, long_a, "x", window), 1);
    EXPECT_EQ(distinct_add(*store_, long_b, "y", window), 1);
    EXPECT_EQ(distinct_add(*store_, long_b, "z", window), 2);
    EXPECT_EQ(distinct_count(*store_, long_a, window), 1);
    // Members are any bytes, of any length.
    EXPECT_EQ(distinct_add(*store_, "m", std::string("u\0v", 3), window), 1);
    EXPECT_EQ(distinct_add(*store_, "m", std::string("u\0w", 3), window), 2);
    EXPECT_EQ(distinct_add(*store_, "m", std::string(200000, '\xff'), window), 3);
    EXPECT_EQ(distinct_add(*store_, "m", "", window), 4);
    EXPECT_EQ(store_->distinct_add("m", "x", 0).status.code(), Status::Code::Invalid);
    EXPECT_EQ(store_->distinct_count("m", -1).status.code(), Status::Code::Invalid);
    EXPECT_EQ(store_->distinct_add("m", "x", core::kMaxSpanUs + 1).status.code(),
              Status::Code::Invalid);
}

// A backend's own test program may instantiate the suite too: a backend
// registered under a scheme runs it as INSTANTIATE_TEST_SUITE_P(Name,
// StoreConformance, ::testing::Values("scheme:...")) (toy_backend_test.cpp).
INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance,
                         ::testing::Values("memory", "lmdb", "redis"),
                         [](const auto &info) { return info.param; });

} // namespace
} // namespace dmr::store
