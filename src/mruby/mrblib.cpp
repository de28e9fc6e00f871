// Loads the bytecode that mrbc compiled from mrblib/*.rb at build time: the
// base library at VM start, the optional ones on first reference.
#include "mruby/internal.hpp"
#include "mruby/state.hpp"

#include <mruby/dump.h>
#include <mruby/irep.h>
#include <mruby/proc.h>

#include <cstring>

extern "C" {
extern const uint8_t dmr_mrblib_base[];
extern const uint8_t dmr_mrblib_state[];
extern const uint8_t dmr_mrblib_policy[];
extern const uint8_t dmr_mrblib_audit[];
extern const uint8_t dmr_mrblib_regexp[];
}

namespace dmr::mruby {
namespace {

// Runs compiled library code at top level (self = main, definitions under
// Object), also when called from inside a method such as const_missing,
// where mrb_load_irep would define under the caller's class instead. An
// optional library that names an extension gem's method gets the gems first,
// as a script does (the base library names none: it loads in every VM).
void load_irep_or_raise(mrb_state *mrb, const uint8_t *bytecode, bool optional)
{
    mrb_irep *irep = mrb_read_irep(mrb, bytecode);
    if (irep == nullptr)
        mrb_raise(mrb, E_SCRIPT_ERROR, "corrupt built-in bytecode");
    struct RProc *proc = mrb_proc_new(mrb, irep);
    MRB_PROC_SET_TARGET_CLASS(proc, mrb->object_class);
    mrb_irep_decref(mrb, irep);   // the proc (in the arena) holds it now
    if (optional)
        load_extensions_for(mrb, proc->body.irep, false);
    mrb_top_run(mrb, proc, mrb_top_self(mrb), 0);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
}

void init_state_classes(mrb_state *mrb)
{
    ensure_library(mrb, Library::IP);
    init_store_module(mrb);
    init_ratelimit_class(mrb);
    init_counter_class(mrb);
    init_distinct_class(mrb);
    init_list_class(mrb);
}

// What a VM loads on demand: C++ classes and/or compiled Ruby, named by the
// Dovecot:: constants that trigger them. Index = Library.
struct OnDemand {
    const char *constants;   // space-separated names under Dovecot::
    void (*init)(mrb_state *);
    const uint8_t *irep;
};

const OnDemand on_demand[] = {
    {"IP", init_ip_class, nullptr},
    {"RateLimit Counter Distinct List StoreError Store", init_state_classes, dmr_mrblib_state},
    {"Auth AuthResult", init_auth_classes, nullptr},
    {"IMAP POP3", init_command_classes, nullptr},
    {"Policy", nullptr, dmr_mrblib_policy},
    {"Audit", nullptr, dmr_mrblib_audit},
    {"", init_json_module, nullptr},   // JSON (top level): load_json_if_named
    {"", init_regexp_classes, dmr_mrblib_regexp},   // Regexp (top level): load_regexp_if_named
};
static_assert(sizeof(on_demand) / sizeof(on_demand[0]) == static_cast<size_t>(Library::Count),
              "one entry per Library");

bool names(const char *list, const char *name)
{
    size_t len = std::strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *end = std::strchr(p, ' ');
        size_t n = end == nullptr ? std::strlen(p) : static_cast<size_t>(end - p);
        if (n == len && std::strncmp(p, name, n) == 0)
            return true;
        p += n;
        while (*p == ' ')
            p++;
    }
    return false;
}

// Dovecot.__load_library(:Name) -> true when the library defining Name was
// loaded by this call.
mrb_value load_library(mrb_state *mrb, mrb_value)
{
    mrb_sym name;
    mrb_get_args(mrb, "n", &name);
    const char *text = mrb_sym_name(mrb, name);
    for (size_t i = 0; i < static_cast<size_t>(Library::Count); i++) {
        if (names(on_demand[i].constants, text))
            return mrb_bool_value(ensure_library(mrb, static_cast<Library>(i)));
    }
    return mrb_false_value();
}

} // namespace

bool ensure_library(mrb_state *mrb, Library library)
{
    Vm::Impl &vm = vm_impl(mrb);
    unsigned bit = 1u << static_cast<unsigned>(library);
    if (vm.optional_libraries_loaded & bit)
        return false;
    vm.optional_libraries_loaded |= bit;
    const OnDemand &entry = on_demand[static_cast<size_t>(library)];
    int arena = mrb_gc_arena_save(mrb);
    if (entry.init != nullptr)
        entry.init(mrb);
    if (entry.irep != nullptr)
        load_irep_or_raise(mrb, entry.irep, true);
    mrb_gc_arena_restore(mrb, arena);
    return true;
}

void load_api_bytecode(mrb_state *mrb)
{
    mrb_define_module_function(mrb, vm_impl(mrb).dovecot_module, "__load_library", load_library,
                               MRB_ARGS_REQ(1));
    define_extension_stubs(mrb);
    load_irep_or_raise(mrb, dmr_mrblib_base, false);
}

} // namespace dmr::mruby
