// GCRA and counters against their definition (core/ratelimit.hpp), with exact
// boundaries: every instant is given explicitly.
#include <gtest/gtest.h>

#include <random>

#include "core/ratelimit.hpp"

namespace dmr::core {
namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kT0 = 1'700'000'000'000'000;

// Tracks the stored TAT the way a store does.
struct Key {
    std::optional<int64_t> tat;
    GcraDecision hit(int64_t now, const GcraRate &rate, int64_t cost = 1)
    {
        GcraStep step = gcra_step(tat, now, rate, cost);
        if (step.write)
            tat = step.new_tat_us;
        return step.decision;
    }
};

GcraRate rate_of(int64_t limit, int64_t period_us, int64_t burst)
{
    std::string error;
    auto rate = GcraRate::make(limit, period_us, burst, &error);
    EXPECT_TRUE(rate) << error;
    return rate.value_or(GcraRate{});
}

TEST(GcraRate, DerivesEmissionIntervalAndTolerance)
{
    GcraRate rate = rate_of(10, 10 * kSecond, 3);
    EXPECT_EQ(rate.emission_us, kSecond);
    EXPECT_EQ(rate.tolerance_us, 3 * kSecond);
    EXPECT_EQ(rate.burst, 3);
}

TEST(GcraRate, RoundsTheEmissionIntervalUp)
{
    // 3 per 10 µs: T = 4 µs, never faster than the limit.
    EXPECT_EQ(rate_of(3, 10, 1).emission_us, 4);
    EXPECT_EQ(rate_of(7, 60 * kSecond, 1).emission_us, 8'571'429);
}

TEST(GcraRate, RejectsNonsense)
{
    std::string error;
    EXPECT_FALSE(GcraRate::make(0, kSecond, 1, &error));
    EXPECT_EQ(error, "limit must be at least 1");
    EXPECT_FALSE(GcraRate::make(1, 0, 1, &error));
    EXPECT_FALSE(GcraRate::make(1, kSecond, 0, &error));
    EXPECT_FALSE(GcraRate::make(1, kMaxSpanUs + 1, 1, &error));
    EXPECT_FALSE(GcraRate::make(1, kMaxSpanUs, 2, &error));   // tau beyond 10 years
    EXPECT_TRUE(GcraRate::make(1, kMaxSpanUs, 1, &error));
}

TEST(Gcra, BurstFromIdleThenExactlyOneEmissionInterval)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);   // T = 1 s, tau = 3 s
    Key key;
    GcraDecision d = key.hit(kT0, rate);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 2);
    EXPECT_EQ(d.retry_after_us, 0);
    EXPECT_EQ(d.reset_after_us, kSecond);

    d = key.hit(kT0, rate);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 1);
    EXPECT_EQ(d.reset_after_us, 2 * kSecond);

    d = key.hit(kT0, rate);   // new - tau == now: still allowed (boundary is inclusive)
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);

    d = key.hit(kT0, rate);   // fourth at once: limited for exactly one T
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.retry_after_us, kSecond);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);
    EXPECT_EQ(key.tat, kT0 + 3 * kSecond);   // a refused hit records nothing

    d = key.hit(kT0 + kSecond - 1, rate);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, 1);
    EXPECT_EQ(d.reset_after_us, 2 * kSecond + 1);

    d = key.hit(kT0 + kSecond, rate);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);
}

TEST(Gcra, RemainingIsFlooredBetweenEmissions)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);
    Key key;
    for (int i = 0; i < 3; i++)
        key.hit(kT0, rate);
    // 1.5 T later: one slot and a half came back; after this hit, floor(0.5) = 0 remain.
    GcraDecision d = key.hit(kT0 + 1'500'000, rate);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_after_us, 2'500'000);
    // 2 T after that, two whole slots are back.
    d = key.hit(kT0 + 3'500'000, rate);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 1);
}

TEST(Gcra, IdleKeyForgetsEverythingAfterResetAfter)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);
    Key key;
    GcraDecision d;
    for (int i = 0; i < 3; i++)
        d = key.hit(kT0, rate);
    GcraStep step = gcra_step(key.tat, kT0 + d.reset_after_us, rate, 1);
    GcraStep fresh = gcra_step(std::nullopt, kT0 + d.reset_after_us, rate, 1);
    EXPECT_EQ(step.decision.remaining, fresh.decision.remaining);
    EXPECT_EQ(step.new_tat_us, fresh.new_tat_us);
}

TEST(Gcra, CostCountsAsThatManyHits)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);
    Key key;
    GcraDecision d = key.hit(kT0, rate, 3);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_after_us, 3 * kSecond);
    d = key.hit(kT0 + kSecond, rate, 2);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, kSecond);
    EXPECT_EQ(d.remaining, 1);
}

TEST(Gcra, CostAboveBurstIsNeverAllowed)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);
    Key key;
    GcraDecision d = key.hit(kT0, rate, 4);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, kRetryNever);
    EXPECT_EQ(d.remaining, 3);
    EXPECT_EQ(d.reset_after_us, 0);
    EXPECT_FALSE(key.tat);
}

TEST(Gcra, ZeroCostReportsWithoutChangingState)
{
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);
    Key key;
    key.hit(kT0, rate);
    auto before = key.tat;
    GcraDecision d = key.hit(kT0, rate, 0);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 2);
    EXPECT_EQ(key.tat, before);
}

