#include "core/ip.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace dmr::core {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool parse_prefix_length(std::string_view text, int max, int *out)
{
    if (text.empty() || text.size() > 3)
        return false;
    int value = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
        value = value * 10 + (c - '0');
    }
    if (value > max || (text.size() > 1 && text[0] == '0'))
        return false;
    *out = value;
    return true;
}

} // namespace

IpAddress IpAddress::v4(const uint8_t bytes[4])
{
    IpAddress address;
    address.v4_ = true;
    std::memcpy(address.bytes_.data(), bytes, 4);
    return address;
}

IpAddress IpAddress::v6(const uint8_t bytes[16])
{
    if (std::memcmp(bytes, kMappedPrefix, sizeof kMappedPrefix) == 0)
        return v4(bytes + 12);
    IpAddress address;
    address.v4_ = false;
    std::memcpy(address.bytes_.data(), bytes, 16);
    return address;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text)
{
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);
    // inet_pton needs a terminated string; the longest valid form is 45 chars.
    char buffer[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buffer)
        return std::nullopt;
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    uint8_t bytes[16];
    if (text.find(':') == std::string_view::npos) {
        if (inet_pton(AF_INET, buffer, bytes) != 1)
            return std::nullopt;
        return v4(bytes);
    }
    if (inet_pton(AF_INET6, buffer, bytes) != 1)
        return std::nullopt;
    return v6(bytes);
}

IpAddress IpAddress::masked(int prefix) const
{
    IpAddress out = *this;
    prefix = std::clamp(prefix, 0, bits());
    const int bytes = bits() / 8;
    for (int i = 0; i < bytes; i++) {
        int keep = std::clamp(prefix - i * 8, 0, 8);
        out.bytes_[i] &= static_cast<uint8_t>(0xff00u >> keep);
    }
    return out;
}

std::string IpAddress::to_string() const
{
    char buffer[INET6_ADDRSTRLEN];
    if (inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buffer, sizeof buffer) == nullptr)
        return std::string();
    return buffer;
}

IpNetwork::IpNetwork(const IpAddress &address, int prefix)
    : address_(address.masked(prefix)), prefix_(std::clamp(prefix, 0, address.bits()))
{
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text)
{
    size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
        auto address = IpAddress::parse(text);
        if (!address)
            return std::nullopt;
        return IpNetwork(*address, address->bits());
    }
    std::string_view address_text = text.substr(0, slash);
    // Parse as written first: the prefix of an IPv4-mapped address counts IPv6 bits.
    bool written_v6 = address_text.find(':') != std::string_view::npos;
    auto address = IpAddress::parse(address_text);
    int prefix = 0;
    if (!address || !parse_prefix_length(text.substr(slash + 1), written_v6 ? 128 : 32, &prefix))
        return std::nullopt;
    if (written_v6 && address->is_v4()) {
        if (prefix < 96)
            return std::nullopt;   // spans more than the mapped range: no IPv4 meaning
        prefix -= 96;
    }
    return IpNetwork(*address, prefix);
}

bool IpNetwork::contains(const IpAddress &address) const
{
    return address.is_v4() == address_.is_v4() && address.masked(prefix_) == address_;
}

bool IpNetwork::contains(const IpNetwork &network) const
{
    return network.prefix_ >= prefix_ && contains(network.address_);
}

std::string IpNetwork::to_string() const
{
    return address_.to_string() + "/" + std::to_string(prefix_);
}

} // namespace dmr::core
