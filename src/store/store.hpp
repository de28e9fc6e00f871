// What a backend implementation sees: core's Store interface
// (core/store.hpp) under the names the backends have always used. A backend
// implements core::Store and provides a row of the store registry
// (core/store_registry.hpp); store/backends.hpp lists the rows.
#pragma once

#include "core/clock.hpp"
#include "core/logger.hpp"
#include "core/ratelimit.hpp"
#include "core/store.hpp"
#include "core/store_registry.hpp"

namespace dmr::store {

using core::kMaxKeyBytes;
using core::kMaxListNameBytes;
using core::ListEntry;
using core::Result;
using core::Status;
using core::status_code_name;
using core::Store;
using core::StoreBackend;
using core::StoreOptions;
using core::StoreRegistry;

} // namespace dmr::store
