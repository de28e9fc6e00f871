// Internal: SHA-1 as lower-case hex, only to name Lua scripts for EVALSHA
// (Redis identifies a script by the SHA-1 of its text). Not for security.
#pragma once

#include <string>
#include <string_view>

namespace dmr::store::detail {

std::string sha1_hex(std::string_view data);

} // namespace dmr::store::detail
