// Which parts of Debian's libmruby standard library a VM starts with.
//
// mrb_open() initialises every bundled gem (~400us here); per-session start-up
// is on the login path. A VM opens with mrb_open_core() and the few gems that
// the API itself needs; the other extension gems (String/Array/Hash extras,
// Time, Struct, Math, sprintf, Enumerator ...) are loaded, all at once,
// before a script's top level runs when the compiled script names any method
// or constant they define (extension_names: generated at build time from
// libmruby by mrblib/gem_names.cpp), when the script calls
// Dovecot.require_gems, or when it calls a name of gem_stubs (gem_list.hpp)
// on its receiver (Kernel#method_missing below) or one of mrblib/lazy.rb's
// wrappers. See docs/architecture.md.
#include "mruby/gem_list.hpp"
#include "mruby/internal.hpp"
#include "mruby/irep_scan.hpp"

#include <mruby/irep.h>
#include <mruby/presym.h>
#include <mruby/proc.h>

#include <algorithm>
#include <cstring>
#include <string_view>

extern "C" {
DMR_EXTENSION_GEMS(DMR_DECLARE_GEM_INIT)
// Kernel#method_missing of mruby (kernel.c; not in its headers): raises the
// NoMethodError.
mrb_value mrb_obj_missing(mrb_state *mrb, mrb_value self);
}

