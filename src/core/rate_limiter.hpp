// What a caller does when the store fails: fail open (allow) or fail closed
// (refuse), chosen per limit, and a log line at most once per interval, not
// once per event (a dead Redis must not flood the log at login rate).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/log_throttle.hpp"
#include "core/logger.hpp"
#include "core/store.hpp"

namespace dmr::core {

// Open (the default): a store failure allows the hit, so a broken backend
// never locks every user out of their mail; Dovecot's own auth penalty still
// applies. Closed: a store failure refuses it (strict sites).
enum class FailMode { Open, Closed };

std::optional<FailMode> parse_fail_mode(std::string_view text);   // "open" | "closed"
const char *fail_mode_name(FailMode mode);

// Logs store failures: the first one at once, then at most one line per
// interval with the number of failures in between (LogThrottle). Thread-safe.
class FailureLog {
public:
    static constexpr int64_t kDefaultIntervalUs = LogThrottle::kDefaultIntervalUs;

    // `clock` measures the interval only: monotonic, so a wall-clock step
    // neither silences the log for an hour nor floods it.
    FailureLog(Logger &logger, const Clock &clock = MonotonicClock::instance(),
               int64_t interval_us = kDefaultIntervalUs);

    // `what`: the operation, e.g. "rate limit imap-commands".
    void report(std::string_view what, const Status &status);
    uint64_t failures() const;   // total reported, logged or not

private:
    Logger &logger_;
    const Clock &clock_;
    mutable std::mutex mutex_;
    LogThrottle throttle_;
    uint64_t failures_ = 0;
};

struct RateDecision : GcraDecision {
    bool store_failed = false;   // the decision came from the fail mode
};

// A named GCRA limit: the unit Dovecot::RateLimit wraps. Keys are stored as
// "NAME:KEY", so limits with different names never share state.
class RateLimiter {
public:
    RateLimiter(Store &store, FailureLog &failures, std::string name, GcraRate rate,
                FailMode mode = FailMode::Open);

    RateDecision hit(std::string_view key, int64_t cost = 1);
    RateDecision peek(std::string_view key, int64_t cost = 1);
    // False when the store failed (already logged).
    bool reset(std::string_view key);

    const std::string &name() const { return name_; }
    const GcraRate &rate() const { return rate_; }
    FailMode mode() const { return mode_; }

private:
    std::string store_key(std::string_view key) const;
    RateDecision decide(const Result<GcraDecision> &result, int64_t cost);

    Store &store_;
    FailureLog &failures_;
    std::string name_;
    GcraRate rate_;
    FailMode mode_;
};

} // namespace dmr::core
