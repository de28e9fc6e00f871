#include "dovecot/mail_session.hpp"

#include <cerrno>
#include <sys/stat.h>
#include <vector>

#include "dovecot/audit_event_sink.hpp"
#include "core/script_cache.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"

namespace dmr::dovecot {

namespace {

// Session#secured?: TLS, or a connection that needs none. 2.3's login
// process says so itself (TLS, login_trusted_networks, or a client on the
// server's own address); 2.4 passes only whether TLS ended at Dovecot, so
// the address test is made here (login_trusted_networks is not known to a
// mail process there).
bool connection_secured(const struct mail_user *user)
{
#if DMR_DOVECOT_VERSION >= 204
    if (user->conn.end_client_tls_secured)
        return true;
    const struct ip_addr *remote = user->conn.remote_ip, *local = user->conn.local_ip;
    if (remote == nullptr || remote->family == 0)
        return true;   // a local (UNIX socket) connection
    if (local != nullptr && net_ip_compare(remote, local))
        return true;
    if (remote->family == AF_INET)
        return (ntohl(remote->u.ip4.s_addr) >> 24) == 127;
    return remote->family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&remote->u.ip6);
#else
    return user->conn.secured;
#endif
}

} // namespace

MailSession::MailSession(struct mail_user *user, PluginSettings settings)
    : user_(user), settings_(std::move(settings)), logger_(user->event)
{
}

const char *MailSession::setting(const char *name) const
{
    return settings_.get(name);
}

std::unique_ptr<MailSession> MailSession::create(struct mail_user *user,
                                                 PluginSettings plugin_settings)
{
    std::vector<std::string> setting_errors;
    if (!plugin_settings.error().empty())
        setting_errors.push_back("settings: " + plugin_settings.error() + " (using the defaults)");
    core::RuntimeSettings settings =
        core::RuntimeSettings::from(plugin_settings.lookup(), setting_errors);
    if (settings.script.empty() && settings.user_script.empty()) {
        e_debug(user->event, "mruby: mruby_script not set: no policy for this session");
        return nullptr;
    }

    std::unique_ptr<MailSession> session(new MailSession(user, std::move(plugin_settings)));
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
    info.secured = connection_secured(user);
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
    session->auditor_ = session->create_auditor("");
    options.auditor = session->auditor_.get();
    // One store per process, opened on the first state call (not here).
    options.store = &core::process_store(settings, &process_logger());

    if (settings.script.empty()) {
        // Only a user script: the operator's layer has nothing to run.
        session->dispatcher_ = std::make_unique<core::Dispatcher>(
            session->logger_, settings.on_error, std::unique_ptr<core::ScriptRuntime>());
    } else {
        // The script, or its last good version when the file is broken (logged,
        // with the event mruby_script_fallback, by every session until fixed).
        mruby::VmBuilder builder(options);
        core::ScriptCache cache(settings.script_cache, session->logger_);
        session->dispatcher_ = std::make_unique<core::Dispatcher>(
            session->logger_, settings.on_error, cache.load(settings.script, builder));
    }
    session->dispatcher_->set_shadow(settings.shadow);   // mruby_shadow (userdb can set it)
    if (!settings.user_script.empty())
        session->create_user_layer(settings);
    session->policy_ = std::make_unique<core::LayeredPolicy>(
        *session->dispatcher_, session->user_dispatcher_.get(), &session->user_info_);
    return session;
}

void MailSession::create_user_layer(const core::RuntimeSettings &settings)
{
    const std::string &path = settings.user_script;
    struct stat st;
    if (stat(path.c_str(), &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        // The usual case for most users: nothing to run, nothing created.
        e_debug(user_->event, "mruby: no user script (%s does not exist)", path.c_str());
        return;
    }
    user_settings_ = std::make_unique<core::UserSettings>(this);
    user_info_ = info_;
    user_info_.settings = user_settings_.get();
    user_store_ = std::make_unique<core::UserStore>(
        core::process_store(settings, &process_logger()), info_.user);
    user_store_handle_ = std::make_unique<core::StoreHandle>(*user_store_);
    user_auditor_ = create_auditor("user");

    mruby::VmOptions options =
        mruby::VmOptions::for_policy(settings.user_script_settings(), logger_);
    options.hard_stage = true;   // only this user's own process can end
    options.limit_settings = "mruby_user_";   // "exceeded mruby_user_timeout=50ms"
    options.auditor = user_auditor_.get();
    options.store = user_store_handle_.get();
    mruby::VmBuilder builder(options);
    core::ScriptError error;
    std::unique_ptr<core::ScriptRuntime> runtime = builder.from_file(path, nullptr, error);
    std::optional<core::ScriptError> load_error;
    if (runtime == nullptr)
        load_error = std::move(error);
    else
        e_debug(user_->event, "mruby: user script %s loaded (a second VM)", path.c_str());
    user_dispatcher_ = core::Dispatcher::for_user(logger_, settings.user_on_error,
                                                  std::move(runtime), std::move(load_error));
    user_dispatcher_->set_shadow(settings.shadow);
}

std::unique_ptr<core::Auditor> MailSession::create_auditor(const char *origin)
{
    std::vector<std::string> errors;
    const char *sinks = settings_.get("mruby_audit");
    const char *facility = settings_.get("mruby_audit_syslog_facility");
    core::AuditSettings audit = core::AuditSettings::parse(sinks == nullptr ? "" : sinks,
                                                           facility == nullptr ? "" : facility,
                                                           errors);
    for (const std::string &error : errors)
        logger_.log(core::LogLevel::Error, "mruby: " + error);
    if (!audit.any())
        return nullptr;
    core::AuditContext context{my_hostname, info_.service, info_.session_id, info_.user,
                               info_.remote_ip, info_.local_ip};
    auto auditor =
        std::make_unique<core::Auditor>(std::move(context), core::SystemClock::instance());
    auditor->set_origin(origin);
    if (!audit.file.empty())
        auditor->add_sink(std::make_unique<core::FileAuditSink>(audit.file, logger_));
    if (audit.syslog)
        auditor->add_sink(std::make_unique<core::SyslogAuditSink>(audit.syslog_facility));
    if (audit.event)
        auditor->add_sink(std::make_unique<EventAuditSink>(user_->event));
    return auditor;
}

bool MailSession::wants(core::Hook hook)
{
    return policy_->wants(hook);   // a broken script too (core::Dispatcher::wants)
}

core::Verdict MailSession::dispatch(core::Event event)
{
    event.session = &info_;
    return policy_->dispatch(event);   // the operator's, then the user's (if any)
}

} // namespace dmr::dovecot