namespace dmr::mruby {

// Sorted (build/mrblib/extension_names.cpp), and the same names as a bitmap
// of presym ids (fixed in libmruby: the same in every VM), with the count of
// names that are not presyms.
extern const std::string_view extension_names[];
extern const size_t extension_name_count;
extern const unsigned long long extension_name_shapes[256];   // first byte -> bit per length
extern const unsigned short extension_name_starts[257];        // first byte -> first index
extern const unsigned char extension_presyms[];
extern const unsigned extension_presym_max;
extern const size_t extension_names_not_presyms;

namespace {

using GemInit = void (*)(mrb_state *);

#define DMR_GEM_ENTRY(name) DMR_GEM_INIT_NAME(name),
const GemInit lazy_gems[] = {DMR_EXTENSION_GEMS(DMR_GEM_ENTRY)};
#undef DMR_GEM_ENTRY

bool is_extension_name(std::string_view name)
{
    if (name.empty())
        return false;
    unsigned char first = static_cast<unsigned char>(name[0]);
    const std::string_view *end = extension_names + extension_name_starts[first + 1];
    const std::string_view *it =
        std::lower_bound(extension_names + extension_name_starts[first], end, name);
    return it != end && *it == name;
}

// A string that may be an extension name (first byte and length of one).
bool has_a_name_shape(const char *text, size_t len)
{
    return len > 0 && len < 64 &&
           ((extension_name_shapes[static_cast<unsigned char>(text[0])] >> len) & 1u) != 0;
}

// Every extension name is a presym, with the id that the build recorded (the
// libmruby gem_names.cpp read is the one linked here; checked all the same):
// a symbol names an extension exactly when its bit is set. Otherwise the
// scan compares names.
const bool by_presym_id =
    extension_presym_max == MRB_PRESYM_MAX && extension_names_not_presyms == 0;

bool is_extension_symbol_by_name(mrb_state *mrb, mrb_sym sym)
{
    mrb_int len = 0;
    const char *name = mrb_sym_name_len(mrb, sym, &len);
    return name != nullptr && is_extension_name({name, static_cast<size_t>(len)});
}

// Does this compiled code name an extension method or constant
// (irep_scan.hpp: symbols, and short string literals such as
// respond_to?("ljust"))?
bool names_an_extension(mrb_state *mrb, const mrb_irep *irep)
{
    auto string_test = [](std::string_view text) {
        return has_a_name_shape(text.data(), text.size()) && is_extension_name(text);
    };
    if (by_presym_id) {
        return irep_names(
            irep,
            [](mrb_sym sym) {
                return sym <= MRB_PRESYM_MAX &&
                       ((extension_presyms[sym / 8] >> (sym % 8)) & 1u) != 0;
            },
            string_test);
    }
    return irep_names(
        irep, [mrb](mrb_sym sym) { return is_extension_symbol_by_name(mrb, sym); }, string_test);
}

// Does a gem define `name` on this receiver where core does not (gem_stubs)?
// Only asked for a missing method, before the gems are loaded.
bool stubbed_for(mrb_state *mrb, mrb_value self, mrb_sym name)
{
    mrb_int len = 0;
    const char *text = mrb_sym_name_len(mrb, name, &len);
    if (text == nullptr)
        return false;
    for (const GemStubs &stubs : gem_stubs) {
        if (!stub_lists(stubs, text, static_cast<size_t>(len)))
            continue;
        if (std::strcmp(stubs.owner, "main") == 0) {
            if (mrb_obj_eq(mrb, self, mrb_top_self(mrb)))
                return true;
            continue;
        }
        mrb_value owner = mrb_const_get(mrb, mrb_obj_value(mrb->object_class),
                                        mrb_intern_cstr(mrb, stubs.owner));
        if (stubs.singleton ? mrb_obj_eq(mrb, self, owner)
                            : mrb_obj_is_kind_of(mrb, self, mrb_class_ptr(owner)))
            return true;
    }
    return false;
}

// Kernel#method_missing until the gems are loaded: a name that a gem defines
// on this receiver (gem_stubs) loads them and calls again; any other name
// gets mruby's own NoMethodError (mrb_obj_missing, which also answers a
// script's `super` from its own method_missing). One C method defined at VM
// start instead of a stub per name; loading the gems puts mruby's back.
mrb_value gem_method_missing(mrb_state *mrb, mrb_value self)
{
    mrb_sym name = 0;
    const mrb_value *argv = nullptr;
    mrb_int argc = 0;
    mrb_value block = mrb_nil_value();
    mrb_get_args(mrb, "n*&", &name, &argv, &argc, &block);
    if (!vm_impl(mrb).extensions_loaded && stubbed_for(mrb, self, name)) {
        load_all_extensions(mrb);
        if (mrb_respond_to(mrb, self, name))
            return mrb_funcall_with_block(mrb, self, name, argc, argv, block);
    }
    return mrb_obj_missing(mrb, self);
}

// Kernel#respond_to_missing? until the gems are loaded: true for a name a gem
// defines on this receiver (gem_stubs), after loading them.
mrb_value gem_respond_to_missing(mrb_state *mrb, mrb_value self)
{
    mrb_sym name = 0;
    mrb_bool include_private = FALSE;
    mrb_get_args(mrb, "n|b", &name, &include_private);
    if (vm_impl(mrb).extensions_loaded || !stubbed_for(mrb, self, name))
        return mrb_false_value();
    load_all_extensions(mrb);
    return mrb_bool_value(mrb_respond_to(mrb, self, name));
}

// Is `func` still Kernel's method `name` (a script may have redefined it)?
bool kernel_method_is(mrb_state *mrb, mrb_sym name, mrb_func_t func)
{
    struct RClass *kernel = mrb->kernel_module;
    mrb_method_t m = mrb_method_search_vm(mrb, &kernel, name);
    return !MRB_METHOD_UNDEF_P(m) && MRB_METHOD_FUNC_P(m) && MRB_METHOD_FUNC(m) == func;
}

} // namespace

void define_extension_stubs(mrb_state *mrb)
{
    mrb_define_method(mrb, mrb->kernel_module, "method_missing", gem_method_missing,
                      MRB_ARGS_ANY());
    mrb_define_method(mrb, mrb->kernel_module, "respond_to_missing?", gem_respond_to_missing,
                      MRB_ARGS_ARG(1, 1));
}

bool load_all_extensions(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    if (vm.extensions_loaded)
        return false;
    vm.extensions_loaded = true;
    int arena = mrb_gc_arena_save(mrb);
    for (GemInit init : lazy_gems) {
        init(mrb);
        mrb_gc_arena_restore(mrb, arena);
    }
    redefine_regexp_string_methods(mrb);
    // Back to plain mruby (unless the script has replaced them itself).
    mrb_sym missing = mrb_intern_lit(mrb, "method_missing");
    if (kernel_method_is(mrb, missing, gem_method_missing))
        mrb_define_method_id(mrb, mrb->kernel_module, missing, mrb_obj_missing, MRB_ARGS_ANY());
    mrb_sym respond = mrb_intern_lit(mrb, "respond_to_missing?");
    if (kernel_method_is(mrb, respond, gem_respond_to_missing))
        mrb_remove_method(mrb, mrb->kernel_module, respond);
    return true;
}

void load_extensions_for(mrb_state *mrb, const mrb_irep *irep, bool script)
{
    load_json_if_named(mrb, irep);
    if (script)
        load_regexp_if_named(mrb, irep);
    if (!vm_impl(mrb).extensions_loaded && names_an_extension(mrb, irep))
        load_all_extensions(mrb);
}

} // namespace dmr::mruby
