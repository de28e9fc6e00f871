// Dovecot 2.3: the plugin {} block, read by name when asked.
#include "dovecot/plugin_settings.hpp"

extern "C" {
#include "mail-storage-settings.h"
}

namespace dmr::dovecot {

PluginSettings PluginSettings::for_user(struct mail_user *user)
{
    PluginSettings settings =
        from_plugin_env([user](const char *name) { return mail_user_plugin_getenv(user, name); });
    if (user->set != nullptr && array_is_created(&user->set->plugin_envs)) {
        unsigned int count;
        // array_get() casts to a const-qualified type g++ warns about.
        auto *envs =
            static_cast<const char *const *>(array_get_i(&user->set->plugin_envs.arr, &count));
        for (unsigned int i = 0; i + 1 < count; i += 2)   // key, value, key, value ...
            settings.names_.emplace_back(envs[i]);
    }
    return settings;
}

PluginSettings PluginSettings::from_plugin_env(std::function<const char *(const char *)> getenv)
{
    PluginSettings settings;
    settings.getenv_ = std::move(getenv);
    return settings;
}

const char *PluginSettings::get(const char *name) const
{
    return getenv_(name);
}

} // namespace dmr::dovecot
