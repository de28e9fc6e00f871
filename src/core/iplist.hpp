// How allow/deny list entries are keyed and matched, shared by every store so
// that a list answers the same on memory, LMDB and Redis.
//
// An entry is either a network (an IP address or CIDR, IPv4 or IPv6) or any
// other string. Networks match by longest prefix, strings exactly (case
// sensitive). Each entry is stored under a compact binary key:
//   network: 'n' family('4'|'6') prefix-length(1 byte) masked address (4|16 bytes)
//   string:  's' text
// A lookup probes the keys of every prefix of the value, longest first, but only
// the prefix lengths the list has ever held (PrefixLengths): usually a handful.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ip.hpp"

namespace dmr::core {

// The set of prefix lengths present in a list: bit n of v4 for /n (0..32),
// bit n of v6 for /n (0..128). Stored with the list as 24 bytes.
struct PrefixLengths {
    uint64_t v4 = 0;
    uint64_t v6[3] = {0, 0, 0};

    static PrefixLengths all();
    void add(bool is_v4, int prefix);
    bool has(bool is_v4, int prefix) const;
    bool merge(const PrefixLengths &other);   // true if anything was added

    static constexpr size_t kEncodedSize = 32;
    std::string encode() const;
    static PrefixLengths decode(std::string_view bytes);   // garbage in: all()
};

struct ListKey {
    std::string key;                   // the stored key (binary)
    std::optional<IpNetwork> network;  // set for network entries
};

// The key of an entry as added: "203.0.113.7/24" -> network 203.0.113.0/24.
ListKey list_key(std::string_view entry);

// The readable form of a stored key: "203.0.113.0/24", "192.0.2.1" (a host
// network prints without its suffix), "2001:db8::/64", or the string itself.
std::string list_entry_text(std::string_view key);

// The keys to probe for `value`, longest prefix first; for a network value,
// only prefixes at most as long as its own. For a string: its one key.
std::vector<std::string> list_lookup_keys(std::string_view value, const PrefixLengths &present);

} // namespace dmr::core
