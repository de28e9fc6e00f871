// Redis Sentinel and Cluster: the redis-sentinel:// spec, how sentinel and
// ROLE replies are read (replies parsed from RESP text by hiredis' own
// reader), a Cluster redirect named as such, and the store's round through
// the sentinels against scripted fake sentinels and real redis-servers
// (a master, and a server made a replica: never written to).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "core/coroutine.hpp"
#include "core/io_wait.hpp"
#include "core/rate_limiter.hpp"
#include "store/redis_sentinel.hpp"
#include "store/redis_store.hpp"
#include "store/spec.hpp"
#include "test_support.hpp"

namespace dmr::store {
namespace {

// A reply as hiredis parses it from the wire.
struct ParsedReply {
    explicit ParsedReply(const std::string &resp)
    {
        redisReader *reader = redisReaderCreate();
        redisReaderFeed(reader, resp.data(), resp.size());
        void *out = nullptr;
        if (redisReaderGetReply(reader, &out) == REDIS_OK)
            reply = static_cast<redisReply *>(out);
        redisReaderFree(reader);
    }
    ~ParsedReply()
    {
        if (reply != nullptr)
            freeReplyObject(reply);
    }
    redisReply *reply = nullptr;
};

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

std::string address_reply(const std::string &host, const std::string &port)
{
    return "*2\r\n" + bulk(host) + bulk(port);
}

// A TCP server on a free loopback port that answers every request it reads
// with `answer` (a scripted sentinel, or a Cluster node), and counts them.
class FakeServer {
public:
    explicit FakeServer(std::string answer) : answer_(std::move(answer))
    {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(fd_, 8) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
            return;
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeServer()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        close(fd_);
    }
    int port() const { return port_; }
    int requests() const { return requests_; }
    void answer(std::string answer)
    {
        std::lock_guard<std::mutex> lock(mutex_);
        answer_ = std::move(answer);
    }

private:
    void serve()
    {
        std::vector<int> clients;
        while (!stop_) {
            std::vector<struct pollfd> fds{{fd_, POLLIN, 0}};
            for (int c : clients)
                fds.push_back({c, POLLIN, 0});
            if (::poll(fds.data(), fds.size(), 20) <= 0)
                continue;
            if (fds[0].revents & POLLIN)
                clients.push_back(accept(fd_, nullptr, nullptr));
            for (size_t i = 1; i < fds.size(); i++) {
                if (!(fds[i].revents & (POLLIN | POLLHUP)))
                    continue;
                char buffer[4096];
                ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
                if (n <= 0) {
                    close(fds[i].fd);
                    clients.erase(std::find(clients.begin(), clients.end(), fds[i].fd));
                    continue;
                }
                requests_++;
                std::string answer;
                {
                    std::lock_guard<std::mutex> lock(mutex_);
                    answer = answer_;
                }
                (void)!write(fds[i].fd, answer.data(), answer.size());
            }
        }
        for (int c : clients)
            close(c);
    }

