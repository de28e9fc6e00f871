// "Auth never waits": in the auth process (not an auth-worker), each handler
// call (on_auth, on_auth_result, ...) runs on a coroutine of its own
// (core::Coroutine). A store call that waits for Redis registers its socket
// on Dovecot's ioloop and switches back to it (AuthWaiter, installed as the
// process's core::IoWaiter), so other logins proceed; the reply (or the
// store's timeout) resumes the handler. See docs/architecture.md.
#pragma once

#include <deque>
#include <functional>

namespace dmr::dovecot {

// Whether handler calls run on coroutines in this process: the auth process
// that serves blocking=no lookups itself. auth-workers (blocking=yes) run
// one lookup at a time and block as before.
bool auth_async_enabled();

// Runs `body` on a coroutine and `done` after it, on the main stack: at once
// when the body never waited, or from the ioloop callback that resumed it
// the last time. Neither may throw. Without a coroutine (an auth-worker, no
// stack could be mapped, or `may_wait` false: nothing in the body can wait)
// both run at once.
void run_on_coroutine(bool may_wait, std::function<void()> body, std::function<void()> done);

// Inside a body: `hook` runs before every later resumption (to put back
// process-wide context another handler may have changed meanwhile).
void on_resume(std::function<void()> hook);
bool in_coroutine();

// Bodies waiting for something (a free VM): wait() suspends the running
// body until wake_one() picks it, which schedules its resumption on the
// ioloop (a body cannot resume another).
class WaitQueue {
public:
    void wait();
    void wake_one();

private:
    std::deque<void *> waiting_;
};

// Installs/removes the ioloop waiter (authdb_mruby_init / deinit).
void auth_async_init();
void auth_async_deinit();

} // namespace dmr::dovecot
