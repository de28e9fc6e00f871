// dmr_store_backends.so: the LMDB and Redis backends with liblmdb and
// libhiredis, loaded by the plugins on first use (backends_loaded.cpp).
#include "store/backends.hpp"

#define DMR_STORE_EXPORT extern "C" __attribute__((visibility("default")))

struct module;

// Dovecot's auth process loads every module in its directory at start and
// logs an error for one without <name>_init/_deinit: this module sits beside
// libauthdb_mruby.so there, so it has both. It needs no set-up of its own
// (the plugins open stores through the factories below).
DMR_STORE_EXPORT void dmr_store_backends_init(struct module *) {}
DMR_STORE_EXPORT void dmr_store_backends_deinit(void) {}

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
