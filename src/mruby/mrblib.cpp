// Loads the bytecode that mrbc compiled from mrblib/*.rb at build time: the
// base library at VM start, the optional ones on first reference.
#include "mruby/internal.hpp"

#include <mruby/dump.h>
#include <mruby/irep.h>
#include <mruby/proc.h>

#include <cstring>

extern "C" {
extern const uint8_t dmr_mrblib_base[];
extern const uint8_t dmr_mrblib_policy[];
extern const uint8_t dmr_mrblib_audit[];
}

namespace dmr::mruby {
namespace {

// Runs compiled library code at top level (self = main, definitions under
// Object), also when called from inside a method such as const_missing,
// where mrb_load_irep would define under the caller's class instead.
void load_irep_or_raise(mrb_state *mrb, const uint8_t *bytecode)
{
    mrb_irep *irep = mrb_read_irep(mrb, bytecode);
    if (irep == nullptr)
        mrb_raise(mrb, E_SCRIPT_ERROR, "corrupt built-in bytecode");
    struct RProc *proc = mrb_proc_new(mrb, irep);
    MRB_PROC_SET_TARGET_CLASS(proc, mrb->object_class);
    mrb_irep_decref(mrb, irep);
    mrb_top_run(mrb, proc, mrb_top_self(mrb), 0);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
}

struct OptionalLibrary {
    const char *constant;   // under Dovecot::
    const uint8_t *irep;
};

const OptionalLibrary optional_libraries[] = {
    {"Policy", dmr_mrblib_policy},
    {"Audit", dmr_mrblib_audit},
};

// Dovecot.__load_library(:Name) -> true when Name's library was loaded now.
mrb_value load_library(mrb_state *mrb, mrb_value)
{
    mrb_sym name;
    mrb_get_args(mrb, "n", &name);
    const char *text = mrb_sym_name(mrb, name);
    Vm::Impl &vm = vm_impl(mrb);
    for (size_t i = 0; i < sizeof(optional_libraries) / sizeof(optional_libraries[0]); i++) {
        if (std::strcmp(text, optional_libraries[i].constant) != 0)
            continue;
        if (vm.optional_libraries_loaded & (1u << i))
            return mrb_false_value();
        vm.optional_libraries_loaded |= 1u << i;
        load_irep_or_raise(mrb, optional_libraries[i].irep);
        return mrb_true_value();
    }
    return mrb_false_value();
}

} // namespace

void load_api_bytecode(mrb_state *mrb)
{
    mrb_define_module_function(mrb, vm_impl(mrb).dovecot_module, "__load_library", load_library,
                               MRB_ARGS_REQ(1));
    load_irep_or_raise(mrb, dmr_mrblib_base);
}

} // namespace dmr::mruby
