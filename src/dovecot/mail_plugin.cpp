// lib90_mruby_plugin.so: session start/end and mailbox open for the client
// sessions of the services mruby_services names (imap and pop3 by default;
// the plugin is loaded into every mail process: lmtp, doveadm ...). Hooks live
// in one static struct; the policy work is in MailSession and core.
#include "core/settings.hpp"
#include "core/text.hpp"
#include "store/backends.hpp"   // the composition root: registers the store backends
#include "dovecot/mail_session.hpp"

#include <tuple>

namespace dmr::dovecot {
namespace {

struct mruby_user {
    union mail_user_module_context module_ctx;
    MailSession *session;
};

struct mruby_mailbox {
    union mailbox_module_context module_ctx;
};

// Per mail object (IMAP: one per FETCH command's search; POP3: one per
// RETR/TOP): the message whose read was reported last, so a command reading
// one message several times (BODY[] BODY[1], or Dovecot reopening the stream)
// is one read.
struct mruby_mail {
    union mail_module_context module_ctx;
    MailSession *session;
    uint32_t reported_uid;   // 0: nothing reported yet
};

MODULE_CONTEXT_DEFINE_INIT(mruby_user_module, &mail_user_module_register);
MODULE_CONTEXT_DEFINE_INIT(mruby_storage_module, &mail_storage_module_register);
MODULE_CONTEXT_DEFINE_INIT(mruby_mail_module, &mail_module_register);

MailSession *session_of(struct mail_user *user)
{
    auto *ctx = module_context<mruby_user>(user, mruby_user_module);
    return ctx == nullptr ? nullptr : ctx->session;
}

void mruby_user_deinit(struct mail_user *user)
{
    auto *ctx = module_context_require<mruby_user>(user, mruby_user_module);
    MailSession *session = ctx->session;
    ctx->session = nullptr;
    // A session that its policy refused never started: no session end.
    if (user->error == nullptr && !session->refused()) {
        no_throw(user->event, "session end", [&] {
            auto event = core::Event::make<core::Hook::SessionEnd>(session->stats());
            if (session->wants(event.hook))
                session->dispatch(event);
        });
    }
    delete session;
    ctx->module_ctx.super.deinit(user);
}

const char *service_of(struct mail_user *user)
{
    return user->service == nullptr ? "" : user->service;
}

// Whether `user` is a client session of a service the script should see.
// Dovecot's internal users are never sessions: users autocreated for shared
// namespaces (creator set) and the raw mail user that lmtp and dovecot-lda
// create for the incoming message (raw_storage_create_from_set() sets
// autocreated before mail_user_init(); last-login and old-stats skip it the
// same way).
bool is_internal_user(const struct mail_user *user)
{
    return user->creator != nullptr || user->autocreated;
}

bool is_policy_session(struct mail_user *user, const PluginSettings &settings)
{
    std::vector<std::string> errors;
    core::ServiceSet services;
    bool ok = no_throw(user->event, "mruby_services", [&] {
        const char *value = settings.get("mruby_services");
        services = core::ServiceSet::parse(value == nullptr ? "" : value, errors);
    });
    if (!ok)   // out of memory: refusing hooks decide (and fail) where they may
        return !core::is_delivery_service(service_of(user));
    for (const std::string &error : errors)
        e_error(user->event, "mruby: %s", error.c_str());
    if (services.contains(service_of(user)))
        return true;
    e_debug(user->event, "mruby: service %s is not in mruby_services: no policy for this session",
            service_of(user));
    return false;
}

// In a delivery (lmtp, lda) a policy outcome never fails or defers the
// delivery: it is logged, and the delivery goes on. Returns whether `what`
// was ignored for that reason.
bool ignored_in_delivery(struct mail_user *user, struct event *event, const char *what)
{
    if (!core::is_delivery_service(service_of(user)))
        return false;
    e_warning(event, "mruby: ignored in %s (a delivery is never refused): %s", service_of(user),
              what);
    return true;
}

// A misspelled mruby_* setting would be ignored without a word (a misspelled
// mruby_script leaves the plugin idle): warn once per process, naming the
// setting and the known one it is closest to (core::unknown_plugin_settings).
void warn_unknown_settings(struct mail_user *user, const PluginSettings &settings)
{
    static bool warned = false;
    if (warned)
        return;
    warned = true;
    for (const std::string &warning : core::unknown_plugin_settings(settings.plugin_names()))
        e_warning(user->event, "mruby: %s", warning.c_str());
}

// The protocol plugins loaded into this process (dmr_mruby_protocol_plugin()):
// at most one per service.
struct ProtocolPlugin {
    struct module *module;
    const char *service;
};
ProtocolPlugin protocol_plugins[2];

// Whether a protocol plugin will refuse `user`'s session itself: one is
// loaded for the user's service and named in the user's mail_plugins (so its
// client-created hook looks at this session). Otherwise the refusal goes
// through user->error, which always ends the session.
bool protocol_plugin_refuses(struct mail_user *user)
{
    for (const ProtocolPlugin &plugin : protocol_plugins) {
        if (plugin.module != nullptr && strcmp(plugin.service, service_of(user)) == 0)
            return mail_user_is_plugin_loaded(user, plugin.module);
    }
    return false;
}

void mruby_mail_user_created(struct mail_user *user)
{
    if (is_internal_user(user))
        return;
    std::unique_ptr<MailSession> session;
    bool ok = no_throw(user->event, "session start", [&] {
        PluginSettings settings = PluginSettings::for_user(user);
        warn_unknown_settings(user, settings);
        if (is_policy_session(user, settings))
            session = MailSession::create(user, std::move(settings));
    });
    if (!ok) {
        const char *what = "internal error while starting the policy";
        if (!ignored_in_delivery(user, user->event, what))
            user->error = p_strdup_printf(user->pool, "mruby: %s", what);
        return;
    }
    if (session == nullptr)
        return;

    struct mail_user_vfuncs *v = user->vlast;
    auto *ctx = p_new(user->pool, struct mruby_user, 1);
    ctx->module_ctx.super = *v;
    user->vlast = &ctx->module_ctx.super;
    v->deinit = mruby_user_deinit;
    ctx->session = session.release();
    MODULE_CONTEXT_SET(user, mruby_user_module, ctx);

    core::Verdict verdict;
    ok = no_throw(user->event, "session start", [&] {
        auto event = core::Event::make<core::Hook::SessionStart>();
        if (ctx->session->wants(event.hook))
            verdict = ctx->session->dispatch(event);
    });
    if (!ok)
        verdict = core::Verdict::tempfail("internal error");
    if (!verdict.decided())
        return;
    // Logged here with the session's prefix: a policy decision is Info, a
    // temporary refusal (a broken script's tempfail too) a Warning.
    bool deny = verdict.kind == core::Verdict::Kind::Reject;
    const char *what = deny ? "session denied by policy" : "session refused by policy (temporary)";
    if (ignored_in_delivery(user, user->event,
                            t_strdup_printf("%s: %s", what, verdict.text.c_str())))
        return;
    if (deny)
        e_info(user->event, "mruby: %s: %s", what, verdict.text.c_str());
    else
        e_warning(user->event, "mruby: %s: %s", what, verdict.text.c_str());
    // With imap_mruby / pop3_mruby loaded for this user, its client-created
    // hook answers the client with the script's text and closes the
    // connection; until it did, this plugin refuses every mailbox of the
    // session. Otherwise (or if anything fails here) user->error makes
    // Dovecot end the session: the client sees its generic BYE / -ERR, and
    // Dovecot logs the error line.
    bool deferred = false;
    no_throw(user->event, "session start", [&] {
        if (protocol_plugin_refuses(user)) {
            ctx->session->refuse(verdict);
            deferred = true;
        }
    });
    if (!deferred)
        user->error = p_strdup_printf(user->pool, "mruby: %s: %s", what, verdict.text.c_str());
}

int mruby_mailbox_open(struct mailbox *box)
{
    auto *ctx = module_context_require<mruby_mailbox>(box, mruby_storage_module);
    MailSession *session = session_of(box->storage->user);
    if (session != nullptr && session->refused()) {
        // A refused session never reaches a mailbox while its client may
        // still send commands. Once the protocol plugin has closed the
        // connection, Dovecot may finish its own start (POP3 opens INBOX)
        // with no client left to see it; the script is not asked.
        if (!session->refusal_was_sent()) {
            mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
                                   session->refusal()->text.c_str());
            return -1;
        }
        return ctx->module_ctx.super.open(box);
    }
    if (session != nullptr) {
        core::Verdict verdict;
        bool ok = no_throw(box->event, "mailbox open", [&] {
            core::MailboxInfo mailbox{box->vname,
                                      (box->flags & MAILBOX_FLAG_READONLY) != 0};
            auto event = core::Event::make<core::Hook::MailboxOpen>(mailbox);
            verdict = session->dispatch(event);
        });
        if (!ok)
            verdict = core::Verdict::tempfail("internal error");
        if (verdict.decided() &&
            ignored_in_delivery(box->storage->user, box->event,
                                t_strdup_printf("mailbox open %s by policy: %s",
                                                verdict.kind == core::Verdict::Kind::Reject
                                                    ? "denied"
                                                    : "refused (temporary)",
                                                verdict.text.c_str())))
            verdict = core::Verdict::proceed();
        if (verdict.kind == core::Verdict::Kind::Reject) {
            mail_storage_set_error(box->storage, MAIL_ERROR_PERM, verdict.text.c_str());
            return -1;
        }
        if (verdict.decided()) {
            mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE, verdict.text.c_str());
            return -1;
        }
    }
    return ctx->module_ctx.super.open(box);
}

