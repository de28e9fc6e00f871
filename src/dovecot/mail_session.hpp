// The policy state of one mail session (one mail_user): its settings, its VM
// and the dispatcher that applies mruby_on_error. Owned by the user's module
// context; created in mail_user_created, destroyed in the user's deinit.
#pragma once

#include <memory>

#include "core/dispatcher.hpp"
#include "core/events.hpp"
#include "core/settings.hpp"
#include "dovecot/dovecot.hpp"

namespace dmr::dovecot {

class MailSession final : public core::SettingSource {
public:
    // Null when the user has no mruby_script (the plugin stays idle).
    static std::unique_ptr<MailSession> create(struct mail_user *user);

    const char *setting(const char *name) const override;
    core::Verdict dispatch(core::Event event);
    bool wants(core::Hook hook);
    const core::SessionInfo &info() const { return info_; }
    struct mail_user *user() const { return user_; }

private:
    explicit MailSession(struct mail_user *user);

    struct mail_user *user_;
    EventLogger logger_;
    core::SessionInfo info_;
    std::unique_ptr<core::Dispatcher> dispatcher_;
};

} // namespace dmr::dovecot
