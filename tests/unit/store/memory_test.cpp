// What only the memory store promises: expired records do not pile up.
#include <gtest/gtest.h>

#include "store/memory_store.hpp"

namespace dmr::store {
namespace {

constexpr int64_t kSecond = 1'000'000;

TEST(MemoryStore, ExpiredRecordsNeverOutnumberLiveOnesForLong)
{
    core::ManualClock clock;
    MemoryStore store(clock);
    // Every key is new and lives one second; time moves a second per 1000 keys.
    for (int i = 0; i < 100000; i++) {
        ASSERT_TRUE(store.counter_incr("k" + std::to_string(i), 1, kSecond).ok());
        if (i % 1000 == 999)
            clock.advance(kSecond);
        ASSERT_LE(store.size(), 2048u) << "after " << i << " writes";
    }
}

TEST(MemoryStore, EachStoreIsItsOwnMap)
{
    core::ManualClock clock;
    MemoryStore a(clock), b(clock);
    ASSERT_EQ(a.counter_incr("k", 1, kSecond).value, 1);
    EXPECT_EQ(b.counter_get("k").value, 0);
}

} // namespace
} // namespace dmr::store
