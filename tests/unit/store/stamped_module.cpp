// A test-only store module, built twice (tests/unit/store/meson.build): with
// this build's stamp, and with DMR_TEST_WRONG_STAMP the stamp a module of
// another build would carry. Both register "stamped:" (a memory store), so a
// test sees whether the loader called the entry point.
#include "core/store_module.hpp"
#include "store/backends.hpp"

#define DMR_TEST_EXPORT extern "C" __attribute__((visibility("default")))

#ifdef DMR_TEST_WRONG_STAMP
DMR_TEST_EXPORT const dmr::core::StoreModuleStamp dmr_store_module_stamp = {
    "dovecot-mruby 0.0.1, store boundary 0, compiler " __VERSION__, 42};
#else
DMR_TEST_EXPORT const dmr::core::StoreModuleStamp dmr_store_module_stamp = DMR_STORE_MODULE_STAMP;
#endif

DMR_TEST_EXPORT void dmr_store_module_register(dmr::core::StoreRegistry &registry)
{
    dmr::core::StoreBackend row = dmr::store::memory_backend();
    row.scheme = "stamped:";
    row.usage = "stamped:";
    registry.add(row);
}
