// Redis store: shared state for several Dovecot hosts.
//
// - Every operation is one command: a decision is one atomic Lua script
//   (EVALSHA, falling back to EVAL when the server answers NOSCRIPT) that reads,
//   decides, writes and sets the expiry together; resets are one DEL.
// - Keys: PREFIX "r:{KEY}", PREFIX "c:{KEY}", PREFIX "l:{LIST}" (a hash of
//   entries). Every script touches one key, and the hash tag keeps it valid on
//   Redis Cluster. Distinct counts: PREFIX "d:{KEY}:WINDOW:BUCKET", one
//   HyperLogLog per time bucket (PFADD, PFCOUNT of two buckets, one slot).
// - Time: clock=server (default) reads the server's TIME inside the script, so
//   hosts with skewed clocks still agree; clock=client passes the store's
//   core::Clock (tests, or hosts with disciplined clocks).
// - Failures never hang: connect and command timeouts (50 ms by default);
//   after a failure the connection is dropped and re-opened lazily, at most
//   once per backoff period (100 ms doubling to 2 s), failing fast meanwhile.
// - Counter values are exact up to 2^53 (Lua numbers are doubles).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/store.hpp"

struct redisContext;
struct redisReply;

namespace dmr::store {

struct RedisOptions {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string unix_path;          // set: connect to this socket instead
    int db = 0;
    std::string password;
    int connect_timeout_ms = 50;
    int timeout_ms = 50;
    bool server_clock = true;
    std::string prefix = "dmr:";
};

class RedisStore final : public Store {
public:
    explicit RedisStore(RedisOptions options,
                        const core::Clock &clock = core::SystemClock::instance());
    ~RedisStore() override;

    const char *backend() const override { return "redis"; }
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

    const RedisOptions &options() const { return options_; }
    // The one Lua script, and the SHA-1 it is invoked by (EVALSHA).
    static std::string_view script_text();
    static const std::string &script_sha();

private:
    struct ReplyDeleter {
        void operator()(redisReply *reply) const;
    };
    using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

    Result<core::GcraDecision> rate(std::string_view key, const core::GcraRate &rate, int64_t cost,
                                    bool record);
    Status connect();
    void disconnect();
    // One command; a transport failure drops the connection.
    Result<Reply> command(const std::vector<std::string_view> &args);
    // Runs the script with one key and `args` after (op, now).
    Result<Reply> run_script(std::string_view op, const std::string &key,
                             const std::vector<std::string> &args);
    std::string now_arg() const;
    std::string key(char kind, std::string_view name) const;
    // distinct_add ("dadd") and distinct_count ("dcount").
    Result<int64_t> distinct_run(std::string_view op, std::string_view key,
                                 std::string_view member, int64_t window_us);

    RedisOptions options_;
    const core::Clock &clock_;
    redisContext *context_ = nullptr;
    int context_pid_ = 0;            // the process that connected
    int64_t retry_at_us_ = 0;        // steady clock; no connection attempt before
    int64_t backoff_us_ = 0;
    Status last_error_;
};

} // namespace dmr::store
