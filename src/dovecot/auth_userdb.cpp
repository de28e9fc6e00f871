// The userdb "mruby": on_userdb_lookup. See docs/auth.md.
#include "dovecot/auth_module.hpp"

namespace dmr::dovecot::authdb {
namespace {

struct mruby_userdb_module {
    struct userdb_module module;
    core::AuthDriverArgs *args;   // from preinit (args_or_die)
    AuthScript *script;
};

void userdb_lookup(struct auth_request *request, userdb_callback_t *callback)
{
    AuthScript &script = *reinterpret_cast<mruby_userdb_module *>(request->userdb->userdb)->script;
    script.refresh();
    if (!script.handles(core::Hook::UserdbLookup)) {
        callback(USERDB_RESULT_USER_UNKNOWN, request);
        return;
    }
#if DMR_DOVECOT_VERSION >= 204
    // The block's `fields { }`: the driver's to apply on 2.4 (as passdb).
    if (auth_request_set_userdb_fields(request, nullptr) < 0) {
        callback(USERDB_RESULT_INTERNAL_FAILURE, request);
        return;
    }
#endif
    core::AuthRequestInfo info = request_info(request);
    core::AuthOutput out;
    auto event = core::Event::make<core::Hook::UserdbLookup>(info, out);
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

#if DMR_DOVECOT_VERSION >= 204
// The block's settings; Dovecot sets blocking (userdb_use_worker) after
// this. No default_cache_key: the auth cache stays off (docs/auth.md).
int mruby_userdb_preinit(pool_t pool, struct event *event, struct userdb_module **module_r,
                         const char **)
{
    auto *module = p_new(pool, struct mruby_userdb_module, 1);
    at_startup("userdb preinit", [&] { module->args = args_or_die("userdb", event); });
    *module_r = &module->module;
    return 0;
}
#else
struct userdb_module *mruby_userdb_preinit(pool_t pool, const char *args)
{
    auto *module = p_new(pool, struct mruby_userdb_module, 1);
    at_startup("userdb preinit", [&] {
        module->args = args_or_die("userdb", args);
        module->module.blocking = module->args->blocking;
        module->module.default_cache_key = cache_key_of(pool, *module->args);
    });
    return &module->module;
}
#endif

void mruby_userdb_init(struct userdb_module *_module)
{
    auto *module = reinterpret_cast<mruby_userdb_module *>(_module);
    at_startup("userdb init", [&] {
        module->script = &auth_script_for(*module->args);
    });
}

void mruby_userdb_deinit(struct userdb_module *_module)
{
    auto *module = reinterpret_cast<mruby_userdb_module *>(_module);
    delete module->args;
    module->args = nullptr;
}

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

} // namespace

void userdb_register() { userdb_register_module(&mruby_userdb); }
void userdb_unregister() { userdb_unregister_module(&mruby_userdb); }

} // namespace dmr::dovecot::authdb
