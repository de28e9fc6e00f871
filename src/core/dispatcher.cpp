#include "core/dispatcher.hpp"

#include "core/auth.hpp"
#include "core/text.hpp"

namespace dmr::core {

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
    if (load_error) {
        logger_.log(LogLevel::Error, "mruby: " + load_error->describe() +
                                         " (mruby_on_error=" + on_error_name(on_error_) + ")");
        broken_ = true;
        runtime_.reset();
    }
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
    std::string line = std::string("mruby: ") + hook_name(hook) + " handler failed: " +
                       error.describe();
    if (hook_can_refuse(hook))
        line += std::string(" (mruby_on_error=") + on_error_name(on_error_) + ")";
    logger_.log(LogLevel::Error, line);
}

Verdict Dispatcher::dispatch(const Event &event)
{
    Verdict verdict = run_policy(event);
    if (!verdict.decided() || !always_allowed(event))
        return verdict;
    if (!exit_refusal_logged_) {
        exit_refusal_logged_ = true;
        logger_.log(LogLevel::Info,
                    "mruby: " + event.payload<CommandPayload>()->command.name +
                        " is always allowed: " + hook_name(event.hook) +
                        " refused it (" + sanitize_for_log(verdict.text, 200) + "), ignored");
    }
    return Verdict::proceed();
}

Verdict Dispatcher::run_policy(const Event &event)
{
    if (!wants(event.hook))
        return Verdict::proceed();
    if (runtime_ == nullptr)
        return failure_verdict(on_error_);   // the load failure was logged once

    HookResult result = runtime_->run(event);
    if (result.error && event.auth_output() != nullptr)
        event.auth_output()->clear();   // nothing of a failed call is applied
    if (!result.error)
        return hook_can_refuse(event.hook) ? std::move(result.verdict) : Verdict::proceed();

    if (result.error->kind != ScriptError::Kind::Disabled)
        report(*result.error, event.hook);
    return hook_can_refuse(event.hook) ? failure_verdict(on_error_) : Verdict::proceed();
}

} // namespace dmr::core
