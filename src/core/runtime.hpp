// The interface core uses to run scripts; src/mruby implements it, tests fake it.
#pragma once

#include <optional>

#include "core/events.hpp"
#include "core/script_error.hpp"
#include "core/verdict.hpp"

namespace dmr::core {

struct HookResult {
    Verdict verdict;                     // meaningful when !error
    std::optional<ScriptError> error;
};

class ScriptRuntime {
public:
    virtual ~ScriptRuntime() = default;
    // Cheap: true when at least one handler is registered for `hook`.
    virtual bool handles(Hook hook) const = 0;
    // Runs the handlers for one event, bounded by the configured limits.
    virtual HookResult run(const Event &event) = 0;
    // True once a failure (timeout, memory limit) left the runtime unable to
    // run handlers: core::Dispatcher then treats the script as broken.
    virtual bool disabled() const { return false; }
};

} // namespace dmr::core
