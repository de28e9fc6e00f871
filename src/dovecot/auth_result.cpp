// on_auth_result: every attempt (success, failure, tempfail), whichever passdb
// decided it. See docs/auth.md.
//
// Dovecot 2.3 reports the end of every attempt with the auth_request_finished
// event, but sends it through e_debug: it is only sent when something wants
// it (debug logging, or a stats metric that named it). We add it to the
// global debug send filter, merged with whatever the stats client installed,
// and re-merge whenever that filter is replaced (checked on every event
// creation: one pointer comparison).
#include "dovecot/auth_module.hpp"

#include <cstdlib>
#include <cstring>

namespace dmr::dovecot::authdb {
namespace {

struct event_filter *our_send_filter = nullptr;

void ensure_send_filter()
{
    struct event_filter *current = event_get_global_debug_send_filter();
    if (current != nullptr && current == our_send_filter)
        return;
    struct event_filter *filter = event_filter_create();
    if (current != nullptr)
#if DMR_DOVECOT_VERSION >= 204
        event_filter_merge(filter, current, EVENT_FILTER_MERGE_OP_OR);
#else
        event_filter_merge(filter, current);
#endif
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
    request_ctx *ctx = parent == nullptr ? nullptr : remembered_request(parent);
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
        if (ctx->shadowed != nullptr)
            info.shadowed = ctx->shadowed;
        info.internal_failure = !info.success && ctx->policy == nullptr &&
                                (request->internal_failure ||
                                 request->passdb_result == PASSDB_RESULT_INTERNAL_FAILURE);
        return info;
    }
    // blocking=yes: the lookup ran in an auth-worker; the event still has
    // everything but the precise passdb result.
    info.user = field_str(event, "user");
#if DMR_DOVECOT_VERSION >= 204
    info.service = field_str(event, "protocol");
#else
    info.service = field_str(event, "service");
#endif
    info.remote_ip = field_str(event, "remote_ip");
    info.local_ip = field_str(event, "local_ip");
    info.remote_port = static_cast<uint16_t>(atoi(field_str(event, "remote_port")));
    info.local_port = static_cast<uint16_t>(atoi(field_str(event, "local_port")));
    info.mechanism = field_str(event, "mechanism");
    info.session_id = field_str(event, "session");
    info.client_id = field_str(event, "client_id");
    const char *transport = field_str(event, "transport");
#if DMR_DOVECOT_VERSION >= 204
    const char *trusted = "secured";   // Dovecot's word for it
#else
    const char *trusted = "trusted";
#endif
    info.secured = strcmp(transport, "TLS") == 0 || strcmp(transport, trusted) == 0;
    info.trusted = strcmp(transport, trusted) == 0;
    info.real_remote_ip = field_str(event, "real_remote_ip");
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
    // On a coroutine (auth_async.hpp): a handler that waits for its store
    // lets the process serve other logins; nothing waits for its end.
    struct call {
        core::AuthRequestInfo info;
        struct event *log_event;
    };
    auto *c = new call{result_info(event), nullptr};
    // `event` is a passthrough event that lives only while it is sent: log
    // through the request's own event, its parent (kept until the end).
    struct event *log_event = event_get_parent(event);
    c->log_event = log_event != nullptr ? log_event : auth_event;
    event_ref(c->log_event);
    bool may_wait = false;
    for_each_auth_script([&](AuthScript &script) {
        may_wait = may_wait || (script.handles(core::Hook::AuthResult) && script.store_may_wait());
    });
    run_on_coroutine(
        may_wait,
        [c] {
            no_throw(c->log_event, "auth result", [&] {
                auto result = core::Event::make<core::Hook::AuthResult>(c->info);
                for_each_auth_script([&](AuthScript &script) {
                    if (script.handles(core::Hook::AuthResult))
                        script.dispatch(result, c->log_event);
                });
            });
        },
        [c] {
            event_unref(&c->log_event);
            delete c;
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

void auth_result_init()
{
    event_register_callback(auth_event_callback);
    ensure_send_filter();
}

void auth_result_deinit()
{
    event_unregister_callback(auth_event_callback);
    if (our_send_filter != nullptr) {
        if (event_get_global_debug_send_filter() == our_send_filter)
            event_unset_global_debug_send_filter();
        event_filter_unref(&our_send_filter);
    }
}

} // namespace dmr::dovecot::authdb
