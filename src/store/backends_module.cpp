// dmr_store_backends.so: the LMDB and Redis backends with liblmdb and
// libhiredis, loaded by the plugins on first use (backends_loaded.cpp). Its
// boundary with them is core/store_module.hpp: a stamp, then one entry point.
#include "core/store_module.hpp"
#include "store/backends.hpp"

#define DMR_STORE_EXPORT extern "C" __attribute__((visibility("default")))

struct module;

// Dovecot's auth process loads every module in its directory at start and
// logs an error for one without <name>_init/_deinit: this module sits beside
// libauthdb_mruby.so there, so it has both. It needs no set-up of its own
// (the plugins register its backends through the entry point below).
DMR_STORE_EXPORT void dmr_store_backends_init(struct module *) {}
DMR_STORE_EXPORT void dmr_store_backends_deinit(void) {}

DMR_STORE_EXPORT const dmr::core::StoreModuleStamp dmr_store_module_stamp = DMR_STORE_MODULE_STAMP;

DMR_STORE_EXPORT void dmr_store_module_register(dmr::core::StoreRegistry &registry)
{
    dmr::store::register_persistent_backends(registry);
}
