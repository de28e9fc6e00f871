// "Log a failure at once, then at most one line per interval": a dead
// backend or a full disk must not flood the log at login rate. One rule for
// every such log (store failures: core/rate_limiter.hpp FailureLog; the audit
// file: core/audit.cpp). Not thread-safe: callers that share one lock it.
#pragma once

#include <cstdint>
#include <optional>

#include "core/clock.hpp"

namespace dmr::core {

class LogThrottle {
public:
    static constexpr int64_t kDefaultIntervalUs = 60 * kMicrosPerSecond;

    explicit LogThrottle(int64_t interval_us = kDefaultIntervalUs) : interval_us_(interval_us) {}

    // Whether a line may be written at `now_us` (monotonic): the first one,
    // then one per interval.
    bool due(int64_t now_us) const
    {
        return !logged_once_ || now_us - last_logged_us_ >= interval_us_;
    }

    // A line that wants to be written at `now_us`. When due: records it as
    // written and returns how many lines were held back since the previous
    // one; otherwise counts it as held back and returns nullopt.
    std::optional<uint64_t> admit(int64_t now_us)
    {
        if (!due(now_us)) {
            held_back_++;
            return std::nullopt;
        }
        uint64_t held_back = held_back_;
        logged_once_ = true;
        last_logged_us_ = now_us;
        held_back_ = 0;
        return held_back;
    }

private:
    int64_t interval_us_;
    bool logged_once_ = false;
    int64_t last_logged_us_ = 0;
    uint64_t held_back_ = 0;
};

} // namespace dmr::core
