// Bounds one script call in time, for a libmruby built without an
// instruction hook (Debian's). Two stages:
//  1. soft: after `timeout`, `soft_expired()` turns true; the VM allocator then
//     refuses memory, so a loop that allocates ends with NoMemoryError at a
//     safe point and the call returns normally (reported as a timeout).
//  2. hard: a call that then kept the CPU busy for another `timeout` (thread
//     CPU time, so a process merely starved of CPU is spared) allocated
//     nothing, so nothing inside the VM will ever stop it. The process logs one line
//     (async-signal-safe write to stderr, which Dovecot logs) and _exits.
//     IMAP/POP3 processes serve one session; Dovecot restarts what ended.
// Each stage fires within a quarter timeout after its deadline (the timer
// ticks; see watchdog.cpp). One watchdog per process: the signal handler is
// process-global.
#pragma once

#include <cstdint>

namespace dmr::mruby {

class Watchdog {
public:
    // Exit status used by the hard stage (Dovecot's FATAL_DEFAULT).
    static constexpr int kHardExitStatus = 89;

    // Arms the timer for one call, named by `what` + `what2` in the hard
    // stage's log line; both strings must stay valid until disarm().
    static void arm(uint32_t timeout_ms, const char *what, const char *what2);
    static void disarm();
    static bool soft_expired();
};

// RAII form of arm/disarm.
class WatchdogScope {
public:
    WatchdogScope(uint32_t timeout_ms, const char *what, const char *what2)
    {
        Watchdog::arm(timeout_ms, what, what2);
    }
    ~WatchdogScope() { Watchdog::disarm(); }
    WatchdogScope(const WatchdogScope &) = delete;
    WatchdogScope &operator=(const WatchdogScope &) = delete;
};

} // namespace dmr::mruby
