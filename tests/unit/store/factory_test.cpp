// Opening by URL through the registry: every documented spec form, and clear
// errors for the rest.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include "store/lmdb_store.hpp"
#include "store/redis_store.hpp"
#include "core/store_registry.hpp"
#include "test_support.hpp"

namespace dmr::store {
namespace {

using test::open_store;

template <class T>
const T *open_as(const std::string &spec)
{
    std::string error;
    static std::unique_ptr<Store> keep;
    keep = open_store(spec, error);
    EXPECT_TRUE(keep) << spec << ": " << error;
    return dynamic_cast<const T *>(keep.get());
}

std::string error_for(const std::string &spec)
{
    std::string error;
    auto store = open_store(spec, error);
    EXPECT_FALSE(store) << spec;
    return error;
}

std::unique_ptr<Store> open_with_password(const std::string &spec, const std::string &password,
                                          std::string &error)
{
    core::StoreOptions options;
    options.password = password;
    return test::open_store(spec, error, options);
}

TEST(OpenStore, RedisTakesThePasswordOfItsOwnSetting)
{
    std::string error;
    auto store = open_with_password("redis://10.0.0.5:6380/2?prefix=x:", "s3cret", error);
    auto *redis = dynamic_cast<const RedisStore *>(store.get());
    ASSERT_TRUE(redis) << error;
    EXPECT_EQ(redis->options().password, "s3cret");
    EXPECT_EQ(redis->options().host, "10.0.0.5");
    EXPECT_EQ(redis->options().prefix, "x:");
    store = open_with_password("redis+unix:///run/redis.sock?db=1", "s3cret", error);
    redis = dynamic_cast<const RedisStore *>(store.get());
    ASSERT_TRUE(redis) << error;
    EXPECT_EQ(redis->options().password, "s3cret");
}

TEST(OpenStore, APasswordGivenTwiceOrToABackendWithoutOneIsRefused)
{
    std::string error;
    EXPECT_FALSE(open_with_password("redis://:a@10.0.0.5/0", "b", error));
    EXPECT_EQ(error, "the redis URL has a password and mruby_store_password (or its file) gives "
                     "one too: keep only the separate setting");
    EXPECT_FALSE(open_with_password("redis://10.0.0.5/0?password=a", "b", error));
    EXPECT_NE(error.find("keep only the separate setting"), std::string::npos);
    EXPECT_FALSE(open_with_password("lmdb:/tmp/x", "b", error));
    EXPECT_EQ(error, "the lmdb store takes no password (mruby_store_password is set)");
    EXPECT_FALSE(open_with_password("memory", "b", error));
    EXPECT_EQ(error, "the memory store takes no password (mruby_store_password is set)");
}

TEST(StoreHandle, ReadsThePasswordFileWhenTheStoreIsFirstOpened)
{
    char path[] = "/tmp/dmr-pass-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "s3cret\nignored\n", 15), 15);
    close(fd);
    std::string error;
    test::open_store("memory", error);   // the registry with every linked backend
    core::StoreHandle handle("redis://10.0.0.5/0", {}, std::string(path));
    core::Store *store = handle.get(error);
    unlink(path);
    auto *redis = dynamic_cast<const RedisStore *>(store);
    ASSERT_TRUE(redis) << error;
    EXPECT_EQ(redis->options().password, "s3cret");

    core::StoreHandle missing("redis://10.0.0.5/0", {}, std::string("/nonexistent/redis.pass"));
    EXPECT_EQ(missing.get(error), nullptr);
    EXPECT_EQ(error, "mruby_store=redis://10.0.0.5/0: mruby_store_password_file="
                     "/nonexistent/redis.pass: cannot open: No such file or directory");
}

TEST(OpenStore, Memory)
{
    std::string error;
    auto store = open_store("memory", error);
    ASSERT_TRUE(store);
    EXPECT_STREQ(store->backend(), "memory");
}

TEST(OpenStore, LmdbWithOptions)
{
    auto *lmdb = open_as<LmdbStore>("lmdb:/var/lib/dovecot/mruby");
    ASSERT_TRUE(lmdb);
    EXPECT_EQ(lmdb->options().dir, "/var/lib/dovecot/mruby");
    EXPECT_EQ(lmdb->options().map_size, LmdbOptions::kDefaultMapSize);
    EXPECT_EQ(lmdb->options().mode, 0660u);
    EXPECT_FALSE(lmdb->options().sync);
    lmdb = open_as<LmdbStore>("lmdb:/tmp/x?map_size=256M&mode=0640&sync=yes");
    ASSERT_TRUE(lmdb);
    EXPECT_EQ(lmdb->options().map_size, 256u << 20);
    EXPECT_EQ(lmdb->options().mode, 0640u);
    EXPECT_TRUE(lmdb->options().sync);
}

TEST(OpenStore, RedisTcpForms)
{
    auto *redis = open_as<RedisStore>("redis://10.0.0.5:6380/2");
    ASSERT_TRUE(redis);
    EXPECT_EQ(redis->options().host, "10.0.0.5");
    EXPECT_EQ(redis->options().port, 6380);
    EXPECT_EQ(redis->options().db, 2);
    EXPECT_EQ(redis->options().timeout_ms, 50);
    EXPECT_EQ(redis->options().connect_timeout_ms, 50);
    EXPECT_TRUE(redis->options().server_clock);
    EXPECT_EQ(redis->options().prefix, "dmr:");

    redis = open_as<RedisStore>("redis://redis.example");
    ASSERT_TRUE(redis);
    EXPECT_EQ(redis->options().port, 6379);
    EXPECT_EQ(redis->options().db, 0);

    redis = open_as<RedisStore>(
        "redis://:s3cret@[::1]:7000/1?timeout=20ms&connect_timeout=1s&clock=client&prefix=x:");
    ASSERT_TRUE(redis);
    EXPECT_EQ(redis->options().host, "::1");
    EXPECT_EQ(redis->options().port, 7000);
    EXPECT_EQ(redis->options().password, "s3cret");
    EXPECT_EQ(redis->options().timeout_ms, 20);
    EXPECT_EQ(redis->options().connect_timeout_ms, 1000);
    EXPECT_FALSE(redis->options().server_clock);
    EXPECT_EQ(redis->options().prefix, "x:");
}

TEST(OpenStore, RedisUnixForms)
{
    auto *redis = open_as<RedisStore>("redis+unix:///run/redis/redis.sock?db=4");
    ASSERT_TRUE(redis);
    EXPECT_EQ(redis->options().unix_path, "/run/redis/redis.sock");
    EXPECT_EQ(redis->options().db, 4);
    redis = open_as<RedisStore>("unix:///run/redis.sock");
    ASSERT_TRUE(redis);
    EXPECT_EQ(redis->options().unix_path, "/run/redis.sock");
}

TEST(OpenStore, ClearErrors)
{
    EXPECT_NE(error_for("mysql://x").find("unknown store"), std::string::npos);
    EXPECT_NE(error_for("lmdb:").find("needs a directory"), std::string::npos);
    EXPECT_NE(error_for("lmdb:/x?map_size=10k").find("at least 1M"), std::string::npos);
    EXPECT_NE(error_for("lmdb:/x?colour=blue").find("colour=blue"), std::string::npos);
    EXPECT_NE(error_for("redis://").find("needs a host"), std::string::npos);
    EXPECT_NE(error_for("redis://h:99999").find("bad redis port"), std::string::npos);
    EXPECT_NE(error_for("redis://h/x").find("bad redis database"), std::string::npos);
    EXPECT_NE(error_for("redis://h?timeout=0").find("between 1ms and 10s"), std::string::npos);
    EXPECT_NE(error_for("redis://h?clock=sundial").find("clock=sundial"), std::string::npos);
    EXPECT_NE(error_for("redis+unix://relative.sock").find("absolute path"), std::string::npos);
    EXPECT_FALSE(error_for("Memory").empty());
}

} // namespace
} // namespace dmr::store
