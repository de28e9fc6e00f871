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

struct mrb_state;

namespace dmr::store {
class StoreHandle;
}

namespace dmr::core {
class Auditor;
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
    // The process's shared state (mruby_store, store::process_store()),
    // opened on the first Dovecot::RateLimit/Counter/List call. nullptr:
    // those calls fail like a store that is down. Must outlive the VM.
    store::StoreHandle *store = nullptr;
    // Dovecot.audit writes here; nullptr (or no sink): audit calls return false.
    core::Auditor *auditor = nullptr;
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
    std::optional<core::ScriptError> load_file(const std::string &path);
    std::optional<core::ScriptError> load_source(std::string_view source, const std::string &name);

    bool handles(core::Hook hook) const override;
    core::HookResult run(const core::Event &event) override;

    // After a timeout or memory-limit failure the VM refuses further calls:
    // its state is whatever the failed call left.
    bool disabled() const { return disabled_; }
    uint64_t memory_used() const;

    struct Impl;
private:
    explicit Vm(const VmOptions &options);

    std::unique_ptr<Impl> impl_;
    bool disabled_ = false;
};

} // namespace dmr::mruby