TEST(Gcra, StoredTatBeyondTauIsClampedToAFullyUsedKey)
{
    // No hit leaves a TAT beyond now + tau: the wall clock stepped back since
    // (or the rate was made stricter). The key counts as fully used now, not
    // until the stored instant (issue 8: retry_after=3576 for a 5/60 s limit).
    const GcraRate rate = rate_of(10, 10 * kSecond, 3);   // T = 1 s, tau = 3 s
    GcraStep step = gcra_step(kT0 + 3600 * kSecond, kT0, rate, 1);
    EXPECT_FALSE(step.decision.allowed);
    EXPECT_EQ(step.decision.retry_after_us, 1 * kSecond);
    EXPECT_EQ(step.decision.remaining, 0);
    EXPECT_EQ(step.decision.reset_after_us, 3 * kSecond);
    EXPECT_FALSE(step.write);
    EXPECT_TRUE(step.clamped);   // the store writes the clamped TAT back
    EXPECT_EQ(step.clamped_tat_us, kT0 + 3 * kSecond);
    // Exactly at the bound nothing is clamped.
    step = gcra_step(kT0 + 3 * kSecond, kT0, rate, 1);
    EXPECT_FALSE(step.clamped);
    EXPECT_EQ(step.decision.retry_after_us, 1 * kSecond);
    // A zero-cost hit after a clamp is allowed and stores the clamped TAT itself.
    step = gcra_step(kT0 + 3600 * kSecond, kT0 + kSecond, rate, 0);
    EXPECT_TRUE(step.clamped);
    EXPECT_TRUE(step.decision.allowed);
    EXPECT_TRUE(step.write);
    EXPECT_EQ(step.new_tat_us, kT0 + 4 * kSecond);
}

TEST(Counter, AWindowBeyondItsTtlIsClamped)
{
    // Opened while the clock was a day ahead, then the clock was set right.
    const CounterState stored{4, kT0 + 86400 * kSecond + 60 * kSecond};
    CounterState next = counter_add(stored, kT0, 1, 60 * kSecond);
    EXPECT_EQ(next.value, 5);                            // the window still counts
    EXPECT_EQ(next.expires_at_us, kT0 + 60 * kSecond);   // for at most its ttl
    EXPECT_EQ(clamp_expiry(kT0 + 30 * kSecond, kT0, 60 * kSecond), kT0 + 30 * kSecond);
    EXPECT_EQ(clamp_expiry(0, kT0, 60 * kSecond), 0);    // never expires: untouched
    EXPECT_EQ(clamp_expiry(kT0 + 86400 * kSecond, kT0, 0), kT0 + 86400 * kSecond);
}

// The defining property: over any window of length W, at most
// burst + floor(W / T) unit hits are allowed, and a steady client hitting once
// per T is never refused.
TEST(Gcra, NeverAllowsMoreThanBurstPlusElapsedOverT)
{
    const GcraRate rate = rate_of(5, 10 * kSecond, 4);   // T = 2 s
    std::mt19937_64 random(42);
    Key key;
    std::vector<int64_t> allowed;
    int64_t now = kT0;
    for (int i = 0; i < 20000; i++) {
        now += static_cast<int64_t>(random() % 1'500'000);
        if (key.hit(now, rate).allowed)
            allowed.push_back(now);
    }
    ASSERT_GT(allowed.size(), 100u);
    for (size_t i = 0; i < allowed.size(); i++) {
        for (size_t j = i; j < allowed.size() && j < i + 40; j++) {
            const int64_t window = allowed[j] - allowed[i];
            EXPECT_LE(static_cast<int64_t>(j - i + 1), 4 + window / rate.emission_us)
                << "hits " << i << ".." << j;
        }
    }

    Key steady;
    for (int i = 0; i < 1000; i++)
        EXPECT_TRUE(steady.hit(kT0 + i * rate.emission_us, rate).allowed);
}

TEST(Counter, FixedWindowOpenedByTheFirstIncrement)
{
    std::optional<CounterState> state;
    state = counter_add(state, kT0, 1, 10 * kSecond);
    EXPECT_EQ(state->value, 1);
    EXPECT_EQ(state->expires_at_us, kT0 + 10 * kSecond);

    state = counter_add(state, kT0 + 10 * kSecond - 1, 4, 10 * kSecond);
    EXPECT_EQ(state->value, 5);
    EXPECT_EQ(state->expires_at_us, kT0 + 10 * kSecond);   // later increments keep the expiry

    state = counter_add(state, kT0 + 10 * kSecond, 1, 10 * kSecond);   // expired at that instant
    EXPECT_EQ(state->value, 1);
    EXPECT_EQ(state->expires_at_us, kT0 + 20 * kSecond);
}

TEST(Counter, NegativeIncrementsAndSaturation)
{
    std::optional<CounterState> state;
    state = counter_add(state, kT0, -3, kSecond);
    EXPECT_EQ(state->value, -3);
    state->value = std::numeric_limits<int64_t>::max() - 1;
    state = counter_add(state, kT0, 5, kSecond);
    EXPECT_EQ(state->value, std::numeric_limits<int64_t>::max());
}

TEST(Expiry, ZeroMeansNeverAndTheInstantIsExclusive)
{
    EXPECT_TRUE(alive_at(0, kT0));
    EXPECT_TRUE(alive_at(kT0 + 1, kT0));
    EXPECT_FALSE(alive_at(kT0, kT0));
    EXPECT_EQ(floor_div(-1, 3), -1);
    EXPECT_EQ(floor_div(-3, 3), -1);
    EXPECT_EQ(floor_div(5, 3), 1);
}

} // namespace
} // namespace dmr::core
