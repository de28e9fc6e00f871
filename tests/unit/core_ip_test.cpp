// IP addresses, networks and list keys (core/ip.hpp, core/iplist.hpp).
#include <gtest/gtest.h>

#include "core/ip.hpp"
#include "core/iplist.hpp"

namespace dmr::core {
namespace {

TEST(IpAddress, ParsesAndPrintsCanonically)
{
    EXPECT_EQ(IpAddress::parse("192.0.2.1")->to_string(), "192.0.2.1");
    EXPECT_EQ(IpAddress::parse("2001:DB8:0:0::1")->to_string(), "2001:db8::1");
    EXPECT_EQ(IpAddress::parse("[2001:db8::1]")->to_string(), "2001:db8::1");
    EXPECT_TRUE(IpAddress::parse("192.0.2.1")->is_v4());
    EXPECT_FALSE(IpAddress::parse("::1")->is_v4());
}

TEST(IpAddress, MapsIpv4MappedIpv6ToIpv4)
{
    auto mapped = IpAddress::parse("::ffff:192.0.2.1");
    ASSERT_TRUE(mapped);
    EXPECT_TRUE(mapped->is_v4());
    EXPECT_EQ(*mapped, *IpAddress::parse("192.0.2.1"));
}

TEST(IpAddress, RejectsWhatIsNotAnAddress)
{
    for (const char *bad : {"", "alice", "192.0.2", "192.0.2.256", "01.2.3.4", "192.0.2.1/24",
                            "fe80::1%eth0", "2001:db8::g", " 192.0.2.1", "[192.0.2.1"})
        EXPECT_FALSE(IpAddress::parse(bad)) << bad;
}

TEST(IpAddress, Masks)
{
    EXPECT_EQ(IpAddress::parse("192.0.2.255")->masked(25).to_string(), "192.0.2.128");
    EXPECT_EQ(IpAddress::parse("192.0.2.255")->masked(0).to_string(), "0.0.0.0");
    EXPECT_EQ(IpAddress::parse("2001:db8:1:2:3::1")->masked(48).to_string(), "2001:db8:1::");
}

TEST(IpNetwork, ParsesCidrAndClearsHostBits)
{
    auto net = IpNetwork::parse("203.0.113.7/24");
    ASSERT_TRUE(net);
    EXPECT_EQ(net->to_string(), "203.0.113.0/24");
    EXPECT_EQ(IpNetwork::parse("2001:db8::1/32")->to_string(), "2001:db8::/32");
    EXPECT_EQ(IpNetwork::parse("192.0.2.1")->to_string(), "192.0.2.1/32");
    EXPECT_EQ(IpNetwork::parse("::ffff:192.0.2.0/120")->to_string(), "192.0.2.0/24");
    for (const char *bad : {"192.0.2.0/33", "192.0.2.0/", "192.0.2.0/-1", "192.0.2.0/08",
                            "::/129", "::ffff:0:0/64", "alice/24"})
        EXPECT_FALSE(IpNetwork::parse(bad)) << bad;
}

TEST(IpNetwork, ContainsByPrefixAndFamily)
{
    auto net = *IpNetwork::parse("203.0.113.0/24");
    EXPECT_TRUE(net.contains(*IpAddress::parse("203.0.113.255")));
    EXPECT_FALSE(net.contains(*IpAddress::parse("203.0.114.0")));
    EXPECT_TRUE(net.contains(*IpAddress::parse("::ffff:203.0.113.9")));
    EXPECT_TRUE(net.contains(*IpNetwork::parse("203.0.113.128/25")));
    EXPECT_FALSE(net.contains(*IpNetwork::parse("203.0.112.0/23")));
    EXPECT_TRUE(IpNetwork::parse("0.0.0.0/0")->contains(*IpAddress::parse("198.51.100.1")));
    EXPECT_FALSE(IpNetwork::parse("::/0")->contains(*IpAddress::parse("198.51.100.1")));
}

TEST(ListKey, NetworksAndStringsHaveDistinctCanonicalKeys)
{
    EXPECT_EQ(list_key("203.0.113.7/24").key, list_key("203.0.113.0/24").key);
    EXPECT_EQ(list_key("::ffff:192.0.2.1").key, list_key("192.0.2.1").key);
    EXPECT_NE(list_key("192.0.2.1").key, list_key("192.0.2.1/31").key);
    EXPECT_FALSE(list_key("alice").network);
    EXPECT_EQ(list_key("alice").key, "salice");
    EXPECT_EQ(list_entry_text(list_key("203.0.113.7/24").key), "203.0.113.0/24");
    EXPECT_EQ(list_entry_text(list_key("192.0.2.1").key), "192.0.2.1");
    EXPECT_EQ(list_entry_text(list_key("2001:db8::1/64").key), "2001:db8::/64");
    EXPECT_EQ(list_entry_text(list_key("alice").key), "alice");
}

TEST(ListKey, LookupProbesOnlyPresentLengthsLongestFirst)
{
    PrefixLengths present;
    present.add(true, 24);
    present.add(true, 32);
    present.add(true, 16);
    auto keys = list_lookup_keys("203.0.113.9", present);
    ASSERT_EQ(keys.size(), 3u);
    EXPECT_EQ(keys[0], list_key("203.0.113.9").key);
    EXPECT_EQ(keys[1], list_key("203.0.113.0/24").key);
    EXPECT_EQ(keys[2], list_key("203.0.0.0/16").key);
    // A network value matches only entries at least as wide as itself.
    keys = list_lookup_keys("203.0.113.0/24", present);
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[0], list_key("203.0.113.0/24").key);
    EXPECT_EQ(list_lookup_keys("2001:db8::1", PrefixLengths::all()).size(), 129u);
    EXPECT_EQ(list_lookup_keys("alice", PrefixLengths()).size(), 1u);
}

TEST(PrefixLengths, RoundTripsAndMerges)
{
    PrefixLengths lengths;
    lengths.add(false, 128);
    lengths.add(false, 64);
    lengths.add(true, 0);
    PrefixLengths back = PrefixLengths::decode(lengths.encode());
    EXPECT_TRUE(back.has(false, 128));
    EXPECT_TRUE(back.has(false, 64));
    EXPECT_TRUE(back.has(true, 0));
    EXPECT_FALSE(back.has(true, 32));
    EXPECT_FALSE(back.merge(lengths));
    PrefixLengths one;
    one.add(true, 8);
    EXPECT_TRUE(back.merge(one));
    EXPECT_TRUE(PrefixLengths::decode("short").has(true, 17));   // unreadable: probe everything
}

} // namespace
} // namespace dmr::core
