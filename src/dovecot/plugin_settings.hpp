// The plugin's settings as the installed Dovecot hands them over, by name:
// on 2.3 the plugin {} block (mail_user_plugin_getenv and friends), on 2.4
// the typed mruby_* settings declared in v2_4/mruby_settings.c, turned back
// into the text core::RuntimeSettings::from() parses (one parser for both
// versions). The one file pair per version behind it is chosen by meson:
// v2_3/plugin_settings.cpp or v2_4/plugin_settings.cpp.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dovecot/dovecot.hpp"
#include "core/settings.hpp"

namespace dmr::dovecot {

class PluginSettings {
public:
    // A mail user's settings (userdb fields override them on both versions).
    static PluginSettings for_user(struct mail_user *user);
#if DMR_DOVECOT_VERSION >= 204
    // The settings an event sees: those of its filters (a passdb/userdb
    // block's, doveadm's), falling back to the global ones.
    static PluginSettings for_event(struct event *event);
#else
    // A plugin {} block read through `getenv` (doveadm_plugin_getenv: only
    // doveadm's binary has it, so it cannot be named here).
    static PluginSettings from_plugin_env(std::function<const char *(const char *)> getenv);
#endif

    // The value of `name` (nullptr: unset). On 2.4, a name that is not a
    // declared mruby_* setting is looked up in mruby_settings { }.
    const char *get(const char *name) const;
    // What core::RuntimeSettings::from() takes (valid while this lives).
    core::RuntimeSettings::Lookup lookup() const
    {
        return [this](const char *name) { return get(name); };
    }
    // Every name set in the plugin {} block (2.3; for warnings about
    // misspelled mruby_* names). Empty on 2.4, where doveconf refuses an
    // unknown setting itself.
    const std::vector<std::string> &plugin_names() const { return names_; }
    // Why the settings could not be read (2.4: settings_get() failed); the
    // defaults are used then.
    const std::string &error() const { return error_; }

private:
    PluginSettings() = default;

    std::function<const char *(const char *)> getenv_;   // 2.3
    std::map<std::string, std::string> values_;          // 2.4: the typed values as text
    std::vector<std::string> names_;
    std::string error_;
};

} // namespace dmr::dovecot