    std::mutex mutex_;
    std::string answer_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> requests_{0};
    std::thread thread_;
};

TEST(RedisSentinelSpec, SentinelsMasterNameAndOptions)
{
    RedisOptions options;
    std::string error;
    ASSERT_TRUE(parse_redis_sentinel_spec(
        ":pw@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster?sentinel_password=sp&db=3&timeout=80ms",
        options, error))
        << error;
    ASSERT_EQ(options.sentinels.size(), 3u);
    EXPECT_EQ(options.sentinels[0].host, "10.0.0.1");
    EXPECT_EQ(options.sentinels[0].port, 26380);
    EXPECT_EQ(options.sentinels[1].host, "10.0.0.2");
    EXPECT_EQ(options.sentinels[1].port, 26379);   // Sentinel's default port
    EXPECT_EQ(options.sentinels[2].host, "::1");
    EXPECT_EQ(options.sentinels[2].port, 26381);
    EXPECT_EQ(options.master_name, "mymaster");
    EXPECT_EQ(options.password, "pw");
    EXPECT_EQ(options.sentinel_password, "sp");
    EXPECT_EQ(options.db, 3);
    EXPECT_EQ(options.timeout_ms, 80);
}

TEST(RedisSentinelSpec, MalformedSpecsSayWhatIsWrong)
{
    struct Case {
        const char *rest;
        const char *error;
    } cases[] = {
        {"10.0.0.1:26379", "redis-sentinel store needs a master name: "
                           "redis-sentinel://HOST:PORT,HOST:PORT/MASTERNAME"},
        {"10.0.0.1:26379/", "redis-sentinel store needs a master name: "
                            "redis-sentinel://HOST:PORT,HOST:PORT/MASTERNAME"},
        {"10.0.0.1,,10.0.0.2/m", "redis-sentinel store needs sentinel addresses: "
                                 "redis-sentinel://HOST:PORT,HOST:PORT/MASTERNAME"},
        {"10.0.0.1:0/m", "bad redis-sentinel port '0'"},
        {"10.0.0.1:x/m", "bad redis-sentinel port 'x'"},
        {"[::1/m", "bad redis-sentinel address '[::1'"},
        {"10.0.0.1/m/x", "bad redis-sentinel master name 'm/x'"},
        {"10.0.0.1/m?nosuch=1", "bad store option 'nosuch=1'"},
    };
    for (const Case &c : cases) {
        RedisOptions options;
        std::string error;
        EXPECT_FALSE(parse_redis_sentinel_spec(c.rest, options, error)) << c.rest;
        EXPECT_EQ(error, c.error) << c.rest;
    }
}

TEST(RedisSentinelSpec, OpensThroughTheRegistryWithTheSeparatePassword)
{
    std::string error;
    StoreOptions store_options;
    store_options.password = "s3cret";
    auto store = test::open_store("redis-sentinel://127.0.0.1:26379/mymaster", error, store_options);
    auto *redis = dynamic_cast<const RedisStore *>(store.get());
    ASSERT_TRUE(redis) << error;
    EXPECT_EQ(redis->options().password, "s3cret");
    EXPECT_EQ(redis->options().master_name, "mymaster");
    EXPECT_FALSE(test::open_store("redis-sentinel://:a@127.0.0.1/m", error, store_options));
    EXPECT_EQ(error, "the redis URL has a password and mruby_store_password (or its file) gives "
                     "one too: keep only the separate setting");
}

TEST(RedisSentinelReplies, MasterAddress)
{
    RedisTarget target;
    ParsedReply ok(address_reply("127.0.0.1", "6391"));
    ASSERT_TRUE(ok.reply);
    EXPECT_EQ(detail::sentinel_master_address(ok.reply, "m", target), "");
    EXPECT_EQ(target.where(), "127.0.0.1:6391");

    ParsedReply nil("$-1\r\n");
    EXPECT_EQ(detail::sentinel_master_address(nil.reply, "mymaster", target),
              "no master named mymaster");
    ParsedReply nil_array("*-1\r\n");
    EXPECT_EQ(detail::sentinel_master_address(nil_array.reply, "mymaster", target),
              "no master named mymaster");
    ParsedReply error("-IDONTKNOW No such master with that name\r\n");
    EXPECT_EQ(detail::sentinel_master_address(error.reply, "m", target),
              "IDONTKNOW No such master with that name");
    ParsedReply bad_port(address_reply("127.0.0.1", "70000"));
    EXPECT_EQ(detail::sentinel_master_address(bad_port.reply, "m", target),
              "bad master address '127.0.0.1:70000'");
    ParsedReply one(std::string("*1\r\n") + bulk("127.0.0.1"));
    EXPECT_EQ(detail::sentinel_master_address(one.reply, "m", target),
              "unexpected reply to SENTINEL get-master-addr-by-name");
    EXPECT_EQ(target.where(), "127.0.0.1:6391");   // unchanged by the failures
}

TEST(RedisSentinelReplies, RoleMustBeMaster)
{
    ParsedReply master("*3\r\n" + bulk("master") + ":0\r\n*0\r\n");
    EXPECT_EQ(detail::role_not_master(master.reply), "");
    ParsedReply replica("*5\r\n" + bulk("slave") + bulk("127.0.0.1") + ":6390\r\n" +
                        bulk("connected") + ":100\r\n");
    EXPECT_EQ(detail::role_not_master(replica.reply), "role slave");
    ParsedReply sentinel("*2\r\n" + bulk("sentinel") + "*0\r\n");
    EXPECT_EQ(detail::role_not_master(sentinel.reply), "role sentinel");
    ParsedReply error("-NOPERM no\r\n");
    EXPECT_EQ(detail::role_not_master(error.reply), "ROLE: NOPERM no");
}

TEST(RedisCluster, MovedAndAskAreNamedAsUnsupportedCluster)
{
    Status moved = detail::cluster_redirect_status("MOVED 3999 127.0.0.1:6381");
    EXPECT_FALSE(moved.ok());
    EXPECT_EQ(moved.message(),
              "redis: MOVED 3999 127.0.0.1:6381: the server is a Redis Cluster node, and Redis "
              "Cluster is not supported (use one master, Sentinel, or a cluster proxy)");
    EXPECT_FALSE(detail::cluster_redirect_status("ASK 3999 127.0.0.1:6381").ok());
    EXPECT_TRUE(detail::cluster_redirect_status("ERR unknown command").ok());
    EXPECT_TRUE(detail::cluster_redirect_status("MOVEDX").ok());
}

TEST(RedisCluster, AStoreTalkingToAClusterNodeReportsCluster)
{
    FakeServer node("-MOVED 3999 127.0.0.1:6381\r\n");
    ASSERT_NE(node.port(), 0);
    std::string error;
    auto store = test::open_store("redis://127.0.0.1:" + std::to_string(node.port()), error);
    ASSERT_TRUE(store) << error;
    auto count = store->counter_incr("k", 1, 60'000'000);
    ASSERT_FALSE(count.ok());
    EXPECT_NE(count.status.message().find("Redis Cluster is not supported"), std::string::npos)
        << count.status.message();
    Status reset = store->counter_reset("k");
    EXPECT_NE(reset.message().find("MOVED 3999 127.0.0.1:6381: the server is a Redis Cluster node"),
              std::string::npos)
        << reset.message();
}

#define REQUIRE_REDIS_SERVER()                                                                    \
    if (!test::RedisServer::installed())                                                          \
    GTEST_SKIP() << test::RedisServer::kBinary << " is not installed"

std::string raw_command(int port, const char *command)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    std::string out;
    if (c != nullptr && c->err == 0) {
        auto *reply = static_cast<redisReply *>(redisCommand(c, command));
        if (reply != nullptr && (reply->type == REDIS_REPLY_STATUS ||
                                 reply->type == REDIS_REPLY_STRING ||
                                 reply->type == REDIS_REPLY_ERROR))
            out.assign(reply->str, reply->len);
        else if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER)
            out = std::to_string(reply->integer);
        if (reply != nullptr)
            freeReplyObject(reply);
    }
    if (c != nullptr)
        redisFree(c);
    return out;
}

