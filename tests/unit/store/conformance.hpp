// The store conformance suite's fixture: one store per test, opened by URL
// through the registry on a manual clock. The parameter is a spec, or "lmdb"
// (a fresh directory) or "redis" (the shared test server, skipped without
// one). The tests are in conformance_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "shared_redis.hpp"
#include "store/store.hpp"
#include "test_support.hpp"

namespace dmr::store::test {

class StoreConformance : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override
    {
        std::string spec = GetParam();
        if (spec == "lmdb") {
            dir_ = std::make_unique<TempDir>();
            spec = "lmdb:" + dir_->path();
        } else if (spec == "redis") {
            std::string why;
            test::RedisServer *server = test::shared_redis(why);
            if (server == nullptr)
                GTEST_SKIP() << "no Redis for this test: " << why;
            spec = server->spec(test::unique_prefix());
        }
        std::string error;
        StoreOptions options;
        options.clock = &clock_;
        store_ = test::open_store(spec, error, options);
        ASSERT_TRUE(store_) << error;
    }

    core::GcraRate rate(int64_t limit, int64_t period_us, int64_t burst)
    {
        return *core::GcraRate::make(limit, period_us, burst);
    }

    core::GcraDecision hit(std::string_view key, const core::GcraRate &r, int64_t cost = 1)
    {
        auto result = store_->rate_hit(key, r, cost);
        EXPECT_TRUE(result.ok()) << result.status.message();
        return result.value;
    }

    core::ManualClock clock_;
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<Store> store_;
};

} // namespace dmr::store::test
