// In-process store: for tests and single-process use. State dies with the
// process and is not shared with other processes. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "store/store.hpp"

namespace dmr::store {

class MemoryStore final : public Store {
public:
    explicit MemoryStore(const core::Clock &clock = core::SystemClock::instance());

    const char *backend() const override { return "memory"; }
    Result<core::GcraDecision> rate_hit(std::string_view key, const core::GcraRate &rate,
                                        int64_t cost) override;
    Result<core::GcraDecision> rate_peek(std::string_view key, const core::GcraRate &rate,
                                         int64_t cost) override;
    Status rate_reset(std::string_view key) override;
    Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t ttl_us) override;
    Result<int64_t> counter_get(std::string_view key) override;
    Status counter_reset(std::string_view key) override;
    Status list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                    std::string_view reason) override;
    Result<bool> list_remove(std::string_view list, std::string_view entry) override;
    Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                std::string_view value) override;
    Result<std::vector<ListEntry>> list_entries(std::string_view list) override;
    Result<int64_t> distinct_add(std::string_view key, std::string_view member,
                                 int64_t window_us) override;
    Result<int64_t> distinct_count(std::string_view key, int64_t window_us) override;

    // Records held, expired ones included (they are reclaimed a few at a time).
    size_t size() const;

private:
    template <class Fn> auto locked(bool write, Fn &&fn);

    const core::Clock &clock_;
    mutable std::mutex mutex_;
    std::map<std::string, std::string, std::less<>> records_;
    size_t sweep_at_size_ = 1024;
};

} // namespace dmr::store
