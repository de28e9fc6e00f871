// Bounds one script call in time. libmruby is Debian's mruby source built
// with MRB_USE_DEBUG_HOOK (scripts/build-mruby.sh), which gives mrb_state an
// instruction hook. Stages:
//  1. at `timeout` (wall clock): `soft_expired()` turns true, so the VM
//     allocator refuses memory (a C function that allocates ends with
//     NoMemoryError), and the signal handler installs the VM's
//     code_fetch_hook (one pointer store): the next Ruby instruction raises
//     the VM's preallocated NoMemoryError, and so does every instruction
//     after it until the call has unwound, so `rescue Exception`, `ensure`
//     and `retry` cannot keep the handler going. disarm() removes the hook.
//     The call fails as a timeout; the process lives on. Before the
//     deadline the hook pointer is null: mruby's check per instruction is
//     all it costs.
//  2. hard (last resort, only where the caller allows it: mail processes,
//     never the auth process): a call that kept the CPU busy for another
//     kHardStageFactor * timeout after stage 1 (thread CPU time, so a process
//     merely starved of CPU is spared) runs no Ruby instruction at all: a C
//     function that never returns. The process logs one line (async-signal-
//     safe write to stderr, which Dovecot logs) and _exits.
// One watchdog per process: the signal handler is process-global.
#pragma once

#include <cstdint>

struct mrb_state;

namespace dmr::mruby {

class Watchdog {
public:
    // Exit status used by the hard stage (Dovecot's FATAL_DEFAULT).
    static constexpr int kHardExitStatus = 89;
    // The hard stage waits this many timeouts of CPU time after the first.
    static constexpr uint32_t kHardStageFactor = 10;

    // Arms the timer for one call into `mrb` (nullptr: no VM to stop, only
    // the allocator flag), named by `what` + `what2` in the hard stage's log
    // line; both strings and `mrb` must stay valid until disarm().
    // `hard_stage`: whether this process may end itself (stage 2).
    static void arm(uint32_t timeout_ms, const char *what, const char *what2, mrb_state *mrb,
                    bool hard_stage);
    static void disarm();
    static bool soft_expired();

    // A call that stops half-way (its coroutine waits for a store reply
    // while other calls run, src/dovecot/auth_async.cpp): pause() takes
    // the running call off the watchdog, resume() puts it back with the
    // time it had left. The wait itself is not counted: it is bounded by the
    // store's own timeout, and the process serves other logins meanwhile
    // (counted, a wait would also include the time the ioloop took to come
    // back to it). Nothing to do when no call was armed.
    struct Paused {
        bool in_call = false;
        bool soft_expired = false;
        bool hard_stage = false;
        uint32_t timeout_ms = 0;
        int64_t start_ns = 0;
        int64_t paused_ns = 0;
        const char *what = "";
        const char *what2 = "";
        mrb_state *mrb = nullptr;
    };
    static Paused pause();
    static void resume(const Paused &paused);
};

// RAII form of arm/disarm.
class WatchdogScope {
public:
    WatchdogScope(uint32_t timeout_ms, const char *what, const char *what2, mrb_state *mrb,
                  bool hard_stage)
    {
        Watchdog::arm(timeout_ms, what, what2, mrb, hard_stage);
    }
    ~WatchdogScope() { Watchdog::disarm(); }
    WatchdogScope(const WatchdogScope &) = delete;
    WatchdogScope &operator=(const WatchdogScope &) = delete;
};

} // namespace dmr::mruby
