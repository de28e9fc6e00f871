// Which parts of Debian's libmruby standard library a VM starts with.
//
// mrb_open() initialises every bundled gem (~400us here); per-session start-up
// is on the login path. A VM opens with mrb_open_core() and the few gems that
// the API itself needs; the other extension gems (String/Array/Hash extras,
// Time, Struct, Math, sprintf, Enumerator ...) are loaded, all at once,
// before a script's top level runs when the compiled script names any method
// or constant they define (extension_names: generated at build time from
// libmruby by mrblib/gem_names.cpp), when the script calls
// Dovecot.require_gems, or when it calls a stub (gem_list.hpp) or one of
// mrblib/lazy.rb's wrappers. See docs/architecture.md.
#include "mruby/gem_list.hpp"
#include "mruby/internal.hpp"

#include <mruby/irep.h>

#include <algorithm>
#include <cstring>
#include <string_view>

extern "C" {
DMR_EXTENSION_GEMS(DMR_DECLARE_GEM_INIT)
}

namespace dmr::mruby {

// Sorted (build/mrblib/extension_names.cpp).
extern const char *const extension_names[];
extern const size_t extension_name_count;

namespace {

using GemInit = void (*)(mrb_state *);

#define DMR_GEM_ENTRY(name) DMR_GEM_INIT_NAME(name),
const GemInit lazy_gems[] = {DMR_EXTENSION_GEMS(DMR_GEM_ENTRY)};
#undef DMR_GEM_ENTRY

bool is_extension_name(std::string_view name)
{
    const char *const *end = extension_names + extension_name_count;
    const char *const *it = std::lower_bound(
        extension_names, end, name,
        [](const char *entry, std::string_view key) { return std::string_view(entry) < key; });
    return it != end && std::string_view(*it) == name;
}

// Longer strings are not method or constant names a script would pass.
constexpr size_t kMaxNameLength = 64;

// Does this compiled code (or code nested in it: methods, blocks, classes)
// name an extension method or constant? Symbols cover calls, constants and
// :symbol literals; short string literals cover names passed as Strings
// (send("center", 9), const_get("Time"), respond_to?("ljust")).
bool names_an_extension(mrb_state *mrb, const mrb_irep *irep)
{
    for (uint16_t i = 0; i < irep->slen; i++) {
        mrb_int len = 0;
        const char *name = mrb_sym_name_len(mrb, irep->syms[i], &len);
        if (name != nullptr && is_extension_name({name, static_cast<size_t>(len)}))
            return true;
    }
    for (uint16_t i = 0; i < irep->plen; i++) {
        const mrb_pool_value &v = irep->pool[i];
        if ((v.tt & IREP_TT_NFLAG) != 0)
            continue;   // a number
        size_t len = static_cast<size_t>(v.tt >> 2);
        if (len <= kMaxNameLength && is_extension_name({v.u.str, len}))
            return true;
    }
    for (uint16_t i = 0; i < irep->rlen; i++) {
        if (irep->reps[i] != nullptr && names_an_extension(mrb, irep->reps[i]))
            return true;
    }
    return false;
}

// A stub (gem_stubs): loads the gems, which replace it, and calls again. The
// build checks that they replace every stub; were one left, it raises
// rather than call itself.
mrb_value gem_stub(mrb_state *mrb, mrb_value self)
{
    mrb_sym name = mrb_get_mid(mrb);
    const mrb_value *argv = nullptr;
    mrb_int argc = 0;
    mrb_value block = mrb_nil_value();
    mrb_get_args(mrb, "*&", &argv, &argc, &block);
    if (!load_all_extensions(mrb))
        mrb_raisef(mrb, E_NOMETHOD_ERROR, "undefined method '%n'", name);
    return mrb_funcall_with_block(mrb, self, name, argc, argv, block);
}

} // namespace

void define_extension_stubs(mrb_state *mrb) { define_gem_stubs(mrb, gem_stub); }

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
    return true;
}

void load_extensions_for(mrb_state *mrb, const mrb_irep *irep)
{
    if (!vm_impl(mrb).extensions_loaded && names_an_extension(mrb, irep))
        load_all_extensions(mrb);
}

} // namespace dmr::mruby
