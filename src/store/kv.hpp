// Internal: the record logic shared by the memory and LMDB stores, written once
// over a small transactional key-value interface. Redis does the same in Lua
// (redis_script.cpp).
//
// Physical keys:   'r' key | 'c' key | 'l' list '\0' list-key | 'm' list | '\0' "sweep"
//                  | 'd' key int64 window int64 bucket (distinct: one HLL per time bucket)
// Values:          int64 expires_at_us (0 = never) followed by the payload:
//   rate: int64 TAT;  counter: int64 value, int64 ttl;  list entry: int64 tagged ttl, reason
//   (records from before the ttl was kept, counter: value; list entry: reason, still read);
//   list prefix lengths ('m'): core::PrefixLengths (expires with the list's longest-lived entry)
//   distinct ('d'): core::Hll::encode() (expires two windows after its bucket began)
// The ttl lets a read clamp an expiry written while the wall clock was ahead
// (core::clamp_expiry); a read that clamps also stores the clamped record.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "store/store.hpp"

namespace dmr::store::detail {

class KvTxn {
public:
    virtual ~KvTxn() = default;
    // `value` views stay valid until the next put or del.
    virtual Status get(std::string_view key, std::optional<std::string_view> &value) = 0;
    virtual Status put(std::string_view key, std::string_view value) = 0;
    virtual Status del(std::string_view key) = 0;
    // Visits keys >= from in order until `visit` returns false or the keys run out.
    using Visitor = std::function<bool(std::string_view key, std::string_view value)>;
    virtual Status scan(std::string_view from, const Visitor &visit) = 0;

    // Stores a record that a read clamped (the wall clock stepped back since
    // it was written). A read-only transaction cannot: it only remembers, and
    // the store runs the operation again in a write transaction.
    Status repair(std::string_view key, std::string_view value)
    {
        if (!writable_) {
            repair_needed_ = true;
            return Status();
        }
        return put(key, value);
    }
    bool repair_needed() const { return repair_needed_; }

protected:
    bool writable_ = true;
    bool repair_needed_ = false;
};

// Argument checks shared by every backend (Redis included).
Status check_list_name(std::string_view list);
Status check_cost(int64_t cost);
Status check_ttl(int64_t ttl_us, bool zero_means_never);
// `key`, or its start plus a hash when it is longer than kMaxKeyBytes.
std::string bounded_key(std::string_view key);
void append_bounded_key(std::string &out, std::string_view key);

std::string rate_key(std::string_view key);
std::string counter_key(std::string_view key);
std::string list_entry_prefix(std::string_view list);
std::string list_lengths_key(std::string_view list);

Result<core::GcraDecision> kv_rate(KvTxn &txn, std::string_view key, int64_t now_us,
                                   const core::GcraRate &rate, int64_t cost, bool record);
Status kv_delete(KvTxn &txn, std::string_view physical_key);
Result<int64_t> kv_counter_incr(KvTxn &txn, std::string_view key, int64_t now_us, int64_t by,
                                int64_t ttl_us);
Result<int64_t> kv_counter_get(KvTxn &txn, std::string_view key, int64_t now_us);
Status kv_list_add(KvTxn &txn, std::string_view list, std::string_view entry, int64_t now_us,
                   int64_t ttl_us, std::string_view reason);
Result<bool> kv_list_remove(KvTxn &txn, std::string_view list, std::string_view entry,
                            int64_t now_us);
Result<std::optional<ListEntry>> kv_list_match(KvTxn &txn, std::string_view list,
                                               std::string_view value, int64_t now_us);
Result<std::vector<ListEntry>> kv_list_entries(KvTxn &txn, std::string_view list, int64_t now_us);

// Distinct counts (core/store.hpp): one HLL per (key, window, bucket).
std::string distinct_key(std::string_view key, int64_t window_us, int64_t bucket);
Result<int64_t> kv_distinct_add(KvTxn &txn, std::string_view key, std::string_view member,
                                int64_t now_us, int64_t window_us);
Result<int64_t> kv_distinct_count(KvTxn &txn, std::string_view key, int64_t now_us,
                                  int64_t window_us);

// Reclaims expired records: visits up to `max_visits` records from the shared
// sweep cursor (stored in the database, so short-lived processes continue
// where others stopped), deletes the expired ones, saves the cursor. Returns
// how many were deleted.
Result<size_t> kv_sweep(KvTxn &txn, int64_t now_us, size_t max_visits);

// True about once every `every` calls in this process (cheap, no syscalls):
// decides when a write also sweeps.
bool sweep_due(unsigned every);

} // namespace dmr::store::detail
