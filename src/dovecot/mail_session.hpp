// The policy state of one mail session (one mail_user): its settings, its VM
// and the dispatcher that applies mruby_on_error. Owned by the user's module
// context; created in mail_user_created, destroyed in the user's deinit.
#pragma once

#include <memory>

#include "core/audit.hpp"
#include "core/dispatcher.hpp"
#include "core/events.hpp"
#include "core/settings.hpp"
#include "core/store_registry.hpp"
#include "core/user_layer.hpp"
#include "dovecot/dovecot.hpp"
#include "dovecot/plugin_settings.hpp"
#include "dovecot/session_port.hpp"

namespace dmr::dovecot {

class MailSession final : public core::SettingSource, public SessionPort {
public:
    // Null when the user has neither mruby_script nor mruby_user_script
    // (the plugin stays idle).
    static std::unique_ptr<MailSession> create(struct mail_user *user, PluginSettings settings);

    const char *setting(const char *name) const override;
    core::Verdict dispatch(core::Event event) override;
    bool wants(core::Hook hook) override;
    void set_session_stats(core::SessionStats stats) override { stats_ = std::move(stats); }
    const core::Verdict *refusal() const override { return refused_ ? &refusal_ : nullptr; }
    void refusal_sent() override { refusal_sent_ = true; }
    // The session start refused this session and a protocol plugin is to
    // tell the client (mail_plugin.cpp).
    void refuse(core::Verdict verdict)
    {
        refusal_ = std::move(verdict);
        refused_ = true;
    }
    bool refused() const { return refused_; }
    bool refusal_was_sent() const { return refusal_sent_; }
    // Counters from the protocol plugin; null when none reported them.
    const core::SessionStats *stats() const { return stats_.counters.empty() ? nullptr : &stats_; }
    const core::SessionInfo &info() const { return info_; }
    struct mail_user *user() const { return user_; }

private:
    MailSession(struct mail_user *user, PluginSettings settings);
    // Null when mruby_audit selects no sink. `origin`: AuditContext::origin.
    std::unique_ptr<core::Auditor> create_auditor(const char *origin);
    // The user's script (mruby_user_script), when the file exists: its own
    // VM, store namespace and auditor (core/user_layer.hpp).
    void create_user_layer(const core::RuntimeSettings &settings);

    struct mail_user *user_;
    PluginSettings settings_;
    EventLogger logger_;
    core::SessionInfo info_;
    core::SessionStats stats_;
    core::Verdict refusal_;
    bool refused_ = false;
    bool refusal_sent_ = false;
    std::unique_ptr<core::Auditor> auditor_;   // before dispatcher_: the VM points at it
    std::unique_ptr<core::Dispatcher> dispatcher_;
    // Only for a user with a user script; declared in the order they are
    // used (destroyed in reverse: the VM before what it points at).
    std::unique_ptr<core::UserSettings> user_settings_;
    core::SessionInfo user_info_;
    std::unique_ptr<core::UserStore> user_store_;
    std::unique_ptr<core::StoreHandle> user_store_handle_;
    std::unique_ptr<core::Auditor> user_auditor_;
    std::unique_ptr<core::Dispatcher> user_dispatcher_;
    std::unique_ptr<core::LayeredPolicy> policy_;
};

} // namespace dmr::dovecot
