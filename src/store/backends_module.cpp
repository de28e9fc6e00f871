// dmr_store_backends.so: the LMDB and Redis backends with liblmdb and
// libhiredis, loaded by the plugins on first use (backends_loaded.cpp).
#include "store/backends.hpp"

#define DMR_STORE_EXPORT extern "C" __attribute__((visibility("default")))

DMR_STORE_EXPORT dmr::store::Store *dmr_store_make_lmdb(const dmr::store::LmdbOptions *options,
                                                        const dmr::core::Clock *clock)
{
    return new dmr::store::LmdbStore(*options, *clock);
}

DMR_STORE_EXPORT dmr::store::Store *dmr_store_make_redis(const dmr::store::RedisOptions *options,
                                                         const dmr::core::Clock *clock)
{
    return new dmr::store::RedisStore(*options, *clock);
}
