#include "mruby/allocator.hpp"

#include <cstdlib>

#include "mruby/watchdog.hpp"

namespace dmr::mruby {

static_assert(sizeof(void *) == 8, "block header layout assumes 64-bit pointers");

Allocator::~Allocator()
{
    while (head_ != nullptr) {
        Block *next = head_->next;
        std::free(head_);
        head_ = next;
    }
}

void Allocator::link(Block *block)
{
    block->prev = nullptr;
    block->next = head_;
    if (head_ != nullptr)
        head_->prev = block;
    head_ = block;
}

void Allocator::unlink(Block *block)
{
    if (block->prev != nullptr)
        block->prev->next = block->next;
    else
        head_ = block->next;
    if (block->next != nullptr)
        block->next->prev = block->prev;
}

void *Allocator::allocf(struct mrb_state *, void *ptr, size_t size, void *ud)
{
    return static_cast<Allocator *>(ud)->reallocate(ptr, size);
}

void *Allocator::reallocate(void *ptr, size_t size)
{
    Block *old = ptr == nullptr ? nullptr : static_cast<Block *>(ptr) - 1;
    if (size == 0) {
        if (old != nullptr) {
            used_ -= old->size;
            unlink(old);
            std::free(old);
        }
        return nullptr;
    }

    size_t old_size = old == nullptr ? 0 : old->size;
    if (enforcing_ && size > old_size) {
        // mruby answers NULL with a full GC, one retry, then NoMemoryError; a
        // failed realloc keeps the old block, so refusing growth is safe.
        if (Watchdog::soft_expired()) {
            deadline_hit_ = true;
            return nullptr;
        }
        if (used_ - old_size + size > limit_) {
            limit_hit_ = true;
            return nullptr;
        }
        if (refuse_countdown_ >= 0) {
            if (refuse_countdown_ == 0) {
                limit_hit_ = true;
                return nullptr;
            }
            refuse_countdown_--;
        }
    }
    if (size > SIZE_MAX - sizeof(Block))
        return nullptr;

    Block *prev = old == nullptr ? nullptr : old->prev;
    Block *next = old == nullptr ? nullptr : old->next;
    Block *block = static_cast<Block *>(std::realloc(old, sizeof(Block) + size));
    if (block == nullptr)
        return nullptr;   // the old block, if any, is untouched and still linked
    if (old == nullptr) {
        link(block);
    } else if (block != old) {
        // Moved: repoint the neighbours at the new address.
        if (prev != nullptr)
            prev->next = block;
        else
            head_ = block;
        if (next != nullptr)
            next->prev = block;
    }
    block->size = size;
    used_ = used_ - old_size + size;
    if (used_ > peak_)
        peak_ = used_;
    return block + 1;
}

} // namespace dmr::mruby
