// The extension gems of Debian's libmruby that a VM loads on demand, in
// dependency order (as mruby's own gem build orders them), and the common
// names that they define on rare receivers. One list for the loader (gems.cpp, mrblib.cpp) and for the
// build-time tool that records which names the gems define
// (mrblib/gem_names.cpp).
#pragma once

#include <mruby.h>
#include <mruby/class.h>
#include <mruby/variable.h>

#include <cstring>

#define DMR_EXTENSION_GEMS(X)                                                                  \
    X(compar_ext)                                                                              \
    X(enum_ext)                                                                                \
    X(string_ext)                                                                              \
    X(numeric_ext)                                                                             \
    X(array_ext)                                                                               \
    X(hash_ext)                                                                                \
    X(range_ext)                                                                               \
    X(proc_ext)                                                                                \
    X(symbol_ext)                                                                              \
    X(object_ext)                                                                              \
    X(kernel_ext)                                                                              \
    X(class_ext)                                                                               \
    X(metaprog)                                                                                \
    X(sprintf)                                                                                 \
    X(time)                                                                                    \
    X(struct)                                                                                  \
    X(math)                                                                                    \
    X(fiber)                                                                                   \
    X(enumerator)                                                                              \
    X(toplevel_ext)                                                                            \
    X(pack)                                                                                    \
    X(random)

#define DMR_GEM_INIT_NAME(name) GENERATED_TMP_mrb_mruby_##name##_gem_init
#define DMR_DECLARE_GEM_INIT(name) void DMR_GEM_INIT_NAME(name)(struct mrb_state *);

namespace dmr::mruby {

// Common names that core classes answer but the gems also define on a rare
// receiver (`size` of a Symbol, `name` of a Module, `Hash[]`, Kernel#String
// which is the same symbol as the constant). Naming them does not load the
// gems: until they are loaded, Kernel#method_missing (gems.cpp) loads them
// when one is called on its receiver, and calls again. The build tool
// defines them as stubs, so it neither counts them as extension names nor
// misses a gem that does not replace them.
struct GemStubs {
    const char *owner;   // a constant under Object, or "main" (the top-level object)
    bool singleton;      // on its singleton class
    const char *names;   // space-separated
};

inline constexpr GemStubs gem_stubs[] = {
    {"Symbol", false, "size length empty? upcase downcase"},
    {"Range", false, "size"},
    {"NilClass", false, "to_a to_i to_f"},
    {"String", false, "% << clear concat delete"},
    {"Array", false, "- &"},
    {"Hash", false, "< <= > >="},
    {"Hash", true, "[]"},
    {"Module", false, "< <= > >= <=> name"},
    {"Proc", false, "<< >>"},
    {"Enumerable", false, "first"},
    {"Kernel", false, "Array Float Hash Integer String"},
    {"Kernel", true, "Array Float Hash Integer String"},
    {"main", true, "include public private"},
};

// Does this entry list `name`?
inline bool stub_lists(const GemStubs &stubs, const char *name, size_t len)
{
    for (const char *p = stubs.names; *p != '\0';) {
        size_t n = std::strcspn(p, " ");
        if (n == len && std::memcmp(p, name, n) == 0)
            return true;
        p += n;
        while (*p == ' ')
            p++;
    }
    return false;
}

// Defines every stub as `func` (mrblib/gem_names.cpp, which reads the names
// the gems define; a VM catches them in Kernel#method_missing instead). Raises only when out of memory.
inline void define_gem_stubs(mrb_state *mrb, mrb_func_t func)
{
    for (const GemStubs &stubs : gem_stubs) {
        mrb_value owner = std::strcmp(stubs.owner, "main") == 0
                              ? mrb_top_self(mrb)
                              : mrb_const_get(mrb, mrb_obj_value(mrb->object_class),
                                              mrb_intern_cstr(mrb, stubs.owner));
        struct RClass *c = stubs.singleton ? mrb_singleton_class_ptr(mrb, owner)
                                           : mrb_class_ptr(owner);
        for (const char *p = stubs.names; *p != '\0';) {
            size_t n = std::strcspn(p, " ");
            mrb_define_method_id(mrb, c, mrb_intern(mrb, p, n), func, MRB_ARGS_ANY());
            p += n;
            while (*p == ' ')
                p++;
        }
    }
}

} // namespace dmr::mruby
