// One mruby VM: the Ruby API loaded, one policy script compiled into it, and
// handlers run on behalf of core. Create one per mail session (never shared
// between users) or one per auth process.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/logger.hpp"
#include "core/runtime.hpp"
#include "core/script_cache.hpp"
#include "core/settings.hpp"

struct mrb_state;

namespace dmr::core {
class Auditor;
class StoreHandle;
}

namespace dmr::mruby {

struct VmOptions {
    uint64_t memory_limit = 32ull << 20;
    uint32_t timeout_ms = 200;
    // Whether a call that cannot be stopped at a Ruby instruction (a C
    // function that never returns) may end the process after
    // Watchdog::kHardStageFactor more timeouts: mail processes only, never
    // the auth process (src/mruby/watchdog.hpp).
    bool hard_stage = false;
    core::Logger *logger = nullptr;   // Dovecot.log; required
    bool gc_stress = false;           // collect on (almost) every allocation: tests only
    // What the timeout and memory-limit messages call the limits:
    // "mruby_" gives mruby_timeout=/mruby_memory_limit=; a user's script VM
    // (mail_session.cpp) uses "mruby_user_", the settings that set its own.
    const char *limit_settings = "mruby_";
    // The process's shared state (mruby_store, core::process_store()),
    // opened on the first Dovecot::RateLimit/Counter/List call. nullptr:
    // those calls fail like a store that is down. Must outlive the VM.
    core::StoreHandle *store = nullptr;
    // Dovecot.audit writes here; nullptr (or no sink): audit calls return false.
    core::Auditor *auditor = nullptr;

    // What every policy VM starts from, mail session and auth process alike:
    // the limits of `settings` (mruby_* / the driver's args), `logger`, and GC
    // stress when DOVECOT_MRUBY_GC_STRESS is set (tests). The caller adds
    // what is its own: hard_stage, store, auditor.
    static VmOptions for_policy(const core::ScriptSettings &settings, core::Logger &logger);
};

class Vm final : public core::ScriptRuntime {
public:
    // Opens the VM with the Ruby API. Null (and `error` set) when the VM
    // cannot even start, e.g. a memory limit too small for the core classes.
    static std::unique_ptr<Vm> create(const VmOptions &options, core::ScriptError &error);
    ~Vm() override;
    Vm(const Vm &) = delete;
    Vm &operator=(const Vm &) = delete;

    // Compiles and runs a script file or source text (which registers handlers).
    // On success `bytecode`, when given, receives what the file compiled to
    // (mruby's irep dump; a precompiled file as it is): for core::ScriptCache.
    std::optional<core::ScriptError> load_file(const std::string &path,
                                               std::string *bytecode = nullptr);
    std::optional<core::ScriptError> load_source(std::string_view source, const std::string &name);
    // Runs bytecode (load_file's `bytecode`); anything else is refused.
    std::optional<core::ScriptError> load_bytecode(std::string_view bytecode,
                                                   const std::string &name);

    bool handles(core::Hook hook) const override;
    core::HookResult run(const core::Event &event) override;

    // After a timeout or memory-limit failure the VM refuses further calls:
    // its state is whatever the failed call left.
    bool disabled() const override { return disabled_; }
    uint64_t memory_used() const;
    // Tests only: the VM's allocator refuses every allocation after `n` more
    // (negative: never), as after a soft timeout, so that a test can make
    // any allocation point raise NoMemoryError.
    void refuse_allocations_after(int64_t n);

    struct Impl;
private:
    explicit Vm(const VmOptions &options);
    std::optional<core::ScriptError> load(std::string_view source, const std::string &name,
                                          std::string *bytecode);

    std::unique_ptr<Impl> impl_;
    bool disabled_ = false;
};

// Makes a fresh VM per load, for core::ScriptCache: mail sessions and the
// auth process load their scripts (and fall back) the same way.
class VmBuilder final : public core::ScriptBuilder {
public:
    explicit VmBuilder(const VmOptions &options) : options_(options) {}
    std::unique_ptr<core::ScriptRuntime> from_file(const std::string &path, std::string *bytecode,
                                                   core::ScriptError &error) override;
    std::unique_ptr<core::ScriptRuntime> from_bytecode(std::string_view bytecode,
                                                       const std::string &path,
                                                       core::ScriptError &error) override;

private:
    VmOptions options_;
};

} // namespace dmr::mruby
