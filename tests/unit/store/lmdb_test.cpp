// What only the LMDB store promises: one file shared by many processes (and
// uids), reclaimed space, a full map that fails cleanly, crash safety.
#include <gtest/gtest.h>

#include <lmdb.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "store/lmdb_store.hpp"
#include "test_support.hpp"

namespace dmr::store {
namespace {

using test::TempDir;

constexpr int64_t kSecond = 1'000'000;

LmdbOptions options_for(const TempDir &dir, size_t map_size = LmdbOptions::kDefaultMapSize)
{
    LmdbOptions options;
    options.dir = dir.path();
    options.map_size = map_size;
    return options;
}

TEST(LmdbStore, FilesAreGroupWritableWhateverTheUmask)
{
    TempDir dir;
    mode_t old = umask(0077);
    {
        LmdbStore store(options_for(dir));
        ASSERT_TRUE(store.counter_incr("k", 1, kSecond).ok());
    }
    umask(old);
    for (const char *name : {"/data.mdb", "/lock.mdb"}) {
        struct stat st;
        ASSERT_EQ(stat((dir.path() + name).c_str(), &st), 0) << name;
        EXPECT_EQ(st.st_mode & 0777, 0660u) << name;
    }
}

TEST(LmdbStore, MissingDirectoryIsAnErrorNotACrash)
{
    LmdbOptions options;
    options.dir = "/nonexistent/dmr-store-test";
    LmdbStore store(options);
    auto result = store.rate_hit("k", *core::GcraRate::make(1, kSecond, 1), 1);
    EXPECT_EQ(result.status.code(), Status::Code::Unavailable);
    EXPECT_NE(result.status.message().find("/nonexistent/dmr-store-test"), std::string::npos);
    // Retried at most once a second: the second call answers from the cached error.
    EXPECT_EQ(store.counter_get("k").status.code(), Status::Code::Unavailable);
}

// Issue 9: the default store works with no manual step where the process may
// create it (its parent is writable), with the layout every uid can share.
TEST(LmdbStore, AMissingDirectoryIsCreatedSetgidAndGroupWritable)
{
    TempDir parent;
    LmdbOptions options;
    options.dir = parent.path() + "/mruby";
    {
        LmdbStore store(options);
        ASSERT_TRUE(store.counter_incr("k", 1, kSecond).ok());
    }
    struct stat st;
    ASSERT_EQ(stat(options.dir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 02770u);
}

// Issue 9: where it cannot (here: no parent), the one error line says what to run.
TEST(LmdbStore, AnUnusableDirectorySaysWhatToRun)
{
    LmdbOptions options;
    options.dir = "/nonexistent/dmr-store-test";
    LmdbStore store(options);
    auto result = store.counter_incr("k", 1, kSecond);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status.message().find(
                  "groupadd -f --system dovecot-mruby && install -d -o root -g dovecot-mruby "
                  "-m 2770 /nonexistent/dmr-store-test"),
              std::string::npos)
        << result.status.message();
    EXPECT_EQ(result.status.message().find('\n'), std::string::npos);
}

TEST(LmdbStore, TwoStoresInOneProcessShareOneEnvironment)
{
    TempDir dir;
    core::ManualClock clock;
    LmdbStore a(options_for(dir), clock), b(options_for(dir), clock);
    ASSERT_EQ(a.counter_incr("k", 2, kSecond).value, 2);
    ASSERT_EQ(b.counter_incr("k", 3, kSecond).value, 5);
}

TEST(LmdbStore, StatePersistsAcrossReopen)
{
    TempDir dir;
    core::ManualClock clock;
    {
        LmdbStore store(options_for(dir), clock);
        ASSERT_TRUE(store.list_add("blocked", "192.0.2.0/24", 3600 * kSecond, "r").ok());
    }
    LmdbStore store(options_for(dir), clock);
    auto m = store.list_match("blocked", "192.0.2.9");
    ASSERT_TRUE(m.ok() && m.value);
    EXPECT_EQ(m.value->reason, "r");
}

TEST(LmdbStore, ExpiredRecordsAreReclaimedByOrdinaryWrites)
{
    TempDir dir;
    core::ManualClock clock;
    LmdbStore store(options_for(dir), clock);
    const auto rate = *core::GcraRate::make(1, kSecond, 1);
    for (int i = 0; i < 20000; i++)
        ASSERT_TRUE(store.rate_hit("old" + std::to_string(i), rate, 1).ok());
    ASSERT_EQ(store.record_count().value, 20000u);
    clock.advance(2 * kSecond);   // every "old" key is now expired
    for (int i = 0; i < 20000; i++)
        ASSERT_TRUE(store.counter_incr("new" + std::to_string(i), 1, 3600 * kSecond).ok());
    // About two records visited per write: nearly all 20,000 expired ones are gone.
    EXPECT_LT(store.record_count().value, 22000u);
    auto swept = store.sweep_all();
    ASSERT_TRUE(swept.ok());
    EXPECT_EQ(store.record_count().value, 20000u);
}

TEST(LmdbStore, FullMapFailsCleanlyAndRecoversWhenKeysExpire)
{
    TempDir dir;
    core::ManualClock clock;
    LmdbStore store(options_for(dir, 1u << 20), clock);
    int written = 0;
    Status last;
    for (; written < 100000; written++) {
        auto r = store.counter_incr("k" + std::to_string(written) + std::string(100, 'p'), 1,
                                    60 * kSecond);
        if (!r.ok()) {
            last = r.status;
            break;
        }
    }
    ASSERT_LT(written, 100000) << "a 1 MiB map never filled";
    EXPECT_EQ(last.code(), Status::Code::Full) << last.message();
    EXPECT_TRUE(store.counter_get("k0" + std::string(100, 'p')).ok());   // reads still work

    clock.advance(61 * kSecond);
    auto r = store.counter_incr("after", 1, kSecond);
    EXPECT_TRUE(r.ok()) << r.status.message();
    EXPECT_EQ(r.value, 1);
}

// The fork happens before any child opens the environment, and also after
// the parent has it open: a child must not reuse the parent's handle.
TEST(LmdbStore, ProcessesHammeringOneKeyLoseNoUpdate)
{
    TempDir dir;
    core::ManualClock clock;   // children inherit this instant
    LmdbStore parent(options_for(dir), clock);
    ASSERT_TRUE(parent.counter_incr("warm-up", 1, kSecond).ok());

    constexpr int kProcesses = 4, kHits = 2000;
    const auto rate = *core::GcraRate::make(1, 3600 * kSecond, 3000);
    auto results = test::run_children(kProcesses, [&](int) -> int64_t {
        LmdbStore store(options_for(dir), clock);
        int64_t allowed = 0;
        for (int i = 0; i < kHits; i++) {
            if (!store.counter_incr("shared", 1, 3600 * kSecond).ok())
                return -1;
            auto d = store.rate_hit("shared", rate, 1);
            if (!d.ok())
                return -1;
            allowed += d.value.allowed ? 1 : 0;
        }
        return allowed;
    });
    ASSERT_EQ(results.size(), size_t{kProcesses});
    int64_t allowed = 0;
    for (int64_t r : results) {
        ASSERT_GE(r, 0) << "a child saw a store error";
        allowed += r;
    }
    EXPECT_EQ(parent.counter_get("shared").value, kProcesses * kHits);
    EXPECT_EQ(allowed, 3000);   // exactly the burst: no decision was lost or doubled
    EXPECT_TRUE(parent.counter_incr("warm-up", 1, kSecond).ok());   // the parent's env still works
}

TEST(LmdbStore, AForkedChildMayUseItsParentsStoreObject)
{
    TempDir dir;
    LmdbStore store(options_for(dir));
    ASSERT_EQ(store.counter_incr("k", 1, 3600 * kSecond).value, 1);
    auto results = test::run_children(2, [&](int) -> int64_t {
        return store.counter_incr("k", 1, 3600 * kSecond).value;   // reopens in the child
    });
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(store.counter_incr("k", 1, 3600 * kSecond).value, 4);
}

TEST(LmdbStore, AProcessKilledMidWriteLeavesAUsableDatabase)
{
    TempDir dir;
    {
        LmdbStore store(options_for(dir));
        ASSERT_TRUE(store.counter_incr("k", 1, 3600 * kSecond).ok());
    }
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            LmdbStore store(options_for(dir));
            for (;;)
                (void)store.counter_incr("k", 1, 3600 * kSecond);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50 + 13 * round));
        kill(pid, SIGKILL);   // quite likely inside a write transaction
        waitpid(pid, nullptr, 0);
    }
    LmdbStore store(options_for(dir));
    auto before = store.counter_get("k");
    ASSERT_TRUE(before.ok()) << before.status.message();
    auto after = store.counter_incr("k", 1, 3600 * kSecond);
    ASSERT_TRUE(after.ok()) << after.status.message();
    EXPECT_EQ(after.value, before.value + 1);
}

