// The passdb "mruby": on_auth (policy: reject / tempfail / delay / set, no
// verdict = the next passdb decides), then, if the script is authoritative,
// on_password_verify or on_passdb_lookup. See docs/auth.md.
#include "dovecot/auth_module.hpp"

namespace dmr::dovecot::authdb {
namespace {

struct mruby_passdb_module {
    struct passdb_module module;
    core::AuthDriverArgs *args;   // from preinit (args_or_die)
    AuthScript *script;
};

#if DMR_DOVECOT_VERSION >= 204
// 2.4 names the subsystem by the request's current authdb event.
void log_password_mismatch(struct auth_request *request)
{
    auth_request_db_log_password_mismatch(request);
}
bool password_matches(struct auth_request *request, const char *password, const char *crypted,
                      const char *scheme)
{
    return auth_request_db_password_verify(request, password, crypted, scheme) ==
           PASSDB_RESULT_OK;
}
#else
void log_password_mismatch(struct auth_request *request)
{
    auth_request_log_password_mismatch(request, AUTH_SUBSYS_DB);
}
bool password_matches(struct auth_request *request, const char *password, const char *crypted,
                      const char *scheme)
{
    return auth_request_password_verify(request, password, crypted, scheme, AUTH_SUBSYS_DB) > 0;
}
#endif

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

// The answer to a decided verdict: a UserDisabled one keeps the verdict's
// text as the reason the client sees (core::policy_result).
void reply_refusal(struct auth_request *request, const lookup_reply &to,
                   core::PassdbResult result, const core::Verdict &verdict)
{
    if (result == core::PassdbResult::UserDisabled)
        auth_request_set_field(request, "reason", verdict.text.c_str(), nullptr);
    reply(request, to, result);
}

AuthScript &script_of(struct auth_request *request)
{
    return *reinterpret_cast<mruby_passdb_module *>(request->passdb->passdb)->script;
}

// 2.4: the `fields { }` of a passdb block are the driver's to apply, before
// its lookup, as Dovecot's own drivers do (2.3 applied default_fields and
// override_fields itself). False: they could not be expanded (logged).
bool apply_block_fields(struct auth_request *request)
{
#if DMR_DOVECOT_VERSION >= 204
    return auth_request_set_passdb_fields(request, nullptr) == 0;
#else
    (void)request;
    return true;
#endif
}

// The authoritative stage: on_password_verify or on_passdb_lookup; without
// either, the next passdb decides.
void authoritative_lookup(struct auth_request *request, const char *password,
                          const lookup_reply &to)
{
    AuthScript &script = script_of(request);
    if (((to.verify != nullptr && script.handles(core::Hook::PasswordVerify)) ||
         script.handles(core::Hook::PassdbLookup)) &&
        !apply_block_fields(request)) {
        reply(request, to, core::PassdbResult::InternalFailure);
        return;
    }
    struct event *log_event = authdb_event(request);
    core::AuthOutput out;
    core::Verdict verdict;
    if (to.verify != nullptr && script.handles(core::Hook::PasswordVerify)) {
        core::AuthRequestInfo info = request_info(request);
        info.password = password;
        auto event = core::Event::make<core::Hook::PasswordVerify>(info, out);
        verdict = script.dispatch(event, log_event);
        core::PassdbResult result = core::password_verify_result(verdict, out);
        if (result == core::PassdbResult::Ok)
            set_passdb_fields(request, out.fields, script.args().default_scheme.c_str());
        else if (result == core::PassdbResult::PasswordMismatch)
            log_password_mismatch(request);
        reply_refusal(request, to, result, verdict);
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
    auto event = core::Event::make<core::Hook::PassdbLookup>(info, out);
    verdict = script.dispatch(event, log_event);
    core::PassdbLookup lookup = core::passdb_lookup_result(verdict, out,
                                                           script.args().default_scheme);
    if (lookup.result != core::PassdbResult::Ok) {
        reply_refusal(request, to, lookup.result, verdict);
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
    bool ok = password_matches(request, password, lookup.password.c_str(), lookup.scheme.c_str());
    reply(request, to, ok ? core::PassdbResult::Ok : core::PassdbResult::PasswordMismatch);
}

// After on_auth (and its delay): core says what the verdict answers (and
// why); without a decision, the authoritative stage.
void finish_lookup(struct auth_request *request, const core::Verdict &verdict,
                   const char *password, const lookup_reply &to)
{
    core::PassdbResult result = core::policy_result(verdict);
    if (result == core::PassdbResult::Next) {
        authoritative_lookup(request, password, to);
        return;
    }
    std::string reason = core::policy_reason(verdict);
    e_info(authdb_event(request), "mruby: %s", reason.c_str());
    remember_request(request)->policy = p_strdup(request->pool, reason.c_str());
    // USER_DISABLED ends the lookup and keeps the verdict's text for the client.
    reply_refusal(request, to, result, verdict);
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
        core::Verdict verdict{delayed->kind, delayed->text, {}};
        finish_lookup(request, verdict, delayed->password, delayed->reply_to);
    });
    auth_request_unref(&request);
}

// What on_auth answered; then the rest of the lookup, as before.
void after_on_auth(struct auth_request *request, const core::Verdict &verdict,
                   const core::AuthOutput &out, const char *password, const lookup_reply &to)
{
    set_passdb_fields(request, out.fields, nullptr);
    if (!out.shadowed.empty())   // for on_auth_result (and the auth.login record)
        remember_request(request)->shadowed = p_strdup(request->pool, out.shadowed.c_str());
    if (out.delay_ms == 0) {
        finish_lookup(request, verdict, password, to);
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

// on_auth runs on a coroutine of its own (auth_async.hpp): a store call
// that waits for Redis suspends it and the process serves other logins; the
// lookup goes on when the handler has answered.
struct on_auth_call {
    struct auth_request *request;
    const char *password;
    lookup_reply reply_to;
    AuthScript *script;
    core::AuthRequestInfo info;
    core::AuthOutput out;
    core::Verdict verdict;
    bool failed = false;
};

void on_auth_done(on_auth_call *call)
{
    struct auth_request *request = call->request;
    bool ok = !call->failed &&
              no_throw(authdb_event(request), "passdb lookup", [&] {
                  after_on_auth(request, call->verdict, call->out, call->password,
                                call->reply_to);
              });
    if (!ok)
        reply(request, call->reply_to, core::PassdbResult::InternalFailure);
    delete call;
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

    if (!script.handles(core::Hook::Auth)) {
        after_on_auth(request, core::Verdict{}, core::AuthOutput{}, password, to);
        return;
    }
    auto *call = new on_auth_call{request, p_strdup(request->pool, password), to, &script,
                                  request_info(request), {}, {}, false};
    auth_request_ref(request);
    run_on_coroutine(
        script.store_may_wait(),
        [call] {
            call->failed = !no_throw(authdb_event(call->request), "passdb lookup", [&] {
                auto event = core::Event::make<core::Hook::Auth>(call->info, call->out);
                call->verdict = call->script->dispatch(event, authdb_event(call->request));
            });
        },
        [call] { on_auth_done(call); });
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

#if DMR_DOVECOT_VERSION >= 204
// The block's settings; Dovecot sets blocking (passdb_use_worker) and
// default_pass_scheme (passdb_default_password_scheme) after this. No
// default_cache_key: the auth cache stays off (docs/auth.md).
int mruby_passdb_preinit(pool_t pool, struct event *event, struct passdb_module **module_r,
                         const char **)
{
    auto *module = p_new(pool, struct mruby_passdb_module, 1);
    at_startup("passdb preinit", [&] { module->args = args_or_die("passdb", event); });
    *module_r = &module->module;
    return 0;
}
#else
struct passdb_module *mruby_passdb_preinit(pool_t pool, const char *args)
{
    auto *module = p_new(pool, struct mruby_passdb_module, 1);
    at_startup("passdb preinit", [&] {
        module->args = args_or_die("passdb", args);
        module->module.blocking = module->args->blocking;
        module->module.default_cache_key = cache_key_of(pool, *module->args);
        module->module.default_pass_scheme =
            p_strdup(pool, module->args->default_scheme.c_str());
    });
    return &module->module;
}
#endif

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
#if DMR_DOVECOT_VERSION >= 204
        // passdb_default_password_scheme, set by Dovecot after preinit.
        if (module->module.default_pass_scheme != nullptr)
            module->args->default_scheme = module->module.default_pass_scheme;
#endif
        module->script = &auth_script_for(*module->args);
    });
    if (array_is_created(&auths)) {
        struct auth *const *auth;
        array_foreach(&auths, auth) {
            tempfail_ends_lookup((*auth)->masterdbs, _module);
            tempfail_ends_lookup((*auth)->passdbs, _module);
        }
    }
}

void mruby_passdb_deinit(struct passdb_module *_module)
{
    auto *module = reinterpret_cast<mruby_passdb_module *>(_module);
    delete module->args;
    module->args = nullptr;
}

struct passdb_module_interface mruby_passdb = {
    "mruby",
    mruby_passdb_preinit,
    mruby_passdb_init,
    mruby_passdb_deinit,
    mruby_verify_plain,
    mruby_lookup_credentials,
    nullptr,
};

} // namespace

void passdb_register() { passdb_register_module(&mruby_passdb); }

void passdb_unregister()
{
    while (delayed_lookups != nullptr) {
        struct delayed_lookup *delayed = delayed_lookups;
        timeout_remove(&delayed->to);
        DLLIST_REMOVE(&delayed_lookups, delayed);
        auth_request_unref(&delayed->request);
    }
    passdb_unregister_module(&mruby_passdb);
}

} // namespace dmr::dovecot::authdb
