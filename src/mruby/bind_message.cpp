// Dovecot.on_message_read and Dovecot::Message: a message whose content a
// client read (IMAP FETCH of a body, POP3 RETR/TOP). Observe only.
#include "mruby/internal.hpp"

namespace dmr::mruby {
namespace {

const mrb_data_type message_type = {"Dovecot::Message", mrb_free};

const core::MessageInfo &message_of(mrb_state *mrb, mrb_value self)
{
    return payload_of<core::MessagePayload>(mrb, live_cell(mrb, self, &message_type)).message;
}

mrb_value message_mailbox(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, message_of(mrb, self).mailbox);
}
mrb_value message_uid(mrb_state *mrb, mrb_value self)
{
    return mrb_int_value(mrb, static_cast<mrb_int>(message_of(mrb, self).uid));
}
mrb_value message_message_id(mrb_state *mrb, mrb_value self)
{
    const core::MessageInfo &message = message_of(mrb, self);
    return message.has_message_id ? to_ruby(mrb, message.message_id) : mrb_nil_value();
}
mrb_value message_session(mrb_state *mrb, mrb_value self)
{
    return make_session(mrb, live_cell(mrb, self, &message_type));
}

mrb_value make_message(mrb_state *mrb, EventCell *cell)
{
    return wrap_event(mrb, vm_impl(mrb).message_class, &message_type, cell);
}

void init_message_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = define_event_class(mrb, vm.dovecot_module, "Message");
    vm.message_class = c;
    mrb_define_method(mrb, c, "mailbox", message_mailbox, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "uid", message_uid, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "message_id", message_message_id, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "session", message_session, MRB_ARGS_NONE());
}

} // namespace

const EventBinding binding_MessageRead = {nullptr, "on_message_read", Library::Count,
                                          init_message_class, make_message};

} // namespace dmr::mruby
