// The boundary between a plugin and a store module (dmr_store_backends.so).
// The two are linked separately, each with its own static libstdc++ and its
// own copy of core, and pass C++ objects to each other: a StoreRegistry, the
// rows it holds, Stores, Statuses, strings. That works only when both sides
// agree on those types, so a module exports
//   const dmr::core::StoreModuleStamp dmr_store_module_stamp;      (data)
//   void dmr_store_module_register(dmr::core::StoreRegistry &);    (C linkage)
// and the loader compares the stamp with its own before it calls anything;
// a module from another build is refused with both stamps and its path, and
// every store it would have provided then fails like a dead store.
//
// Bump DMR_STORE_BOUNDARY_VERSION on any change that crosses the boundary and
// sizeof cannot see: a virtual function of Store, Clock or Logger, the
// meaning of a field, the entry point's signature.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store.hpp"
#include "core/store_registry.hpp"
#include "core/version.hpp"

namespace dmr::core {

#define DMR_STORE_BOUNDARY_VERSION 2
constexpr int kStoreBoundaryVersion = DMR_STORE_BOUNDARY_VERSION;

struct StoreModuleStamp {
    char build[240];   // project version, boundary version, compiler, C++ ABI
    uint64_t layout;   // sizeof/alignof of the types that cross
};

#define DMR_STORE_STR2(x) #x
#define DMR_STORE_STR(x) DMR_STORE_STR2(x)
// The text half of this build's stamp.
#define DMR_STORE_MODULE_BUILD                                                           \
    "dovecot-mruby " DMR_PROJECT_VERSION ", store boundary " DMR_STORE_STR(DMR_STORE_BOUNDARY_VERSION)            \
    ", compiler " __VERSION__ ", _GLIBCXX_USE_CXX11_ABI=" DMR_STORE_STR(_GLIBCXX_USE_CXX11_ABI)

namespace detail {
constexpr uint64_t layout_mix(uint64_t hash, uint64_t value)
{
    return (hash ^ value) * 1099511628211ull;   // FNV-1a step
}
template <class T>
constexpr uint64_t layout_add(uint64_t hash)
{
    return layout_mix(layout_mix(hash, sizeof(T)), alignof(T));
}
} // namespace detail

// The layout half: every type a call across the boundary passes or returns.
constexpr uint64_t store_boundary_layout()
{
    using namespace detail;
    uint64_t h = 14695981039346656037ull;
    h = layout_mix(h, static_cast<uint64_t>(kStoreBoundaryVersion));
    h = layout_add<std::string>(h);
    h = layout_add<std::string_view>(h);
    h = layout_add<std::unique_ptr<Store>>(h);
    h = layout_add<std::vector<ListEntry>>(h);
    h = layout_add<std::optional<ListEntry>>(h);
    h = layout_add<Status>(h);
    h = layout_add<ListEntry>(h);
    h = layout_add<GcraRate>(h);
    h = layout_add<GcraDecision>(h);
    h = layout_add<Result<GcraDecision>>(h);
    h = layout_add<Result<int64_t>>(h);
    h = layout_add<Result<bool>>(h);
    h = layout_add<Result<std::optional<ListEntry>>>(h);
    h = layout_add<Result<std::vector<ListEntry>>>(h);
    h = layout_add<StoreOptions>(h);
    h = layout_add<StoreBackend>(h);
    h = layout_add<StoreRegistry>(h);
    h = layout_add<StoreRegistry::Loader>(h);
    return h;
}

// This build's stamp: what a module defines as dmr_store_module_stamp.
#define DMR_STORE_MODULE_STAMP                                                           \
    ::dmr::core::StoreModuleStamp { DMR_STORE_MODULE_BUILD, ::dmr::core::store_boundary_layout() }

// "dovecot-mruby 0.1.0, store boundary 1, ..., layout 0123456789abcdef"
std::string describe_stamp(const StoreModuleStamp &stamp);

// dlopen()s the first of `paths` that loads, checks its stamp against
// this build's, then calls its entry point with
// `registry`. False with `error` when no path loads, the module lacks a
// symbol or its stamp differs (then nothing of it was called).
bool load_store_module(const std::vector<std::string> &paths, StoreRegistry &registry,
                       std::string &error);

} // namespace dmr::core

extern "C" {
using dmr_store_module_register_fn = void(dmr::core::StoreRegistry &registry);
}
