#include "mruby/watchdog.hpp"

#include <csignal>
#include <cstring>
#include <ctime>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include <mruby.h>

#ifndef MRB_USE_DEBUG_HOOK
#error "the watchdog needs libmruby built with MRB_USE_DEBUG_HOOK (scripts/build-mruby.sh)"
#endif

// How the watchdog stays off the hook path: arming and disarming a POSIX
// timer costs two system calls (about 1 us here, half the budget of a hook
// call). Instead a call only records its start time and a flag. The timer is
// one-shot: armed by the first call after a quiet period to fire a timeout
// later; its signal handler then judges whichever call is running and, if
// one is, re-arms itself for that call's deadline. So a process gets at most
// one signal per timeout while calls happen and none when idle, and a system
// call in a handler (a Redis read with its own timeout) is interrupted at
// most once per timeout: periodic ticks would keep restarting such a read
// and its own timeout would never fire.

namespace dmr::mruby {
namespace {

// Dovecot uses SIGALRM for lock timeouts; a real-time signal is ours alone.
int watchdog_signal() { return SIGRTMIN + 7; }

timer_t g_timer;
bool g_timer_created = false;

// Shared with the signal handler, which runs on the same thread.
volatile sig_atomic_t g_in_call = 0;
volatile sig_atomic_t g_soft_expired = 0;
volatile sig_atomic_t g_timer_running = 0;
volatile int64_t g_call_start_ns = 0;
volatile int64_t g_soft_cpu_ns = 0;   // this thread's CPU time when the soft stage fired
volatile uint32_t g_timeout_ms = 0;
volatile int64_t g_timer_due_ns = 0;   // when the pending one-shot fires (CLOCK_MONOTONIC)
volatile sig_atomic_t g_hard_stage = 0;   // this call may end the process (stage 2)
mrb_state *volatile g_mrb = nullptr;       // the VM the running call runs in
const char *volatile g_what = "";
const char *volatile g_what2 = "";

int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }

// Async-signal-safe pieces of the hard stage's log line.
void write_text(const char *text)
{
    size_t len = std::strlen(text);
    ssize_t ignored = write(STDERR_FILENO, text, len);
    (void)ignored;
}

void write_number(uint32_t n)
{
    char digits[16];
    size_t i = sizeof(digits);
    digits[--i] = '\0';
    do {
        digits[--i] = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n > 0 && i > 0);
    write_text(digits + i);
}

// One-shot: fires once, `ms` from now (at least 1 ms).
void fire_in(int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct itimerspec its;
    std::memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = static_cast<time_t>(ms / 1000);
    its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L;
    g_timer_running = 1;
    g_timer_due_ns = now_ns() + ms * 1000000;
    timer_settime(g_timer, 0, &its, nullptr);
}

// mrb_state::code_fetch_hook, installed by the signal handler once the
// deadline has passed: runs before every instruction, which has not started
// yet (`pc` points at its opcode). ci->pc normally points past the operands
// of the running instruction, and mruby finds a rescue/ensure handler by
// ci->pc with "begin < pc <= end" (src/vm.c, catch_handler_find); one byte
// past the opcode is thus exactly "this instruction". Without this, the
// previous instruction's ci->pc (stale after a jump) could find the handler
// of a region the code has already left, e.g. a rescue clause's own
// `begin`, and the raise would loop there for ever. The preallocated
// NoMemoryError is what mruby raises when memory runs out, so raising it
// allocates nothing (the allocator refuses memory now anyway) and is
// reported like the allocating case. Every instruction raises until the
// call has unwound to the bridge, whose disarm() removes the hook.
void stop_at_next_instruction(mrb_state *mrb, const struct mrb_irep *, const mrb_code *pc,
                              mrb_value *)
{
    mrb->c->ci->pc = pc + 1;
    // As mrb_realloc does before raising it: no backtrace is recorded, which
    // would only try (and fail) to allocate, after a full GC, at every raise.
    mrb->gc.out_of_memory = TRUE;
    mrb_exc_raise(mrb, mrb_obj_value(mrb->nomem_err));
}

// Stage 1: the allocator refuses memory and the VM stops at its next
// instruction.
void soft_stage()
{
    g_soft_expired = 1;
    g_soft_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    // The one store that makes the VM stop at its next instruction; the
    // VM reads the pointer before every instruction.
    mrb_state *mrb = g_mrb;
    if (mrb != nullptr)
        mrb->code_fetch_hook = stop_at_next_instruction;
}

void on_tick(int)
{
    if (!g_in_call) {
        g_timer_running = 0;   // quiet: the next call arms it again
        return;
    }
    int64_t timeout_ms = g_timeout_ms;
    int64_t elapsed_ms = (now_ns() - g_call_start_ns) / 1000000;
    if (elapsed_ms < timeout_ms) {
        fire_in(timeout_ms - elapsed_ms);   // a later call: wait for its deadline
        return;
    }
    if (!g_soft_expired) {
        soft_stage();
        if (g_hard_stage) {
            fire_in(timeout_ms);
        } else {
            g_timer_running = 0;   // nothing more to do for this call
        }
        return;
    }
    if (!g_hard_stage) {
        g_timer_running = 0;
        return;
    }
    // Hard stage only for a call that kept the CPU busy for
    // kHardStageFactor more timeouts without reaching a Ruby instruction. A
    // process that was merely starved of CPU (a loaded host) is left alone.
    int64_t bound_ms = timeout_ms * Watchdog::kHardStageFactor;
    int64_t busy_ms = (clock_ns(CLOCK_THREAD_CPUTIME_ID) - g_soft_cpu_ns) / 1000000;
    if (busy_ms < bound_ms) {
        fire_in(bound_ms - busy_ms);
        return;
    }
    // Dovecot logs a child's stderr as an error line with the process's prefix.
    write_text("mruby: ");
    write_text(g_what);
    write_text(g_what2);
    write_text(" ran past mruby_timeout=");
    write_number(g_timeout_ms);
    write_text("ms and did not stop at its next Ruby instruction for ");
    write_number(Watchdog::kHardStageFactor);
    write_text(" times as long (a C function that never returns?); ending this process\n");
    _exit(Watchdog::kHardExitStatus);
}

// POSIX timers are not inherited across fork(): a child makes its own.
void forget_timer_in_child()
{
    g_timer_created = false;
    g_timer_running = 0;
    g_in_call = 0;
}

// Dovecot unloads plugins (dlclose) at process exit, and the one-shot timer
// may still be pending then: its signal must never reach a handler that is
// no longer mapped (a SIGSEGV in the exiting process). Static destructors of
// a plugin run at its dlclose.
struct UnloadGuard {
    ~UnloadGuard()
    {
        if (!g_timer_created)
            return;
        timer_delete(g_timer);
        g_timer_created = false;
        // A signal already queued is discarded once it is ignored.
        signal(watchdog_signal(), SIG_IGN);
    }
} g_unload_guard;

bool ensure_timer()
{
    if (g_timer_created)
        return true;
    static bool atfork_registered = false;
    if (!atfork_registered) {
        pthread_atfork(nullptr, nullptr, forget_timer_in_child);
        atfork_registered = true;
    }
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(watchdog_signal(), &sa, nullptr) < 0)
        return false;

