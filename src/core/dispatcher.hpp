// Runs a hook through a script runtime and applies the failure policy in one
// place: a script failure is logged once, then mruby_on_error decides.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/logger.hpp"
#include "core/runtime.hpp"
#include "core/script_cache.hpp"
#include "core/settings.hpp"

namespace dmr::core {

class Dispatcher {
public:
    // `runtime` may be null: the script failed to load, and `load_error` says
    // why (it is logged here, once). Every later event then follows on_error.
    Dispatcher(Logger &logger, OnError on_error, std::unique_ptr<ScriptRuntime> runtime,
               std::optional<ScriptError> load_error = std::nullopt);
    // What ScriptCache::load() made: the script, its last good version (the
    // fallback was logged by the cache: nothing more is said here), or
    // nothing (the error is logged here, once).
    Dispatcher(Logger &logger, OnError on_error, ScriptLoad loaded);

    // Whether an adapter should hand `hook` to dispatch() (and build its
    // event): the one rule for a script that is broken. A working script
    // wants the hooks it has handlers for. A broken one (it failed to load,
    // or a timeout or memory-limit failure disabled it) wants every hook that
    // can refuse, and mruby_on_error answers them; except the authoritative
    // passdb stages (core::authoritative_hook): a broken script cannot say
    // that it would have been the password authority, so "allow" never
    // becomes a password check there (on_error was applied at on_auth).
    bool wants(Hook hook) const;

    // The verdict to apply for `event`. Never throws. A refusal of a command
    // that lets the client leave (always_allowed()) is ignored and logged
    // once per dispatcher at info level. A hook that wants() refuses is
    // not run: proceed.
    //
    // Every decision (a refusal, or an auth tarpit) is also the named event
    // mruby_verdict (fields hook, verdict, reason, code, source, shadow,
    // delay_ms) and every script failure mruby_script_error (hook, error,
    // on_error), through Logger::log_event: the adapter makes them Dovecot
    // events that metric {} blocks count.
    //
    // Shadow mode (set_shadow): a refusal is logged at info as "would have
    // refused" and answered with proceed, a tarpit (AuthOutput::delay_ms) is
    // dropped; mruby_on_error answers are shadowed the same way. The
    // authoritative passdb stages (core::authoritative_hook) are the
    // password check itself and are never shadowed.
    Verdict dispatch(const Event &event);

    void set_shadow(bool shadow) { shadow_ = shadow; }
    // A user's script (core::LayeredPolicy): as the constructor above, but
    // its lines say "mruby: user script: ..." and "mruby_user_on_error=",
    // and its mruby_verdict events source=user_script.
    static std::unique_ptr<Dispatcher> for_user(Logger &logger, OnError on_error,
                                                std::unique_ptr<ScriptRuntime> runtime,
                                                std::optional<ScriptError> load_error);
    bool shadow() const { return shadow_; }

    bool active() const { return runtime_ != nullptr; }
    // A timeout or memory-limit failure disabled the runtime: the auth
    // process replaces it with a fresh one before its next request.
    bool runtime_disabled() const { return runtime_ != nullptr && runtime_->disabled(); }

    // What a refusing hook answers when the script could not decide.
    static Verdict failure_verdict(OnError on_error);

private:
    void report(const ScriptError &error, Hook hook);
    void report_load(const ScriptError &error);
    // `on_error` is set when mruby_on_error (not a handler) gave the answer.
    Verdict run_policy(const Event &event, bool &on_error);
    // Logs and emits mruby_verdict for a decision; true when it is shadowed.
    bool note_verdict(const Event &event, const Verdict &verdict, uint32_t delay_ms,
                      bool on_error);

    Logger &logger_;
    OnError on_error_;
    std::unique_ptr<ScriptRuntime> runtime_;
    bool broken_ = false;   // a load failure was reported: later events say nothing
    bool exit_refusal_logged_ = false;
    bool shadow_ = false;
    std::string prefix_ = "mruby: ";
    const char *on_error_setting_ = "mruby_on_error";
    bool user_layer_ = false;
};

// The names of the events the Dispatcher emits (docs/operations.md, "Metrics").
constexpr const char *kVerdictEvent = "mruby_verdict";
constexpr const char *kScriptErrorEvent = "mruby_script_error";
// "reject", "tempfail", "disconnect"; "delay" for a tarpit without a refusal.
const char *verdict_kind_name(Verdict::Kind kind);

} // namespace dmr::core
