// The LMDB and Redis backends from dmr_store_backends.so, loaded on the first
// store opened. The module is looked for next to the plugin that contains
// this code, then in the directory above it (the auth driver lives in
// modules/auth/), then in the configured install directory.
#include "store/backends.hpp"

#include <dlfcn.h>

#include <vector>

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

// dlopen()s the module once per process; null and `error` on failure.
void *backends_module(std::string &error)
{
    static void *handle = nullptr;
    static std::string load_error;
    static bool tried = false;
    if (!tried) {
        tried = true;
        std::vector<std::string> candidates;
        Dl_info info;
        if (dladdr(reinterpret_cast<void *>(&backends_module), &info) != 0 &&
            info.dli_fname != nullptr) {
            std::string dir = directory_of(info.dli_fname);
            candidates.push_back(dir + "/" + kModuleName);
            candidates.push_back(directory_of(dir) + "/" + kModuleName);
        }
        candidates.push_back(std::string(DMR_STORE_MODULE_DIR) + "/" + kModuleName);
        for (const std::string &path : candidates) {
            handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (handle != nullptr)
                break;
            const char *why = dlerror();
            if (!load_error.empty())
                load_error += "; ";
            load_error += why != nullptr ? why : path;
        }
    }
    if (handle == nullptr)
        error = std::string("cannot load the store backends (") + kModuleName + "): " + load_error;
    return handle;
}

template <typename Fn>
Fn *entry_point(const char *name, std::string &error)
{
    void *module = backends_module(error);
    if (module == nullptr)
        return nullptr;
    auto *fn = reinterpret_cast<Fn *>(dlsym(module, name));
    if (fn == nullptr)
        error = std::string(kModuleName) + " has no " + name + " (a module of another version?)";
    return fn;
}

} // namespace

std::unique_ptr<Store> make_lmdb_store(LmdbOptions options, const core::Clock &clock,
                                       std::string &error)
{
    auto *make = entry_point<dmr_store_make_lmdb_fn>("dmr_store_make_lmdb", error);
    return make == nullptr ? nullptr : std::unique_ptr<Store>(make(&options, &clock));
}

std::unique_ptr<Store> make_redis_store(RedisOptions options, const core::Clock &clock,
                                        std::string &error)
{
    auto *make = entry_point<dmr_store_make_redis_fn>("dmr_store_make_redis", error);
    return make == nullptr ? nullptr : std::unique_ptr<Store>(make(&options, &clock));
}

} // namespace dmr::store
