// The allocator of one VM: counts live bytes against mruby_memory_limit,
// refuses memory once the watchdog's soft deadline passed (that is how a
// runaway handler is stopped), and tracks every block so that whatever the VM
// leaves behind (an abandoned parser, an exception mid-load) is freed with it.
#pragma once

#include <cstddef>
#include <cstdint>

struct mrb_state;

namespace dmr::mruby {

class Allocator {
public:
    explicit Allocator(uint64_t limit) : limit_(limit) {}
    ~Allocator();   // frees every block still live
    Allocator(const Allocator &) = delete;
    Allocator &operator=(const Allocator &) = delete;

    // mrb_allocf-compatible entry point; `ud` is the Allocator.
    static void *allocf(struct mrb_state *mrb, void *ptr, size_t size, void *ud);

    uint64_t used() const { return used_; }
    uint64_t peak() const { return peak_; }
    uint64_t limit() const { return limit_; }

    // Set while a handler runs; limit/deadline refusals are recorded.
    void set_enforcing(bool on) { enforcing_ = on; }
    bool limit_hit() const { return limit_hit_; }
    bool deadline_hit() const { return deadline_hit_; }
    void clear_hits() { limit_hit_ = deadline_hit_ = false; }

    // Tests only: while enforcing, grant `n` more growing allocations and
    // refuse every one after that (as after a soft timeout; recorded as a
    // limit hit). Negative: never.
    void refuse_after(int64_t n) { refuse_countdown_ = n; }

private:
    struct alignas(16) Block {
        Block *prev;
        Block *next;
        size_t size;
    };

    void *reallocate(void *ptr, size_t size);
    void link(Block *block);
    void unlink(Block *block);

    Block *head_ = nullptr;
    uint64_t used_ = 0;
    uint64_t peak_ = 0;
    uint64_t limit_;
    bool enforcing_ = false;
    bool limit_hit_ = false;
    bool deadline_hit_ = false;
    int64_t refuse_countdown_ = -1;
};

} // namespace dmr::mruby
