// One redis-server for the whole test program, started on first use.
#pragma once

#include <string>

#include "test_support.hpp"

namespace dmr::store::test {

// nullptr when redis-server is missing or failed to start; `why` says which.
RedisServer *shared_redis(std::string &why);
// A key prefix no other test uses, so tests never see each other's keys.
std::string unique_prefix();

} // namespace dmr::store::test
