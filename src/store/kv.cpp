#include "store/kv.hpp"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "core/hash.hpp"
#include "core/hll.hpp"
#include "core/iplist.hpp"

namespace dmr::store::detail {
namespace {

constexpr char kSweepCursorKey[] = "\0sweep";
constexpr std::string_view kSweepCursor(kSweepCursorKey, sizeof kSweepCursorKey - 1);

void put_i64(std::string &out, int64_t value)
{
    char bytes[8];
    std::memcpy(bytes, &value, 8);   // host order: an LMDB file never leaves its host
    out.append(bytes, 8);
}

int64_t get_i64(std::string_view bytes, size_t offset)
{
    int64_t value;
    std::memcpy(&value, bytes.data() + offset, 8);
    return value;
}

std::string record(int64_t expires_at_us, size_t payload_reserve)
{
    std::string value;
    value.reserve(8 + payload_reserve);
    put_i64(value, expires_at_us);
    return value;
}

// A stored record with its expiry split off; nullopt if absent or malformed
// (a malformed record is treated as absent and overwritten: self-healing).
struct Record {
    int64_t expires_at_us;
    std::string_view payload;
};

std::optional<Record> decode(const std::optional<std::string_view> &value, size_t min_payload)
{
    if (!value || value->size() < 8 + min_payload)
        return std::nullopt;
    return Record{get_i64(*value, 0), value->substr(8)};
}

std::string entry_key(std::string_view list, std::string_view list_key)
{
    std::string key = list_entry_prefix(list);
    key.append(list_key);
    return key;
}

// A list entry's ttl field carries a tag in its top byte (a ttl needs at most
// 49 bits), 0xC0, which no UTF-8 text contains: entries written before the
// ttl was stored (expiry, then the reason) still read as such, with no ttl.
constexpr uint64_t kTtlTag = 0xc0ull << 56;
constexpr uint64_t kTtlMask = (1ull << 56) - 1;

void put_entry_ttl(std::string &out, int64_t ttl_us)
{
    put_i64(out, static_cast<int64_t>(kTtlTag | static_cast<uint64_t>(ttl_us)));
}

// A list entry: expiry, ttl (0: never expires or not known), reason. The
// expiry is clamped to now + ttl; `repaired` holds the record to store when
// it was.
struct Entry {
    int64_t expires_at_us;
    std::string_view reason;
};

std::optional<Entry> decode_entry(const std::optional<std::string_view> &value, int64_t now_us,
                                  std::string &repaired)
{
    repaired.clear();
    auto rec = decode(value, 0);
    if (!rec)
        return std::nullopt;
    const uint64_t field =
        rec->payload.size() >= 8 ? static_cast<uint64_t>(get_i64(rec->payload, 0)) : 0;
    if ((field & ~kTtlMask) != kTtlTag)
        return Entry{rec->expires_at_us, rec->payload};   // no ttl stored
    const int64_t ttl = static_cast<int64_t>(field & kTtlMask);
    Entry entry{core::clamp_expiry(rec->expires_at_us, now_us, ttl), rec->payload.substr(8)};
    if (entry.expires_at_us != rec->expires_at_us) {
        repaired = record(entry.expires_at_us, rec->payload.size());
        repaired.append(rec->payload);
    }
    return entry;
}

} // namespace

Status check_list_name(std::string_view list)
{
    if (list.empty() || list.size() > kMaxListNameBytes || list.find('\0') != std::string_view::npos)
        return Status::error(Status::Code::Invalid, "list name must be 1-100 bytes without NUL");
    return Status();
}

Status check_cost(int64_t cost)
{
    if (cost < 0)
        return Status::error(Status::Code::Invalid, "cost must not be negative");
    return Status();
}

Status check_ttl(int64_t ttl_us, bool zero_means_never)
{
    if ((ttl_us == 0 && zero_means_never) || (ttl_us > 0 && ttl_us <= core::kMaxSpanUs))
        return Status();
    return Status::error(Status::Code::Invalid, zero_means_never
                                                    ? "ttl must be 0 (never) or up to 10 years"
                                                    : "ttl must be positive and at most 10 years");
}

void append_bounded_key(std::string &out, std::string_view key)
{
    if (key.size() <= kMaxKeyBytes) {
        out.append(key);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    out.append(key.substr(0, kMaxKeyBytes - 17));
    out += '#';
    uint64_t hash = core::fnv1a64(key);
    for (int shift = 60; shift >= 0; shift -= 4)
        out += hex[(hash >> shift) & 0xf];
}

std::string bounded_key(std::string_view key)
{
    std::string out;
    append_bounded_key(out, key);
    return out;
}

std::string rate_key(std::string_view key) { return "r" + bounded_key(key); }
std::string counter_key(std::string_view key) { return "c" + bounded_key(key); }

std::string list_entry_prefix(std::string_view list)
{
    std::string key;
    key.reserve(list.size() + 2);
    key += 'l';
    key.append(list);
    key += '\0';
    return key;
}

std::string list_lengths_key(std::string_view list) { return "m" + std::string(list); }

Result<core::GcraDecision> kv_rate(KvTxn &txn, std::string_view key, int64_t now_us,
                                   const core::GcraRate &rate, int64_t cost, bool record_hit)
{
    if (Status s = check_cost(cost); !s.ok())
        return s;
    // The hot path: no allocation (a reused key buffer, the value on the stack).
    thread_local std::string physical;
    physical.assign(1, 'r');
    append_bounded_key(physical, key);
    std::optional<std::string_view> value;
    if (Status s = txn.get(physical, value); !s.ok())
        return s;
    std::optional<int64_t> stored;
    if (auto rec = decode(value, 8))
        stored = get_i64(rec->payload, 0);
    core::GcraStep step = core::gcra_step(stored, now_us, rate, cost);
    char out[16];
    if (record_hit && step.write) {
        std::memcpy(out, &step.new_tat_us, 8);       // expires when the TAT is reached
        std::memcpy(out + 8, &step.new_tat_us, 8);
        if (Status s = txn.put(physical, std::string_view(out, sizeof out)); !s.ok())
            return s;
    } else if (step.clamped) {
        std::memcpy(out, &step.clamped_tat_us, 8);
        std::memcpy(out + 8, &step.clamped_tat_us, 8);
        if (Status s = txn.repair(physical, std::string_view(out, sizeof out)); !s.ok())
            return s;
    }
    return step.decision;
}

Status kv_delete(KvTxn &txn, std::string_view physical_key) { return txn.del(physical_key); }

Result<int64_t> kv_counter_incr(KvTxn &txn, std::string_view key, int64_t now_us, int64_t by,
                                int64_t ttl_us)
{
    if (Status s = check_ttl(ttl_us, false); !s.ok())
        return s;
    const std::string physical = counter_key(key);
    std::optional<std::string_view> value;
    if (Status s = txn.get(physical, value); !s.ok())
        return s;
    std::optional<core::CounterState> current;
    if (auto rec = decode(value, 8))
        current = core::CounterState{get_i64(rec->payload, 0), rec->expires_at_us};
    core::CounterState next = core::counter_add(current, now_us, by, ttl_us);
    std::string out = record(next.expires_at_us, 16);
    put_i64(out, next.value);
    put_i64(out, ttl_us);
    if (Status s = txn.put(physical, out); !s.ok())
        return s;
    return next.value;
}

Result<int64_t> kv_counter_get(KvTxn &txn, std::string_view key, int64_t now_us)
{
    const std::string physical = counter_key(key);
    std::optional<std::string_view> value;
    if (Status s = txn.get(physical, value); !s.ok())
        return s;
    auto rec = decode(value, 8);
    if (!rec)
        return int64_t{0};
    const int64_t count = get_i64(rec->payload, 0);
    const int64_t ttl = rec->payload.size() >= 16 ? get_i64(rec->payload, 8) : 0;
    const int64_t expires = core::clamp_expiry(rec->expires_at_us, now_us, ttl);
    if (expires != rec->expires_at_us) {
        std::string out = record(expires, 16);
        put_i64(out, count);
        put_i64(out, ttl);
        if (Status s = txn.repair(physical, out); !s.ok())
            return s;
    }
    return core::alive_at(expires, now_us) ? count : int64_t{0};
}

Status kv_list_add(KvTxn &txn, std::string_view list, std::string_view entry, int64_t now_us,
                   int64_t ttl_us, std::string_view reason)
{
    if (Status s = check_list_name(list); !s.ok())
        return s;
    if (Status s = check_ttl(ttl_us, true); !s.ok())
        return s;
    const int64_t expires = ttl_us == 0 ? 0 : now_us + ttl_us;
    core::ListKey list_key = core::list_key(entry);
    list_key.key = bounded_key(list_key.key);

    std::string value = record(expires, 8 + reason.size());
    put_entry_ttl(value, ttl_us);
    value.append(reason);
    if (Status s = txn.put(entry_key(list, list_key.key), value); !s.ok())
        return s;
    if (!list_key.network)
        return Status();

    // Remember the prefix length; the record lives as long as the longest-lived network entry.
    const std::string lengths_key = list_lengths_key(list);
    std::optional<std::string_view> stored;
    if (Status s = txn.get(lengths_key, stored); !s.ok())
        return s;
    core::PrefixLengths lengths;
    int64_t lengths_expiry = expires;
    auto rec = decode(stored, core::PrefixLengths::kEncodedSize);
    if (rec && core::alive_at(rec->expires_at_us, now_us)) {
        lengths = core::PrefixLengths::decode(rec->payload);
        if (rec->expires_at_us == 0 || expires == 0)
            lengths_expiry = 0;
        else
            lengths_expiry = std::max(expires, rec->expires_at_us);
    }
    bool grew = lengths.merge([&] {
        core::PrefixLengths one;
        one.add(list_key.network->is_v4(), list_key.network->prefix());
        return one;
    }());
    if (!grew && rec && rec->expires_at_us == lengths_expiry)
        return Status();
    std::string out = record(lengths_expiry, core::PrefixLengths::kEncodedSize);
    out += lengths.encode();
    return txn.put(lengths_key, out);
}

Result<bool> kv_list_remove(KvTxn &txn, std::string_view list, std::string_view entry,
                            int64_t now_us)
{
    if (Status s = check_list_name(list); !s.ok())
        return s;
    const std::string key = entry_key(list, bounded_key(core::list_key(entry).key));
    std::optional<std::string_view> value;
    if (Status s = txn.get(key, value); !s.ok())
        return s;
    if (!value)
        return false;
    auto rec = decode(value, 0);
    bool was_alive = rec && core::alive_at(rec->expires_at_us, now_us);
    if (Status s = txn.del(key); !s.ok())
        return s;
    return was_alive;
}

Result<std::optional<ListEntry>> kv_list_match(KvTxn &txn, std::string_view list,
                                               std::string_view value, int64_t now_us)
{
    if (Status s = check_list_name(list); !s.ok())
        return s;
    core::PrefixLengths lengths;
    std::optional<std::string_view> stored;
    if (Status s = txn.get(list_lengths_key(list), stored); !s.ok())
        return s;
    auto lengths_rec = decode(stored, core::PrefixLengths::kEncodedSize);
    if (lengths_rec && core::alive_at(lengths_rec->expires_at_us, now_us))
        lengths = core::PrefixLengths::decode(lengths_rec->payload);

    const std::string prefix = list_entry_prefix(list);
    std::string key, repaired;
    for (const std::string &candidate : core::list_lookup_keys(value, lengths)) {
        key.assign(prefix).append(bounded_key(candidate));
        std::optional<std::string_view> found;
        if (Status s = txn.get(key, found); !s.ok())
            return s;
        auto entry = decode_entry(found, now_us, repaired);
        if (!entry)
            continue;
        std::optional<ListEntry> match;
        if (core::alive_at(entry->expires_at_us, now_us))
            match = ListEntry{core::list_entry_text(candidate), std::string(entry->reason),
                              entry->expires_at_us};
        if (!repaired.empty()) {
            if (Status s = txn.repair(key, repaired); !s.ok())
                return s;
        }
        if (match)
            return match;
    }
    return std::optional<ListEntry>();
}

Result<std::vector<ListEntry>> kv_list_entries(KvTxn &txn, std::string_view list, int64_t now_us)
{
    if (Status s = check_list_name(list); !s.ok())
        return s;
    const std::string prefix = list_entry_prefix(list);
    std::vector<ListEntry> entries;
    std::vector<std::pair<std::string, std::string>> repairs;   // applied after the scan
    std::string repaired;
    Status s = txn.scan(prefix, [&](std::string_view key, std::string_view value) {
        if (key.substr(0, prefix.size()) != prefix)
            return false;
        auto entry = decode_entry(value, now_us, repaired);
        if (entry && core::alive_at(entry->expires_at_us, now_us))
            entries.push_back(ListEntry{core::list_entry_text(key.substr(prefix.size())),
                                        std::string(entry->reason), entry->expires_at_us});
        if (!repaired.empty())
            repairs.emplace_back(std::string(key), repaired);
        return true;
    });
    if (!s.ok())
        return s;
    for (const auto &[key, value] : repairs) {
        if (Status r = txn.repair(key, value); !r.ok())
            return r;
    }
    return entries;
}

std::string distinct_key(std::string_view key, int64_t window_us, int64_t bucket)
{
    // The key's bytes then two fixed-size fields: never ambiguous.
    std::string out = "d" + bounded_key(key);
    put_i64(out, window_us);
    put_i64(out, bucket);
    return out;
}

namespace {

// The sketch of one bucket, empty when absent, expired or unreadable (an
// unreadable record is overwritten by the next add: self-healing).
Status read_bucket(KvTxn &txn, const std::string &physical, int64_t now_us, core::Hll &out)
{
    std::optional<std::string_view> value;
    if (Status s = txn.get(physical, value); !s.ok())
        return s;
    auto rec = decode(value, 1);
    if (!rec || !core::alive_at(rec->expires_at_us, now_us))
        return Status();
    if (auto hll = core::Hll::decode(rec->payload))
        out = std::move(*hll);
    return Status();
}

Result<int64_t> kv_distinct(KvTxn &txn, std::string_view key, const std::string_view *member,
                            int64_t now_us, int64_t window_us)
{
    if (Status s = check_ttl(window_us, false); !s.ok())
        return s;
    const int64_t bucket = core::floor_div(now_us, window_us);
    const std::string current_key = distinct_key(key, window_us, bucket);
    core::Hll current, previous;
    if (Status s = read_bucket(txn, current_key, now_us, current); !s.ok())
        return s;
    if (member != nullptr && current.add(*member)) {
        // Alive through the next bucket, whose counts include this one.
        std::string out = record((bucket + 2) * window_us, 0);
        out += current.encode();
        if (Status s = txn.put(current_key, out); !s.ok())
            return s;
    }
    if (Status s = read_bucket(txn, distinct_key(key, window_us, bucket - 1), now_us, previous);
        !s.ok())
        return s;
    current.merge(previous);
    return static_cast<int64_t>(current.estimate());
}

} // namespace

Result<int64_t> kv_distinct_add(KvTxn &txn, std::string_view key, std::string_view member,
                                int64_t now_us, int64_t window_us)
{
    return kv_distinct(txn, key, &member, now_us, window_us);
}

Result<int64_t> kv_distinct_count(KvTxn &txn, std::string_view key, int64_t now_us,
                                  int64_t window_us)
{
    return kv_distinct(txn, key, nullptr, now_us, window_us);
}

Result<size_t> kv_sweep(KvTxn &txn, int64_t now_us, size_t max_visits)
{
    std::optional<std::string_view> stored;
    if (Status s = txn.get(kSweepCursor, stored); !s.ok())
        return s;
    std::string from = stored && stored->size() >= 8 ? std::string(stored->substr(8)) : "";

    std::vector<std::string> expired;
    std::string last;
    size_t visits = 0;
    Status s = txn.scan(from, [&](std::string_view key, std::string_view value) {
        if (!key.empty() && key[0] == '\0')
            return true;   // bookkeeping records never expire
        auto rec = decode(value, 0);
        if (!rec || !core::alive_at(rec->expires_at_us, now_us))
            expired.emplace_back(key);
        last.assign(key);
        return ++visits < max_visits;
    });
    if (!s.ok())
        return s;
    for (const std::string &key : expired) {
        if (Status d = txn.del(key); !d.ok())
            return d;
    }
    // Continue right after the last visited key, or wrap around at the end.
    std::string cursor = record(0, last.size() + 1);
    if (visits >= max_visits) {
        cursor.append(last);
        cursor += '\0';
    }
    if (Status p = txn.put(kSweepCursor, cursor); !p.ok())
        return p;
    return expired.size();
}

bool sweep_due(unsigned every)
{
    // xorshift64, seeded per thread; after fork() children share a sequence, which is harmless.
    thread_local uint64_t state = [] {
        uint64_t seed = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ull ^
                        static_cast<uint64_t>(
                            std::chrono::steady_clock::now().time_since_epoch().count());
        return seed != 0 ? seed : 1;
    }();
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return every <= 1 || state % every == 0;
}

} // namespace dmr::store::detail
