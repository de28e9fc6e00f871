// The last good version of each policy script, so that a broken edit (a
// syntax error, a missing file, a top level that raises) does not take mail
// down: the version that last compiled AND ran its top level is kept as
// bytecode in a cache directory shared by the mail processes and the auth
// process, and enforced, with an Error line and the event
// mruby_script_fallback on every load, until the file is fixed.
//
// One mechanism for both sides: the mail session and the auth script call
// ScriptCache::load() with a ScriptBuilder (the bridge makes a fresh VM per
// call). Plain C++ and POSIX; tested with a temporary directory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/logger.hpp"
#include "core/runtime.hpp"
#include "core/script_error.hpp"

namespace dmr::core {

// Makes runtimes; implemented by the bridge (mruby::VmBuilder). Each call
// returns a fresh runtime, or null with `error` set.
class ScriptBuilder {
public:
    virtual ~ScriptBuilder() = default;
    // Compiles the file (source or precompiled bytecode) and runs its top
    // level. On success `bytecode`, when given, receives what it compiled to.
    virtual std::unique_ptr<ScriptRuntime> from_file(const std::string &path,
                                                     std::string *bytecode,
                                                     ScriptError &error) = 0;
    // Loads bytecode this builder produced earlier and runs its top level.
    virtual std::unique_ptr<ScriptRuntime> from_bytecode(std::string_view bytecode,
                                                         const std::string &path,
                                                         ScriptError &error) = 0;
};

struct ScriptLoad {
    // What runs: the file, or its last good version (fallback set). Null:
    // nothing could be loaded; `error` then follows mruby_on_error.
    std::unique_ptr<ScriptRuntime> runtime;
    std::optional<ScriptError> error;   // why the file itself could not be used
    struct Fallback {
        std::string cache_file;
        int64_t saved_at = 0;           // Unix seconds: when that version was first kept
    };
    std::optional<Fallback> fallback;
};

class ScriptCache {
public:
    static constexpr const char *kDefaultDir = "/var/lib/dovecot/mruby/scripts";

    // The cache directory for a setting (mruby_script_cache / script_cache=)
    // and the store spec: "no" turns the cache off (""); unset means the
    // `scripts` subdirectory of an LMDB store directory, else kDefaultDir.
    // A relative path is reported in `errors` and the default is used.
    static std::string directory_for(std::string_view setting, std::string_view store_spec,
                                     std::vector<std::string> &errors);

    // `dir` empty: no cache (load() is then the file or mruby_on_error).
    ScriptCache(std::string dir, Logger &logger, const Clock &clock = SystemClock::instance());

    // Loads `script` through `builder`. A good load is kept as the last good
    // version (written only when it differs from the kept one); a failed one
    // falls back to the last good version, logging an Error line and the
    // event mruby_script_fallback. Never throws. keep=false: a further VM of
    // a version this process has already kept (the auth process's VM pool),
    // so the cache is not written, nor its failure logged, once per VM.
    ScriptLoad load(const std::string &script, ScriptBuilder &builder, bool keep = true);

    // --- building blocks, public for tests ---
    const std::string &dir() const { return dir_; }
    // The cache file of a script (keyed by its absolute path); "" when off.
    std::string file_for(const std::string &script) const;
    struct Entry {
        std::string bytecode;
        int64_t saved_at = 0;
    };
    enum class ReadResult { Missing, Invalid, Ok };
    // Reads and checks the kept version: header, path, size, checksum.
    ReadResult read(const std::string &script, Entry &entry, std::string &why) const;
    // Keeps `bytecode` as the last good version of `script` (temp file +
    // rename). True when it was written; false and `why` empty when the
    // same version was kept already; false and `why` set on failure.
    bool save(const std::string &script, std::string_view bytecode, std::string &why) const;

private:
    std::string dir_;
    Logger &logger_;
    const Clock &clock_;
};

// "/etc/dovecot/policy.rb" as given, a relative path made absolute (cwd).
std::string absolute_script_path(const std::string &path);
// 2024-05-01T12:00:00Z
std::string utc_time_text(int64_t unix_seconds);

} // namespace dmr::core
