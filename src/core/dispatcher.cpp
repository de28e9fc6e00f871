#include "core/dispatcher.hpp"

#include "core/auth.hpp"
#include "core/text.hpp"

namespace dmr::core {
namespace {

// The `error` field of mruby_script_error: one word, for filters.
const char *error_token(ScriptError::Kind kind)
{
    switch (kind) {
    case ScriptError::Kind::Load: return "load";
    case ScriptError::Kind::Compile: return "syntax";
    case ScriptError::Kind::Exception: return "exception";
    case ScriptError::Kind::MemoryLimit: return "memory_limit";
    case ScriptError::Kind::Timeout: return "timeout";
    case ScriptError::Kind::Disabled: return "disabled";
    }
    return "?";
}

} // namespace

bool always_allowed(const Event &event)
{
    const CommandPayload *command = event.payload<CommandPayload>();
    if (command == nullptr)
        return false;
    const std::string &name = command->command.name;
    return (event.hook == Hook::ImapCommandBefore && name == "LOGOUT") ||
           (event.hook == Hook::Pop3CommandBefore && name == "QUIT");
}

Dispatcher::Dispatcher(Logger &logger, OnError on_error, std::unique_ptr<ScriptRuntime> runtime,
                       std::optional<ScriptError> load_error)
    : logger_(logger), on_error_(on_error), runtime_(std::move(runtime))
{
    if (load_error)
        report_load(*load_error);
}

void Dispatcher::report_load(const ScriptError &load_error)
{
    LogEvent event{kScriptErrorEvent,
                   {{"hook", "script_load"},
                    {"error", error_token(load_error.kind)},
                    {"on_error", on_error_name(on_error_)}},
                   {}};
    logger_.log_event(LogLevel::Error,
                      prefix_ + load_error.describe() + " (" + on_error_setting_ + "=" +
                          on_error_name(on_error_) + ")",
                      event);
    broken_ = true;
    runtime_.reset();
}

std::unique_ptr<Dispatcher> Dispatcher::for_user(Logger &logger, OnError on_error,
                                                 std::unique_ptr<ScriptRuntime> runtime,
                                                 std::optional<ScriptError> load_error)
{
    auto dispatcher = std::make_unique<Dispatcher>(logger, on_error, std::move(runtime));
    dispatcher->prefix_ = "mruby: user script: ";
    dispatcher->on_error_setting_ = "mruby_user_on_error";
    dispatcher->user_layer_ = true;
    if (load_error)
        dispatcher->report_load(*load_error);
    return dispatcher;
}

Dispatcher::Dispatcher(Logger &logger, OnError on_error, ScriptLoad loaded)
    : Dispatcher(logger, on_error, std::move(loaded.runtime),
                 loaded.runtime != nullptr ? std::nullopt : std::move(loaded.error))
{
}

bool Dispatcher::wants(Hook hook) const
{
    if (runtime_ != nullptr && !runtime_->disabled())
        return runtime_->handles(hook);
    bool broken = broken_ || runtime_ != nullptr;   // no runtime and no error: no script
    return broken && hook_can_refuse(hook) && !authoritative_hook(hook);
}

Verdict Dispatcher::failure_verdict(OnError on_error)
{
    switch (on_error) {
    case OnError::Allow:
        return Verdict::proceed();
    case OnError::Reject:
        return Verdict::reject("Access denied by policy");
    case OnError::Tempfail:
        break;
    }
    return Verdict::tempfail("Temporary policy failure, try again later");
}

void Dispatcher::report(const ScriptError &error, Hook hook)
{
    std::string line = prefix_ + hook_name(hook) + " handler failed: " + error.describe();
    if (hook_can_refuse(hook))
        line += std::string(" (") + on_error_setting_ + "=" + on_error_name(on_error_) + ")";
    LogEvent event{kScriptErrorEvent,
                   {{"hook", hook_name(hook)}, {"error", error_token(error.kind)}},
                   {}};
    if (hook_can_refuse(hook))
        event.strings.emplace_back("on_error", on_error_name(on_error_));
    logger_.log_event(LogLevel::Error, line, event);
}

const char *verdict_kind_name(Verdict::Kind kind)
{
    switch (kind) {
    case Verdict::Kind::Continue: return "delay";
    case Verdict::Kind::Reject: return "reject";
    case Verdict::Kind::Tempfail: return "tempfail";
    case Verdict::Kind::Disconnect: return "disconnect";
    }
    return "?";
}

bool Dispatcher::note_verdict(const Event &event, const Verdict &verdict, uint32_t delay_ms,
                              bool on_error)
{
    bool shadowed = shadow_ && !authoritative_hook(event.hook);
    const char *kind = verdict_kind_name(verdict.kind);
    std::string reason = sanitize_for_log(verdict.text, 200);
    LogEvent log_event{kVerdictEvent,
                       {{"hook", hook_name(event.hook)},
                        {"verdict", kind},
                        {"reason", reason},
                        {"source", on_error ? "on_error" : user_layer_ ? "user_script" : "script"},
                        {"shadow", shadowed ? "yes" : "no"}},
                       {}};
    if (!verdict.code.empty())
        log_event.strings.emplace_back("code", sanitize_for_log(verdict.code, 64));
    if (delay_ms > 0)
        log_event.numbers.emplace_back("delay_ms", delay_ms);

    std::string what = std::string(hook_name(event.hook)) + ": ";
    if (verdict.decided()) {
        what += std::string(kind) + " (" + reason + ")";
        if (on_error)
            what += std::string(" by ") + on_error_setting_ + "=" + on_error_name(on_error_);
        if (delay_ms > 0)
            what += ", after a delay of " + std::to_string(delay_ms) + " ms";
    } else {
        what += "delay of " + std::to_string(delay_ms) + " ms";
    }
    if (shadowed)
        logger_.log_event(LogLevel::Info,
                          prefix_ + "shadow: would have " +
                              (verdict.decided() ? "refused " : "applied ") + what,
                          log_event);
    else
        logger_.emit(prefix_ + "verdict " + what, log_event);
    return shadowed;
}

Verdict Dispatcher::dispatch(const Event &event)
{
    bool on_error = false;
    Verdict verdict = run_policy(event, on_error);
    if (!verdict.decided() || !always_allowed(event)) {
        AuthOutput *out = event.auth_output();
        uint32_t delay_ms = out != nullptr ? out->delay_ms : 0;
        if (!verdict.decided() && delay_ms == 0)
            return verdict;
        if (!note_verdict(event, verdict, delay_ms, on_error))
            return verdict;
        if (out != nullptr) {
            out->delay_ms = 0;   // a shadowed tarpit is not applied
            out->shadowed = verdict_kind_name(verdict.decided() ? verdict.kind
                                                                : Verdict::Kind::Continue);
        }
        return Verdict::proceed();
    }
    if (!exit_refusal_logged_) {
        exit_refusal_logged_ = true;
        logger_.log(LogLevel::Info,
                    prefix_ + event.payload<CommandPayload>()->command.name +
                        " is always allowed: " + hook_name(event.hook) +
                        " refused it (" + sanitize_for_log(verdict.text, 200) + "), ignored");
    }
    return Verdict::proceed();
}

Verdict Dispatcher::run_policy(const Event &event, bool &on_error)
{
    if (!wants(event.hook))
        return Verdict::proceed();
    on_error = true;
    if (runtime_ == nullptr)
        return failure_verdict(on_error_);   // the load failure was logged once

    HookResult result = runtime_->run(event);
    if (result.error && event.auth_output() != nullptr)
        event.auth_output()->clear();   // nothing of a failed call is applied
    if (!result.error) {
        on_error = false;
        return hook_can_refuse(event.hook) ? std::move(result.verdict) : Verdict::proceed();
    }

    if (result.error->kind != ScriptError::Kind::Disabled)
        report(*result.error, event.hook);
    return hook_can_refuse(event.hook) ? failure_verdict(on_error_) : Verdict::proceed();
}

} // namespace dmr::core
