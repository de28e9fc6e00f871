// libauthdb_mruby.so: the passdb and userdb driver "mruby" for Dovecot's auth
// process (and auth-worker processes with blocking=yes). See docs/auth.md.
//
//  passdb: on_auth (policy: reject / tempfail / delay / set, no verdict =
//          the next passdb decides), then, if the script is authoritative,
//          on_password_verify or on_passdb_lookup.
//  userdb: on_userdb_lookup.
//  every attempt: on_auth_result, from Dovecot's auth_request_finished event.
#include "dovecot/auth_script.hpp"

#include <cstring>
#include <utility>
#include <vector>

namespace dmr::dovecot {
namespace {

struct mruby_passdb_module {
    struct passdb_module module;
    AuthScript *script;
};

struct mruby_userdb_module {
    struct userdb_module module;
    AuthScript *script;
};

// --- values at the edge ------------------------------------------------------

void add_fields(core::Fields &out, struct auth_fields *fields)
{
    if (fields == nullptr || auth_fields_is_empty(fields))
        return;
    const ARRAY_TYPE(auth_field) *list = auth_fields_export(fields);
    const struct auth_field *field;
    array_foreach(list, field) {
        // Never hand a password to a script that did not ask for one.
        if (strcmp(field->key, "password") == 0 || strcmp(field->key, "pass") == 0)
            continue;
        out.emplace_back(field->key, field->value == nullptr ? "" : field->value);
    }
}

core::AuthRequestInfo request_info(const struct auth_request *request)
{
    const struct auth_request_fields &f = request->fields;
    core::AuthRequestInfo info;
    info.user = f.user == nullptr ? "" : f.user;
    info.service = f.service == nullptr ? "" : f.service;
    info.remote_ip = ip_to_string(&f.remote_ip);
    info.local_ip = ip_to_string(&f.local_ip);
    info.remote_port = f.remote_port;
    info.local_port = f.local_port;
    info.mechanism = f.mech_name == nullptr ? "" : f.mech_name;
    info.secured = f.secured != AUTH_REQUEST_SECURED_NONE;
    info.client_id = f.client_id == nullptr ? "" : f.client_id;
    info.session_id = f.session_id == nullptr ? "" : f.session_id;
    add_fields(info.passdb_fields, f.extra_fields);
    add_fields(info.userdb_fields, f.userdb_reply);
    return info;
}

enum passdb_result to_dovecot(core::PassdbResult result)
{
    switch (result) {
    case core::PassdbResult::Next: return PASSDB_RESULT_NEXT;
    case core::PassdbResult::Ok: return PASSDB_RESULT_OK;
    case core::PassdbResult::PasswordMismatch: return PASSDB_RESULT_PASSWORD_MISMATCH;
    case core::PassdbResult::UserUnknown: return PASSDB_RESULT_USER_UNKNOWN;
    case core::PassdbResult::UserDisabled: return PASSDB_RESULT_USER_DISABLED;
    case core::PassdbResult::SchemeNotAvailable: return PASSDB_RESULT_SCHEME_NOT_AVAILABLE;
    case core::PassdbResult::InternalFailure: break;
    }
    return PASSDB_RESULT_INTERNAL_FAILURE;
}

core::PassdbResult from_dovecot(enum passdb_result result)
{
    switch (result) {
    case PASSDB_RESULT_NEXT: return core::PassdbResult::Next;
    case PASSDB_RESULT_OK: return core::PassdbResult::Ok;
    case PASSDB_RESULT_PASSWORD_MISMATCH: return core::PassdbResult::PasswordMismatch;
    case PASSDB_RESULT_USER_UNKNOWN: return core::PassdbResult::UserUnknown;
    case PASSDB_RESULT_USER_DISABLED:
    case PASSDB_RESULT_PASS_EXPIRED: return core::PassdbResult::UserDisabled;
    case PASSDB_RESULT_SCHEME_NOT_AVAILABLE: return core::PassdbResult::SchemeNotAvailable;
    case PASSDB_RESULT_INTERNAL_FAILURE: break;
    }
    return core::PassdbResult::InternalFailure;
}

// Field names were checked by the bridge; checked again here because a bad
// one would trip an assertion inside Dovecot.
void set_passdb_fields(struct auth_request *request, const core::Fields &fields,
                       const char *default_scheme)
{
    for (const auto &[key, value] : fields) {
        if (core::valid_auth_field_name(key))
            auth_request_set_field(request, key.c_str(), value.c_str(), default_scheme);
    }
}

// --- the request's memory of our policy (for on_auth_result) -----------------

const char kRequestKey[] = "dmr_mruby_auth";

struct request_ctx {
    struct auth_request *request;
    const char *policy;   // "rejected by policy: ..." or NULL
};

request_ctx *remember_request(struct auth_request *request)
{
    auto *ctx = static_cast<request_ctx *>(event_get_ptr(request->event, kRequestKey));
    if (ctx == nullptr) {
        ctx = p_new(request->pool, request_ctx, 1);
        ctx->request = request;
        event_set_ptr(request->event, kRequestKey, ctx);
    }
    return ctx;
}

// --- passdb ---------------------------------------------------------------------

// Where a lookup reports to: exactly one of the two callbacks is set.
struct lookup_reply {
    verify_plain_callback_t *verify;
    lookup_credentials_callback_t *credentials;
};

void reply(struct auth_request *request, const lookup_reply &to, core::PassdbResult result,
           const char *password = nullptr, const char *scheme = nullptr)
{
    if (to.verify != nullptr)
        to.verify(to_dovecot(result), request);
    else
        passdb_handle_credentials(to_dovecot(result), password, scheme, to.credentials, request);
}

AuthScript &script_of(struct auth_request *request)
{
    return *reinterpret_cast<mruby_passdb_module *>(request->passdb->passdb)->script;
}

// The authoritative stage: on_password_verify or on_passdb_lookup; without
// either, the next passdb decides.
void authoritative_lookup(struct auth_request *request, const char *password,
                          const lookup_reply &to)
{
    AuthScript &script = script_of(request);
    struct event *log_event = authdb_event(request);
    core::AuthOutput out;
    core::Verdict verdict;
    if (to.verify != nullptr && script.handles(core::Hook::PasswordVerify)) {
        core::AuthRequestInfo info = request_info(request);
        info.password = password;
        core::Event event{core::Hook::PasswordVerify};
        event.auth = &info;
        event.auth_output = &out;
        verdict = script.dispatch(event, log_event);
        core::PassdbResult result = core::password_verify_result(verdict, out);
        if (result == core::PassdbResult::Ok)
            set_passdb_fields(request, out.fields, script.args().default_scheme.c_str());
        else if (result == core::PassdbResult::PasswordMismatch)
            auth_request_log_password_mismatch(request, AUTH_SUBSYS_DB);
        else if (result == core::PassdbResult::UserDisabled)
            auth_request_set_field(request, "reason", verdict.text.c_str(), nullptr);
        reply(request, to, result);
        return;
    }
    if (!script.handles(core::Hook::PassdbLookup)) {
        reply(request, to,
              to.verify == nullptr && script.handles(core::Hook::PasswordVerify)
                  ? core::PassdbResult::SchemeNotAvailable   // cannot hand out a password
                  : core::PassdbResult::Next);
        return;
    }
    core::AuthRequestInfo info = request_info(request);
    core::Event event{core::Hook::PassdbLookup};
    event.auth = &info;
    event.auth_output = &out;
    verdict = script.dispatch(event, log_event);
    core::PassdbLookup lookup = core::passdb_lookup_result(verdict, out,
                                                           script.args().default_scheme);
    if (lookup.result == core::PassdbResult::UserDisabled)
        auth_request_set_field(request, "reason", verdict.text.c_str(), nullptr);
    if (lookup.result != core::PassdbResult::Ok) {
        reply(request, to, lookup.result);
        return;
    }
    set_passdb_fields(request, lookup.fields, script.args().default_scheme.c_str());
    if (lookup.password.empty()) {   // nopassword
        reply(request, to, core::PassdbResult::Ok);
        return;
    }
    if (to.verify == nullptr) {
        reply(request, to, core::PassdbResult::Ok, lookup.password.c_str(),
              lookup.scheme.c_str());
        return;
    }
    int ret = auth_request_password_verify(request, password, lookup.password.c_str(),
                                           lookup.scheme.c_str(), AUTH_SUBSYS_DB);
    reply(request, to, ret > 0 ? core::PassdbResult::Ok : core::PassdbResult::PasswordMismatch);
}

// After on_auth (and its delay): the verdict, then the authoritative stage.
void finish_lookup(struct auth_request *request, core::Verdict::Kind kind, const char *text,
                   const char *password, const lookup_reply &to)
{
    struct event *log_event = authdb_event(request);
    request_ctx *ctx = remember_request(request);
    switch (kind) {
    case core::Verdict::Kind::Reject:
        e_info(log_event, "mruby: rejected by policy: %s", text);
        ctx->policy = p_strconcat(request->pool, "rejected by policy: ", text, nullptr);
        // USER_DISABLED ends the lookup and keeps this reason for the client.
        auth_request_set_field(request, "reason", text, nullptr);
        reply(request, to, core::PassdbResult::UserDisabled);
        return;
    case core::Verdict::Kind::Tempfail:
    case core::Verdict::Kind::Disconnect:
        e_info(log_event, "mruby: temporary failure by policy: %s", text);
        ctx->policy = p_strconcat(request->pool, "temporary failure by policy: ", text, nullptr);
        reply(request, to, core::PassdbResult::InternalFailure);
        return;
    case core::Verdict::Kind::Continue:
        break;
    }
    authoritative_lookup(request, password, to);
}

// A tarpit: the request waits on a Dovecot timeout, so the process keeps
// serving every other login meanwhile.
struct delayed_lookup {
    struct delayed_lookup *prev, *next;
    struct auth_request *request;
    struct timeout *to;
    core::Verdict::Kind kind;
    const char *text;
    const char *password;
    lookup_reply reply_to;
};
struct delayed_lookup *delayed_lookups = nullptr;

void delay_finished(struct delayed_lookup *delayed)
{
    struct auth_request *request = delayed->request;
    timeout_remove(&delayed->to);
    DLLIST_REMOVE(&delayed_lookups, delayed);
    no_throw(authdb_event(request), "passdb lookup after delay", [&] {
        finish_lookup(request, delayed->kind, delayed->text, delayed->password,
                      delayed->reply_to);
    });
    auth_request_unref(&request);
}

void begin_lookup(struct auth_request *request, const char *password, const lookup_reply &to)
{
    AuthScript &script = script_of(request);
    script.refresh();
    // A tempfail must end the lookup: Dovecot's default
    // result_internalfail=continue would let the next passdb log the user in.
    if (request->passdb->result_internalfail == AUTH_DB_RULE_CONTINUE)
        request->passdb->result_internalfail = AUTH_DB_RULE_RETURN_FAIL;
    remember_request(request);

    core::Verdict verdict;
    core::AuthOutput out;
    if (script.handles(core::Hook::Auth)) {
        core::AuthRequestInfo info = request_info(request);
        core::Event event{core::Hook::Auth};
        event.auth = &info;
        event.auth_output = &out;
        verdict = script.dispatch(event, authdb_event(request));
        set_passdb_fields(request, out.fields, nullptr);
    }
    if (out.delay_ms == 0) {
        finish_lookup(request, verdict.kind, verdict.text.c_str(), password, to);
        return;
    }
    e_debug(authdb_event(request), "mruby: delaying for %u ms", out.delay_ms);
    auto *delayed = p_new(request->pool, struct delayed_lookup, 1);
    delayed->request = request;
    delayed->kind = verdict.kind;
    delayed->text = p_strdup(request->pool, verdict.text.c_str());
    delayed->password = p_strdup(request->pool, password);
    delayed->reply_to = to;
    auth_request_ref(request);
    delayed->to = (timeout_add_short)(out.delay_ms, __FILE__, __LINE__,
                                      reinterpret_cast<timeout_callback_t *>(delay_finished),
                                      delayed);
    DLLIST_PREPEND(&delayed_lookups, delayed);
}

void mruby_verify_plain(struct auth_request *request, const char *password,
                        verify_plain_callback_t *callback)
{
    lookup_reply to{callback, nullptr};
    bool ok = no_throw(authdb_event(request), "passdb lookup",
                       [&] { begin_lookup(request, password, to); });
    if (!ok)
        callback(PASSDB_RESULT_INTERNAL_FAILURE, request);
}

void mruby_lookup_credentials(struct auth_request *request,
                              lookup_credentials_callback_t *callback)
{
    lookup_reply to{nullptr, callback};
    bool ok = no_throw(authdb_event(request), "passdb lookup",
                       [&] { begin_lookup(request, nullptr, to); });
    if (!ok)
        passdb_handle_credentials(PASSDB_RESULT_INTERNAL_FAILURE, nullptr, nullptr, callback,
                                  request);
}

// A bad configuration stops auth at start-up, as Dovecot's own drivers do.
core::AuthDriverArgs parse_or_die(const char *kind, const char *args)
{
    std::vector<std::string> errors;
    core::AuthDriverArgs parsed = core::AuthDriverArgs::parse(args == nullptr ? "" : args, errors);
    if (!errors.empty()) {
        std::string all;
        for (const std::string &e : errors)
            all += (all.empty() ? "" : "; ") + e;
        i_fatal("%s mruby: %s", kind, all.c_str());
    }
    return parsed;
}

// The auth cache stays off unless the args name a cache_key: a policy
// decision must not be answered from the cache.
const char *cache_key_of(pool_t pool, const core::AuthDriverArgs &args)
{
    return args.cache_key.empty() ? nullptr : auth_cache_parse_key(pool, args.cache_key.c_str());
}

// Start-up entry points: nothing C++ may throw through Dovecot's frames; a
// failure here is fatal for auth anyway, as for Dovecot's own drivers.
template <typename Fn> void at_startup(const char *what, Fn &&fn)
{
    if (!no_throw(auth_event, what, std::forward<Fn>(fn)))
        i_fatal("mruby: %s failed", what);
}

struct passdb_module *mruby_passdb_preinit(pool_t pool, const char *args)
{
    auto *module = p_new(pool, struct mruby_passdb_module, 1);
    at_startup("passdb preinit", [&] {
        core::AuthDriverArgs parsed = parse_or_die("passdb", args);
        module->module.blocking = parsed.blocking;
        module->module.default_cache_key = cache_key_of(pool, parsed);
        module->module.default_pass_scheme = p_strdup(pool, parsed.default_scheme.c_str());
    });
    return &module->module;
}

// A tempfail (from a verdict, mruby_on_error, or an auth-worker that died)
// must end the lookup: with Dovecot's default result_internalfail=continue
// the next passdb would log the user in. Applied to every passdb block of
// this module, in the auth master too (with blocking=yes it sees only the
// worker's answer).
void tempfail_ends_lookup(struct auth_passdb *passdbs, const struct passdb_module *module)
{
    for (struct auth_passdb *passdb = passdbs; passdb != nullptr; passdb = passdb->next) {
        if (passdb->passdb == module && passdb->result_internalfail == AUTH_DB_RULE_CONTINUE)
            passdb->result_internalfail = AUTH_DB_RULE_RETURN_FAIL;
    }
}

// The script is loaded here, not in preinit: init runs in every process that
// serves lookups (auth and each auth-worker).
void mruby_passdb_init(struct passdb_module *_module)
{
    auto *module = reinterpret_cast<mruby_passdb_module *>(_module);
    at_startup("passdb init", [&] {
        module->script = &auth_script_for(parse_or_die("passdb", module->module.args));
    });
    if (array_is_created(&auths)) {
        struct auth *const *auth;
        array_foreach(&auths, auth) {
            tempfail_ends_lookup((*auth)->masterdbs, _module);
            tempfail_ends_lookup((*auth)->passdbs, _module);
        }
    }
}

void mruby_passdb_deinit(struct passdb_module *) {}

struct passdb_module_interface mruby_passdb = {
    "mruby",
    mruby_passdb_preinit,
    mruby_passdb_init,
    mruby_passdb_deinit,
    mruby_verify_plain,
    mruby_lookup_credentials,
    nullptr,
};

// --- userdb ----------------------------------------------------------------------

void userdb_lookup(struct auth_request *request, userdb_callback_t *callback)
{
    AuthScript &script = *reinterpret_cast<mruby_userdb_module *>(request->userdb->userdb)->script;
    script.refresh();
    if (!script.handles(core::Hook::UserdbLookup)) {
        callback(USERDB_RESULT_USER_UNKNOWN, request);
        return;
    }
    core::AuthRequestInfo info = request_info(request);
    core::AuthOutput out;
    core::Event event{core::Hook::UserdbLookup};
    event.auth = &info;
    event.auth_output = &out;
    core::Verdict verdict = script.dispatch(event, authdb_event(request));
    switch (core::userdb_result(verdict, out)) {
    case core::UserdbResult::Ok:
        for (const auto &[key, value] : out.fields) {
            if (core::valid_auth_field_name(key))
                auth_request_set_userdb_field(request, key.c_str(), value.c_str());
        }
        callback(USERDB_RESULT_OK, request);
        return;
    case core::UserdbResult::UserUnknown:
        callback(USERDB_RESULT_USER_UNKNOWN, request);
        return;
    case core::UserdbResult::InternalFailure:
        if (verdict.decided())
            e_info(authdb_event(request), "mruby: userdb temporary failure: %s",
                   verdict.text.c_str());
        callback(USERDB_RESULT_INTERNAL_FAILURE, request);
        return;
    }
}

void mruby_userdb_lookup(struct auth_request *request, userdb_callback_t *callback)
{
    bool ok = no_throw(authdb_event(request), "userdb lookup",
                       [&] { userdb_lookup(request, callback); });
    if (!ok)
        callback(USERDB_RESULT_INTERNAL_FAILURE, request);
}

struct userdb_module *mruby_userdb_preinit(pool_t pool, const char *args)
{
    auto *module = p_new(pool, struct mruby_userdb_module, 1);
    at_startup("userdb preinit", [&] {
        core::AuthDriverArgs parsed = parse_or_die("userdb", args);
        module->module.blocking = parsed.blocking;
        module->module.default_cache_key = cache_key_of(pool, parsed);
    });
    return &module->module;
}

void mruby_userdb_init(struct userdb_module *_module)
{
    auto *module = reinterpret_cast<mruby_userdb_module *>(_module);
    at_startup("userdb init", [&] {
        module->script = &auth_script_for(parse_or_die("userdb", module->module.args));
    });
}

void mruby_userdb_deinit(struct userdb_module *) {}

struct userdb_module_interface mruby_userdb = {
    "mruby",
    mruby_userdb_preinit,
    mruby_userdb_init,
    mruby_userdb_deinit,
    mruby_userdb_lookup,
    nullptr,
    nullptr,
    nullptr,
};

// --- on_auth_result ---------------------------------------------------------------
// Dovecot 2.3 reports the end of every attempt (success, failure, tempfail)
// with the auth_request_finished event, but sends it through e_debug: it is
// only sent when something wants it (debug logging, or a stats metric that
// named it). We add it to the global debug send filter, merged with whatever
// the stats client installed, and re-merge whenever that filter is replaced
// (checked on every event creation: one pointer comparison).

struct event_filter *our_send_filter = nullptr;

void ensure_send_filter()
{
    struct event_filter *current = event_get_global_debug_send_filter();
    if (current != nullptr && current == our_send_filter)
        return;
    struct event_filter *filter = event_filter_create();
    if (current != nullptr)
        event_filter_merge(filter, current);
    const char *error;
    if (event_filter_parse("event=auth_request_finished", filter, &error) < 0) {
        e_error(auth_event, "mruby: cannot watch auth_request_finished: %s", error);
        event_filter_unref(&filter);
        return;
    }
    event_set_global_debug_send_filter(filter);
    if (our_send_filter != nullptr)
        event_filter_unref(&our_send_filter);
    our_send_filter = filter;   // keeps our reference
}

const char *field_str(struct event *event, const char *key)
{
    const char *value = event_find_field_recursive_str(event, key);
    return value == nullptr ? "" : value;
}

// The finished event carries the request's fields; the request itself (for
// the precise reason) only when our passdb served it in this process.
core::AuthRequestInfo result_info(struct event *event)
{
    struct event *parent = event_get_parent(event);
    auto *ctx = parent == nullptr ? nullptr
                                  : static_cast<request_ctx *>(event_get_ptr(parent, kRequestKey));
    core::AuthRequestInfo info;
    if (ctx != nullptr) {
        const struct auth_request *request = ctx->request;
        info = request_info(request);
        info.success = request->fields.successful && !request->failed;
        if (info.success)
            info.reason.clear();
        else if (ctx->policy != nullptr)
            info.reason = ctx->policy;
        else if (request->internal_failure)
            info.reason = "internal failure";
        else if (request->passdb_result == PASSDB_RESULT_OK)
            info.reason = "authentication failed";
        else
            info.reason = core::passdb_result_reason(from_dovecot(request->passdb_result));
        info.internal_failure = !info.success && ctx->policy == nullptr &&
                                (request->internal_failure ||
                                 request->passdb_result == PASSDB_RESULT_INTERNAL_FAILURE);
        return info;
    }
    // blocking=yes: the lookup ran in an auth-worker; the event still has
    // everything but the precise passdb result.
    info.user = field_str(event, "user");
    info.service = field_str(event, "service");
    info.remote_ip = field_str(event, "remote_ip");
    info.local_ip = field_str(event, "local_ip");
    info.remote_port = static_cast<uint16_t>(atoi(field_str(event, "remote_port")));
    info.local_port = static_cast<uint16_t>(atoi(field_str(event, "local_port")));
    info.mechanism = field_str(event, "mechanism");
    info.session_id = field_str(event, "session");
    info.client_id = field_str(event, "client_id");
    const char *transport = field_str(event, "transport");
    info.secured = strcmp(transport, "TLS") == 0 || strcmp(transport, "trusted") == 0;
    info.success = strcmp(field_str(event, "success"), "yes") == 0;
    if (!info.success) {
        const char *error = field_str(event, "error");
        info.reason = *error != '\0' ? error : "authentication failed";
        // Dovecot's own wording for an internal error in the finished event.
        info.internal_failure = info.reason == "internal failure";
    }
    return info;
}

void run_auth_result(struct event *event)
{
    bool wanted = false;
    for_each_auth_script([&](AuthScript &script) {
        // With blocking=yes no lookup runs here to notice a changed file.
        script.refresh();
        wanted = wanted || script.handles(core::Hook::AuthResult);
    });
    if (!wanted)
        return;
    core::AuthRequestInfo info = result_info(event);
    core::Event result{core::Hook::AuthResult};
    result.auth = &info;
    // `event` is a passthrough event that lives only while it is sent: log
    // through the request's own event, its parent.
    struct event *log_event = event_get_parent(event);
    for_each_auth_script([&](AuthScript &script) {
        if (script.handles(core::Hook::AuthResult))
            script.dispatch(result, log_event != nullptr ? log_event : auth_event);
    });
}

bool in_auth_result = false;

bool auth_event_callback(struct event *event, enum event_callback_type type,
                         struct failure_context *, const char *, va_list)
{
    if (type == EVENT_CALLBACK_TYPE_CREATE) {
        ensure_send_filter();
        return true;
    }
    if (type != EVENT_CALLBACK_TYPE_SEND || in_auth_result || event->sending_name == nullptr ||
        strcmp(event->sending_name, "auth_request_finished") != 0)
        return true;
    in_auth_result = true;   // log lines of the handler are events too
    no_throw(event, "auth result", [&] { run_auth_result(event); });
    in_auth_result = false;
    return true;
}

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT void authdb_mruby_init(struct module *)
{
    passdb_register_module(&dmr::dovecot::mruby_passdb);
    userdb_register_module(&dmr::dovecot::mruby_userdb);
    event_register_callback(dmr::dovecot::auth_event_callback);
    dmr::dovecot::ensure_send_filter();
}

DMR_EXPORT void authdb_mruby_deinit(void)
{
    using namespace dmr::dovecot;
    event_unregister_callback(auth_event_callback);
    if (our_send_filter != nullptr) {
        if (event_get_global_debug_send_filter() == our_send_filter)
            event_unset_global_debug_send_filter();
        event_filter_unref(&our_send_filter);
    }
    while (delayed_lookups != nullptr) {
        struct delayed_lookup *delayed = delayed_lookups;
        timeout_remove(&delayed->to);
        DLLIST_REMOVE(&delayed_lookups, delayed);
        auth_request_unref(&delayed->request);
    }
    passdb_unregister_module(&mruby_passdb);
    userdb_unregister_module(&mruby_userdb);
    auth_scripts_clear();
}
