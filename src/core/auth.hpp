// The auth driver's decisions, free of Dovecot: what the driver's args mean,
// which field names Dovecot accepts, and how a verdict plus the handlers'
// output become a passdb or userdb result. The adapter (src/dovecot/auth_*)
// only maps these values onto Dovecot's enums.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/events.hpp"
#include "core/settings.hpp"
#include "core/verdict.hpp"

namespace dmr::core {

// `passdb { driver = mruby  args = file=... }`, also for userdb. See docs/auth.md.
// on_error=, timeout=, memory_limit=, store= and script_cache= are the
// ScriptSettings the mail plugin reads as mruby_*, parsed by the same code.
struct AuthDriverArgs : ScriptSettings {
    std::string file;                     // required
    bool blocking = false;                // yes: run in auth-worker processes
    std::string cache_key;                // "": auth cache off (the default)
    std::string default_scheme = "PLAIN"; // for passwords returned without {SCHEME}
    // audit=: Dovecot.audit's sinks in the auth process, as the plugin's
    // mruby_audit (file:/path, syslog, event; separated by commas here);
    // audit_syslog_facility= as mruby_audit_syslog_facility. "" = off.
    std::string audit;
    std::string audit_syslog_facility;
    // store= should name the mail processes' mruby_store, so both see the
    // same state.

    // Parses space-separated key=value args. Every problem is reported in
    // `errors` (the caller refuses to start with a bad configuration).
    static AuthDriverArgs parse(std::string_view args, std::vector<std::string> &errors);
    // Dovecot 2.4: the same arguments as the mruby_* settings a
    // `passdb mruby { }` / `userdb mruby { }` block sees (`lookup` as for
    // RuntimeSettings::from; file is mruby_script). Dovecot's own settings
    // stand for blocking and scheme there (passdb_use_worker,
    // passdb_default_password_scheme; the adapter copies them in) and
    // cache_key has none: the auth cache stays off. Every problem is reported
    // in `errors` under its mruby_* name.
    static AuthDriverArgs from_settings(const RuntimeSettings::Lookup &lookup,
                                        std::vector<std::string> &errors);
};

// A field name Dovecot can take: non-empty, letters, digits and _ - . /
// (userdb names such as "namespace/inbox/location" use '/'). Anything else
// would break the auth protocol's tab-separated lines.
bool valid_auth_field_name(std::string_view name);

// The longest tarpit a handler may ask for: a login waiting longer than this
// would run into the login process's own timeouts.
constexpr uint32_t kMaxAuthDelayMs = 30'000;

// The passdb stages that make a script the password authority
// (on_password_verify, on_passdb_lookup): having a handler there is what
// makes it authoritative, so a broken script never claims them
// (Dispatcher::wants).
bool authoritative_hook(Hook hook);

enum class PassdbResult {
    Next,             // no decision: continue with the next passdb, keep fields
    Ok,
    PasswordMismatch,
    UserUnknown,
    UserDisabled,     // reject: the client sees the reason text
    InternalFailure,  // tempfail: [UNAVAILABLE]
    SchemeNotAvailable,
};

enum class UserdbResult { Ok, UserUnknown, InternalFailure };

// on_auth: reject -> UserDisabled, tempfail -> InternalFailure, else Next.
// A UserDisabled answer keeps the verdict's text as the reason the client
// sees (the adapter sets it as the request's "reason" field).
PassdbResult policy_result(const Verdict &verdict);
// Why on_auth ended the lookup, for the log line and on_auth_result's
// reason: "rejected by policy: TEXT", "temporary failure by policy: TEXT";
// "" when it did not (Continue).
std::string policy_reason(const Verdict &verdict);

// on_password_verify: only a handler returning exactly `true` accepts.
PassdbResult password_verify_result(const Verdict &verdict, const AuthOutput &output);

// on_passdb_lookup: the password comes from set("password", "{SCHEME}...").
struct PassdbLookup {
    PassdbResult result = PassdbResult::UserUnknown;
    std::string password;   // without the {SCHEME} prefix
    std::string scheme;
    Fields fields;          // every other field, to be set on the request
};
PassdbLookup passdb_lookup_result(const Verdict &verdict, const AuthOutput &output,
                                  const std::string &default_scheme);

// on_userdb_lookup: found when a handler set a field or returned true.
UserdbResult userdb_result(const Verdict &verdict, const AuthOutput &output);

// "{SHA256-CRYPT}$5$..." -> scheme "SHA256-CRYPT", password "$5$...".
// Without a prefix the scheme is empty.
void split_password_scheme(std::string_view text, std::string &scheme, std::string &password);

// The reason on_auth_result reports for a failed attempt.
const char *passdb_result_reason(PassdbResult result);

} // namespace dmr::core
