#include "core/auth.hpp"

#include "core/audit.hpp"

#include <cctype>

#include "core/script_cache.hpp"

namespace dmr::core {

namespace {

std::string known_args()
{
    std::string list;
    for (std::string_view name : known_driver_args())
        list += (list.empty() ? "" : " ") + std::string(name);
    return list;
}

} // namespace

AuthDriverArgs AuthDriverArgs::parse(std::string_view args, std::vector<std::string> &errors)
{
    AuthDriverArgs out;
    std::string script_cache;   // resolved against store= at the end
    size_t pos = 0;
    while (pos < args.size()) {
        while (pos < args.size() && std::isspace(static_cast<unsigned char>(args[pos])))
            pos++;
        size_t end = pos;
        while (end < args.size() && !std::isspace(static_cast<unsigned char>(args[end])))
            end++;
        if (end == pos)
            break;
        std::string_view item = args.substr(pos, end - pos);
        pos = end;
        size_t eq = item.find('=');
        std::string_view key = item.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view()
                                                              : item.substr(eq + 1);
        std::string v(value);
        if (key == "file") {
            out.file = v;
        } else if (out.set(key, value, kDriverArgs, errors)) {
            // on_error, timeout, memory_limit, store: shared with mruby_*
        } else if (key == "blocking") {
            if (value == "yes")
                out.blocking = true;
            else if (value == "no")
                out.blocking = false;
            else
                errors.push_back("blocking: invalid value '" + v + "' (expected yes or no)");
        } else if (key == "cache_key") {
            out.cache_key = v;
        } else if (key == "script_cache") {
            if (value.empty())
                errors.push_back("script_cache: empty value");
            else
                script_cache = v;
        } else if (key == "audit" || key == "audit_syslog_facility") {
            (key == "audit" ? out.audit : out.audit_syslog_facility) = v;
            std::vector<std::string> audit_errors;
            AuditSettings::parse(key == "audit" ? value : std::string_view(),
                                 key == "audit" ? std::string_view() : value, audit_errors);
            for (std::string &error : audit_errors) {
                if (error.rfind("mruby_", 0) == 0)
                    error.erase(0, 6);   // the driver arg's name: audit
                errors.push_back(error);
            }
        } else if (key == "scheme") {
            if (value.empty())
                errors.push_back("scheme: empty value");
            else
                out.default_scheme = v;
        } else {
            std::string closest = closest_name(key, known_driver_args());
            // A misspelled store_password= keeps its value out of the log.
            bool secret = key.find("pas") != std::string_view::npos ||
                          closest.find("password") != std::string::npos;
            errors.push_back("unknown parameter '" + std::string(secret ? key : item) + "'" +
                             (closest.empty() ? std::string(" (known: ") + known_args() + ")"
                                              : " (did you mean " + closest + "=?)"));
        }
    }
    if (out.file.empty())
        errors.push_back("missing mandatory file= parameter");
    out.set_script_cache(script_cache, kDriverArgs, errors);
    return out;
}

AuthDriverArgs AuthDriverArgs::from_settings(const RuntimeSettings::Lookup &lookup,
                                             std::vector<std::string> &errors)
{
    // Named as the settings are; a bad value refuses the start, as a bad
    // driver arg does on 2.3 (Dovecot's parser has already checked the
    // typed ones: on_error, timeout, memory_limit, shadow).
    static constexpr Source kBlockSettings{"mruby_", false};
    auto get = [&](const char *name) -> std::string_view {
        const char *value = lookup(name);
        return value == nullptr ? std::string_view() : std::string_view(value);
    };
    AuthDriverArgs out;
    out.file = std::string(get("mruby_script"));
    for (const char *key : {"on_error", "timeout", "memory_limit", "store", "store_password",
                            "store_password_file", "shadow"}) {
        std::string name = std::string(kBlockSettings.prefix) + key;
        if (auto v = get(name.c_str()); !v.empty())
            out.set(key, v, kBlockSettings, errors);
    }
    out.audit = std::string(get("mruby_audit"));
    out.audit_syslog_facility = std::string(get("mruby_audit_syslog_facility"));
    AuditSettings::parse(out.audit, out.audit_syslog_facility, errors);
    if (out.file.empty())
        errors.push_back("mruby_script: not set");
    out.set_script_cache(get("mruby_script_cache"), kBlockSettings, errors);
    return out;
}

bool valid_auth_field_name(std::string_view name)
{
    if (name.empty())
        return false;
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (!(std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == '/'))
            return false;
    }
    return true;
}

