// The Store that every script of a process shares, named by the mruby_store
// setting. Created on first use, so a session that never touches state pays
// nothing (not even parsing the spec), and then kept for the life of the
// process: every VM of the process (mail session, auth) sees the same handle,
// and LMDB/Redis reopen their handles themselves after fork().
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace dmr::store {

class StoreHandle {
public:
    // Opens `spec` (see open_store) on the first get().
    explicit StoreHandle(std::string spec, StoreOptions options = {});
    // An already open store, owned by the caller (tests, benchmarks).
    explicit StoreHandle(Store &store);
    StoreHandle(const StoreHandle &) = delete;
    StoreHandle &operator=(const StoreHandle &) = delete;

    // The store, or nullptr with `error` set when the spec is malformed (the
    // error is remembered: a bad spec is not re-parsed on every call).
    Store *get(std::string &error);
    const std::string &spec() const { return spec_; }
    // Whether get() was ever called (the spec parsed, the backend created).
    bool opened() const { return tried_; }

private:
    std::string spec_;
    StoreOptions options_;
    std::unique_ptr<Store> owned_;
    Store *store_ = nullptr;
    bool tried_ = false;
    std::string error_;
};

// The process-wide handle for `spec`: one per distinct spec, created on the
// first call and never destroyed (a plugin may be unloaded at exit while a
// static destructor would still close LMDB or Redis handles under it).
// `logger` (if any) is used by the handle created first for `spec`, and must
// live as long as the process.
StoreHandle &process_store(const std::string &spec, core::Logger *logger = nullptr);

} // namespace dmr::store
