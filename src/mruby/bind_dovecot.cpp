// The Dovecot module: logging, the error classes, and (event_table.cpp) the
// handler registration methods.
#include "mruby/internal.hpp"

#include "core/text.hpp"

namespace dmr::mruby {
namespace {

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

    // Dovecot.on_session_start ... and the event classes made at start.
    init_event_bindings(mrb);
}

} // namespace dmr::mruby
