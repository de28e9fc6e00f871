// Dovecot::IMAP and Dovecot::POP3: command handlers, and the command objects
// they receive (Dovecot::IMAP::Command, Dovecot::POP3::Command).
#include "mruby/internal.hpp"

namespace dmr::mruby {
namespace {

const mrb_data_type command_type = {"Dovecot::Command", mrb_free};

const core::CommandInfo &command_of(mrb_state *mrb, mrb_value self, EventCell **cell_r = nullptr)
{
    EventCell *cell = live_cell(mrb, self, &command_type);
    if (cell_r != nullptr)
        *cell_r = cell;
    return payload_of<core::CommandPayload>(mrb, cell).command;
}

bool is_before(core::Hook hook)
{
    return hook == core::Hook::ImapCommandBefore || hook == core::Hook::Pop3CommandBefore;
}

bool is_imap(core::Hook hook)
{
    return hook == core::Hook::ImapCommandBefore || hook == core::Hook::ImapCommandAfter;
}

mrb_value command_name(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, command_of(mrb, self).name);
}
mrb_value command_tag(mrb_state *mrb, mrb_value self)
{
    EventCell *cell;
    const core::CommandInfo &command = command_of(mrb, self, &cell);
    return is_imap(cell->event->hook) ? to_ruby(mrb, command.tag) : mrb_nil_value();
}
mrb_value command_args(mrb_state *mrb, mrb_value self)
{
    EventCell *cell;
    const core::CommandInfo &command = command_of(mrb, self, &cell);
    // An IMAP command parses its own arguments: before it runs they are unknown.
    if (cell->event->hook == core::Hook::ImapCommandBefore)
        return mrb_nil_value();
    return to_ruby(mrb, command.args);
}
mrb_value command_protocol(mrb_state *mrb, mrb_value self)
{
    EventCell *cell = live_cell(mrb, self, &command_type);
    return mrb_str_new_cstr(mrb, is_imap(cell->event->hook) ? "imap" : "pop3");
}
mrb_value command_reply(mrb_state *mrb, mrb_value self)
{
    EventCell *cell;
    const core::CommandInfo &command = command_of(mrb, self, &cell);
    return is_before(cell->event->hook) ? mrb_nil_value() : to_ruby(mrb, command.reply);
}
mrb_value command_reply_text(mrb_state *mrb, mrb_value self)
{
    EventCell *cell;
    const core::CommandInfo &command = command_of(mrb, self, &cell);
    return is_before(cell->event->hook) ? mrb_nil_value() : to_ruby(mrb, command.reply_text);
}
mrb_value command_duration(mrb_state *mrb, mrb_value self)
{
    EventCell *cell;
    const core::CommandInfo &command = command_of(mrb, self, &cell);
    if (is_before(cell->event->hook))
        return mrb_nil_value();
    return mrb_float_value(mrb, static_cast<mrb_float>(command.duration_us) / 1e6);
}
mrb_value command_session(mrb_state *mrb, mrb_value self)
{
    return make_session(mrb, live_cell(mrb, self, &command_type));
}

EventCell *before_cell(mrb_state *mrb, mrb_value self, const char *what)
{
    EventCell *cell = live_cell(mrb, self, &command_type);
    if (!is_before(cell->event->hook))
        mrb_raisef(mrb, E_RUNTIME_ERROR, "%s is only possible in before_command", what);
    return cell;
}

mrb_value command_reject(mrb_state *mrb, mrb_value self)
{
    mrb_value text = mrb_str_new_lit(mrb, "Command refused by policy");
    mrb_value code = mrb_undef_value();
    mrb_sym names[] = {mrb_intern_lit(mrb, "code")};
    mrb_kwargs kwargs = {1, 0, names, &code, nullptr};
    mrb_get_args(mrb, "|S:", &text, &kwargs);
    // A response code is an atom: keep [A-Z0-9/-], at most 32 characters.
    char code_buffer[33] = {0};
    if (!mrb_undef_p(code) && !mrb_nil_p(code)) {
        code = mrb_obj_as_string(mrb, code);
        size_t n = 0;
        for (mrb_int i = 0; i < RSTRING_LEN(code) && n < sizeof(code_buffer) - 1; i++) {
            char c = RSTRING_PTR(code)[i];
            if (c >= 'a' && c <= 'z')
                c = static_cast<char>(c - 'a' + 'A');
            if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '-')
                code_buffer[n++] = c;
        }
    }
    decide(before_cell(mrb, self, "reject"), core::Verdict::Kind::Reject, text, code_buffer);
    return mrb_nil_value();
}

mrb_value command_disconnect(mrb_state *mrb, mrb_value self)
{
    mrb_value text = mrb_str_new_lit(mrb, "Disconnected by policy");
    mrb_get_args(mrb, "|S", &text);
    decide(before_cell(mrb, self, "disconnect"), core::Verdict::Kind::Disconnect, text, nullptr);
    return mrb_nil_value();
}

struct RClass *define_protocol(mrb_state *mrb, const char *module_name)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *module = mrb_define_module_under(mrb, vm.dovecot_module, module_name);
    define_event_registrations(mrb, module, module_name);   // before_command, after_command
    struct RClass *c = define_event_class(mrb, module, "Command");
    mrb_define_method(mrb, c, "name", command_name, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "tag", command_tag, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "args", command_args, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "protocol", command_protocol, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "reply", command_reply, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "reply_text", command_reply_text, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "duration", command_duration, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "session", command_session, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "reject", command_reject, MRB_ARGS_OPT(1) | MRB_ARGS_KEY(1, 0));
    mrb_define_method(mrb, c, "disconnect", command_disconnect, MRB_ARGS_OPT(1));
    return c;
}

mrb_value make_command(mrb_state *mrb, EventCell *cell)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *klass = is_imap(cell->event->hook) ? vm.imap_command_class
                                                     : vm.pop3_command_class;
    return wrap_event(mrb, klass, &command_type, cell);
}

} // namespace

// The classes and registration methods come with Library::Commands
// (init_command_classes), on first use.
const EventBinding binding_ImapCommandBefore = {"IMAP", "before_command", Library::Commands,
                                                nullptr, make_command};
const EventBinding binding_ImapCommandAfter = {"IMAP", "after_command", Library::Commands,
                                               nullptr, make_command};
const EventBinding binding_Pop3CommandBefore = {"POP3", "before_command", Library::Commands,
                                                nullptr, make_command};
const EventBinding binding_Pop3CommandAfter = {"POP3", "after_command", Library::Commands,
                                               nullptr, make_command};

void init_command_classes(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    vm.imap_command_class = define_protocol(mrb, "IMAP");
    vm.pop3_command_class = define_protocol(mrb, "POP3");
}

} // namespace dmr::mruby
