// How open_store() gets the LMDB and Redis backends. Two implementations:
//  - backends_linked.cpp: constructed directly (tests, benchmarks);
//  - backends_loaded.cpp: from dmr_store_backends.so, loaded with dlopen() on
//    the first store opened. The plugins use this one: a mail process loads
//    the plugin for every session, and loading liblmdb and libhiredis with it
//    cost about 0.2 ms per login, for sessions that mostly never open a store.
#pragma once

#include <memory>
#include <string>

#include "core/clock.hpp"
#include "store/lmdb_store.hpp"
#include "store/redis_store.hpp"

namespace dmr::store {

// Null with `error` set when the backend cannot be had.
std::unique_ptr<Store> make_lmdb_store(LmdbOptions options, const core::Clock &clock,
                                       std::string &error);
std::unique_ptr<Store> make_redis_store(RedisOptions options, const core::Clock &clock,
                                        std::string &error);

} // namespace dmr::store

// The C entry points of dmr_store_backends.so (backends_module.cpp).
extern "C" {
using dmr_store_make_lmdb_fn = dmr::store::Store *(const dmr::store::LmdbOptions *,
                                                   const dmr::core::Clock *);
using dmr_store_make_redis_fn = dmr::store::Store *(const dmr::store::RedisOptions *,
                                                    const dmr::core::Clock *);
}
