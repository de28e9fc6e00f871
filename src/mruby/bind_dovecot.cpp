// The Dovecot module: handler registration, logging and the error classes.
#include "mruby/internal.hpp"

#include "core/text.hpp"

namespace dmr::mruby {
namespace {

template <core::Hook H>
mrb_value register_handler(mrb_state *mrb, mrb_value)
{
    mrb_value block = mrb_nil_value();
    mrb_get_args(mrb, "&", &block);
    if (mrb_nil_p(block))
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "Dovecot.on_%s needs a block", core::hook_name(H));
    gc_stress_point(mrb);
    mrb_value list = mrb_ary_entry(vm_impl(mrb).handler_lists, static_cast<mrb_int>(H));
    mrb_ary_push(mrb, list, block);
    return block;
}

template <core::LogLevel L>
mrb_value log_message(mrb_state *mrb, mrb_value)
{
    mrb_value message;
    mrb_get_args(mrb, "o", &message);
    message = mrb_obj_as_string(mrb, message);
    gc_stress_point(mrb);
    core::Logger *logger = vm_impl(mrb).options.logger;
    if (logger != nullptr) {
        logger->log(L, core::sanitize_for_log(std::string_view(
                           RSTRING_PTR(message), static_cast<size_t>(RSTRING_LEN(message)))));
    }
    return mrb_nil_value();
}

mrb_value dovecot_log(mrb_state *mrb, mrb_value)
{
    return mrb_obj_value(mrb_module_get_under(mrb, vm_impl(mrb).dovecot_module, "Log"));
}

mrb_value load_extensions(mrb_state *mrb, mrb_value)
{
    return mrb_bool_value(load_all_extensions(mrb));
}

} // namespace

void init_dovecot_module(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *dovecot = mrb_define_module(mrb, "Dovecot");
    vm.dovecot_module = dovecot;

    vm.handler_lists = mrb_ary_new_capa(mrb, static_cast<mrb_int>(core::Hook::Count));
    for (unsigned i = 0; i < static_cast<unsigned>(core::Hook::Count); i++)
        mrb_ary_push(mrb, vm.handler_lists, mrb_ary_new(mrb));
    mrb_gc_register(mrb, vm.handler_lists);

    mrb_define_module_function(mrb, dovecot, "on_session_start",
                               register_handler<core::Hook::SessionStart>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_session_end",
                               register_handler<core::Hook::SessionEnd>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_mailbox_open",
                               register_handler<core::Hook::MailboxOpen>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_auth", register_handler<core::Hook::Auth>,
                               MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_auth_result",
                               register_handler<core::Hook::AuthResult>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_passdb_lookup",
                               register_handler<core::Hook::PassdbLookup>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_password_verify",
                               register_handler<core::Hook::PasswordVerify>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "on_userdb_lookup",
                               register_handler<core::Hook::UserdbLookup>, MRB_ARGS_BLOCK());
    mrb_define_module_function(mrb, dovecot, "log", dovecot_log, MRB_ARGS_NONE());
    mrb_define_module_function(mrb, dovecot, "__load_extensions", load_extensions,
                               MRB_ARGS_NONE());

    struct RClass *log = mrb_define_module_under(mrb, dovecot, "Log");
    mrb_define_module_function(mrb, log, "debug", log_message<core::LogLevel::Debug>,
                               MRB_ARGS_REQ(1));
    mrb_define_module_function(mrb, log, "info", log_message<core::LogLevel::Info>,
                               MRB_ARGS_REQ(1));
    mrb_define_module_function(mrb, log, "warning", log_message<core::LogLevel::Warning>,
                               MRB_ARGS_REQ(1));
    mrb_define_module_function(mrb, log, "error", log_message<core::LogLevel::Error>,
                               MRB_ARGS_REQ(1));

    struct RClass *error = mrb_define_class_under(mrb, dovecot, "Error", mrb->eStandardError_class);
    vm.stale_event_error = mrb_define_class_under(mrb, dovecot, "StaleEventError", error);
}

} // namespace dmr::mruby
