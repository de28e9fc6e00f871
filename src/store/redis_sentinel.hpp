// The pure parts of the Redis store's topology handling (redis_store.cpp):
// reading a sentinel's and a server's answers, and naming a Cluster
// redirect. No I/O here, so they are unit-tested with replies parsed from
// RESP text (tests/unit/store/redis_sentinel_test.cpp).
#pragma once

#include <string>
#include <string_view>

#include "store/redis_store.hpp"

struct redisReply;

namespace dmr::store::detail {

// The reply to SENTINEL get-master-addr-by-name: into `out` (host, port) and
// "", or what is wrong with it ("no master named ..." for a nil reply).
std::string sentinel_master_address(const redisReply *reply, std::string_view master_name,
                                    RedisTarget &out);

// The reply to ROLE: "" when it says master, else what it says ("role slave").
std::string role_not_master(const redisReply *reply);

// A MOVED or ASK error reply means the server is a Redis Cluster node, which
// the store does not follow: an error Status that says so. Ok for any other
// message.
Status cluster_redirect_status(std::string_view message);

// Whether a Redis error reply means the server is (now) a replica.
bool is_readonly_error(std::string_view message);

} // namespace dmr::store::detail
