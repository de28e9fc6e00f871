// Dovecot 2.4: the typed mruby_* settings (mruby_settings.c) through
// settings_get(), as the text core::RuntimeSettings::from() parses: a
// duration as milliseconds, a size as bytes, a boolean as yes/no.
#include "dovecot/plugin_settings.hpp"

extern "C" {
#include "settings.h"
#include "var-expand.h"
#include "dovecot/v2_4/mruby_settings.h"
}

namespace dmr::dovecot {

namespace {

void put(std::map<std::string, std::string> &values, const char *name, const char *value)
{
    if (value != nullptr && *value != '\0')
        values[name] = value;
}

} // namespace

PluginSettings PluginSettings::for_event(struct event *event)
{
    PluginSettings settings;
    const struct mruby_settings *set = nullptr;
    const char *error = nullptr;
    // The function, not its C macro (which casts through void *).
    if ((settings_get)(event, &mruby_setting_parser_info, static_cast<enum settings_get_flags>(0),
                       __FILE__, __LINE__, reinterpret_cast<const void **>(&set), &error) < 0) {
        settings.error_ = error == nullptr ? "settings_get failed" : error;
        return settings;
    }
    auto &v = settings.values_;
    put(v, "mruby_script", set->mruby_script);
    put(v, "mruby_on_error", set->mruby_on_error);
    v["mruby_timeout"] = std::to_string(set->mruby_timeout);
    v["mruby_memory_limit"] = std::to_string(set->mruby_memory_limit);
    put(v, "mruby_services", set->mruby_services);
    put(v, "mruby_script_cache", set->mruby_script_cache);
    put(v, "mruby_store", set->mruby_store);
    put(v, "mruby_store_password", set->mruby_store_password);
    put(v, "mruby_store_password_file", set->mruby_store_password_file);
    put(v, "mruby_audit", set->mruby_audit);
    put(v, "mruby_audit_syslog_facility", set->mruby_audit_syslog_facility);
    v["mruby_shadow"] = set->mruby_shadow ? "yes" : "no";
    put(v, "mruby_user_script", set->mruby_user_script);
    v["mruby_user_timeout"] = std::to_string(set->mruby_user_timeout);
    v["mruby_user_memory_limit"] = std::to_string(set->mruby_user_memory_limit);
    put(v, "mruby_user_on_error", set->mruby_user_on_error);
    if (array_is_created(&set->mruby_settings)) {
        unsigned int count;
        auto *kv = static_cast<const char *const *>(
            array_get_i(&set->mruby_settings.arr, &count));
        for (unsigned int i = 0; i + 1 < count; i += 2)   // key, value, key, value ...
            v.emplace(kv[i], kv[i + 1]);   // a declared name wins
    }
    settings_free(set);
    return settings;
}

PluginSettings PluginSettings::for_user(struct mail_user *user)
{
    PluginSettings settings = for_event(user->event);
    // mruby_user_script is declared without %variables (the auth process
    // reads these settings with no user to expand them for): expanded here
    // with the mail user's variables, as Dovecot expands its own settings.
    auto it = settings.values_.find("mruby_user_script");
    if (it != settings.values_.end() && it->second.find('%') != std::string::npos) {
        string_t *expanded = t_str_new(256);
        const char *error = nullptr;
        if (var_expand(expanded, it->second.c_str(), mail_user_var_expand_params(user),
                       &error) < 0) {
            e_error(user->event, "mruby: mruby_user_script: cannot expand '%s': %s "
                    "(no user script)", it->second.c_str(), error);
            settings.values_.erase(it);
        } else {
            it->second = str_c(expanded);
        }
    }
    return settings;
}

const char *PluginSettings::get(const char *name) const
{
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : it->second.c_str();
}

} // namespace dmr::dovecot