// Sentinels that name a replica are passed over (the replica is never
// written to), a dead sentinel costs nothing but its turn, and the master a
// later sentinel names is used; its discovery is logged at debug level only.
TEST(RedisSentinelStore, OneRoundThroughTheSentinelsNeverWritesToAReplica)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer master, replica;
    std::string error;
    ASSERT_TRUE(master.start(error)) << error;
    ASSERT_TRUE(replica.start(error)) << error;
    ASSERT_EQ(raw_command(replica.port(), "REPLICAOF 127.0.0.1 1"), "OK");   // a replica of nothing
    FakeServer stale(address_reply("127.0.0.1", std::to_string(replica.port())));
    FakeServer current(address_reply("127.0.0.1", std::to_string(master.port())));
    const int dead = test::free_loopback_port();
    test::RecordingLogger logger;
    StoreOptions store_options;
    store_options.logger = &logger;
    const std::string spec = "redis-sentinel://127.0.0.1:" + std::to_string(dead) +
                             ",127.0.0.1:" + std::to_string(stale.port()) + ",127.0.0.1:" +
                             std::to_string(current.port()) + "/mymaster?prefix=s:";
    auto store = test::open_store(spec, error, store_options);
    ASSERT_TRUE(store) << error;
    auto count = store->counter_incr("k", 1, 60'000'000);
    ASSERT_TRUE(count.ok()) << count.status.message();
    EXPECT_EQ(count.value, 1);
    EXPECT_EQ(raw_command(master.port(), "DBSIZE"), "1");
    EXPECT_EQ(raw_command(replica.port(), "DBSIZE"), "0");
    EXPECT_EQ(stale.requests(), 1);     // SENTINEL get-master-addr-by-name
    EXPECT_EQ(current.requests(), 1);
    ASSERT_EQ(logger.lines.size(), 1u);
    EXPECT_EQ(logger.lines[0].level, core::LogLevel::Debug);
    EXPECT_EQ(logger.lines[0].text, "redis-sentinel: master mymaster is at 127.0.0.1:" +
                                        std::to_string(master.port()));
}

