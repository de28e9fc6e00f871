// The backends' rows in the store registry (core/store_registry.hpp), and the
// two ways a program registers them:
//  - register_backends(): every backend linked in (tests, benchmarks);
//  - register_backends_on_demand(): the plugins. Memory at once; LMDB and
//    Redis from dmr_store_backends.so, dlopen()ed on the first spec that
//    needs them: a mail process loads the plugin for every session, and
//    loading liblmdb and libhiredis with it cost about 0.2 ms per login, for
//    sessions that mostly never open a store (docs/benchmarks.md).
// Adding a backend: docs/architecture.md, "How to add a store backend".
#pragma once

#include "store/store.hpp"

namespace dmr::store {

// "memory" (memory_store.cpp).
StoreBackend memory_backend();
// "lmdb:", "redis://", "redis-sentinel://", "redis+unix://", "unix://"
// (backends.cpp; needs liblmdb and libhiredis: what dmr_store_backends.so
// registers).
void register_persistent_backends(StoreRegistry &registry);

void register_backends(StoreRegistry &registry);             // backends.cpp
void register_backends_on_demand(StoreRegistry &registry);   // backends_loaded.cpp

} // namespace dmr::store
