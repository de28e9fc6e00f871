#include "core/clock.hpp"

#include <ctime>

namespace dmr::core {

int64_t SystemClock::now_us() const
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * kMicrosPerSecond + ts.tv_nsec / 1000;
}

const SystemClock &SystemClock::instance()
{
    static const SystemClock clock;
    return clock;
}

int64_t MonotonicClock::now_us() const
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * kMicrosPerSecond + ts.tv_nsec / 1000;
}

const MonotonicClock &MonotonicClock::instance()
{
    static const MonotonicClock clock;
    return clock;
}

} // namespace dmr::core
