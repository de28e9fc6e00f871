// A function run on a stack of its own, so that it can stop half-way (deep
// inside C++ and mruby's C frames, where mruby's own Fiber could not yield)
// and be continued later from the main stack. The auth process runs each
// handler call on one so that a store call waiting for Redis lets other
// logins proceed (docs/architecture.md, "Auth never waits").
//
// ucontext (makecontext/swapcontext); the stack is mmap'd with a guard page
// below it (an overflow faults instead of corrupting the heap), its pages
// committed only as touched; the stacks of finished coroutines are kept for
// the next ones (up to 64). The stack switches are told to AddressSanitizer
// (__sanitizer_start/finish_switch_fiber) and the stack to valgrind
// (VALGRIND_STACK_REGISTER) when built with either available.
//
// One thread; no nesting: resume() is called from the main stack only, and
// suspend() from inside the body only. An exception leaving the body is
// rethrown by the resume() that ran it.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <exception>
#include <functional>

namespace dmr::core {

class Coroutine {
public:
    static constexpr size_t kDefaultStackBytes = 1u << 20;

    explicit Coroutine(std::function<void()> body, size_t stack_bytes = kDefaultStackBytes);
    // A coroutine that was started must have finished (a suspended one holds
    // frames whose destructors would never run).
    ~Coroutine();
    Coroutine(const Coroutine &) = delete;
    Coroutine &operator=(const Coroutine &) = delete;

    // False when no stack could be mapped: run the body directly instead.
    bool ok() const { return stack_ != nullptr; }
    // Runs the body until it finishes or suspends. Main stack only.
    void resume();
    bool done() const { return done_; }
    bool started() const { return started_; }

    // Inside a body: back to the resume() that ran it.
    static void suspend();
    // The coroutine whose body is running, or nullptr on the main stack.
    static Coroutine *current();

private:
    static void entry();
    void switch_in();
    void switch_out(bool finishing);

    std::function<void()> body_;
    void *map_ = nullptr;   // guard page + stack
    size_t map_bytes_ = 0;
    void *stack_ = nullptr;
    size_t stack_bytes_ = 0;
    unsigned valgrind_id_ = 0;
    ucontext_t context_{};
    ucontext_t caller_{};
    bool started_ = false;
    bool done_ = false;
    std::exception_ptr error_;
    // AddressSanitizer's view of the two stacks.
    void *fake_stack_ = nullptr;
    const void *caller_bottom_ = nullptr;
    size_t caller_size_ = 0;
};

} // namespace dmr::core
