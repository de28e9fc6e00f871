// The recipe "how to add a store backend" (docs/architecture.md), at its real
// size: this one file is a whole backend (a sorted vector of records through
// the shared record logic in store/kv.hpp), its registry row, and its
// registration, and it passes the conformance suite opened by URL, as memory,
// LMDB and Redis do. If adding a backend ever needs more than a file and a
// row, this file stops compiling or the suite fails.
#include <algorithm>
#include <utility>
#include <vector>

#include "conformance.hpp"
#include "store/kv.hpp"

namespace dmr::store {
namespace {

using test::StoreConformance;
using Records = std::vector<std::pair<std::string, std::string>>;   // sorted by key

// 1. The storage: a transaction over the records (no locking: one thread).
class VectorTxn final : public detail::KvTxn {
public:
    explicit VectorTxn(Records &records) : records_(records) {}

    Status get(std::string_view key, std::optional<std::string_view> &value) override
    {
        auto at = find(key);
        value.reset();
        if (at != records_.end() && at->first == key)
            value = at->second;
        return Status();
    }
    Status put(std::string_view key, std::string_view value) override
    {
        auto at = find(key);
        if (at != records_.end() && at->first == key)
            at->second.assign(value);
        else
            records_.emplace(at, std::string(key), std::string(value));
        return Status();
    }
    Status del(std::string_view key) override
    {
        auto at = find(key);
        if (at != records_.end() && at->first == key)
            records_.erase(at);
        return Status();
    }
    Status scan(std::string_view from, const Visitor &visit) override
    {
        for (auto at = find(from); at != records_.end() && visit(at->first, at->second); ++at) {
        }
        return Status();
    }

private:
    Records::iterator find(std::string_view key)
    {
        return std::lower_bound(records_.begin(), records_.end(), key,
                                [](const auto &record, std::string_view k) { return record.first < k; });
    }

    Records &records_;
};

// 2. The Store: every operation is the shared record logic in one transaction.
class ToyStore final : public Store {
public:
    explicit ToyStore(const core::Clock &clock) : clock_(clock) {}

    const char *backend() const override { return "toy"; }
    Result<core::GcraDecision> rate_hit(std::string_view key, const core::GcraRate &rate,
                                        int64_t cost) override
    {
        return detail::kv_rate(txn_, key, now(), rate, cost, true);
    }
    Result<core::GcraDecision> rate_peek(std::string_view key, const core::GcraRate &rate,
                                         int64_t cost) override
    {
        return detail::kv_rate(txn_, key, now(), rate, cost, false);
    }
    Status rate_reset(std::string_view key) override
    {
        return detail::kv_delete(txn_, detail::rate_key(key));
    }
    Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t ttl_us) override
    {
        return detail::kv_counter_incr(txn_, key, now(), by, ttl_us);
    }
    Result<int64_t> counter_get(std::string_view key) override
    {
        return detail::kv_counter_get(txn_, key, now());
    }
    Status counter_reset(std::string_view key) override
    {
        return detail::kv_delete(txn_, detail::counter_key(key));
    }
    Status list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                    std::string_view reason) override
    {
        return detail::kv_list_add(txn_, list, entry, now(), ttl_us, reason);
    }
    Result<bool> list_remove(std::string_view list, std::string_view entry) override
    {
        return detail::kv_list_remove(txn_, list, entry, now());
    }
    Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                std::string_view value) override
    {
        return detail::kv_list_match(txn_, list, value, now());
    }
    Result<std::vector<ListEntry>> list_entries(std::string_view list) override
    {
        return detail::kv_list_entries(txn_, list, now());
    }
    Result<int64_t> distinct_add(std::string_view key, std::string_view member,
                                 int64_t window_us) override
    {
        return detail::kv_distinct_add(txn_, key, member, now(), window_us);
    }
    Result<int64_t> distinct_count(std::string_view key, int64_t window_us) override
    {
        return detail::kv_distinct_count(txn_, key, now(), window_us);
    }

private:
    int64_t now() const { return clock_.now_us(); }

    const core::Clock &clock_;
    Records records_;
    VectorTxn txn_{records_};   // always writable: nothing to commit or roll back
};

// 3. The row: scheme, the form errors show, URL parser + factory.
std::unique_ptr<Store> open_toy(std::string_view rest, const core::Clock &clock,
                                const StoreOptions &, std::string &error)
{
    if (!rest.empty()) {
        error = "the toy store takes no options";
        return nullptr;
    }
    return std::make_unique<ToyStore>(clock);
}

// 4. The registration: a program's composition root calls this (the plugins:
// register_backends_on_demand); here the test program registers at start.
const bool kRegistered = [] {
    core::store_registry().add({"toy:", "toy:", open_toy});
    return true;
}();

INSTANTIATE_TEST_SUITE_P(Toy, StoreConformance, ::testing::Values("toy:"),
                         [](const auto &) { return std::string("toy"); });

TEST(ToyBackend, ItsParserRefusesWhatItDoesNotKnow)
{
    ASSERT_TRUE(kRegistered);
    std::string error;
    EXPECT_EQ(test::open_store("toy:?colour=blue", error), nullptr);
    EXPECT_EQ(error, "the toy store takes no options");
}

} // namespace
} // namespace dmr::store
