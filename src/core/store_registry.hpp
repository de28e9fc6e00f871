// How a store is opened by URL ("memory", "lmdb:DIR", "redis://HOST"): one
// table of backends, one row per URL scheme, as Dovecot's quota backends. A
// backend (src/store/) registers its row; core and the bindings open stores
// through the table and never name a backend.
//
// The plugins register the in-process backend at init and, as a loader, the
// module dmr_store_backends.so (LMDB, Redis: core/store_module.hpp): it is
// dlopen()ed the first time a spec names a scheme no row has, so a session
// that never touches state pays nothing (docs/benchmarks.md).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/settings.hpp"
#include "core/store.hpp"

namespace dmr::core {

// One row of the table. Plain data: rows of dmr_store_backends.so cross the
// module boundary (core/store_module.hpp stamps their layout).
struct StoreBackend {
    // A spec selects the row whose scheme is its longest prefix: "memory",
    // "lmdb:", "redis://".
    const char *scheme = nullptr;
    // The form errors show: "lmdb:DIR".
    const char *usage = nullptr;
    // Parses the spec after the scheme and creates the store: nullptr with
    // `error` set for a malformed spec. Never connects: a backend that is down
    // only makes operations fail. `clock` is options.clock or SystemClock.
    std::unique_ptr<Store> (*open)(std::string_view rest, const Clock &clock,
                                   const StoreOptions &options, std::string &error) = nullptr;
};

class StoreRegistry {
public:
    // Fills the table on demand (loads a module): false with `error` when it
    // cannot. Called at most once, the first time a spec matches no row.
    using Loader = std::function<bool(StoreRegistry &registry, std::string &error)>;

    // Adds a row; one with the same scheme is replaced.
    void add(const StoreBackend &backend);
    void add_loader(Loader loader);

    // The store `spec` names; nullptr and `error` when the spec is malformed,
    // names no backend, or its backend could not be loaded.
    std::unique_ptr<Store> open(std::string_view spec, std::string &error,
                                const StoreOptions &options = {});

    // The schemes known now (loaders not run), in the order added.
    std::vector<std::string> schemes() const;

private:
    const StoreBackend *find(std::string_view spec) const;

    std::vector<StoreBackend> rows_;
    std::vector<Loader> loaders_;      // not yet run
    std::string load_error_;           // what the loaders that failed said
};

// The process's table (one per plugin: each links its own core). Never
// destroyed: rows may point into a module that outlives static destructors.
StoreRegistry &store_registry();

// store_registry().open(...).
std::unique_ptr<Store> open_store(std::string_view spec, std::string &error,
                                  const StoreOptions &options = {});

// The Store that every script of a process shares, named by the mruby_store
// setting. Created on first use, so a session that never touches state pays
// nothing (not even parsing the spec), and then kept for the life of the
// process: every VM of the process (mail session, auth) sees the same handle,
// and LMDB/Redis reopen their handles themselves after fork().
class StoreHandle {
public:
    // Opens `spec` through `registry` (nullptr: store_registry()) on the
    // first get().
    explicit StoreHandle(std::string spec, StoreOptions options = {},
                         StoreRegistry *registry = nullptr);
    // As above, the password read from `password_file` (its first line) on
    // the first get(): a file that cannot be read fails like a bad spec.
    StoreHandle(std::string spec, StoreOptions options, std::string password_file,
                StoreRegistry *registry = nullptr);
    // An already open store, owned by the caller (tests, benchmarks).
    explicit StoreHandle(Store &store);
    StoreHandle(const StoreHandle &) = delete;
    StoreHandle &operator=(const StoreHandle &) = delete;

    // The store, or nullptr with `error` set when it cannot be opened (the
    // error is remembered: a bad spec is not re-parsed on every call).
    Store *get(std::string &error);
    const std::string &spec() const { return spec_; }
    // Whether get() was ever called (the spec parsed, the backend created).
    bool opened() const { return tried_; }

private:
    std::string spec_;
    StoreOptions options_;
    std::string password_file_;
    StoreRegistry *registry_ = nullptr;
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
StoreHandle &process_store(const std::string &spec, Logger *logger = nullptr);
// The handle for `settings`' store, with its password (store_password or
// store_password_file): one per distinct spec and password source.
StoreHandle &process_store(const ScriptSettings &settings, Logger *logger = nullptr);

// The first line of `path` (without its line end): false with `error` when
// the file cannot be read or is empty.
bool read_password_file(const std::string &path, std::string &password, std::string &error);

} // namespace dmr::core
