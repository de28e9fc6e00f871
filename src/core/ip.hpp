// IPv4 and IPv6 addresses and networks (CIDR), as values. Parsing never throws.
// An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is the IPv4 address: a client
// must not escape an IPv4 rule by connecting over a dual-stack socket.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dmr::core {

class IpAddress {
public:
    // "192.0.2.1", "2001:db8::1", "[2001:db8::1]". No zone ids, no CIDR suffix.
    static std::optional<IpAddress> parse(std::string_view text);
    static IpAddress v4(const uint8_t bytes[4]);
    static IpAddress v6(const uint8_t bytes[16]);   // maps ::ffff:a.b.c.d to IPv4

    bool is_v4() const { return v4_; }
    int bits() const { return v4_ ? 32 : 128; }
    // Network order; only the first 4 bytes are used for IPv4.
    const std::array<uint8_t, 16> &bytes() const { return bytes_; }

    // The address with all bits after the first `prefix` cleared (clamped to 0..bits()).
    IpAddress masked(int prefix) const;
    // "192.0.2.1", "2001:db8::1" (RFC 5952 lower case).
    std::string to_string() const;

    bool operator==(const IpAddress &other) const
    {
        return v4_ == other.v4_ && bytes_ == other.bytes_;
    }
    bool operator!=(const IpAddress &other) const { return !(*this == other); }

private:
    bool v4_ = true;
    std::array<uint8_t, 16> bytes_{};
};

class IpNetwork {
public:
    // "203.0.113.0/24", "2001:db8::/32", or a bare address (a full-length
    // network). Host bits after the prefix are cleared: "203.0.113.7/24" is
    // 203.0.113.0/24. An IPv4-mapped IPv6 network of prefix >= 96 becomes IPv4;
    // one of a shorter prefix is rejected (it has no IPv4 meaning).
    static std::optional<IpNetwork> parse(std::string_view text);
    IpNetwork(const IpAddress &address, int prefix);

    const IpAddress &address() const { return address_; }
    int prefix() const { return prefix_; }
    bool is_v4() const { return address_.is_v4(); }
    bool is_host() const { return prefix_ == address_.bits(); }

    bool contains(const IpAddress &address) const;
    bool contains(const IpNetwork &network) const;
    // Always with the suffix: "203.0.113.0/24", "192.0.2.1/32".
    std::string to_string() const;

    bool operator==(const IpNetwork &other) const
    {
        return prefix_ == other.prefix_ && address_ == other.address_;
    }

private:
    IpAddress address_;
    int prefix_ = 0;
};

} // namespace dmr::core
