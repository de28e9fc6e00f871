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
// - Commands go out and replies come in on a non-blocking socket, waiting
//   through RedisOptions::waiter (poll() by default; the auth process
//   suspends the handler instead): one deadline per command, one connection
//   per command while it waits, idle connections kept (README.md).
// - Counter values are exact up to 2^53 (Lua numbers are doubles).
// - Sentinel (redis-sentinel://): the master is found by asking the sentinels
//   in turn and checked with ROLE before use; a lost connection, a READONLY
//   reply or a ROLE that is not master sends the next connection attempt to
//   the sentinels again (store/redis_sentinel.hpp).
// - Cluster: not supported; a MOVED/ASK redirect is reported as an error that
//   says so (use a single master, Sentinel, or a cluster proxy).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/log_throttle.hpp"
#include "core/logger.hpp"
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
    // Sentinel mode (redis-sentinel://) when non-empty: host/port above are
    // not used; the master is asked of these.
    struct Address {
        std::string host;
        int port = 26379;
    };
    std::vector<Address> sentinels;
    std::string master_name;
    std::string sentinel_password;   // AUTH on the sentinels ("" = none)
    // Where the store says that it found or followed a master. May be null.
    core::Logger *logger = nullptr;
    // Where a command waits for its socket (core/io_wait.hpp); nullptr: poll().
    core::IoWaiter *waiter = nullptr;
};

// Where a connection goes: the configured server, or the master the sentinels name.
struct RedisTarget {
    std::string host;
    int port = 0;
    std::string unix_path;
    std::string where() const;
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
    // Connects context_ to `target` (AUTH, SELECT; in Sentinel mode also
    // ROLE must say master, all within `deadline_us`); "" or what went wrong.
    std::string open(const RedisTarget &target, int64_t deadline_us);
    // Sentinel mode: one round through the sentinels, connecting to the first
    // master one names that ROLE confirms; "" or what went wrong.
    std::string open_via_sentinels(int64_t deadline_us);
    // What a failed command's error starts with: "redis: ", or in Sentinel
    // mode which master the connection was to.
    std::string lost_prefix() const;
    void disconnect();
    redisContext *take_connection(Status &status);
    void give_back(redisContext *context);
    // One command; a transport failure drops the connection.
    Result<Reply> command(const std::vector<std::string_view> &args);
    // Sentinel mode: a READONLY reply to `args`; rediscovers and resends once.
    Result<Reply> after_readonly(const std::vector<std::string_view> &args,
                                 std::string_view message);
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
    // Idle connections besides context_: a command takes one for itself
    // (take_connection) and gives it back, so that commands whose handlers
    // wait at the same time (auth coroutines) never share a socket.
    std::vector<redisContext *> spare_;
    int context_pid_ = 0;            // the process that connected
    int64_t retry_at_us_ = 0;        // steady clock; no connection attempt before
    int64_t backoff_us_ = 0;
    Status last_error_;
    // Sentinel mode.
    std::string master_where_;       // the master last connected to
    RedisTarget master_;             // and where it is
    size_t next_sentinel_ = 0;
    bool rediscovering_ = false;       // the sentinel asked first (the last that answered)
    core::LogThrottle move_log_{10 * core::kMicrosPerSecond};
};

} // namespace dmr::store
