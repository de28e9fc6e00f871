#include "store/memory_store.hpp"

#include "store/kv.hpp"

namespace dmr::store {
namespace {

using Map = std::map<std::string, std::string, std::less<>>;

class MapTxn final : public detail::KvTxn {
public:
    explicit MapTxn(Map &map) : map_(map) {}

    Status get(std::string_view key, std::optional<std::string_view> &value) override
    {
        auto it = map_.find(key);
        if (it == map_.end())
            value.reset();
        else
            value = it->second;
        return Status();
    }
    Status put(std::string_view key, std::string_view value) override
    {
        auto it = map_.find(key);
        if (it == map_.end())
            map_.emplace(std::string(key), std::string(value));
        else
            it->second.assign(value);
        return Status();
    }
    Status del(std::string_view key) override
    {
        auto it = map_.find(key);
        if (it != map_.end())
            map_.erase(it);
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
};

// Same amortised reclaim as LMDB: 16 records visited every 8 writes on average,
// so expired records never outnumber live ones for long.
constexpr unsigned kSweepEvery = 8;
constexpr size_t kSweepVisits = 16;

} // namespace

MemoryStore::MemoryStore(const core::Clock &clock) : clock_(clock) {}

template <class Fn>
auto MemoryStore::locked(bool write, Fn &&fn)
{
    std::lock_guard<std::mutex> lock(mutex_);
    MapTxn txn(records_);
    const int64_t now = clock_.now_us();
    auto result = fn(txn, now);
    if (write && detail::sweep_due(kSweepEvery))
        (void)detail::kv_sweep(txn, now, kSweepVisits);
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

size_t MemoryStore::size() const
{
    std::lock_guard<std::mutex> lock(mutex_);
    return records_.size();
}

} // namespace dmr::store
