#include "core/settings.hpp"

#include "core/script_cache.hpp"

#include <cctype>
#include <cmath>
#include <algorithm>
#include <cstdlib>

namespace dmr::core {
namespace {

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); i++) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

// Splits "1.5s" into 1.5 and "s". Rejects empty, negative and non-finite numbers.
std::optional<std::pair<double, std::string_view>> split_number(std::string_view text)
{
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
        text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.remove_suffix(1);
    size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
        i++;
    if (i == 0)
        return std::nullopt;
    std::string number(text.substr(0, i));
    char *end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0)
        return std::nullopt;
    std::string_view unit = text.substr(i);
    while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front())))
        unit.remove_prefix(1);
    return std::make_pair(value, unit);
}

} // namespace

std::optional<OnError> parse_on_error(std::string_view text)
{
    if (iequals(text, "allow"))
        return OnError::Allow;
    if (iequals(text, "tempfail"))
        return OnError::Tempfail;
    if (iequals(text, "reject"))
        return OnError::Reject;
    return std::nullopt;
}

const char *on_error_name(OnError value)
{
    switch (value) {
    case OnError::Allow: return "allow";
    case OnError::Tempfail: return "tempfail";
    case OnError::Reject: return "reject";
    }
    return "?";
}

std::optional<uint32_t> parse_duration_ms(std::string_view text)
{
    auto parts = split_number(text);
    if (!parts)
        return std::nullopt;
    auto [value, unit] = *parts;
    double factor;
    if (unit.empty() || iequals(unit, "ms") || iequals(unit, "msec") || iequals(unit, "msecs"))
        factor = 1;
    else if (iequals(unit, "s") || iequals(unit, "sec") || iequals(unit, "secs"))
        factor = 1000;
    else if (iequals(unit, "m") || iequals(unit, "min") || iequals(unit, "mins"))
        factor = 60000;
    else
        return std::nullopt;
    double ms = std::ceil(value * factor);
    if (ms < 1 || ms > 3600 * 1000.0)
        return std::nullopt;
    return static_cast<uint32_t>(ms);
}

std::optional<uint64_t> parse_size_bytes(std::string_view text)
{
    auto parts = split_number(text);
    if (!parts)
        return std::nullopt;
    auto [value, unit] = *parts;
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b'))
        unit.remove_suffix(1);
    double factor;
    if (unit.empty())
        factor = 1;
    else if (iequals(unit, "k"))
        factor = 1024.0;
    else if (iequals(unit, "m"))
        factor = 1024.0 * 1024;
    else if (iequals(unit, "g"))
        factor = 1024.0 * 1024 * 1024;
    else
        return std::nullopt;
    double bytes = value * factor;
    if (bytes < 1 || bytes > static_cast<double>(1ull << 40))
        return std::nullopt;
    return static_cast<uint64_t>(bytes);
}

const std::vector<std::string_view> &known_services()
{
    // The service names Dovecot 2.3 gives mail users (mail_user->service):
    // the binaries' master_service names and mail_storage_service inputs.
    static const std::vector<std::string_view> names = {
        "imap", "pop3", "submission", "lmtp", "lda", "doveadm",
        "indexer-worker", "imap-urlauth-worker", "quota-status",
    };
    return names;
}

bool is_delivery_service(std::string_view service)
{
    return service == "lmtp" || service == "lda";
}

bool ServiceSet::contains(std::string_view service) const
{
    for (const std::string &name : names) {
        if (name == service)
            return true;
    }
    return false;
}

