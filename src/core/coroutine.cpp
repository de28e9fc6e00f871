#include "core/coroutine.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DMR_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DMR_ASAN 1
#endif
#ifdef DMR_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define DMR_VALGRIND 1
#endif

namespace dmr::core {
namespace {
Coroutine *g_current = nullptr;

// Stacks of finished coroutines, kept for the next ones: a login then costs
// no mmap/munmap and touches pages already there.
struct FreeStack {
    void *map;
    size_t map_bytes;
};
constexpr size_t kKeptStacks = 64;
std::vector<FreeStack> &free_stacks()
{
    static auto *stacks = new std::vector<FreeStack>();   // leaked: used until exit
    return *stacks;
}
}

Coroutine::Coroutine(std::function<void()> body, size_t stack_bytes) : body_(std::move(body))
{
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    stack_bytes = (stack_bytes + page - 1) / page * page;
    map_bytes_ = stack_bytes + page;
    auto &kept = free_stacks();
    for (size_t i = 0; i < kept.size(); i++) {
        if (kept[i].map_bytes == map_bytes_) {
            map_ = kept[i].map;
            kept[i] = kept.back();
            kept.pop_back();
            stack_ = static_cast<char *>(map_) + page;
            stack_bytes_ = stack_bytes;
#ifdef DMR_VALGRIND
            valgrind_id_ = VALGRIND_STACK_REGISTER(stack_, static_cast<char *>(stack_) + stack_bytes_);
#endif
            return;
        }
    }
    void *map = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return;
    // The stack grows down: its lowest page faults on an overflow.
    if (mprotect(map, page, PROT_NONE) != 0) {
        munmap(map, map_bytes_);
        return;
    }
    map_ = map;
    stack_ = static_cast<char *>(map) + page;
    stack_bytes_ = stack_bytes;
#ifdef DMR_VALGRIND
    valgrind_id_ = VALGRIND_STACK_REGISTER(stack_, static_cast<char *>(stack_) + stack_bytes_);
#endif
}

Coroutine::~Coroutine()
{
    if (started_ && !done_)
        std::abort();   // its frames would never unwind: a caller bug
    if (map_ == nullptr)
        return;
#ifdef DMR_VALGRIND
    VALGRIND_STACK_DEREGISTER(valgrind_id_);
#endif
    if (free_stacks().size() < kKeptStacks)
        free_stacks().push_back({map_, map_bytes_});
    else
        munmap(map_, map_bytes_);
}

Coroutine *Coroutine::current() { return g_current; }

void Coroutine::entry()
{
    Coroutine *self = g_current;
#ifdef DMR_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &self->caller_bottom_, &self->caller_size_);
#endif
    try {
        self->body_();
    } catch (...) {
        self->error_ = std::current_exception();
    }
    self->done_ = true;
    self->switch_out(true);
    std::abort();   // a finished coroutine is never switched back into
}

void Coroutine::switch_in()
{
    Coroutine *saved = g_current;
    g_current = this;
#ifdef DMR_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, stack_, stack_bytes_);
#endif
    swapcontext(&caller_, &context_);
#ifdef DMR_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    g_current = saved;
}

void Coroutine::switch_out(bool finishing)
{
#ifdef DMR_ASAN
    __sanitizer_start_switch_fiber(finishing ? nullptr : &fake_stack_, caller_bottom_,
                                   caller_size_);
#else
    (void)finishing;
#endif
    swapcontext(&context_, &caller_);
#ifdef DMR_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_, &caller_bottom_, &caller_size_);
#endif
}

void Coroutine::resume()
{
    if (done_ || g_current != nullptr)
        std::abort();   // finished, or called from inside a coroutine
    if (!started_) {
        started_ = true;
        getcontext(&context_);
        context_.uc_stack.ss_sp = stack_;
        context_.uc_stack.ss_size = stack_bytes_;
        context_.uc_link = nullptr;
        makecontext(&context_, entry, 0);
    }
    switch_in();
    if (done_ && error_) {
        std::exception_ptr error = error_;
        error_ = nullptr;
        std::rethrow_exception(error);
    }
}

void Coroutine::suspend()
{
    Coroutine *self = g_current;
    if (self == nullptr)
        std::abort();   // not inside a coroutine
    self->switch_out(false);
}

} // namespace dmr::core
