// GCRA decision latency per backend (issue 5 targets: memory <= 0.3 us,
// LMDB <= 2 us median; Redis: one loopback round trip, reported).
//   build/bench/store/store_bench
// Each benchmark runs 5 repetitions and reports mean/median/stddev.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/lmdb_store.hpp"
#include "store/memory_store.hpp"
#include "store/redis_store.hpp"

namespace {

using namespace dmr;

// 100 per second with a burst the loop never exhausts: every decision is
// allowed and written (the slower path) and every key stays live, as a busy
// user's would. Keys rotate over 1000 users: not one hot cache line.
const core::GcraRate kRate = *core::GcraRate::make(100, 1'000'000, 1'000'000);

std::vector<std::string> user_keys()
{
    std::vector<std::string> keys;
    for (int i = 0; i < 1000; i++)
        keys.push_back("imap-commands:user" + std::to_string(i) + "@example.com");
    return keys;
}

void decide_loop(benchmark::State &state, store::Store &store)
{
    const auto keys = user_keys();
    size_t i = 0;
    int64_t allowed = 0;
    for (auto _ : state) {
        auto d = store.rate_hit(keys[i++ % keys.size()], kRate, 1);
        if (!d.ok()) {
            state.SkipWithError(d.status.message().c_str());
            break;
        }
        allowed += d.value.allowed;
    }
    state.counters["allowed%"] =
        benchmark::Counter(100.0 * allowed / std::max<int64_t>(1, state.iterations()));
}

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "dmr-bench-XXXXXX").string();
        path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
    }
    ~TempDir()
    {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

void BM_GcraMemory(benchmark::State &state)
{
    store::MemoryStore store;
    decide_loop(state, store);
}

void BM_GcraLmdb(benchmark::State &state)
{
    TempDir dir;
    store::LmdbOptions options;
    options.dir = dir.path();
    store::LmdbStore store(options);
    decide_loop(state, store);
}

// A private redis-server on a free loopback port, like the tests use.
class RedisServer {
public:
    bool start()
    {
        if (access("/usr/bin/redis-server", X_OK) != 0)
            return false;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        close(fd);
        const std::string port = std::to_string(port_);
        pid_ = fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind",
                  "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir_.path().c_str(),
                  nullptr);
            _exit(127);
        }
        for (int i = 0; i < 500; i++) {
            struct timeval tv = {0, 100'000};
            redisContext *c = redisConnectWithTimeout("127.0.0.1", port_, tv);
            bool up = c != nullptr && c->err == 0;
            if (c != nullptr)
                redisFree(c);
            if (up)
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }
    ~RedisServer()
    {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }

private:
    TempDir dir_;
    pid_t pid_ = -1;
    int port_ = 0;
};

void BM_GcraRedisLoopback(benchmark::State &state)
{
    RedisServer server;
    if (!server.start()) {
        state.SkipWithError("redis-server could not be started");
        for (auto _ : state) {
        }
        return;
    }
    store::RedisOptions options;
    options.port = server.port();
    options.timeout_ms = 1000;
    store::RedisStore store(options);
    decide_loop(state, store);
}

// --- Distinct (HyperLogLog) next to Counter, the same keys and stores ---
// Counter: incr on 1000 rotating keys. DistinctSmall: add on 1000 rotating
// keys of at most 20 members each (a policy's per-network user names: the
// sparse form). DistinctLarge: add on 10 keys already holding 5000 members
// each (the dense 12 KiB form). DistinctCount: count on the small keys.
enum class Op { CounterIncr, DistinctSmall, DistinctLarge, DistinctCount };

void op_loop(benchmark::State &state, store::Store &store, Op op)
{
    const auto keys = user_keys();
    const int64_t window = 3600ll * 1'000'000;
    if (op == Op::DistinctLarge) {
        for (size_t k = 0; k < 10; k++) {
            for (int m = 0; m < 5000; m++)
                (void)store.distinct_add(keys[k], "member" + std::to_string(m), window);
        }
    }
    if (op == Op::DistinctCount) {
        for (size_t k = 0; k < keys.size(); k++) {
            for (int m = 0; m < 20; m++)
                (void)store.distinct_add(keys[k], "user" + std::to_string(m), window);
        }
    }
    std::vector<std::string> members;
    for (int m = 0; m < 20; m++)
        members.push_back("user" + std::to_string(m) + "@example.com");
    size_t i = 0;
    for (auto _ : state) {
        core::Result<int64_t> r;
        switch (op) {
        case Op::CounterIncr:
            r = store.counter_incr(keys[i % keys.size()], 1, window);
            break;
        case Op::DistinctSmall:
            r = store.distinct_add(keys[i % keys.size()], members[(i / keys.size()) % 20], window);
            break;
        case Op::DistinctLarge:
            r = store.distinct_add(keys[i % 10], "new" + std::to_string(i), window);
            break;
        case Op::DistinctCount:
            r = store.distinct_count(keys[i % keys.size()], window);
            break;
        }
        i++;
        if (!r.ok()) {
            state.SkipWithError(r.status.message().c_str());
            break;
        }
        benchmark::DoNotOptimize(r.value);
    }
}

void BM_StoreOpMemory(benchmark::State &state)
{
    store::MemoryStore store;
    op_loop(state, store, static_cast<Op>(state.range(0)));
}

void BM_StoreOpLmdb(benchmark::State &state)
{
    TempDir dir;
    store::LmdbOptions options;
    options.dir = dir.path();
    store::LmdbStore store(options);
    op_loop(state, store, static_cast<Op>(state.range(0)));
}

void BM_StoreOpRedisLoopback(benchmark::State &state)
{
    RedisServer server;
    if (!server.start()) {
        state.SkipWithError("redis-server could not be started");
        for (auto _ : state) {
        }
        return;
    }
    store::RedisOptions options;
    options.port = server.port();
    options.timeout_ms = 1000;
    store::RedisStore store(options);
    op_loop(state, store, static_cast<Op>(state.range(0)));
}

// Arg: 0 counter incr, 1 distinct add (small), 2 distinct add (large), 3 distinct count.
BENCHMARK(BM_StoreOpMemory)->DenseRange(0, 3)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_StoreOpLmdb)->DenseRange(0, 3)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_StoreOpRedisLoopback)->DenseRange(0, 3)->Repetitions(5)->ReportAggregatesOnly(true);

BENCHMARK(BM_GcraMemory)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_GcraLmdb)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_GcraRedisLoopback)->Repetitions(5)->ReportAggregatesOnly(true);

} // namespace

BENCHMARK_MAIN();