// With every sentinel naming a replica (or gone), the call fails within its
// bounds, saying why per sentinel; the fail mode applies.
TEST(RedisSentinelStore, NoMasterReachableFailsWithTheReasonsAndTheFailModeApplies)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer replica;
    std::string error;
    ASSERT_TRUE(replica.start(error)) << error;
    ASSERT_EQ(raw_command(replica.port(), "REPLICAOF 127.0.0.1 1"), "OK");
    FakeServer stale(address_reply("127.0.0.1", std::to_string(replica.port())));
    FakeServer unknown("$-1\r\n");
    const std::string spec = "redis-sentinel://127.0.0.1:" + std::to_string(stale.port()) +
                             ",127.0.0.1:" + std::to_string(unknown.port()) + "/mymaster";
    auto store = test::open_store(spec, error);
    ASSERT_TRUE(store) << error;
    test::RecordingLogger logger;
    core::FailureLog failures(logger);
    core::RateLimiter limiter(*store, failures, "login", *core::GcraRate::make(10, 10'000'000, 10),
                              core::FailMode::Closed);
    core::RateDecision decision = limiter.hit("1.2.3.4");
    EXPECT_FALSE(decision.allowed);
    EXPECT_TRUE(decision.store_failed);
    ASSERT_EQ(logger.lines.size(), 1u);
    const std::string where = "127.0.0.1:" + std::to_string(replica.port());
    EXPECT_EQ(logger.lines[0].text,
              "mruby: store failure (unavailable) in rate limit login (failing closed): "
              "redis-sentinel: no master reachable for mymaster (sentinel 127.0.0.1:" +
                  std::to_string(stale.port()) + " names " + where + ": " + where +
                  " is not the master (role slave); sentinel 127.0.0.1:" +
                  std::to_string(unknown.port()) + ": no master named mymaster)");
    EXPECT_EQ(raw_command(replica.port(), "DBSIZE"), "0");
}

// The sentinels' own password is sent to them (and only to them): a sentinel
// that refuses it is passed over with its answer in the error.
TEST(RedisSentinelStore, SentinelPasswordIsSentToTheSentinels)
{
    FakeServer sentinel("-WRONGPASS invalid username-password pair\r\n");
    std::string error;
    auto store = test::open_store("redis-sentinel://127.0.0.1:" + std::to_string(sentinel.port()) +
                                      "/mymaster?sentinel_password=nope",
                                  error);
    ASSERT_TRUE(store) << error;
    auto count = store->counter_get("k");
    ASSERT_FALSE(count.ok());
    EXPECT_EQ(count.status.message(),
              "redis-sentinel: no master reachable for mymaster (sentinel 127.0.0.1:" +
                  std::to_string(sentinel.port()) +
                  ": AUTH: WRONGPASS invalid username-password pair)");
    EXPECT_EQ(sentinel.requests(), 1);   // AUTH, and no question after its refusal
}

// Suspends the calling coroutine at each wait (then polls): two calls wait at
// once, so the second one needs a connection of its own (the auth
// process's pool).
class SuspendingWaiter final : public core::IoWaiter {
public:
    core::WaitResult wait(int fd, core::IoEvent event, int64_t deadline_us) override
    {
        if (core::Coroutine::current() != nullptr)
            core::Coroutine::suspend();
        return core::poll_wait(fd, event, deadline_us);
    }
};

