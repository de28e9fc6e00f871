// The rows of the LMDB and Redis backends, linked in: tests and benchmarks
// through register_backends(), the plugins through dmr_store_backends.so
// (backends_module.cpp).
#include "store/backends.hpp"

#include "store/spec.hpp"

namespace dmr::store {
namespace {

std::unique_ptr<Store> open_lmdb(std::string_view rest, const core::Clock &clock,
                                 const StoreOptions &store_options, std::string &error)
{
    if (!store_options.password.empty()) {
        error = "the lmdb store takes no password (mruby_store_password is set)";
        return nullptr;
    }
    LmdbOptions options;
    options.logger = store_options.logger;
    if (!parse_lmdb_spec(rest, options, error))
        return nullptr;
    return std::make_unique<LmdbStore>(std::move(options), clock);
}

// redis://, redis-sentinel:// and redis+unix:// differ only in their parser.
template <bool (*parse)(std::string_view, RedisOptions &, std::string &)>
std::unique_ptr<Store> open_redis(std::string_view rest, const core::Clock &clock,
                                  const StoreOptions &store_options, std::string &error)
{
    RedisOptions options;
    options.logger = store_options.logger;
    if (!parse(rest, options, error))
        return nullptr;
    if (!merge_redis_password(options, store_options.password, error))
        return nullptr;
    options.waiter = store_options.waiter;
    return std::make_unique<RedisStore>(std::move(options), clock);
}

} // namespace

void register_persistent_backends(StoreRegistry &registry)
{
    registry.add({"lmdb:", "lmdb:DIR", open_lmdb});
    registry.add({"redis://", "redis://HOST:PORT/DB", open_redis<parse_redis_spec>});
    registry.add({"redis-sentinel://", "redis-sentinel://HOST:PORT,HOST:PORT/MASTER",
                  open_redis<parse_redis_sentinel_spec>});
    registry.add({"redis+unix://", "redis+unix:///PATH", open_redis<parse_redis_unix_spec>});
    registry.add({"unix://", "unix:///PATH", open_redis<parse_redis_unix_spec>});
}

void register_backends(StoreRegistry &registry)
{
    registry.add(memory_backend());
    register_persistent_backends(registry);
}

} // namespace dmr::store