bool authoritative_hook(Hook hook)
{
    return hook == Hook::PasswordVerify || hook == Hook::PassdbLookup;
}

PassdbResult policy_result(const Verdict &verdict)
{
    switch (verdict.kind) {
    case Verdict::Kind::Continue:
        return PassdbResult::Next;
    case Verdict::Kind::Reject:
        return PassdbResult::UserDisabled;
    case Verdict::Kind::Tempfail:
    case Verdict::Kind::Disconnect:
        break;
    }
    return PassdbResult::InternalFailure;
}

std::string policy_reason(const Verdict &verdict)
{
    switch (policy_result(verdict)) {
    case PassdbResult::UserDisabled:
        return "rejected by policy: " + verdict.text;
    case PassdbResult::InternalFailure:
        return "temporary failure by policy: " + verdict.text;
    default:
        return {};
    }
}

PassdbResult password_verify_result(const Verdict &verdict, const AuthOutput &output)
{
    if (verdict.decided())
        return policy_result(verdict);
    return output.returned_true ? PassdbResult::Ok : PassdbResult::PasswordMismatch;
}

void split_password_scheme(std::string_view text, std::string &scheme, std::string &password)
{
    scheme.clear();
    if (text.size() > 2 && text.front() == '{') {
        size_t close = text.find('}');
        if (close != std::string_view::npos && close > 1) {
            scheme = std::string(text.substr(1, close - 1));
            password = std::string(text.substr(close + 1));
            return;
        }
    }
    password = std::string(text);
}

PassdbLookup passdb_lookup_result(const Verdict &verdict, const AuthOutput &output,
                                  const std::string &default_scheme)
{
    PassdbLookup out;
    bool have_password = false, nopassword = false;
    for (const auto &[key, value] : output.fields) {
        if (key == "password") {
            split_password_scheme(value, out.scheme, out.password);
            if (out.scheme.empty())
                out.scheme = default_scheme;
            have_password = !out.password.empty();
        } else {
            nopassword = nopassword || key == "nopassword";
            out.fields.emplace_back(key, value);
        }
    }
    if (verdict.decided())
        out.result = policy_result(verdict);
    else if (have_password || nopassword || output.returned_true)
        out.result = PassdbResult::Ok;
    else
        out.result = PassdbResult::UserUnknown;
    return out;
}

UserdbResult userdb_result(const Verdict &verdict, const AuthOutput &output)
{
    if (verdict.kind == Verdict::Kind::Tempfail || verdict.kind == Verdict::Kind::Disconnect)
        return UserdbResult::InternalFailure;
    if (verdict.kind == Verdict::Kind::Reject)
        return UserdbResult::UserUnknown;
    return output.returned_true || !output.fields.empty() ? UserdbResult::Ok
                                                          : UserdbResult::UserUnknown;
}

const char *passdb_result_reason(PassdbResult result)
{
    switch (result) {
    case PassdbResult::Next: return "no passdb decided";
    case PassdbResult::Ok: return "";
    case PassdbResult::PasswordMismatch: return "password mismatch";
    case PassdbResult::UserUnknown: return "unknown user";
    case PassdbResult::UserDisabled: return "user disabled";
    case PassdbResult::InternalFailure: return "internal failure";
    case PassdbResult::SchemeNotAvailable: return "scheme not available";
    }
    return "authentication failed";
}

} // namespace dmr::core