// A further connection while the first works goes straight to the master
// the sentinels named (ROLE checked): one sentinel round, not one per
// pooled connection.
TEST(RedisSentinelStore, APooledConnectionGoesStraightToTheKnownMaster)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer master;
    std::string error;
    ASSERT_TRUE(master.start(error)) << error;
    FakeServer sentinel(address_reply("127.0.0.1", std::to_string(master.port())));
    SuspendingWaiter waiter;
    StoreOptions store_options;
    store_options.waiter = &waiter;
    auto store = test::open_store("redis-sentinel://127.0.0.1:" + std::to_string(sentinel.port()) +
                                      "/mymaster?prefix=p:",
                                  error, store_options);
    ASSERT_TRUE(store) << error;
    ASSERT_TRUE(store->counter_incr("a", 1, 60'000'000).ok());
    EXPECT_EQ(sentinel.requests(), 1);

    Result<int64_t> a, b;
    core::Coroutine first([&] { a = store->counter_incr("a", 1, 60'000'000); });
    core::Coroutine second([&] { b = store->counter_incr("b", 1, 60'000'000); });
    first.resume();
    ASSERT_FALSE(first.done());
    second.resume();   // the first holds the only connection: a second one
    ASSERT_FALSE(second.done());
    while (!first.done() || !second.done()) {
        if (!first.done())
            first.resume();
        if (!second.done())
            second.resume();
    }
    ASSERT_TRUE(a.ok()) << a.status.message();
    ASSERT_TRUE(b.ok()) << b.status.message();
    EXPECT_EQ(a.value, 2);
    EXPECT_EQ(b.value, 1);
    EXPECT_EQ(sentinel.requests(), 1);   // the second connection did not ask
}

// A master demoted under the store (REPLICAOF): the write it refuses with
// READONLY is sent again, in the same call, to the master the sentinel names
// now, and the store says that it moved.
TEST(RedisSentinelStore, FollowsTheMasterWhenTheOldOneBecomesAReplica)
{
    REQUIRE_REDIS_SERVER();
    test::RedisServer a, b;
    std::string error;
    ASSERT_TRUE(a.start(error)) << error;
    ASSERT_TRUE(b.start(error)) << error;
    FakeServer sentinel(address_reply("127.0.0.1", std::to_string(a.port())));
    test::RecordingLogger logger;
    StoreOptions store_options;
    store_options.logger = &logger;
    auto store = test::open_store("redis-sentinel://127.0.0.1:" + std::to_string(sentinel.port()) +
                                      "/mymaster",
                                  error, store_options);
    ASSERT_TRUE(store) << error;
    ASSERT_TRUE(store->counter_incr("k", 1, 60'000'000).ok());
    EXPECT_EQ(raw_command(a.port(), "DBSIZE"), "1");

    // The failover: b is promoted (it is a master already), a follows it.
    sentinel.answer(address_reply("127.0.0.1", std::to_string(b.port())));
    const std::string replicaof = "REPLICAOF 127.0.0.1 " + std::to_string(b.port());
    ASSERT_EQ(raw_command(a.port(), replicaof.c_str()), "OK");
    // Redis keeps the store's connection and answers the write READONLY: the
    // store asks the sentinel at once and sends the command to b.
    auto count = store->counter_incr("k2", 1, 60'000'000);
    ASSERT_TRUE(count.ok()) << count.status.message();
    EXPECT_EQ(raw_command(b.port(), "EXISTS dmr:c:{k2}"), "1");
    ASSERT_FALSE(logger.lines.empty());
    EXPECT_EQ(logger.lines.back().level, core::LogLevel::Warning);
    EXPECT_EQ(logger.lines.back().text, "redis-sentinel: master mymaster moved to 127.0.0.1:" +
                                            std::to_string(b.port()) + " (was 127.0.0.1:" +
                                            std::to_string(a.port()) + ")");
}

} // namespace
} // namespace dmr::store
