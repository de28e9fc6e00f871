#include "mruby/watchdog.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <ctime>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace dmr::mruby {
namespace {

// Dovecot uses SIGALRM for lock timeouts; a real-time signal is ours alone.
int watchdog_signal() { return SIGRTMIN + 7; }

timer_t g_timer;
bool g_timer_created = false;
volatile sig_atomic_t g_fires = 0;      // expiries since arm()
volatile sig_atomic_t g_armed = 0;
// What the hard stage reports; set by arm(), read by the signal handler.
const char *volatile g_what = "";
const char *volatile g_what2 = "";
volatile uint32_t g_timeout_ms = 0;

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

void on_timer(int)
{
    if (!g_armed)
        return;
    int fires = g_fires + 1;
    g_fires = fires;
    if (fires < 2)
        return;
    // Hard stage: the call allocated nothing for a whole timeout period.
    // One write per piece; Dovecot's log process collects the line.
    write_text("Error: mruby: ");
    write_text(g_what);
    write_text(g_what2);
    write_text(" ran past mruby_timeout=");
    write_number(g_timeout_ms);
    write_text("ms twice over without allocating (endless loop?); ending this process\n");
    _exit(Watchdog::kHardExitStatus);
}

// POSIX timers are not inherited across fork(): a child makes its own.
void forget_timer_in_child() { g_timer_created = false; g_armed = 0; }

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
    sa.sa_handler = on_timer;
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

void Watchdog::arm(uint32_t timeout_ms, const char *what, const char *what2)
{
    if (!ensure_timer())
        return;
    g_what = what;
    g_what2 = what2;
    g_timeout_ms = timeout_ms;
    g_fires = 0;
    g_armed = 1;
    struct itimerspec its;
    its.it_value.tv_sec = timeout_ms / 1000;
    its.it_value.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
    its.it_interval = its.it_value;
    timer_settime(g_timer, 0, &its, nullptr);
}

void Watchdog::disarm()
{
    if (!g_timer_created)
        return;
    g_armed = 0;
    struct itimerspec its;
    std::memset(&its, 0, sizeof(its));
    timer_settime(g_timer, 0, &its, nullptr);
}

bool Watchdog::soft_expired() { return g_fires > 0; }

} // namespace dmr::mruby
