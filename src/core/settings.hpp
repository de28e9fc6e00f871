// Plugin settings shared by every process type: parsing and validation.
// Contract: parsing never throws; a bad value yields an error message and the
// caller keeps the documented safe default.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmr::core {

// What a hook does when its script cannot decide (compile error, exception,
// memory limit, timeout). See docs/configuration.md.
enum class OnError { Allow, Tempfail, Reject };

std::optional<OnError> parse_on_error(std::string_view text);
const char *on_error_name(OnError value);

// "200ms", "2s", "1.5s", "1m", plain numbers are milliseconds.
std::optional<uint32_t> parse_duration_ms(std::string_view text);
// "32M", "512k", "1G", plain numbers are bytes.
std::optional<uint64_t> parse_size_bytes(std::string_view text);

// mruby_services: the Dovecot services (user->service) whose mail sessions
// run the script. Session events are for client sessions: imap and pop3 by
// default; lmtp, lda, submission, doveadm ... only when named.
struct ServiceSet {
    static constexpr const char *kDefault = "imap pop3";
    std::vector<std::string> names;

    bool contains(std::string_view service) const;
    // Names separated by spaces (or commas). An unknown name is reported in
    // `errors` and skipped; when no known name remains, the default applies.
    static ServiceSet parse(std::string_view text, std::vector<std::string> &errors);
};

// Dovecot's services that create mail users, as mruby_services knows them.
const std::vector<std::string_view> &known_services();

// Services that deliver mail (lmtp, lda): no policy outcome may refuse or
// defer a delivery there, only log that it was ignored.
bool is_delivery_service(std::string_view service);

// The settings every policy VM is made with, shared by the mail plugin
// (plugin { mruby_on_error = ... }) and the auth driver (args = on_error=...):
// one parser for both, each source with its own names and its own way with a
// bad value. mruby::VmOptions::for_policy() turns them into a VM's options.
struct ScriptSettings {
    static constexpr uint32_t kDefaultTimeoutMs = 200;
    static constexpr uint64_t kDefaultMemoryLimit = 32ull << 20;
    static constexpr const char *kDefaultStore = "lmdb:/var/lib/dovecot/mruby";

    OnError on_error = OnError::Tempfail;
    uint32_t timeout_ms = kDefaultTimeoutMs;
    uint64_t memory_limit = kDefaultMemoryLimit;
    // mruby_store / store=: where Dovecot::RateLimit/Counter/List keep their
    // state ("memory", "lmdb:DIR", "redis://..."); validated when first opened.
    std::string store = kDefaultStore;
    // mruby_store_password / store_password=: the store's password, kept out
    // of `store` because doveconf -n hides only settings whose names end in
    // _password (or _key); mruby_store_password_file / store_password_file=:
    // an absolute path whose first line is the password, read when the store
    // is first opened (core::StoreHandle). At most one of the two is set.
    std::string store_password;
    std::string store_password_file;
    // mruby_script_cache / script_cache=: where the last good version of
    // each script is kept (core::ScriptCache::directory_for); "" when off.
    std::string script_cache;
    // mruby_shadow / shadow=: verdicts are logged ("would have refused") and
    // counted (event mruby_verdict, shadow=yes) but not enforced, tarpits
    // not applied; the password check itself (on_password_verify,
    // on_passdb_lookup) is never shadowed. The rule is core::Dispatcher's.
    bool shadow = false;

    // How a source names the keys and treats a bad value.
    struct Source {
        const char *prefix;    // "mruby_" (plugin settings) or "" (driver args)
        bool keeps_default;    // a bad value is replaced by the default
                               // ("; using 200ms"); else it is only reported
                               // and the caller refuses to start
    };
    static constexpr Source kPluginSettings{"mruby_", true};
    static constexpr Source kDriverArgs{"", false};

    // Applies on_error, timeout, memory_limit, store, store_password,
    // store_password_file or shadow (`key` without the prefix); false when
    // `key` is none of them. A bad value is reported in
    // `errors` under the source's name and leaves the field as it was.
    bool set(std::string_view key, std::string_view value, const Source &source,
             std::vector<std::string> &errors);
    // Sets script_cache from its setting ("" = unset, "no" = off), resolved
    // against `store` (set that first); a relative path is reported and the
    // default is used.
    void set_script_cache(std::string_view setting, const Source &source,
                          std::vector<std::string> &errors);
};

// Every plugin { } setting the plugins read, mruby_ prefix included (one
// list for the mail, auth-side and doveadm plugins). A setting not in it is
// either a misspelling or a script's own (s.setting("mruby_greeting")).
const std::vector<std::string_view> &known_plugin_settings();
// The arguments of the mruby passdb/userdb (args = file=... timeout=...).
const std::vector<std::string_view> &known_driver_args();

// The known name closest to `name` when `name` is likely a misspelling of it
// (a few letters apart); "" otherwise.
std::string closest_name(std::string_view name, const std::vector<std::string_view> &known);

// For the mruby_* names among `names` that no plugin reads: one warning each
// that is close to a known setting ("mruby_timout is not a setting (did you
// mean mruby_timeout?): ignored"). Names far from every known one are left to
// scripts (s.setting) and not reported.
std::vector<std::string> unknown_plugin_settings(const std::vector<std::string> &names);

struct RuntimeSettings : ScriptSettings {
    std::string script;                 // mruby_script; empty: the plugin stays idle

    // Per-user scripts (docs/ruby-api.md, "Per-user scripts"): a second VM
    // per session, run after the operator's handlers, that can only tighten.
    static constexpr uint32_t kDefaultUserTimeoutMs = 50;
    static constexpr uint64_t kDefaultUserMemoryLimit = 8ull << 20;
    // mruby_user_script: the user's script (Dovecot expanded %u/%d/%h, or
    // %{user}/%{home} on 2.4, before it gets here); empty: none.
    std::string user_script;
    uint32_t user_timeout_ms = kDefaultUserTimeoutMs;       // mruby_user_timeout
    uint64_t user_memory_limit = kDefaultUserMemoryLimit;   // mruby_user_memory_limit
    OnError user_on_error = OnError::Allow;                  // mruby_user_on_error
    // The limits of the user's VM: these settings with the user_* ones.
    ScriptSettings user_script_settings() const;

    // Reads every mruby_* setting through `lookup` (nullptr or "" = unset).
    // Bad values are reported in `errors` and replaced by the defaults above.
    using Lookup = std::function<const char *(const char *name)>;
    static RuntimeSettings from(const Lookup &lookup, std::vector<std::string> &errors);
};

} // namespace dmr::core