ServiceSet ServiceSet::parse(std::string_view text, std::vector<std::string> &errors)
{
    ServiceSet set;
    bool any_word = false;
    size_t i = 0;
    while (i < text.size()) {
        auto separator = [&](size_t at) {
            return text[at] == ',' || std::isspace(static_cast<unsigned char>(text[at]));
        };
        while (i < text.size() && separator(i))
            i++;
        size_t start = i;
        while (i < text.size() && !separator(i))
            i++;
        if (start == i)
            break;
        any_word = true;
        std::string name(text.substr(start, i - start));
        for (char &c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        bool known = false;
        for (std::string_view candidate : known_services())
            known = known || candidate == name;
        if (!known) {
            std::string list;
            for (std::string_view candidate : known_services())
                list += (list.empty() ? "" : " ") + std::string(candidate);
            errors.push_back("mruby_services: unknown service '" + name + "' ignored (known: " +
                             list + ")");
            continue;
        }
        if (!set.contains(name))
            set.names.push_back(std::move(name));
    }
    if (set.names.empty()) {
        if (any_word)
            errors.push_back(std::string("mruby_services: no known service left; using '") +
                             kDefault + "'");
        return parse(kDefault, errors);
    }
    return set;
}

bool ScriptSettings::set(std::string_view key, std::string_view value, const Source &source,
                         std::vector<std::string> &errors)
{
    std::string name = std::string(source.prefix) + std::string(key);
    std::string given(value);
    auto fallback = [&](const char *what) {
        return source.keeps_default ? std::string("; using ") + what : std::string();
    };
    if (key == "on_error") {
        if (auto parsed = parse_on_error(value))
            on_error = *parsed;
        else
            errors.push_back(name + ": invalid value '" + given +
                             "' (expected allow, tempfail or reject)" + fallback("tempfail"));
    } else if (key == "timeout") {
        if (auto parsed = parse_duration_ms(value))
            timeout_ms = *parsed;
        else
            errors.push_back(name + ": invalid duration '" + given +
                             "' (expected e.g. 200ms or 2s, at most 1h)" + fallback("200ms"));
    } else if (key == "memory_limit") {
        auto parsed = parse_size_bytes(value);
        if (parsed && *parsed >= (1u << 20))
            memory_limit = *parsed;
        else
            errors.push_back(name + ": invalid size '" + given +
                             "' (expected e.g. 32M, at least 1M)" + fallback("32M"));
    } else if (key == "store") {
        if (value.empty())
            errors.push_back(name + ": empty value");
        else
            store = given;
    } else if (key == "shadow") {
        if (iequals(value, "yes"))
            shadow = true;
        else if (iequals(value, "no"))
            shadow = false;
        else
            errors.push_back(name + ": invalid value '" + given + "' (expected yes or no)" +
                             fallback("no"));
    } else if (key == "store_password") {
        // Never quoted back: the value is a secret.
        if (!store_password_file.empty())
            errors.push_back(name + ": set together with " + source.prefix +
                             "store_password_file; using the file");
        else
            store_password = given;
    } else if (key == "store_password_file") {
        if (value.empty() || value.front() != '/') {
            errors.push_back(name + ": '" + given + "' is not an absolute path");
        } else {
            if (!store_password.empty())
                errors.push_back(std::string(source.prefix) + "store_password: set together with " +
                                 name + "; using the file");
            store_password.clear();
            store_password_file = given;
        }
    } else {
        return false;
    }
    return true;
}

void ScriptSettings::set_script_cache(std::string_view setting, const Source &source,
                                      std::vector<std::string> &errors)
{
    std::vector<std::string> cache_errors;   // ScriptCache's wording is the plugin's
    script_cache = ScriptCache::directory_for(setting, store, cache_errors);
    if (!cache_errors.empty())
        errors.push_back(std::string(source.prefix) + "script_cache: '" + std::string(setting) +
                         "' is not an absolute path (or no)" +
                         (source.keeps_default ? "; using the default" : ""));
}

const std::vector<std::string_view> &known_plugin_settings()
{
    static const std::vector<std::string_view> names = {
        "mruby_script",        "mruby_on_error",      "mruby_timeout",
        "mruby_memory_limit",  "mruby_services",      "mruby_script_cache",
        "mruby_store",         "mruby_store_password", "mruby_store_password_file",
        "mruby_audit",         "mruby_audit_syslog_facility", "mruby_shadow",
        "mruby_user_script",   "mruby_user_timeout",  "mruby_user_memory_limit",
        "mruby_user_on_error",
    };
    return names;
}

const std::vector<std::string_view> &known_driver_args()
{
    static const std::vector<std::string_view> names = {
        "file",  "blocking",       "cache_key",           "script_cache", "scheme",
        "on_error", "timeout",     "memory_limit",        "store",        "store_password",
        "store_password_file", "shadow", "audit", "audit_syslog_facility",
    };
    return names;
}

namespace {

// Edits (insert, delete, change, swap two neighbours) from a to b,
// ignoring case: "timout" and "tiemout" are one edit from "timeout".
size_t edit_distance(std::string_view a, std::string_view b)
{
    auto same = [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) ==
               std::tolower(static_cast<unsigned char>(y));
    };
    const size_t w = b.size() + 1;
    std::vector<size_t> d((a.size() + 1) * w);
    for (size_t i = 0; i <= a.size(); i++)
        d[i * w] = i;
    for (size_t j = 0; j <= b.size(); j++)
        d[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        for (size_t j = 1; j <= b.size(); j++) {
            size_t cost = same(a[i - 1], b[j - 1]) ? 0 : 1;
            size_t best = std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1,
                                    d[(i - 1) * w + j - 1] + cost});
            if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1]))
                best = std::min(best, d[(i - 2) * w + j - 2] + 1);
            d[i * w + j] = best;
        }
    }
    return d[a.size() * w + b.size()];
}

} // namespace

