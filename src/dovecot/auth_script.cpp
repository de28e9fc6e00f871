#include "dovecot/auth_script.hpp"

#include <sys/stat.h>

#include "dovecot/audit_event_sink.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"

namespace dmr::dovecot {

void RequestLogger::log(core::LogLevel level, std::string_view message)
{
    EventLogger(event != nullptr ? event : auth_event).log(level, message);
}

void RequestLogger::log_event(core::LogLevel level, std::string_view message,
                              const core::LogEvent &log_event)
{
    EventLogger(event != nullptr ? event : auth_event).log_event(level, message, log_event);
}

namespace {

// Sets the logger's event for one call and restores it after.
class ScopedLogEvent {
public:
    ScopedLogEvent(RequestLogger &logger, struct event *event)
        : logger_(logger), saved_(logger.event)
    {
        logger_.event = event;
    }
    ~ScopedLogEvent() { logger_.event = saved_; }
    ScopedLogEvent(const ScopedLogEvent &) = delete;
    ScopedLogEvent &operator=(const ScopedLogEvent &) = delete;

private:
    RequestLogger &logger_;
    struct event *saved_;
};

} // namespace

AuthScript::AuthScript(const core::AuthDriverArgs &args) : args_(args)
{
    create_auditor();
    stamp_ = stat_file();
    last_check_ = ioloop_time;
    install(load());
}

AuthScript::~AuthScript() = default;

void AuthScript::create_auditor()
{
    std::vector<std::string> errors;   // reported by AuthDriverArgs::parse at start-up
    core::AuditSettings audit = core::AuditSettings::parse(args_.audit,
                                                           args_.audit_syslog_facility, errors);
    if (!audit.any())
        return;
    auditor_ = std::make_unique<core::Auditor>(core::AuditContext{my_hostname, "", "", "", "", ""},
                                               core::SystemClock::instance());
    if (!audit.file.empty())
        auditor_->add_sink(std::make_unique<core::FileAuditSink>(audit.file, logger_));
    if (audit.syslog)
        auditor_->add_sink(std::make_unique<core::SyslogAuditSink>(audit.syslog_facility));
    if (audit.event)
        auditor_->add_sink(std::make_unique<EventAuditSink>(auth_event));
}

AuthScript::Stamp AuthScript::stat_file() const
{
    Stamp s;
    struct stat st;
    if (::stat(args_.file.c_str(), &st) < 0)
        return s;
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    return s;
}

core::ScriptLoad AuthScript::load()
{
    mruby::VmOptions options = mruby::VmOptions::for_policy(args_, logger_);
    // One store per process, opened on the first state call (not here).
    options.store = &core::process_store(args_, &process_logger());
    options.auditor = auditor_.get();
    // The same mechanism as the mail sessions': the file, or its last good
    // version from the script cache (logged) when the file is broken. After
    // an auth process restart the cache is all that is left of it.
    mruby::VmBuilder builder(options);
    core::ScriptCache cache(args_.script_cache, logger_);
    return cache.load(args_.file, builder);
}

void AuthScript::install(core::ScriptLoad loaded)
{
    dispatcher_ = std::make_unique<core::Dispatcher>(logger_, args_.on_error, std::move(loaded));
    dispatcher_->set_shadow(args_.shadow);
}

void AuthScript::refresh()
{
    if (dispatcher_->runtime_disabled()) {
        // A timeout or memory-limit failure left this VM in an unknown
        // state (the failure itself was logged): start a fresh one.
        e_info(auth_event, "mruby: %s: restarting the script after a failed call",
               args_.file.c_str());
        install(load());
        return;
    }
    if (last_check_ == ioloop_time)
        return;
    last_check_ = ioloop_time;
    Stamp now = stat_file();
    if (now == stamp_)
        return;
    stamp_ = now;
    core::ScriptLoad loaded = load();
    if (loaded.runtime != nullptr && !loaded.fallback) {
        e_info(auth_event, "mruby: %s changed: reloaded", args_.file.c_str());
        install(std::move(loaded));
    } else if (dispatcher_->active()) {
        // The VM this process runs is its last good version (the cache's,
        // or one the cache could not keep): go on with it, state and all.
        // A fallback was logged by the cache; otherwise say so here.
        if (loaded.runtime == nullptr)
            e_error(auth_event, "mruby: %s changed but cannot be loaded, keeping the previous "
                                "version: %s",
                    args_.file.c_str(), loaded.error->describe().c_str());
    } else {
        install(std::move(loaded));   // the last good version, or still broken
    }
}

bool AuthScript::handles(core::Hook hook) const
{
    return dispatcher_->wants(hook);   // a broken script too (core::Dispatcher::wants)
}

core::Verdict AuthScript::dispatch(const core::Event &event, struct event *log_event)
{
    ScopedLogEvent scope(logger_, log_event);
    if (auditor_ != nullptr) {
        const core::AuthRequestInfo *request = nullptr;
        if (const auto *auth = event.payload<core::AuthPayload>())
            request = &auth->request;
        else if (const auto *result = event.payload<core::AuthResultPayload>())
            request = &result->request;
        if (request != nullptr)
            auditor_->set_context({my_hostname, request->service, request->session_id,
                                   request->user, request->remote_ip, request->local_ip});
    }
    return dispatcher_->dispatch(event);
}

namespace detail {
std::vector<std::unique_ptr<AuthScript>> &auth_scripts()
{
    static std::vector<std::unique_ptr<AuthScript>> scripts;
    return scripts;
}
} // namespace detail

AuthScript &auth_script_for(const core::AuthDriverArgs &args)
{
    for (auto &script : detail::auth_scripts()) {
        if (script->args().file == args.file)
            return *script;
    }
    detail::auth_scripts().push_back(std::make_unique<AuthScript>(args));
    return *detail::auth_scripts().back();
}

void auth_scripts_clear() { detail::auth_scripts().clear(); }

} // namespace dmr::dovecot
