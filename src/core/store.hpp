// The Store interface: shared state for rate limits (GCRA), counters with a
// TTL and allow/deny lists. The backends (an in-process map, LMDB for one
// host, Redis for many) live in src/store/ and implement it; core and the
// bindings see only this header. Stores are opened by URL through the
// registry (core/store_registry.hpp).
//
// Contract, for every backend:
// - No operation throws or hangs. A backend that is down, slow or full
//   answers with an error Status within its timeout; the caller decides what
//   that means (see core/rate_limiter.hpp for fail-open / fail-closed).
// - The same sequence of calls at the same times gives the same answers on
//   every backend (the algorithms are core/ratelimit.hpp and core/iplist.hpp).
// - Times are microseconds; "now" comes from the store's core::Clock, except
//   for a Redis store configured with clock=server.
// - Keys are arbitrary bytes. Rate, counter, list and distinct keys live in separate
//   namespaces. Keys longer than kMaxKeyBytes are stored under a shortened
//   form (their start plus a 64-bit hash of the whole).
// - Open one Store per process and keep it (each "memory" store is a separate
//   map). Use a Store from one thread at a time (Dovecot processes are
//   single-threaded); a forked child may keep using its parent's Store object:
//   LMDB and Redis reopen their handles in the child.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/io_wait.hpp"
#include "core/logger.hpp"
#include "core/ratelimit.hpp"

namespace dmr::core {

class Status {
public:
    enum class Code : uint8_t {
        Ok,
        Unavailable,   // cannot reach or open the backend; includes timeouts
        Full,          // no room even after reclaiming expired keys
        Invalid,       // bad argument (never a backend problem)
        Internal,      // unexpected backend answer
    };

    Status() = default;
    static Status error(Code code, std::string message) { return Status(code, std::move(message)); }

    bool ok() const { return code_ == Code::Ok; }
    Code code() const { return code_; }
    const std::string &message() const { return message_; }

private:
    Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

    Code code_ = Code::Ok;
    std::string message_;
};

const char *status_code_name(Status::Code code);

// A value, meaningful only when status.ok().
template <class T>
struct Result {
    Status status;
    T value{};

    Result() = default;
    Result(T v) : value(std::move(v)) {}
    Result(Status s) : status(std::move(s)) {}
    bool ok() const { return status.ok(); }
};

struct ListEntry {
    std::string entry;           // "203.0.113.0/24", "192.0.2.1", "2001:db8::/64", "alice"
    std::string reason;
    int64_t expires_at_us = 0;   // 0 = never
};

constexpr size_t kMaxKeyBytes = 400;
constexpr size_t kMaxListNameBytes = 100;   // with kMaxKeyBytes, fits LMDB's 511-byte keys

class Store {
public:
    virtual ~Store() = default;

    virtual const char *backend() const = 0;   // "memory", "lmdb", "redis"

    // --- GCRA rate limits (core/ratelimit.hpp gives the definition) ---
    // Records `cost` (>= 0) hits on `key` when they are allowed.
    virtual Result<GcraDecision> rate_hit(std::string_view key, const GcraRate &rate,
                                                int64_t cost) = 0;
    // The decision rate_hit would return now, without recording anything.
    virtual Result<GcraDecision> rate_peek(std::string_view key, const GcraRate &rate,
                                                 int64_t cost) = 0;
    // Forgets the key: the next hit sees an idle key.
    virtual Status rate_reset(std::string_view key) = 0;

    // --- Counters (counter_add: a fixed window opened by the first increment) ---
    // Adds `by` and returns the new value. 1 <= ttl_us <= kMaxSpanUs.
    virtual Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t ttl_us) = 0;
    // The current value; 0 when absent or expired.
    virtual Result<int64_t> counter_get(std::string_view key) = 0;
    virtual Status counter_reset(std::string_view key) = 0;

    // --- Lists of IPs, CIDRs (v4 and v6) and strings (core/iplist.hpp) ---
    // Adds or replaces `entry`. ttl_us == 0: never expires. `list` is 1..100
    // bytes without NUL.
    virtual Status list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                            std::string_view reason) = 0;
    // True if a live entry was removed.
    virtual Result<bool> list_remove(std::string_view list, std::string_view entry) = 0;
    // The live entry matching `value`: longest prefix for an IP or CIDR, exact
    // for a string. nullopt if none.
    virtual Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                        std::string_view value) = 0;
    // Every live entry, in no particular order.
    virtual Result<std::vector<ListEntry>> list_entries(std::string_view list) = 0;

    // --- Distinct counts (HyperLogLog, core/hll.hpp: standard error 0.81%) ---
    // Time is cut into buckets of `window` (1 <= window_us <= kMaxSpanUs),
    // aligned on multiples of it; each (key, window) keeps one sketch per
    // bucket, dropped two windows after the bucket began. A count is the
    // union of the current and the previous bucket: it covers at least every
    // member added in the last `window`, and at most those of the last
    // 2 x `window` (the window is a lower bound; an attacker cannot slip
    // between two buckets). Members are arbitrary bytes.
    // Adds `member` and returns the estimated count, this member included.
    virtual Result<int64_t> distinct_add(std::string_view key, std::string_view member,
                                         int64_t window_us) = 0;
    // The estimated count; 0 when nothing was added in the last two buckets.
    virtual Result<int64_t> distinct_count(std::string_view key, int64_t window_us) = 0;
};

struct StoreOptions {
    const Clock *clock = nullptr;   // nullptr: SystemClock
    // Where a store says what it did on its own (LMDB: reopened a replaced
    // directory). nullptr: nowhere. Must outlive the store.
    Logger *logger = nullptr;
    // The store's password when it comes from its own setting
    // (mruby_store_password / _file, kept out of the spec so that doveconf -n
    // hides it). A backend that takes none refuses a non-empty one; Redis
    // refuses it when the URL has a password too.
    std::string password;
    // Where a network store waits for its socket (core/io_wait.hpp).
    // nullptr: poll(). Must outlive the store.
    IoWaiter *waiter = nullptr;
};

} // namespace dmr::core