// Records written before the ttl was kept with them (list entry: expiry then
// reason; counter: expiry then value) still read as they were.
TEST(LmdbStore, RecordsFromBeforeTheTtlStillRead)
{
    TempDir dir;
    core::ManualClock clock;
    const int64_t expires = clock.now_us() + 3600 * kSecond;
    {
        MDB_env *env = nullptr;
        ASSERT_EQ(mdb_env_create(&env), 0);
        ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0660), 0);
        MDB_txn *txn = nullptr;
        ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
        MDB_dbi dbi;
        ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
        auto put = [&](std::string key, std::string payload) {
            std::string value(8, '\0');
            std::memcpy(value.data(), &expires, 8);
            value += payload;
            MDB_val k{key.size(), key.data()}, v{value.size(), value.data()};
            ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
        };
        put(std::string("lbans\0smallory", 14), "10 failed logins");   // 's': a string entry
        int64_t count = 7;
        put("cfail:net", std::string(reinterpret_cast<const char *>(&count), 8));
        ASSERT_EQ(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
    }
    LmdbStore store(options_for(dir), clock);
    auto match = store.list_match("bans", "mallory");
    ASSERT_TRUE(match.ok()) << match.status.message();
    ASSERT_TRUE(match.value);
    EXPECT_EQ(match.value->reason, "10 failed logins");
    EXPECT_EQ(match.value->expires_at_us, expires);
    EXPECT_EQ(store.counter_get("fail:net").value, 7);
    EXPECT_EQ(store.counter_incr("fail:net", 1, 600 * kSecond).value, 8);
}

} // namespace
} // namespace dmr::store