void mruby_mailbox_allocated(struct mailbox *box)
{
    MailSession *session = session_of(box->storage->user);
    if (session == nullptr || (!session->refused() && !session->wants(core::Hook::MailboxOpen)))
        return;
    struct mailbox_vfuncs *v = box->vlast;
    auto *ctx = p_new(box->pool, struct mruby_mailbox, 1);
    ctx->module_ctx.super = *v;
    box->vlast = &ctx->module_ctx.super;
    v->open = mruby_mailbox_open;
    MODULE_CONTEXT_SET_SELF(box, mruby_storage_module, ctx);
}

// Why Dovecot opens a message's full stream (mail_get_stream_because()'s
// reason, Dovecot 2.3): only these hand the content to the client. Dovecot's
// own reads (BODYSTRUCTURE and size parsing, snippets, SEARCH TEXT, cache
// prefetch "access", fts indexing, COPY) and header-only streams
// (BODY.PEEK[HEADER], ENVELOPE: get_body = false) are not reads.
bool client_reads_content(const char *reason)
{
    if (reason == nullptr)
        return false;
    static const char *const reasons[] = {
        "full mail",   // IMAP BODY[], RFC822, BINARY source
        "mail body",   // IMAP BODY[TEXT], RFC822.TEXT
        "MIME part",   // IMAP BODY[1], BODY[1.2.TEXT] ...
        "RETR",        // POP3
        "TOP",         // POP3
    };
    for (const char *r : reasons) {
        if (strcmp(reason, r) == 0)
            return true;
    }
    return false;
}

