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

AuthScript::Loaded AuthScript::load(bool pooled)
{
    Loaded out;
    out.logger = std::make_unique<RequestLogger>();
    mruby::VmOptions options = mruby::VmOptions::for_policy(args_, *out.logger);
    // One store per process, opened on the first state call (not here).
    options.store = &core::process_store(args_, &process_logger());
    options.auditor = auditor_.get();
    // The same mechanism as the mail sessions': the file, or its last good
    // version from the script cache (logged) when the file is broken. After
    // an auth process restart the cache is all that is left of it.
    mruby::VmBuilder builder(options);
    core::ScriptCache cache(args_.script_cache, *out.logger);
    out.load = cache.load(args_.file, builder, !pooled);
    return out;
}

void AuthScript::install(Loaded loaded)
{
    generation_++;
    for (auto it = slots_.begin(); it != slots_.end();) {
        if (!it->busy)
            it = slots_.erase(it);
        else
            ++it;
    }
    slots_.push_front(make_slot(std::move(loaded)));
}

AuthScript::Slot AuthScript::make_slot(Loaded loaded) const
{
    Slot slot;
    slot.logger = std::move(loaded.logger);
    slot.dispatcher =
        std::make_unique<core::Dispatcher>(*slot.logger, args_.on_error, std::move(loaded.load));
    slot.dispatcher->set_shadow(args_.shadow);
    slot.generation = generation_;
    return slot;
}

AuthScript::Slot &AuthScript::acquire()
{
    for (;;) {
        size_t current = 0;
        for (Slot &slot : slots_) {
            if (slot.generation != generation_)
                continue;
            current++;
            if (!slot.busy) {
                slot.busy = true;
                return slot;
            }
        }
        // Outside a coroutine nothing can wait: a VM beyond the cap (only
        // when no coroutine stack could be mapped).
        if (current < kMaxVms || !in_coroutine()) {
            Slot slot = make_slot(load(true));
            slot.busy = true;
            slots_.push_back(std::move(slot));
            e_debug(auth_event, "mruby: %s: %zu VMs (handlers waiting at the same time)",
                    args_.file.c_str(), current + 1);
            return slots_.back();
        }
        vm_free_.wait();
    }
}

void AuthScript::release(Slot &slot)
{
    slot.busy = false;
    bool drop = slot.generation != generation_;
    if (!drop && &slot != &newest() && slot.dispatcher->runtime_disabled()) {
        // As refresh() does for the newest VM: this one's state is unknown.
        e_info(auth_event, "mruby: %s: restarting the script after a failed call",
               args_.file.c_str());
        drop = true;
    }
    if (drop) {
        for (auto it = slots_.begin(); it != slots_.end(); ++it) {
            if (&*it == &slot) {
                slots_.erase(it);
                break;
            }
        }
    }
    vm_free_.wake_one();
}

void AuthScript::refresh()
{
    if (newest().dispatcher->runtime_disabled()) {
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
    Loaded loaded = load();
    if (loaded.load.runtime != nullptr && !loaded.load.fallback) {
        e_info(auth_event, "mruby: %s changed: reloaded", args_.file.c_str());
        install(std::move(loaded));
    } else if (newest().dispatcher->active()) {
        // The VM this process runs is its last good version (the cache's,
        // or one the cache could not keep): go on with it, state and all.
        // A fallback was logged by the cache; otherwise say so here.
        if (loaded.load.runtime == nullptr)
            e_error(auth_event, "mruby: %s changed but cannot be loaded, keeping the previous "
                                "version: %s",
                    args_.file.c_str(), loaded.load.error->describe().c_str());
    } else {
        install(std::move(loaded));   // the last good version, or still broken
    }
}

bool AuthScript::handles(core::Hook hook) const
{
    return newest().dispatcher->wants(hook);   // a broken script too (core::Dispatcher::wants)
}

core::Verdict AuthScript::dispatch(const core::Event &event, struct event *log_event)
{
    // A VM of its own for the whole call: the call may be suspended while
    // its store waits, and another call may start meanwhile.
    Slot &slot = acquire();
    core::Verdict verdict = run_in(slot, event, log_event);
    release(slot);   // may free the slot: nothing of it is used after this
    return verdict;
}

core::Verdict AuthScript::run_in(Slot &slot, const core::Event &event, struct event *log_event)
{
    ScopedLogEvent scope(*slot.logger, log_event);
    if (auditor_ != nullptr) {
        const core::AuthRequestInfo *request = nullptr;
        if (const auto *auth = event.payload<core::AuthPayload>())
            request = &auth->request;
        else if (const auto *result = event.payload<core::AuthResultPayload>())
            request = &result->request;
        if (request != nullptr) {
            core::AuditContext context{my_hostname,       request->service,
                                       request->session_id, request->user,
                                       request->remote_ip,  request->local_ip};
            auditor_->set_context(context);
            // The auditor is shared: another call may have set its own
            // context while this one waited.
            on_resume([this, context] { auditor_->set_context(context); });
        }
    }
    core::Verdict verdict = slot.dispatcher->dispatch(event);
    on_resume(nullptr);
    return verdict;
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