std::string closest_name(std::string_view name, const std::vector<std::string_view> &known)
{
    std::string_view best;
    size_t best_distance = 0;
    for (std::string_view candidate : known) {
        size_t d = edit_distance(name, candidate);
        if (best.empty() || d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    // A misspelling: a few letters apart, at most a third of the name.
    size_t limit = std::max<size_t>(1, std::min<size_t>(3, best.size() / 3));
    if (best.empty() || best_distance == 0 || best_distance > limit)
        return {};
    return std::string(best);
}

std::vector<std::string> unknown_plugin_settings(const std::vector<std::string> &names)
{
    std::vector<std::string> warnings;
    for (const std::string &name : names) {
        if (name.compare(0, 6, "mruby_") != 0)
            continue;
        bool known = false;
        for (std::string_view candidate : known_plugin_settings())
            known = known || candidate == name;
        if (known)
            continue;
        std::string closest = closest_name(name, known_plugin_settings());
        if (!closest.empty())
            warnings.push_back(name + " is not a setting (did you mean " + closest +
                               "?): ignored");
    }
    return warnings;
}

RuntimeSettings RuntimeSettings::from(const Lookup &lookup, std::vector<std::string> &errors)
{
    RuntimeSettings s;
    auto get = [&](const char *name) -> std::string_view {
        const char *value = lookup(name);
        return value == nullptr ? std::string_view() : std::string_view(value);
    };
    s.script = std::string(get("mruby_script"));
    for (const char *key : {"on_error", "timeout", "memory_limit", "store", "store_password",
                            "store_password_file", "shadow"}) {
        std::string name = std::string(kPluginSettings.prefix) + key;
        if (auto v = get(name.c_str()); !v.empty())
            s.set(key, v, kPluginSettings, errors);
    }
    s.set_script_cache(get("mruby_script_cache"), kPluginSettings, errors);

    s.user_script = std::string(get("mruby_user_script"));
    // Parsed as the operator's limits are, under their own names; a bad
    // value keeps the user default (the generic source would name the
    // operator's).
    ScriptSettings user;
    user.on_error = s.user_on_error;
    user.timeout_ms = s.user_timeout_ms;
    user.memory_limit = s.user_memory_limit;
    static constexpr Source kUserSettings{"mruby_user_", false};
    const std::pair<const char *, const char *> user_keys[] = {
        {"on_error", "allow"}, {"timeout", "50ms"}, {"memory_limit", "8M"}};
    for (const auto &[key, fallback] : user_keys) {
        std::string name = std::string(kUserSettings.prefix) + key;
        if (auto v = get(name.c_str()); !v.empty()) {
            size_t before = errors.size();
            user.set(key, v, kUserSettings, errors);
            if (errors.size() > before)
                errors.back() += std::string("; using ") + fallback;
        }
    }
    s.user_on_error = user.on_error;
    s.user_timeout_ms = user.timeout_ms;
    s.user_memory_limit = user.memory_limit;
    return s;
}

ScriptSettings RuntimeSettings::user_script_settings() const
{
    ScriptSettings user = *this;
    user.on_error = user_on_error;
    user.timeout_ms = user_timeout_ms;
    user.memory_limit = user_memory_limit;
    return user;
}

} // namespace dmr::core