// Reports the read of `_mail`'s message unless this mail object reported it
// already. Called before the stream is opened: the Message-ID lookup may
// parse the header itself, which must not move the caller's stream.
// Returns whether the read should be reported once the stream opened.
bool read_pending(struct mail *_mail, mruby_mail *ctx)
{
    auto *mail = reinterpret_cast<struct mail_private *>(_mail);
    // The backend mail of a virtual mailbox: its virtual mail reports.
    return mail->vmail == nullptr && _mail->uid != 0 && ctx->reported_uid != _mail->uid;
}

void report_read(struct mail *_mail, mruby_mail *ctx, const char *message_id)
{
    ctx->reported_uid = _mail->uid;
    no_throw(_mail->box->event, "message read", [&] {
        core::MessageInfo message;
        message.mailbox = core::sanitize_for_log(_mail->box->vname, 1000);
        message.uid = _mail->uid;
        if (message_id != nullptr) {
            std::string_view id(message_id);
            while (!id.empty() && (id.front() == ' ' || id.front() == '\t'))
                id.remove_prefix(1);
            while (!id.empty() && (id.back() == ' ' || id.back() == '\t'))
                id.remove_suffix(1);
            message.message_id = core::sanitize_for_log(id, 998);
            message.has_message_id = true;
        }
        auto event = core::Event::make<core::Hook::MessageRead>(message);
        ctx->session->dispatch(event);
    });
}

const char *lookup_message_id(struct mail *_mail)
{
    auto *mail = reinterpret_cast<struct mail_private *>(_mail);
    // A header lookup may open the header stream, which resets the reason.
    const char *reason = mail->get_stream_reason;
    const char *value = nullptr;
    if (mail_get_first_header(_mail, "Message-ID", &value) <= 0)
        value = nullptr;
    mail->get_stream_reason = reason;
    return value;
}

