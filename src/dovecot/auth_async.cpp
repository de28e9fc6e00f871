#include "dovecot/auth_async.hpp"

#include <memory>
#include <vector>

#include "core/clock.hpp"
#include "core/coroutine.hpp"
#include "core/io_wait.hpp"
#include "dovecot/auth_headers.hpp"
#include "mruby/watchdog.hpp"

namespace dmr::dovecot {
namespace {

struct Task {
    explicit Task(std::function<void()> body) : co(std::move(body)) {}
    core::Coroutine co;
    std::function<void()> done;
    std::function<void()> resume_hook;
};

Task *g_running = nullptr;   // the task whose body runs now

// Runs the task until it waits or ends; an ended task's `done` runs here,
// on the main stack.
void step(Task *task)
{
    Task *saved = g_running;
    g_running = task;
    if (task->co.started() && task->resume_hook)
        task->resume_hook();
    bool ok = no_throw(auth_event, "handler coroutine", [&] { task->co.resume(); });
    g_running = saved;
    if (!ok && !task->co.done()) {
        // Cannot happen (resume() throws only for an ended body); never free
        // a suspended stack.
        return;
    }
    if (!task->co.done())
        return;
    std::function<void()> done = std::move(task->done);
    delete task;
    no_throw(auth_event, "after handler", [&] { if (done) done(); });
}

// Resumptions requested from inside a body (WaitQueue::wake_one): run from
// a zero timeout on the main stack.
std::vector<Task *> g_ready;
struct timeout *g_ready_to = nullptr;

void run_ready(void *)
{
    timeout_remove(&g_ready_to);
    std::vector<Task *> ready;
    ready.swap(g_ready);
    for (Task *task : ready)
        step(task);
}

void schedule(Task *task)
{
    g_ready.push_back(task);
    if (g_ready_to == nullptr)
        g_ready_to = (timeout_add_short)(0, __FILE__, __LINE__, run_ready, nullptr);
}

// One wait for a socket, on the suspended task's stack.
struct Waiting {
    Task *task;
    struct io *io = nullptr;
    struct timeout *to = nullptr;
    bool fired = false;
    core::WaitResult result = core::WaitResult::Ready;
};

void wait_ready(void *context)
{
    auto *w = static_cast<Waiting *>(context);
    if (w->fired)
        return;
    w->fired = true;
    w->result = core::WaitResult::Ready;
    step(w->task);   // `w` may be gone after this
}

void wait_timed_out(void *context)
{
    auto *w = static_cast<Waiting *>(context);
    if (w->fired)
        return;
    w->fired = true;
    w->result = core::WaitResult::TimedOut;
    step(w->task);
}

class AuthWaiter final : public core::IoWaiter {
public:
    core::WaitResult wait(int fd, core::IoEvent event, int64_t deadline_us) override
    {
        Task *task = g_running;
        if (task == nullptr || core::Coroutine::current() == nullptr)
            return core::poll_wait(fd, event, deadline_us);
        int64_t left_us = deadline_us - core::MonotonicClock::instance().now_us();
        if (left_us <= 0)
            return core::WaitResult::TimedOut;
        Waiting w;
        w.task = task;
        w.io = (io_add)(fd, event == core::IoEvent::Readable ? IO_READ : IO_WRITE, __FILE__,
                        __LINE__, wait_ready, &w);
        w.to = (timeout_add_short)(static_cast<unsigned int>((left_us + 999) / 1000), __FILE__,
                                   __LINE__, wait_timed_out, &w);
        // Other handlers run meanwhile, each with its own watchdog arming.
        mruby::Watchdog::Paused paused = mruby::Watchdog::pause();
        while (!w.fired)
            core::Coroutine::suspend();
        mruby::Watchdog::resume(paused);
        io_remove(&w.io);
        timeout_remove(&w.to);
        return w.result;
    }
};

AuthWaiter *g_waiter = nullptr;

} // namespace

bool auth_async_enabled() { return g_waiter != nullptr && !worker; }

bool in_coroutine() { return g_running != nullptr && core::Coroutine::current() != nullptr; }

void run_on_coroutine(bool may_wait, std::function<void()> body, std::function<void()> done)
{
    if (may_wait && auth_async_enabled() && !in_coroutine()) {
        auto *task = new Task(body);
        if (task->co.ok()) {
            task->done = std::move(done);
            step(task);
            return;
        }
        delete task;   // no stack: run it here, blocking as before
    }
    body();
    done();
}

void on_resume(std::function<void()> hook)
{
    if (g_running != nullptr)
        g_running->resume_hook = std::move(hook);
}

void WaitQueue::wait()
{
    Task *task = g_running;
    waiting_.push_back(task);
    core::Coroutine::suspend();
}

void WaitQueue::wake_one()
{
    if (waiting_.empty())
        return;
    auto *task = static_cast<Task *>(waiting_.front());
    waiting_.pop_front();
    schedule(task);
}

void auth_async_init()
{
    if (g_waiter == nullptr)
        g_waiter = new AuthWaiter();
    core::install_io_waiter(g_waiter);
}

void auth_async_deinit()
{
    core::install_io_waiter(nullptr);
    if (g_ready_to != nullptr)
        timeout_remove(&g_ready_to);
    g_ready.clear();
    delete g_waiter;
    g_waiter = nullptr;
}

} // namespace dmr::dovecot
