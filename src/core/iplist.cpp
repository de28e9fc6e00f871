#include "core/iplist.hpp"

#include <cstring>

namespace dmr::core {
namespace {

std::string network_key(const IpNetwork &network)
{
    const int bytes = network.address().bits() / 8;
    std::string key;
    key.reserve(3 + bytes);
    key += 'n';
    key += network.is_v4() ? '4' : '6';
    key += static_cast<char>(network.prefix());
    key.append(reinterpret_cast<const char *>(network.address().bytes().data()), bytes);
    return key;
}

void put_u64(std::string &out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out += static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t get_u64(const char *p)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
    return value;
}

} // namespace

PrefixLengths PrefixLengths::all()
{
    PrefixLengths lengths;
    lengths.v4 = (uint64_t{1} << 33) - 1;
    lengths.v6[0] = lengths.v6[1] = ~uint64_t{0};
    lengths.v6[2] = 1;
    return lengths;
}

void PrefixLengths::add(bool is_v4, int prefix)
{
    if (is_v4)
        v4 |= uint64_t{1} << prefix;
    else
        v6[prefix / 64] |= uint64_t{1} << (prefix % 64);
}

bool PrefixLengths::has(bool is_v4, int prefix) const
{
    if (is_v4)
        return (v4 >> prefix) & 1;
    return (v6[prefix / 64] >> (prefix % 64)) & 1;
}

bool PrefixLengths::merge(const PrefixLengths &other)
{
    PrefixLengths before = *this;
    v4 |= other.v4;
    for (int i = 0; i < 3; i++)
        v6[i] |= other.v6[i];
    return std::memcmp(&before, this, sizeof before) != 0;
}

std::string PrefixLengths::encode() const
{
    std::string out;
    out.reserve(kEncodedSize);
    put_u64(out, v4);
    for (uint64_t word : v6)
        put_u64(out, word);
    return out;
}

PrefixLengths PrefixLengths::decode(std::string_view bytes)
{
    if (bytes.size() != kEncodedSize)
        return all();
    PrefixLengths lengths;
    lengths.v4 = get_u64(bytes.data());
    for (int i = 0; i < 3; i++)
        lengths.v6[i] = get_u64(bytes.data() + 8 * (i + 1));
    return lengths;
}

ListKey list_key(std::string_view entry)
{
    ListKey out;
    if (auto network = IpNetwork::parse(entry)) {
        out.key = network_key(*network);
        out.network = *network;
    } else {
        out.key.reserve(entry.size() + 1);
        out.key += 's';
        out.key.append(entry);
    }
    return out;
}

std::string list_entry_text(std::string_view key)
{
    if (key.size() >= 3 && key[0] == 'n' && (key[1] == '4' || key[1] == '6')) {
        const bool v4 = key[1] == '4';
        const size_t bytes = v4 ? 4 : 16;
        if (key.size() == 3 + bytes) {
            const auto *raw = reinterpret_cast<const uint8_t *>(key.data() + 3);
            IpNetwork network(v4 ? IpAddress::v4(raw) : IpAddress::v6(raw),
                              static_cast<uint8_t>(key[2]));
            return network.is_host() ? network.address().to_string() : network.to_string();
        }
    }
    if (!key.empty() && key[0] == 's')
        return std::string(key.substr(1));
    return std::string(key);
}

std::vector<std::string> list_lookup_keys(std::string_view value, const PrefixLengths &present)
{
    std::vector<std::string> keys;
    auto network = IpNetwork::parse(value);
    if (!network) {
        keys.push_back(list_key(value).key);
        return keys;
    }
    for (int prefix = network->prefix(); prefix >= 0; prefix--) {
        if (present.has(network->is_v4(), prefix))
            keys.push_back(network_key(IpNetwork(network->address(), prefix)));
    }
    return keys;
}

} // namespace dmr::core
