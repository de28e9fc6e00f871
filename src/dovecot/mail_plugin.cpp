// lib90_mruby_plugin.so: session start/end and mailbox open for every mail
// process (imap, pop3, lmtp, doveadm ...). Hooks live in one static struct;
// the policy work is in MailSession and core.
#include "dovecot/mail_session.hpp"

namespace dmr::dovecot {
namespace {

struct mruby_user {
    union mail_user_module_context module_ctx;
    MailSession *session;
};

struct mruby_mailbox {
    union mailbox_module_context module_ctx;
};

MODULE_CONTEXT_DEFINE_INIT(mruby_user_module, &mail_user_module_register);
MODULE_CONTEXT_DEFINE_INIT(mruby_storage_module, &mail_storage_module_register);

MailSession *session_of(struct mail_user *user)
{
    auto *ctx = module_context<mruby_user>(user, mruby_user_module);
    return ctx == nullptr ? nullptr : ctx->session;
}

void mruby_user_deinit(struct mail_user *user)
{
    auto *ctx = module_context<mruby_user>(user, mruby_user_module);
    MailSession *session = ctx->session;
    ctx->session = nullptr;
    // A session that its policy refused never started: no session end.
    if (user->error == nullptr) {
        no_throw(user->event, "session end", [&] {
            core::Event event{core::Hook::SessionEnd};
            event.stats = session->stats();
            if (session->wants(event.hook))
                session->dispatch(event);
        });
    }
    delete session;
    ctx->module_ctx.super.deinit(user);
}

void mruby_mail_user_created(struct mail_user *user)
{
    // Users autocreated for shared namespaces are not sessions of their own.
    if (user->creator != nullptr)
        return;
    std::unique_ptr<MailSession> session;
    bool ok = no_throw(user->event, "session start", [&] { session = MailSession::create(user); });
    if (!ok) {
        user->error = p_strdup(user->pool, "mruby: internal error while starting the policy");
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
        core::Event event{core::Hook::SessionStart};
        if (ctx->session->wants(event.hook))
            verdict = ctx->session->dispatch(event);
    });
    if (!ok)
        verdict = core::Verdict::tempfail("internal error");
    if (!verdict.decided())
        return;
    // Logged here with the session's prefix; user->error makes Dovecot end
    // the session (the client sees its generic BYE / -ERR).
    const char *what = verdict.kind == core::Verdict::Kind::Reject
                           ? "session denied by policy"
                           : "session refused by policy (temporary)";
    e_info(user->event, "mruby: %s: %s", what, verdict.text.c_str());
    user->error = p_strdup_printf(user->pool, "mruby: %s: %s", what, verdict.text.c_str());
}

int mruby_mailbox_open(struct mailbox *box)
{
    auto *ctx = module_context<mruby_mailbox>(box, mruby_storage_module);
    MailSession *session = session_of(box->storage->user);
    if (session != nullptr) {
        core::Verdict verdict;
        bool ok = no_throw(box->event, "mailbox open", [&] {
            core::MailboxInfo mailbox{box->vname,
                                      (box->flags & MAILBOX_FLAG_READONLY) != 0};
            core::Event event{core::Hook::MailboxOpen};
            event.mailbox = &mailbox;
            verdict = session->dispatch(event);
        });
        if (!ok)
            verdict = core::Verdict::tempfail("internal error");
        if (verdict.kind == core::Verdict::Kind::Reject) {
            mail_storage_set_error(box->storage, MAIL_ERROR_PERM, verdict.text.c_str());
            return -1;
        }
        if (verdict.decided()) {
            mail_storage_set_error(box->storage, MAIL_ERROR_TEMP, verdict.text.c_str());
            return -1;
        }
    }
    return ctx->module_ctx.super.open(box);
}

void mruby_mailbox_allocated(struct mailbox *box)
{
    MailSession *session = session_of(box->storage->user);
    if (session == nullptr || !session->wants(core::Hook::MailboxOpen))
        return;
    struct mailbox_vfuncs *v = box->vlast;
    auto *ctx = p_new(box->pool, struct mruby_mailbox, 1);
    ctx->module_ctx.super = *v;
    box->vlast = &ctx->module_ctx.super;
    v->open = mruby_mailbox_open;
    MODULE_CONTEXT_SET_SELF(box, mruby_storage_module, ctx);
}

struct mail_storage_hooks mruby_mail_storage_hooks = {
    .mail_user_created = mruby_mail_user_created,
    .mailbox_allocated = mruby_mailbox_allocated,
};

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT const char *mruby_plugin_version = DOVECOT_ABI_VERSION;

dmr::dovecot::SessionPort *dmr_mruby_session_port(struct mail_user *user)
{
    return dmr::dovecot::session_of(user);
}

DMR_EXPORT void mruby_plugin_init(struct module *module)
{
    mail_storage_hooks_add(module, &dmr::dovecot::mruby_mail_storage_hooks);
}

DMR_EXPORT void mruby_plugin_deinit(void)
{
    mail_storage_hooks_remove(&dmr::dovecot::mruby_mail_storage_hooks);
}
