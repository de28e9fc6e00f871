// What the doveadm commands (`doveadm mruby ...`, docs/operations.md "Admin
// commands") do, as plain C++ over a Store and a ScriptBuilder: the Dovecot
// glue (src/dovecot/doveadm_plugin.cpp) only parses parameters, opens the
// process store and prints. Every operation reads and writes the keys the
// script API uses, so what a command shows is what a script sees:
//  - Dovecot::List NAME     -> list NAME in the store, entries as stored;
//  - Dovecot::RateLimit NAME, key K -> rate key "NAME:K" (RateLimiter::store_key);
//  - Dovecot::Counter K     -> counter key K as given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/events.hpp"
#include "core/logger.hpp"
#include "core/ratelimit.hpp"
#include "core/script_error.hpp"
#include "core/settings.hpp"
#include "core/verdict.hpp"
#include "core/store.hpp"

namespace dmr::core {

class ScriptBuilder;

namespace admin {

// The live entries of `list`, sorted by value (the store answers in no order).
Result<std::vector<ListEntry>> list_show(Store &store, std::string_view list);
// Adds or replaces `entry`; ttl_seconds 0: never expires. Validates the list
// name and the TTL as Dovecot::List#add does (Invalid with the reason).
Status list_add(Store &store, std::string_view list, std::string_view entry, int64_t ttl_seconds,
                std::string_view reason);
// True if a live entry was removed.
Result<bool> list_remove(Store &store, std::string_view list, std::string_view entry);

// A rate limit key as Dovecot::RateLimit NAME sees it.
struct RateShow {
    // Seconds (µs) until the key is idle again (full burst); 0: idle or absent.
    // Needs no rate: it is the stored TAT minus now.
    int64_t idle_after_us = 0;
    // With the limit's rate: what `limit.peek(key)` answers now.
    std::optional<GcraDecision> peek;
};
Result<RateShow> rate_show(Store &store, std::string_view name, std::string_view key,
                           const std::optional<GcraRate> &rate);
Status rate_reset(Store &store, std::string_view name, std::string_view key);

// Dovecot::Counter.get(key) (0 when absent or expired) and .reset(key).
Result<int64_t> counter_show(Store &store, std::string_view key);
Status counter_reset(Store &store, std::string_view key);

// `doveadm mruby check`: the script compiled and its top level run in a VM
// the builder makes (the full API, a store the caller chooses: never the
// live one), and the hooks it registered handlers for.
struct CheckReport {
    std::optional<ScriptError> error;   // set: the script does not load
    std::vector<std::string> hooks;     // hook_name()s, in Hook order
};
CheckReport check_script(ScriptBuilder &builder, const std::string &path);

// `doveadm mruby dry-run`: one sample event, built from NAME=VALUE fields,
// for the hook named `event` (hook_name(): auth, session_start,
// mailbox_open, imap_before_command, ...). The event's values live here.
struct SampleEvent {
    Hook hook = Hook::Count;
    SessionInfo session;
    SessionStats stats;
    MailboxInfo mailbox;
    CommandInfo command;
    AuthRequestInfo auth;
    AuthOutput auth_output;
    MessageInfo message;

    Event event();   // points into this object
};
// The fields (every one optional; defaults in docs/operations.md): user,
// service, remote_ip, local_ip, remote_port, local_port, secured, session_id,
// mechanism, client_id, password, success, reason, internal_failure,
// mailbox, readonly, command, tag, args, reply, reply_text, uid, message_id.
// nullopt with `error` for an unknown event or field, or a bad value.
std::optional<SampleEvent> sample_event(std::string_view event,
                                        const std::vector<std::string> &fields,
                                        std::string &error);

// The members of a JSON object, {"user": "bob", "secured": true, "uid": 7},
// as NAME=VALUE fields for sample_event (`dry-run -j FILE`): a string as it
// is, a number or boolean as its JSON text. Anything else (not an object,
// a nested value, null, more than kMaxSampleJsonBytes, invalid JSON) is
// nullopt with `error` saying where.
constexpr size_t kMaxSampleJsonBytes = 64 * 1024;
std::optional<std::vector<std::string>> fields_from_json(std::string_view json,
                                                         std::string &error);
// The same, read from a file ("-" is stdin); the error names what failed.
std::optional<std::vector<std::string>> fields_from_json_file(const std::string &path,
                                                              std::string &error);

struct DryRun {
    Verdict verdict;            // what Dovecot would apply (mruby_on_error included)
    AuthOutput auth_output;     // auth hooks: the fields and delay asked for
    bool handled = false;       // the script has a handler for the event's hook
    unsigned errors = 0;        // error lines logged (load failure, handler failure)
};
// Loads the script and dispatches the event as the plugins do (one
// core::Dispatcher), logging through `logger`.
DryRun dry_run(ScriptBuilder &builder, const std::string &path, Logger &logger,
               OnError on_error, SampleEvent &sample);
const char *verdict_kind_name(Verdict::Kind kind);   // continue, reject, tempfail, disconnect

// Seconds as text: "600", "0.25" (at most 6 decimals, no trailing zeros).
std::string seconds_text(int64_t us);

} // namespace admin
} // namespace dmr::core
