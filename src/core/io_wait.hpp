// Waiting for a socket, as a store does between sending a command and
// reading its reply. A store never blocks in read()/write() itself: it asks
// its IoWaiter to wait until the descriptor is ready or the deadline passes.
// The default waiter is poll(), so the store behaves exactly as a blocking
// client would (mail processes, doveadm, auth-workers, tests). The auth
// process installs one that, inside a handler's coroutine (core/coroutine.hpp),
// registers the descriptor on Dovecot's ioloop and switches back to it, so
// other logins run meanwhile (src/dovecot/auth_async.cpp, docs/architecture.md).
#pragma once

#include <cstdint>

namespace dmr::core {

enum class IoEvent : uint8_t { Readable, Writable };
enum class WaitResult : uint8_t { Ready, TimedOut, Failed };

class IoWaiter {
public:
    virtual ~IoWaiter() = default;
    // Returns when `fd` is ready for `event`, or when MonotonicClock passes
    // `deadline_us` (TimedOut), or on a poll error (Failed).
    virtual WaitResult wait(int fd, IoEvent event, int64_t deadline_us) = 0;
};

// poll(2) on one descriptor, retried on EINTR.
WaitResult poll_wait(int fd, IoEvent event, int64_t deadline_us);

class PollWaiter final : public IoWaiter {
public:
    WaitResult wait(int fd, IoEvent event, int64_t deadline_us) override
    {
        return poll_wait(fd, event, deadline_us);
    }
    static PollWaiter &instance();
};

// The waiter every store opened through core::process_store() is given
// (StoreOptions::waiter). It forwards to the installed waiter, or polls when
// none is. The object itself lives for the whole process, so a store (in the
// backends module too) may keep a pointer to it.
IoWaiter &process_io_waiter();
// `waiter` (nullptr: poll again) must stay valid until it is replaced.
void install_io_waiter(IoWaiter *waiter);

} // namespace dmr::core
