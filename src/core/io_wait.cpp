#include "core/io_wait.hpp"

#include <poll.h>

#include <cerrno>

#include "core/clock.hpp"

namespace dmr::core {

WaitResult poll_wait(int fd, IoEvent event, int64_t deadline_us)
{
    struct pollfd p;
    p.fd = fd;
    p.events = event == IoEvent::Readable ? POLLIN : POLLOUT;
    for (;;) {
        p.revents = 0;
        int64_t left_us = deadline_us - MonotonicClock::instance().now_us();
        if (left_us <= 0)
            left_us = 0;
        int ms = static_cast<int>((left_us + 999) / 1000);
        int n = ::poll(&p, 1, ms);
        if (n > 0)
            return WaitResult::Ready;   // POLLERR/POLLHUP too: the read says what happened
        if (n < 0 && errno != EINTR)
            return WaitResult::Failed;
        if (n == 0 && MonotonicClock::instance().now_us() >= deadline_us)
            return WaitResult::TimedOut;
    }
}

PollWaiter &PollWaiter::instance()
{
    static PollWaiter waiter;
    return waiter;
}

namespace {

class ProcessWaiter final : public IoWaiter {
public:
    WaitResult wait(int fd, IoEvent event, int64_t deadline_us) override
    {
        if (installed != nullptr)
            return installed->wait(fd, event, deadline_us);
        return poll_wait(fd, event, deadline_us);
    }
    IoWaiter *installed = nullptr;
};

ProcessWaiter &process_waiter()
{
    static auto *waiter = new ProcessWaiter();   // leaked: stores outlive static destructors
    return *waiter;
}

} // namespace

IoWaiter &process_io_waiter() { return process_waiter(); }

void install_io_waiter(IoWaiter *waiter) { process_waiter().installed = waiter; }

} // namespace dmr::core
