// Runs a hook through a script runtime and applies the failure policy in one
// place: a script failure is logged once, then mruby_on_error decides.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/logger.hpp"
#include "core/runtime.hpp"
#include "core/settings.hpp"

namespace dmr::core {

class Dispatcher {
public:
    // `runtime` may be null: the script failed to load, and `load_error` says
    // why (it is logged here, once). Every later event then follows on_error.
    Dispatcher(Logger &logger, OnError on_error, std::unique_ptr<ScriptRuntime> runtime,
               std::optional<ScriptError> load_error = std::nullopt);

    // The verdict to apply for `event`. Never throws. A refusal of a command
    // that lets the client leave (always_allowed()) is ignored and logged
    // once per dispatcher at info level.
    Verdict dispatch(const Event &event);

    bool active() const { return runtime_ != nullptr; }
    ScriptRuntime *runtime() { return runtime_.get(); }

    // What a refusing hook answers when the script could not decide.
    static Verdict failure_verdict(OnError on_error);

private:
    void report(const ScriptError &error, Hook hook);
    Verdict run_policy(const Event &event);

    Logger &logger_;
    OnError on_error_;
    std::unique_ptr<ScriptRuntime> runtime_;
    bool broken_ = false;   // a load failure was reported: later events say nothing
    bool exit_refusal_logged_ = false;
};

} // namespace dmr::core
