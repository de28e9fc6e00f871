// Rate-limit algorithms as pure functions of (stored state, now, parameters):
// every store applies the same definition, so a script gets the same
// decisions on memory, LMDB and Redis. Times are microseconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dmr::core {

// Longest span any limit or expiry may cover; keeps all arithmetic far from
// int64 overflow and exact in a double (Redis' Lua numbers).
constexpr int64_t kMaxSpanUs = 10ll * 366 * 24 * 3600 * 1'000'000;   // ~10 years

// GCRA ("generic cell rate algorithm", as in redis-cell): one timestamp per
// key, the theoretical arrival time (TAT).
//   T   = emission interval = period / limit (rounded up to whole microseconds,
//         so the long-run rate never exceeds limit per period)
//   tau = T * burst (burst = hits allowed at once from an idle key)
struct GcraRate {
    int64_t emission_us = 0;    // T
    int64_t tolerance_us = 0;   // tau
    int64_t burst = 0;

    // limit >= 1 hits per period_us >= 1, burst >= 1, tau <= kMaxSpanUs.
    // Returns nullopt and sets `error` otherwise.
    static std::optional<GcraRate> make(int64_t limit, int64_t period_us, int64_t burst,
                                        std::string *error = nullptr);
};

constexpr int64_t kRetryNever = -1;   // the cost exceeds the burst: never allowed

struct GcraDecision {
    bool allowed = false;
    int64_t remaining = 0;        // hits still allowed right now after this one
    int64_t retry_after_us = 0;   // 0 when allowed; kRetryNever if cost > burst
    int64_t reset_after_us = 0;   // until the key is back to its idle state
};

struct GcraStep {
    GcraDecision decision;
    bool write = false;           // store new_tat_us (it also expires then)
    int64_t new_tat_us = 0;
    // The stored TAT lay beyond now + tau, which no hit can leave behind: the
    // wall clock stepped back since it was written. It was read as now + tau
    // (the key fully used, not an hour of retry_after); when nothing else is
    // written, store clamped_tat_us so that the key frees up on time.
    bool clamped = false;
    int64_t clamped_tat_us = 0;
};

// One decision for `cost` (>= 0) hits at `now_us`. `stored_tat_us` is the
// key's TAT, nullopt if absent. The definition, step by step:
//   stored = min(stored, now + tau)   (clock steps: see GcraStep::clamped)
//   tat = max(stored, now); new = tat + T*cost
//   limited if new - tau > now: retry_after = new - tau - now,
//       reset_after = tat - now, remaining = floor((tau - (tat - now)) / T), nothing stored
//   else: store new (expiring at new), reset_after = new - now,
//       remaining = floor((tau - (new - now)) / T)
GcraStep gcra_step(std::optional<int64_t> stored_tat_us, int64_t now_us, const GcraRate &rate,
                   int64_t cost);

// A counter with a fixed window: the first increment (of an absent or expired
// counter) starts it at zero and sets its expiry to now + ttl; later
// increments keep that expiry, clamped to now + ttl (clamp_expiry). `expires_at_us` is exclusive: the counter is
// gone at that instant.
struct CounterState {
    int64_t value = 0;
    int64_t expires_at_us = 0;
};

CounterState counter_add(const std::optional<CounterState> &current, int64_t now_us, int64_t by,
                         int64_t ttl_us);

// An expiry written as "then + ttl" never lies more than `ttl` ahead of now;
// one that does was written while the wall clock was ahead (it has stepped
// back since) and is read as now + ttl. 0 (never) and ttl <= 0 (unknown) are
// left alone.
constexpr int64_t clamp_expiry(int64_t expires_at_us, int64_t now_us, int64_t ttl_us)
{
    return expires_at_us == 0 || ttl_us <= 0 || expires_at_us - now_us <= ttl_us
               ? expires_at_us
               : now_us + ttl_us;
}

// Expiry convention of every stored record: 0 = never, otherwise alive while now < expires_at.
constexpr bool alive_at(int64_t expires_at_us, int64_t now_us)
{
    return expires_at_us == 0 || now_us < expires_at_us;
}

// floor(a / b) for b > 0, also for negative a.
constexpr int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

} // namespace dmr::core
