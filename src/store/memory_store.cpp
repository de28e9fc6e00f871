#include "store/memory_store.hpp"

#include <cstring>

#include "store/backends.hpp"
#include "store/kv.hpp"

namespace dmr::store {
namespace {

using Map = std::map<std::string, std::string, std::less<>>;

class MapTxn final : public detail::KvTxn {
public:
    explicit MapTxn(Map &map) : map_(map) {}

    Status get(std::string_view key, std::optional<std::string_view> &value) override
    {
        last_ = map_.find(key);
        if (last_ == map_.end())
            value.reset();
        else
            value = last_->second;
        return Status();
    }
    Status put(std::string_view key, std::string_view value) override
    {
        // Read-modify-write puts the key just read: skip the second lookup.
        auto it = last_ != map_.end() && last_->first == key ? last_ : map_.find(key);
        if (it == map_.end())
            last_ = map_.emplace(std::string(key), std::string(value)).first;
        else
            it->second.assign(value);
        return Status();
    }
    Status del(std::string_view key) override
    {
        auto it = map_.find(key);
        if (it != map_.end())
            map_.erase(it);
        last_ = map_.end();
        return Status();
    }
    Status scan(std::string_view from, const Visitor &visit) override
    {
        for (auto it = map_.lower_bound(from); it != map_.end(); ++it) {
            if (!visit(it->first, it->second))
                break;
        }
        return Status();
    }

private:
    Map &map_;
    Map::iterator last_ = map_.end();
};

// Expired records are dropped in one pass whenever the map has doubled since
// the last pass: amortised O(1) per write, at most twice the live size.
constexpr size_t kMinSweepSize = 1024;

} // namespace

MemoryStore::MemoryStore(const core::Clock &clock) : clock_(clock) {}

template <class Fn>
auto MemoryStore::locked(bool write, Fn &&fn)
{
    std::lock_guard<std::mutex> lock(mutex_);
    MapTxn txn(records_);
    const int64_t now = clock_.now_us();
    auto result = fn(txn, now);
    if (write && records_.size() >= sweep_at_size_) {
        for (auto it = records_.begin(); it != records_.end();) {
            int64_t expires = 0;
            if (it->second.size() >= 8)
                std::memcpy(&expires, it->second.data(), 8);
            bool keep = it->first[0] == '\0' || (it->second.size() >= 8 && core::alive_at(expires, now));
            it = keep ? std::next(it) : records_.erase(it);
        }
        sweep_at_size_ = std::max(kMinSweepSize, 2 * records_.size());
    }
    return result;
}

Result<core::GcraDecision> MemoryStore::rate_hit(std::string_view key, const core::GcraRate &rate,
                                                 int64_t cost)
{
    return locked(true, [&](MapTxn &txn, int64_t now) {
        return detail::kv_rate(txn, key, now, rate, cost, true);
    });
}

Result<core::GcraDecision> MemoryStore::rate_peek(std::string_view key, const core::GcraRate &rate,
                                                  int64_t cost)
{
    return locked(false, [&](MapTxn &txn, int64_t now) {
        return detail::kv_rate(txn, key, now, rate, cost, false);
    });
}

Status MemoryStore::rate_reset(std::string_view key)
{
    return locked(true, [&](MapTxn &txn, int64_t) {
        return detail::kv_delete(txn, detail::rate_key(key));
    });
}

Result<int64_t> MemoryStore::counter_incr(std::string_view key, int64_t by, int64_t ttl_us)
{
    return locked(true, [&](MapTxn &txn, int64_t now) {
        return detail::kv_counter_incr(txn, key, now, by, ttl_us);
    });
}

Result<int64_t> MemoryStore::counter_get(std::string_view key)
{
    return locked(false, [&](MapTxn &txn, int64_t now) {
        return detail::kv_counter_get(txn, key, now);
    });
}

Status MemoryStore::counter_reset(std::string_view key)
{
    return locked(true, [&](MapTxn &txn, int64_t) {
        return detail::kv_delete(txn, detail::counter_key(key));
    });
}

Status MemoryStore::list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                             std::string_view reason)
{
    return locked(true, [&](MapTxn &txn, int64_t now) {
        return detail::kv_list_add(txn, list, entry, now, ttl_us, reason);
    });
}

Result<bool> MemoryStore::list_remove(std::string_view list, std::string_view entry)
{
    return locked(true, [&](MapTxn &txn, int64_t now) {
        return detail::kv_list_remove(txn, list, entry, now);
    });
}

Result<std::optional<ListEntry>> MemoryStore::list_match(std::string_view list,
                                                         std::string_view value)
{
    return locked(false, [&](MapTxn &txn, int64_t now) {
        return detail::kv_list_match(txn, list, value, now);
    });
}

Result<std::vector<ListEntry>> MemoryStore::list_entries(std::string_view list)
{
    return locked(false, [&](MapTxn &txn, int64_t now) {
        return detail::kv_list_entries(txn, list, now);
    });
}

Result<int64_t> MemoryStore::distinct_add(std::string_view key, std::string_view member,
                                  int64_t window_us)
{
    return locked(true, [&](MapTxn &txn, int64_t now) {
        return detail::kv_distinct_add(txn, key, member, now, window_us);
    });
}

Result<int64_t> MemoryStore::distinct_count(std::string_view key, int64_t window_us)
{
    return locked(false, [&](MapTxn &txn, int64_t now) {
        return detail::kv_distinct_count(txn, key, now, window_us);
    });
}

size_t MemoryStore::size() const
{
    std::lock_guard<std::mutex> lock(mutex_);
    return records_.size();
}

StoreBackend memory_backend()
{
    auto open = [](std::string_view rest, const core::Clock &clock, const StoreOptions &options,
                   std::string &error) -> std::unique_ptr<Store> {
        if (!options.password.empty()) {
            error = "the memory store takes no password (mruby_store_password is set)";
            return nullptr;
        }
        if (!rest.empty()) {
            error = "the memory store takes no options";
            return nullptr;
        }
        return std::make_unique<MemoryStore>(clock);
    };
    return {"memory", "memory", open};
}

} // namespace dmr::store
