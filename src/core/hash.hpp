// FNV-1a, 64 bits: a fast, stable hash of bytes for names and checksums that
// must be the same in every process and every build (std::hash is neither).
// Not for anything an attacker could exploit by choosing collisions.
#pragma once

#include <cstdint>
#include <string_view>

namespace dmr::core {

inline uint64_t fnv1a64(std::string_view bytes)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    for (unsigned char c : bytes) {
        hash ^= c;
        hash *= 0x100000001b3ull;
    }
    return hash;
}

} // namespace dmr::core
