// The LMDB and Redis backends linked in (tests and benchmarks).
#include "store/backends.hpp"

namespace dmr::store {

std::unique_ptr<Store> make_lmdb_store(LmdbOptions options, const core::Clock &clock,
                                       std::string &)
{
    return std::make_unique<LmdbStore>(std::move(options), clock);
}

std::unique_ptr<Store> make_redis_store(RedisOptions options, const core::Clock &clock,
                                        std::string &)
{
    return std::make_unique<RedisStore>(std::move(options), clock);
}

} // namespace dmr::store
