#include "dovecot/mail_session.hpp"

#include <vector>

#include "dovecot/audit_event_sink.hpp"
#include "core/script_cache.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"

namespace dmr::dovecot {

MailSession::MailSession(struct mail_user *user) : user_(user), logger_(user->event) {}

const char *MailSession::setting(const char *name) const
{
    return mail_user_plugin_getenv(user_, name);
}

std::unique_ptr<MailSession> MailSession::create(struct mail_user *user)
{
    std::vector<std::string> setting_errors;
    core::RuntimeSettings settings = core::RuntimeSettings::from(
        [user](const char *name) { return mail_user_plugin_getenv(user, name); },
        setting_errors);
    if (settings.script.empty()) {
        e_debug(user->event, "mruby: mruby_script not set: no policy for this session");
        return nullptr;
    }

    std::unique_ptr<MailSession> session(new MailSession(user));
    for (const std::string &error : setting_errors)
        session->logger_.log(core::LogLevel::Error, "mruby: " + error);

    core::SessionInfo &info = session->info_;
    info.user = user->username;
    info.service = user->service == nullptr ? "" : user->service;
    info.remote_ip = ip_to_string(user->conn.remote_ip);
    info.local_ip = ip_to_string(user->conn.local_ip);
    info.remote_port = user->conn.remote_port;
    info.local_port = user->conn.local_port;
    info.session_id = user->session_id == nullptr ? "" : user->session_id;
    info.secured = user->conn.secured;
    info.settings = session.get();
    if (user->userdb_fields != nullptr) {
        for (const char *const *field = user->userdb_fields; *field != nullptr; field++) {
            const char *eq = strchr(*field, '=');
            if (eq == nullptr)
                info.userdb_fields.emplace_back(*field, "");
            else
                info.userdb_fields.emplace_back(std::string(*field, eq - *field), eq + 1);
        }
    }

    mruby::VmOptions options = mruby::VmOptions::for_policy(settings, session->logger_);
    // Last resort for a C function that never returns (docs/architecture.md).
    options.hard_stage = true;
    options.auditor = session->create_auditor();
    // One store per process, opened on the first state call (not here).
    options.store = &core::process_store(settings, &process_logger());

    // The script, or its last good version when the file is broken (logged,
    // with the event mruby_script_fallback, by every session until fixed).
    mruby::VmBuilder builder(options);
    core::ScriptCache cache(settings.script_cache, session->logger_);
    session->dispatcher_ = std::make_unique<core::Dispatcher>(
        session->logger_, settings.on_error, cache.load(settings.script, builder));
    session->dispatcher_->set_shadow(settings.shadow);   // mruby_shadow (userdb can set it)
    return session;
}

core::Auditor *MailSession::create_auditor()
{
    std::vector<std::string> errors;
    const char *sinks = mail_user_plugin_getenv(user_, "mruby_audit");
    const char *facility = mail_user_plugin_getenv(user_, "mruby_audit_syslog_facility");
    core::AuditSettings audit = core::AuditSettings::parse(sinks == nullptr ? "" : sinks,
                                                           facility == nullptr ? "" : facility,
                                                           errors);
    for (const std::string &error : errors)
        logger_.log(core::LogLevel::Error, "mruby: " + error);
    if (!audit.any())
        return nullptr;
    core::AuditContext context{my_hostname, info_.service, info_.session_id, info_.user,
                               info_.remote_ip, info_.local_ip};
    auditor_ = std::make_unique<core::Auditor>(std::move(context), core::SystemClock::instance());
    if (!audit.file.empty())
        auditor_->add_sink(std::make_unique<core::FileAuditSink>(audit.file, logger_));
    if (audit.syslog)
        auditor_->add_sink(std::make_unique<core::SyslogAuditSink>(audit.syslog_facility));
    if (audit.event)
        auditor_->add_sink(std::make_unique<EventAuditSink>(user_->event));
    return auditor_.get();
}

bool MailSession::wants(core::Hook hook)
{
    return dispatcher_->wants(hook);   // a broken script too (core::Dispatcher::wants)
}

core::Verdict MailSession::dispatch(core::Event event)
{
    event.session = &info_;
    return dispatcher_->dispatch(event);
}

} // namespace dmr::dovecot