    struct sigevent sev;
    std::memset(&sev, 0, sizeof(sev));
    // Deliver to this (the calling) thread: the one that runs scripts.
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = watchdog_signal();
    sev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (timer_create(CLOCK_MONOTONIC, &sev, &g_timer) < 0)
        return false;
    g_timer_created = true;
    return true;
}


} // namespace

void Watchdog::arm(uint32_t timeout_ms, const char *what, const char *what2, mrb_state *mrb,
                   bool hard_stage)
{
    g_what = what;
    g_what2 = what2;
    g_timeout_ms = timeout_ms;
    g_hard_stage = hard_stage ? 1 : 0;
    g_soft_expired = 0;
    if (mrb != nullptr)
        mrb->code_fetch_hook = nullptr;
    g_mrb = mrb;
    g_call_start_ns = now_ns();
    // In the call before looking at the timer: a signal between the two then
    // sees the call and re-arms for it.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    g_in_call = 1;
    // A pending tick due after this call's deadline (one that on_tick set
    // for an earlier, longer call) is brought forward.
    if ((!g_timer_running ||
         g_timer_due_ns > g_call_start_ns + static_cast<int64_t>(timeout_ms) * 1000000) &&
        ensure_timer())
        fire_in(timeout_ms);
}

void Watchdog::disarm()
{
    // Out of the call first: a signal after this line installs nothing, and
    // one before it installed the hook that is removed next.
    g_in_call = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    mrb_state *mrb = g_mrb;
    if (mrb != nullptr)
        mrb->code_fetch_hook = nullptr;
    g_mrb = nullptr;
}

bool Watchdog::soft_expired() { return g_soft_expired != 0; }

Watchdog::Paused Watchdog::pause()
{
    Paused paused;
    if (!g_in_call)
        return paused;
    paused.in_call = true;
    paused.soft_expired = g_soft_expired != 0;
    paused.hard_stage = g_hard_stage != 0;
    paused.timeout_ms = g_timeout_ms;
    paused.start_ns = g_call_start_ns;
    paused.paused_ns = now_ns();
    paused.what = g_what;
    paused.what2 = g_what2;
    paused.mrb = g_mrb;
    disarm();
    g_soft_expired = 0;
    return paused;
}

void Watchdog::resume(const Paused &paused)
{
    if (!paused.in_call)
        return;
    arm(paused.timeout_ms, paused.what, paused.what2, paused.mrb, paused.hard_stage);
    // The wait is not the call's own time (it is bounded by the store's
    // timeout, and the process served others meanwhile): the call goes on
    // with the time it had left when it was paused.
    const int64_t now = now_ns();
    g_call_start_ns = now - (paused.paused_ns - paused.start_ns);
    int64_t left_ms = static_cast<int64_t>(paused.timeout_ms) - (now - g_call_start_ns) / 1000000;
    if (paused.soft_expired || left_ms <= 0) {
        soft_stage();
        if (g_hard_stage && ensure_timer())
            fire_in(paused.timeout_ms);
    } else if (ensure_timer() && (!g_timer_running || g_timer_due_ns > now + left_ms * 1000000)) {
        fire_in(left_ms);
    }
}

} // namespace dmr::mruby
