#include "core/ratelimit.hpp"

#include <algorithm>
#include <limits>

namespace dmr::core {

std::optional<GcraRate> GcraRate::make(int64_t limit, int64_t period_us, int64_t burst,
                                       std::string *error)
{
    auto fail = [&](const char *message) -> std::optional<GcraRate> {
        if (error != nullptr)
            *error = message;
        return std::nullopt;
    };
    if (limit < 1)
        return fail("limit must be at least 1");
    if (period_us < 1 || period_us > kMaxSpanUs)
        return fail("period must be positive and at most 10 years");
    if (burst < 1)
        return fail("burst must be at least 1");
    GcraRate rate;
    rate.emission_us = period_us / limit + (period_us % limit != 0 ? 1 : 0);
    if (burst > kMaxSpanUs / rate.emission_us)
        return fail("burst * period / limit must be at most 10 years");
    rate.tolerance_us = rate.emission_us * burst;
    rate.burst = burst;
    return rate;
}

GcraStep gcra_step(std::optional<int64_t> stored_tat_us, int64_t now_us, const GcraRate &rate,
                   int64_t cost)
{
    const int64_t T = rate.emission_us;
    const int64_t tau = rate.tolerance_us;
    GcraStep step;
    int64_t stored = stored_tat_us.value_or(now_us);
    if (stored - now_us > tau) {
        stored = now_us + tau;
        step.clamped = true;
        step.clamped_tat_us = stored;
    }
    const int64_t tat = std::max(stored, now_us);
    GcraDecision &d = step.decision;

    // cost > burst can never pass; also keeps T*cost <= tau (no overflow).
    const bool never = cost > rate.burst;
    const int64_t new_tat = never ? tat : tat + T * cost;
    if (never || new_tat - tau > now_us) {
        d.allowed = false;
        d.retry_after_us = never ? kRetryNever : new_tat - tau - now_us;
        d.reset_after_us = tat - now_us;
        d.remaining = std::max<int64_t>(0, floor_div(tau - (tat - now_us), T));
        return step;
    }
    d.allowed = true;
    d.retry_after_us = 0;
    d.reset_after_us = new_tat - now_us;
    d.remaining = std::max<int64_t>(0, floor_div(tau - (new_tat - now_us), T));
    step.write = new_tat > now_us;
    step.new_tat_us = new_tat;
    return step;
}

CounterState counter_add(const std::optional<CounterState> &current, int64_t now_us, int64_t by,
                         int64_t ttl_us)
{
    CounterState next;
    const int64_t expires =
        current ? clamp_expiry(current->expires_at_us, now_us, ttl_us) : int64_t{0};
    if (current && alive_at(expires, now_us)) {
        next = *current;
        next.expires_at_us = expires;
    } else {
        next.value = 0;
        next.expires_at_us = now_us + ttl_us;
    }
    // Saturate instead of wrapping: a wrapped counter would unblock an attacker.
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    if (by > 0 && next.value > kMax - by)
        next.value = kMax;
    else if (by < 0 && next.value < kMin - by)
        next.value = kMin;
    else
        next.value += by;
    return next;
}

} // namespace dmr::core
