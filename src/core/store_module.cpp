#include "core/store_module.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>

namespace dmr::core {

std::string describe_stamp(const StoreModuleStamp &stamp)
{
    char layout[32];
    std::snprintf(layout, sizeof(layout), "%016llx", static_cast<unsigned long long>(stamp.layout));
    return std::string(stamp.build, strnlen(stamp.build, sizeof(stamp.build))) + ", layout " +
           layout;
}

bool load_store_module(const std::vector<std::string> &paths, StoreRegistry &registry,
                       std::string &error)
{
    void *handle = nullptr;
    std::string path;
    std::string why;
    for (const std::string &candidate : paths) {
        handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle != nullptr) {
            path = candidate;
            break;
        }
        const char *reason = dlerror();
        why += (why.empty() ? "" : "; ") + std::string(reason != nullptr ? reason : candidate);
    }
    if (handle == nullptr) {
        error = "cannot load the store backends: " + (why.empty() ? "no path to try" : why);
        return false;
    }
    // The stamp first: nothing of a module from another build is called.
    const auto *stamp =
        static_cast<const StoreModuleStamp *>(dlsym(handle, "dmr_store_module_stamp"));
    static constexpr StoreModuleStamp ours = DMR_STORE_MODULE_STAMP;
    if (stamp == nullptr || std::strncmp(stamp->build, ours.build, sizeof(ours.build)) != 0 ||
        stamp->layout != ours.layout) {
        error = "store module " + path + " was built for another plugin: module stamp '" +
                (stamp != nullptr ? describe_stamp(*stamp) : std::string("none")) +
                "', plugin stamp '" + describe_stamp(ours) +
                "' (install the plugins and the module from one build)";
        dlclose(handle);
        return false;
    }
    auto *add = reinterpret_cast<dmr_store_module_register_fn *>(
        dlsym(handle, "dmr_store_module_register"));
    if (add == nullptr) {
        error = "store module " + path + " has no dmr_store_module_register";
        dlclose(handle);
        return false;
    }
    add(registry);   // the module stays loaded: the rows point into it
    return true;
}

} // namespace dmr::core
