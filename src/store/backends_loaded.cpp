// The plugins' backends: memory linked in, LMDB and Redis from
// dmr_store_backends.so, loaded (core::load_store_module: stamp checked
// first) the first time a spec names a scheme the registry lacks. The module
// is looked for next to the plugin that contains this code, then in the
// directory above it (the auth driver lives in modules/auth/), then in the
// configured install directory.
#include "store/backends.hpp"

#include <dlfcn.h>

#include <string>
#include <vector>

#include "core/store_module.hpp"

#ifndef DMR_STORE_MODULE_DIR
#error "DMR_STORE_MODULE_DIR must name the install directory of dmr_store_backends.so"
#endif

namespace dmr::store {
namespace {

constexpr const char *kModuleName = "dmr_store_backends.so";

std::string directory_of(const std::string &path)
{
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::vector<std::string> module_candidates()
{
    std::vector<std::string> candidates;
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&module_candidates), &info) != 0 &&
        info.dli_fname != nullptr) {
        std::string dir = directory_of(info.dli_fname);
        candidates.push_back(dir + "/" + kModuleName);
        candidates.push_back(directory_of(dir) + "/" + kModuleName);
    }
    candidates.push_back(std::string(DMR_STORE_MODULE_DIR) + "/" + kModuleName);
    return candidates;
}

} // namespace

void register_backends_on_demand(StoreRegistry &registry)
{
    registry.add(memory_backend());
    registry.add_loader([](StoreRegistry &self, std::string &error) {
        return core::load_store_module(module_candidates(), self, error);
    });
}

} // namespace dmr::store
