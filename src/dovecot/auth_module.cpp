// libauthdb_mruby.so: the passdb and userdb driver "mruby" for Dovecot's auth
// process (and auth-worker processes with blocking=yes). See docs/auth.md.
//
//  passdb: on_auth (policy: reject / tempfail / delay / set, no verdict =
//          the next passdb decides), then, if the script is authoritative,
//          on_password_verify or on_passdb_lookup (auth_passdb.cpp).
//  userdb: on_userdb_lookup (auth_userdb.cpp).
//  every attempt: on_auth_result, from Dovecot's auth_request_finished event
//          (auth_result.cpp).
//
// This file is the glue: module init/deinit, and what the sections share.
#include "dovecot/auth_module.hpp"
#include "core/store_registry.hpp"
#include "dovecot/plugin_settings.hpp"
#include "store/backends.hpp"   // the composition root: registers the store backends

#include <cstring>
#include <vector>

namespace dmr::dovecot::authdb {

// --- values at the edge ------------------------------------------------------

namespace {

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

} // namespace

core::AuthRequestInfo request_info(const struct auth_request *request)
{
    const struct auth_request_fields &f = request->fields;
    core::AuthRequestInfo info;
    info.user = f.user == nullptr ? "" : f.user;
#if DMR_DOVECOT_VERSION >= 204
    info.service = f.protocol == nullptr ? "" : f.protocol;   // 2.4 calls it protocol
#else
    info.service = f.service == nullptr ? "" : f.service;
#endif
    info.remote_ip = ip_to_string(&f.remote_ip);
    info.local_ip = ip_to_string(&f.local_ip);
    info.remote_port = f.remote_port;
    info.local_port = f.local_port;
    info.mechanism = f.mech_name == nullptr ? "" : f.mech_name;
    // login-common: secured = trusted || remote == local, and TLS turns it
    // into secured=tls whatever the address: only plain "secured" says trusted.
#if DMR_DOVECOT_VERSION >= 204
    info.secured = f.conn_secured != AUTH_REQUEST_CONN_SECURED_NONE;
    info.trusted = f.conn_secured == AUTH_REQUEST_CONN_SECURED;
#else
    info.secured = f.secured != AUTH_REQUEST_SECURED_NONE;
    info.trusted = f.secured == AUTH_REQUEST_SECURED;
#endif
    info.real_remote_ip = ip_to_string(&f.real_remote_ip);
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

// --- the request's memory of our policy (for on_auth_result) -----------------

namespace {
const char kRequestKey[] = "dmr_mruby_auth";
} // namespace

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

request_ctx *remembered_request(struct event *event)
{
    return static_cast<request_ctx *>(event_get_ptr(event, kRequestKey));
}

// --- driver arguments --------------------------------------------------------------

namespace {

// The store spec too, now rather than at the first login that touches
// state (creating a store never connects nor opens files).
core::AuthDriverArgs *checked_or_die(const char *kind, core::AuthDriverArgs parsed,
                                     std::vector<std::string> &errors, const char *store_name)
{
    std::string store_error;
    core::StoreOptions check;
    check.password = parsed.store_password_file.empty() ? parsed.store_password : "(file)";
    if (core::store_registry().open(parsed.store, store_error, check) == nullptr)
        errors.push_back(std::string(store_name) + "=" + parsed.store + ": " + store_error);
    if (!errors.empty()) {
        std::string all;
        for (const std::string &e : errors)
            all += (all.empty() ? "" : "; ") + e;
        i_fatal("%s mruby: %s", kind, all.c_str());
    }
    return new core::AuthDriverArgs(std::move(parsed));
}

} // namespace

#if DMR_DOVECOT_VERSION >= 204
core::AuthDriverArgs *args_or_die(const char *kind, struct event *event)
{
    PluginSettings block = PluginSettings::for_event(event);
    if (!block.error().empty())
        i_fatal("%s mruby: %s", kind, block.error().c_str());
    // mruby_script unset in the block is the global one: one file may hold
    // the mail and the auth handlers, as on 2.3 (file= naming the same file).
    std::vector<std::string> errors;
    core::AuthDriverArgs parsed = core::AuthDriverArgs::from_settings(block.lookup(), errors);
    return checked_or_die(kind, std::move(parsed), errors, "mruby_store");
}
#else
core::AuthDriverArgs *args_or_die(const char *kind, const char *args)
{
    std::vector<std::string> errors;
    core::AuthDriverArgs parsed = core::AuthDriverArgs::parse(args == nullptr ? "" : args, errors);
    return checked_or_die(kind, std::move(parsed), errors, "store");
}

const char *cache_key_of(pool_t pool, const core::AuthDriverArgs &args)
{
    return args.cache_key.empty() ? nullptr : auth_cache_parse_key(pool, args.cache_key.c_str());
}
#endif

} // namespace dmr::dovecot::authdb

DMR_EXPORT void authdb_mruby_init(struct module *)
{
    using namespace dmr::dovecot::authdb;
    passdb_register();
    userdb_register();
    auth_result_init();
    dmr::dovecot::auth_async_init();
    dmr::store::register_backends_on_demand(dmr::core::store_registry());
}

DMR_EXPORT void authdb_mruby_deinit(void)
{
    using namespace dmr::dovecot::authdb;
    auth_result_deinit();
    passdb_unregister();
    dmr::dovecot::auth_async_deinit();
    userdb_unregister();
    dmr::dovecot::auth_scripts_clear();
}
