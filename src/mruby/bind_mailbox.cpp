// Dovecot.on_mailbox_open and Dovecot::Mailbox: a mailbox being opened
// (SELECT, EXAMINE, STATUS, APPEND ...).
#include "mruby/internal.hpp"

namespace dmr::mruby {
namespace {

const mrb_data_type mailbox_type = {"Dovecot::Mailbox", mrb_free};

const core::MailboxInfo &mailbox_of(mrb_state *mrb, mrb_value self)
{
    return payload_of<core::MailboxPayload>(mrb, live_cell(mrb, self, &mailbox_type)).mailbox;
}

mrb_value mailbox_name(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, mailbox_of(mrb, self).name);
}
mrb_value mailbox_readonly(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(mailbox_of(mrb, self).readonly);
}
mrb_value mailbox_session(mrb_state *mrb, mrb_value self)
{
    return make_session(mrb, live_cell(mrb, self, &mailbox_type));
}
mrb_value mailbox_deny(mrb_state *mrb, mrb_value self)
{
    mrb_value reason = mrb_str_new_lit(mrb, "Permission denied");
    mrb_get_args(mrb, "|S", &reason);
    decide(live_cell(mrb, self, &mailbox_type), core::Verdict::Kind::Reject, reason, nullptr);
    return mrb_nil_value();
}

mrb_value make_mailbox(mrb_state *mrb, EventCell *cell)
{
    return wrap_event(mrb, vm_impl(mrb).mailbox_class, &mailbox_type, cell);
}

void init_mailbox_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = define_event_class(mrb, vm.dovecot_module, "Mailbox");
    vm.mailbox_class = c;
    mrb_define_method(mrb, c, "name", mailbox_name, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "readonly?", mailbox_readonly, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "session", mailbox_session, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "deny", mailbox_deny, MRB_ARGS_OPT(1));
}

} // namespace

const EventBinding binding_MailboxOpen = {nullptr, "on_mailbox_open", Library::Count,
                                          init_mailbox_class, make_mailbox};

} // namespace dmr::mruby
