// Which parts of Debian's libmruby standard library a VM starts with.
//
// mrb_open() initialises every bundled gem (~400us here); per-session start-up
// is on the login path. A VM opens with mrb_open_core() and the few gems that
// the API itself needs; the other extension gems (String/Array/Hash extras,
// Time, Struct, Math, sprintf, Enumerator ...) are initialised on first use:
// mrblib/lazy.rb catches the first missing method or constant, calls
// Dovecot.__load_extensions, and retries. See docs/architecture.md.
#include "mruby/internal.hpp"

extern "C" {
#define DMR_GEM(name) void GENERATED_TMP_mrb_mruby_##name##_gem_init(mrb_state *);
DMR_GEM(compar_ext)
DMR_GEM(enum_ext)
DMR_GEM(string_ext)
DMR_GEM(numeric_ext)
DMR_GEM(array_ext)
DMR_GEM(hash_ext)
DMR_GEM(range_ext)
DMR_GEM(proc_ext)
DMR_GEM(symbol_ext)
DMR_GEM(object_ext)
DMR_GEM(kernel_ext)
DMR_GEM(class_ext)
DMR_GEM(metaprog)
DMR_GEM(sprintf)
DMR_GEM(time)
DMR_GEM(struct)
DMR_GEM(math)
DMR_GEM(fiber)
DMR_GEM(enumerator)
DMR_GEM(toplevel_ext)
DMR_GEM(pack)
DMR_GEM(random)
#undef DMR_GEM
}

namespace dmr::mruby {
namespace {

using GemInit = void (*)(mrb_state *);

// Dependency order (as mruby's own gem build orders them).
const GemInit lazy_gems[] = {
    GENERATED_TMP_mrb_mruby_compar_ext_gem_init,
    GENERATED_TMP_mrb_mruby_enum_ext_gem_init,
    GENERATED_TMP_mrb_mruby_string_ext_gem_init,
    GENERATED_TMP_mrb_mruby_numeric_ext_gem_init,
    GENERATED_TMP_mrb_mruby_array_ext_gem_init,
    GENERATED_TMP_mrb_mruby_hash_ext_gem_init,
    GENERATED_TMP_mrb_mruby_range_ext_gem_init,
    GENERATED_TMP_mrb_mruby_proc_ext_gem_init,
    GENERATED_TMP_mrb_mruby_symbol_ext_gem_init,
    GENERATED_TMP_mrb_mruby_object_ext_gem_init,
    GENERATED_TMP_mrb_mruby_kernel_ext_gem_init,
    GENERATED_TMP_mrb_mruby_class_ext_gem_init,
    GENERATED_TMP_mrb_mruby_metaprog_gem_init,
    GENERATED_TMP_mrb_mruby_sprintf_gem_init,
    GENERATED_TMP_mrb_mruby_time_gem_init,
    GENERATED_TMP_mrb_mruby_struct_gem_init,
    GENERATED_TMP_mrb_mruby_math_gem_init,
    GENERATED_TMP_mrb_mruby_fiber_gem_init,
    GENERATED_TMP_mrb_mruby_enumerator_gem_init,
    GENERATED_TMP_mrb_mruby_toplevel_ext_gem_init,
    GENERATED_TMP_mrb_mruby_pack_gem_init,
    GENERATED_TMP_mrb_mruby_random_gem_init,
};

} // namespace

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

} // namespace dmr::mruby
