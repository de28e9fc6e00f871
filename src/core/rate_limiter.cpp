#include "core/rate_limiter.hpp"

#include <algorithm>

namespace dmr::core {

std::optional<FailMode> parse_fail_mode(std::string_view text)
{
    if (text == "open")
        return FailMode::Open;
    if (text == "closed")
        return FailMode::Closed;
    return std::nullopt;
}

const char *fail_mode_name(FailMode mode) { return mode == FailMode::Open ? "open" : "closed"; }

FailureLog::FailureLog(Logger &logger, const Clock &clock, int64_t interval_us)
    : logger_(logger), clock_(clock), throttle_(interval_us)
{
}

void FailureLog::report(std::string_view what, const Status &status)
{
    std::optional<uint64_t> held_back;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        failures_++;
        held_back = throttle_.admit(clock_.now_us());
    }
    // Every failure is the event mruby_store_failure (metrics count them
    // all); the Error line is throttled, the others are debug lines.
    LogEvent event{"mruby_store_failure",
                   {{"operation", std::string(what)},
                    {"status", status_code_name(status.code())}},
                   {}};
    std::string line = "mruby: store failure (" + std::string(status_code_name(status.code())) +
                       ") in " + std::string(what) + ": " + status.message();
    if (!held_back) {
        logger_.emit(line, event);
        return;
    }
    if (*held_back > 0)
        line += " (" + std::to_string(*held_back) + " more failures since the last report)";
    logger_.log_event(LogLevel::Error, line, event);   // outside the lock: the logger may be slow
}

uint64_t FailureLog::failures() const
{
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
}

RateLimiter::RateLimiter(Store &store, FailureLog &failures, std::string name, GcraRate rate,
                         FailMode mode)
    : store_(store), failures_(failures), name_(std::move(name)), rate_(rate), mode_(mode)
{
}

std::string RateLimiter::store_key(std::string_view name, std::string_view key)
{
    std::string out;
    out.reserve(name.size() + 1 + key.size());
    out.append(name).append(":").append(key);
    return out;
}

RateDecision RateLimiter::decide(const Result<GcraDecision> &result, int64_t cost)
{
    RateDecision decision;
    if (result.ok()) {
        static_cast<GcraDecision &>(decision) = result.value;
        return decision;
    }
    failures_.report("rate limit " + name_ + " (failing " + fail_mode_name(mode_) + ")",
                     result.status);
    decision.store_failed = true;
    decision.allowed = mode_ == FailMode::Open;
    // Closed: tell the client to come back after the time its hit would take.
    decision.retry_after_us = decision.allowed ? 0 : rate_.emission_us * std::max<int64_t>(cost, 1);
    return decision;
}

RateDecision RateLimiter::hit(std::string_view key, int64_t cost)
{
    return decide(store_.rate_hit(store_key(name_, key), rate_, cost), cost);
}

RateDecision RateLimiter::peek(std::string_view key, int64_t cost)
{
    return decide(store_.rate_peek(store_key(name_, key), rate_, cost), cost);
}

bool RateLimiter::reset(std::string_view key)
{
    Status status = store_.rate_reset(store_key(name_, key));
    if (!status.ok())
        failures_.report("rate limit " + name_ + " reset", status);
    return status.ok();
}

} // namespace dmr::core
