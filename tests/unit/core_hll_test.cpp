// core::Hll against exact counts: the estimate is within 3 standard errors
// (Hll::kStandardError) of the true number of distinct members, duplicates
// change nothing, a merge is the union, and encode/decode keep every register.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/hll.hpp"

namespace dmr::core {
namespace {

std::string member(const char *prefix, uint64_t i) { return prefix + std::to_string(i); }

// Within 3 standard errors, and at most 1 off below a count where that is < 1.
void expect_close(uint64_t estimate, uint64_t exact)
{
    const double bound = std::max(1.0, 3 * Hll::kStandardError * static_cast<double>(exact));
    EXPECT_LE(std::fabs(static_cast<double>(estimate) - static_cast<double>(exact)), bound)
        << "estimate " << estimate << " for " << exact << " distinct members";
}

// That it is Redis' hash and estimator is shown against a real redis-server
// (store conformance: DistinctIsTheHllEstimateOfTheMembersAdded on Redis).
TEST(Hll, MurmurHash64AReadsEveryByte)
{
    // Seed 0, no bytes: h = 0 ^ (0 * m), and the final mixing keeps 0.
    EXPECT_EQ(murmur_hash64a("", 0), 0u);
    std::string bytes = "0123456789abcdef";
    uint64_t previous = 0;
    for (size_t n = 1; n <= bytes.size(); n++) {
        uint64_t h = murmur_hash64a(std::string_view(bytes).substr(0, n), Hll::kSeed);
        EXPECT_NE(h, previous) << n;
        previous = h;
    }
}

TEST(Hll, EmptyIsZero)
{
    Hll hll;
    EXPECT_TRUE(hll.empty());
    EXPECT_EQ(hll.estimate(), 0u);
}

TEST(Hll, SmallCountsAreWithinOne)
{
    Hll hll;
    for (uint64_t n = 1; n <= 100; n++) {
        hll.add(member("user", n));
        expect_close(hll.estimate(), n);
    }
}

TEST(Hll, LargeCountsAreWithinThreeStandardErrors)
{
    Hll hll;
    uint64_t n = 0;
    for (uint64_t target : {1000u, 10000u, 100000u, 1000000u}) {
        for (; n < target; n++)
            hll.add(member("203.0.113.", n));
        expect_close(hll.estimate(), n);
    }
}

TEST(Hll, DuplicatesDoNotCount)
{
    Hll hll;
    for (int round = 0; round < 5; round++) {
        for (uint64_t i = 0; i < 1000; i++) {
            bool changed = hll.add(member("alice", i));
            if (round > 0) {
                EXPECT_FALSE(changed);
            }
        }
    }
    expect_close(hll.estimate(), 1000);
    std::string before = hll.encode();
    EXPECT_FALSE(hll.add(member("alice", 7)));
    EXPECT_EQ(hll.encode(), before);
}

// Sparse and dense sketches (in memory as stored) give the same registers.
TEST(Hll, MergeOfSparseAndDenseInEveryOrder)
{
    Hll small, large;
    for (uint64_t i = 0; i < 300; i++)
        small.add(member("s", i));
    for (uint64_t i = 0; i < 20000; i++)
        large.add(member("l", i));
    Hll a = small, b = large;
    a.merge(large);
    b.merge(small);
    EXPECT_EQ(a.encode(), b.encode());
    Hll both;
    for (uint64_t i = 0; i < 300; i++)
        both.add(member("s", i));
    for (uint64_t i = 0; i < 20000; i++)
        both.add(member("l", i));
    EXPECT_EQ(a.encode(), both.encode());
    expect_close(a.estimate(), 20300);
    Hll s1 = small, s2;
    for (uint64_t i = 200; i < 500; i++)
        s2.add(member("s", i));
    s1.merge(s2);
    expect_close(s1.estimate(), 500);
}

TEST(Hll, MergeIsTheUnion)
{
    Hll a, b, both;
    for (uint64_t i = 0; i < 30000; i++) {
        a.add(member("m", i));
        both.add(member("m", i));
    }
    for (uint64_t i = 20000; i < 50000; i++) {
        b.add(member("m", i));
        both.add(member("m", i));
    }
    a.merge(b);
    EXPECT_EQ(a.encode(), both.encode());
    EXPECT_EQ(a.estimate(), both.estimate());
    expect_close(a.estimate(), 50000);
}

TEST(Hll, AnyBytesAreMembers)
{
    Hll hll;
    EXPECT_TRUE(hll.add(std::string("a\0b", 3)));
    EXPECT_TRUE(hll.add(std::string("a\0c", 3)));
    EXPECT_TRUE(hll.add(std::string(100000, '\xff')));
    EXPECT_TRUE(hll.add(""));
    EXPECT_EQ(hll.estimate(), 4u);
}

TEST(Hll, EncodeDecodeKeepsEveryRegisterSparseAndDense)
{
    Hll hll;
    for (uint64_t n : {0u, 10u, 900u, 5000u, 200000u}) {
        for (uint64_t i = 0; i < n; i++)
            hll.add(member("x", i));
        std::string bytes = hll.encode();
        EXPECT_EQ(bytes[0], n * 3 < Hll::kSparseMaxBytes ? 'S' : 'D') << n;
        EXPECT_LE(bytes.size(), 1 + Hll::kRegisters * 6 / 8);
        auto back = Hll::decode(bytes);
        ASSERT_TRUE(back) << n;
        for (size_t i = 0; i < Hll::kRegisters; i++)
            ASSERT_EQ(back->reg(i), hll.reg(i)) << "register " << i << " after " << n;
        EXPECT_EQ(back->estimate(), hll.estimate());
    }
}

TEST(Hll, DecodeRefusesWhatEncodeNeverWrites)
{
    EXPECT_FALSE(Hll::decode(""));
    EXPECT_FALSE(Hll::decode("X"));
    EXPECT_FALSE(Hll::decode(std::string("S\x00\x01", 3)));                 // cut short
    EXPECT_FALSE(Hll::decode(std::string("S\x00\x01\x00", 4)));             // rank 0
    EXPECT_FALSE(Hll::decode(std::string("S\x00\x01\x34", 4)));             // rank 52
    EXPECT_FALSE(Hll::decode(std::string("S\x40\x00\x01", 4)));             // index 16384
    EXPECT_FALSE(Hll::decode(std::string(100, 'D')));                       // wrong size
    EXPECT_FALSE(Hll::decode(std::string("S\x00\x02\x01\x00\x01\x01", 7)));   // not increasing
    EXPECT_TRUE(Hll::decode("S"));
}

} // namespace
} // namespace dmr::core
