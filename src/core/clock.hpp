// Where core and the stores read the time. Injected so that algorithms and
// stores are tested against exact boundaries with a manual clock.
// Contract: microseconds since the Unix epoch (wall clock, so that several
// processes and hosts agree on it and stored expiries survive restarts).
#pragma once

#include <atomic>
#include <cstdint>

namespace dmr::core {

class Clock {
public:
    virtual ~Clock() = default;
    virtual int64_t now_us() const = 0;
};

// CLOCK_REALTIME. Shared by every process on the host.
class SystemClock final : public Clock {
public:
    int64_t now_us() const override;
    // One instance for whoever needs a default.
    static const SystemClock &instance();
};

// CLOCK_MONOTONIC: for durations only (log rate limiting, retry delays),
// which must not jump when the wall clock is stepped. Not comparable across
// processes or with SystemClock.
class MonotonicClock final : public Clock {
public:
    int64_t now_us() const override;
    static const MonotonicClock &instance();
};

// A clock that moves only when told to. Tests and benchmarks.
class ManualClock final : public Clock {
public:
    explicit ManualClock(int64_t start_us = 1'700'000'000'000'000) : now_(start_us) {}
    int64_t now_us() const override { return now_.load(std::memory_order_relaxed); }
    void set(int64_t now_us) { now_.store(now_us, std::memory_order_relaxed); }
    void advance(int64_t delta_us) { now_.fetch_add(delta_us, std::memory_order_relaxed); }

private:
    std::atomic<int64_t> now_;
};

constexpr int64_t kMicrosPerMilli = 1000;
constexpr int64_t kMicrosPerSecond = 1'000'000;

} // namespace dmr::core