int mruby_mail_get_stream(struct mail *_mail, bool get_body, struct message_size *hdr_size,
                          struct message_size *body_size, struct istream **stream_r)
{
    auto *mail = reinterpret_cast<struct mail_private *>(_mail);
    auto *ctx = module_context_require<mruby_mail>(mail, mruby_mail_module);
    if (!get_body || !client_reads_content(mail->get_stream_reason) || !read_pending(_mail, ctx))
        return ctx->module_ctx.super.get_stream(_mail, get_body, hdr_size, body_size, stream_r);
    const char *message_id = lookup_message_id(_mail);
    int ret = ctx->module_ctx.super.get_stream(_mail, get_body, hdr_size, body_size, stream_r);
    if (ret == 0)
        report_read(_mail, ctx, message_id);
    return ret;
}

// IMAP BINARY[...]: the decoded content (without stream_r: only its size).
// The parameters after include_hdr differ by version (2.3: size_r, lines_r,
// binary_r, stream_r; 2.4: bprops_r, stream_r); stream_r is last in both, and
// the vfunc's own type picks the instance.
template <typename... Rest>
int mruby_mail_get_binary_stream(struct mail *_mail, const struct message_part *part,
                                 bool include_hdr, Rest... rest)
{
    struct istream **stream_r = std::get<sizeof...(Rest) - 1>(std::make_tuple(rest...));
    auto *mail = reinterpret_cast<struct mail_private *>(_mail);
    auto *ctx = module_context_require<mruby_mail>(mail, mruby_mail_module);
    if (stream_r == nullptr || !read_pending(_mail, ctx))
        return ctx->module_ctx.super.get_binary_stream(_mail, part, include_hdr, rest...);
    const char *message_id = lookup_message_id(_mail);
    int ret = ctx->module_ctx.super.get_binary_stream(_mail, part, include_hdr, rest...);
    if (ret == 0)
        report_read(_mail, ctx, message_id);
    return ret;
}

void mruby_mail_allocated(struct mail *_mail)
{
    MailSession *session = session_of(_mail->box->storage->user);
    if (session == nullptr || session->refused() || !session->wants(core::Hook::MessageRead))
        return;
    auto *mail = reinterpret_cast<struct mail_private *>(_mail);
    struct mail_vfuncs *v = mail->vlast;
    auto *ctx = p_new(mail->pool, struct mruby_mail, 1);
    ctx->module_ctx.super = *v;
    ctx->session = session;
    mail->vlast = &ctx->module_ctx.super;
    v->get_stream = mruby_mail_get_stream;
    v->get_binary_stream = mruby_mail_get_binary_stream;
    MODULE_CONTEXT_SET(mail, mruby_mail_module, ctx);
}

// Every other hook stays NULL (value-initialised, no designated initialisers
// in C++17).
struct mail_storage_hooks make_mail_storage_hooks()
{
    struct mail_storage_hooks hooks = {};
    hooks.mail_user_created = mruby_mail_user_created;
    hooks.mailbox_allocated = mruby_mailbox_allocated;
    hooks.mail_allocated = mruby_mail_allocated;
    return hooks;
}

struct mail_storage_hooks mruby_mail_storage_hooks = make_mail_storage_hooks();

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT const char *mruby_plugin_version;   // declared first: C linkage, exported
const char *mruby_plugin_version = DOVECOT_ABI_VERSION;

dmr::dovecot::SessionPort *dmr_mruby_session_port(struct mail_user *user)
{
    return dmr::dovecot::session_of(user);
}

void dmr_mruby_protocol_plugin(struct module *module, const char *service, bool loaded)
{
    for (auto &plugin : dmr::dovecot::protocol_plugins) {
        if (loaded ? plugin.module == nullptr : plugin.module == module) {
            plugin.module = loaded ? module : nullptr;
            plugin.service = loaded ? service : nullptr;
            return;
        }
    }
}

DMR_EXPORT void mruby_plugin_init(struct module *module)
{
    mail_storage_hooks_add(module, &dmr::dovecot::mruby_mail_storage_hooks);
    dmr::store::register_backends_on_demand(dmr::core::store_registry());
}

DMR_EXPORT void mruby_plugin_deinit(void)
{
    mail_storage_hooks_remove(&dmr::dovecot::mruby_mail_storage_hooks);
}
