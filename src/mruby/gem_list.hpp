// The extension gems of Debian's libmruby that a VM loads on demand, in
// dependency order (as mruby's own gem build orders them). One list for the
// loader (gems.cpp) and for the build-time tool that records which names they
// define (mrblib/gem_names.cpp).
#pragma once

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
