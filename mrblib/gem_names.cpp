// Build tool: writes the names (methods and constants) that the extension
// gems add to what a VM has without them, as a sorted C++ table. A script
// whose compiled symbols include one of them gets the gems loaded before its
// top level runs (src/mruby/gems.cpp).
//
// It opens a core VM as the plugin does (mrb_open_core), records every
// class's methods, ancestors and constants, initialises the gems in the
// loader's order and records again. Listed: every constant a gem adds (Time,
// Struct, Math::PI), and a method a gem adds to a class or module that
// existed before (or one it mixes a new module into) when that class did not
// answer to the name without the gems (String#center, Symbol#size,
// Kernel#format): exactly the calls that would raise NoMethodError without
// them. Not listed: a gem's method that a core method of the class or of an
// ancestor answers already (Proc#to_s over Kernel#to_s; the core form
// serves, as without the gems), the methods of a class or module a gem
// creates (a script reaches Time#year only through Time, Math.log only
// through Math), and a
// method that a VM starts with for the gems to replace: a wrapper in
// mrblib/lazy.rb of a core method that a gem widens (Array#index with a
// block), or a stub (gem_stubs, src/mruby/gem_list.hpp) of a common name on
// a rare receiver (Symbol#size: without it, every script naming `size` would
// load the gems). The VM here has both, and the build fails when a gem
// replaces a core method that is not wrapped, or when a wrapper or stub is
// one no gem replaces (it would call itself forever).
//
// Usage: gem_names OUTPUT.cpp
#include "mruby/gem_list.hpp"

#include <mruby.h>
#include <mruby/class.h>
#include <mruby/irep.h>
#include <mruby/gc.h>
#include <mruby/presym.h>
#include <mruby/proc.h>
#include <mruby/variable.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

extern "C" {
DMR_EXTENSION_GEMS(DMR_DECLARE_GEM_INIT)
}

namespace {

using Key = std::pair<const struct RClass *, mrb_sym>;

struct Snapshot {
    std::set<const struct RBasic *> classes;
    // Method lookup order of each class (iclasses as their module).
    std::map<const struct RClass *, std::vector<const struct RClass *>> ancestors;
    std::map<Key, uintptr_t> methods;   // -> the function or proc behind the method
    std::set<Key> constants;
};

struct Walk {
    Snapshot *snapshot;
    const struct RClass *current;
};

uintptr_t identity(mrb_method_t m)
{
    if (MRB_METHOD_UNDEF_P(m))
        return 1;
    if (MRB_METHOD_FUNC_P(m))
        return reinterpret_cast<uintptr_t>(MRB_METHOD_FUNC(m));
    return reinterpret_cast<uintptr_t>(MRB_METHOD_PROC(m));
}

int record_method(mrb_state *, mrb_sym name, mrb_method_t m, void *data)
{
    auto *walk = static_cast<Walk *>(data);
    walk->snapshot->methods[{walk->current, name}] = identity(m);
    return 0;
}

int record_constant(mrb_state *mrb, mrb_sym name, mrb_value, void *data)
{
    auto *walk = static_cast<Walk *>(data);
    const char *text = mrb_sym_name(mrb, name);
    if (text != nullptr && std::isupper(static_cast<unsigned char>(text[0])))
        walk->snapshot->constants.insert({walk->current, name});
    return 0;
}

bool is_class(const struct RBasic *obj)
{
    return obj->tt == MRB_TT_CLASS || obj->tt == MRB_TT_MODULE || obj->tt == MRB_TT_SCLASS;
}

int record_object(mrb_state *mrb, struct RBasic *obj, void *data)
{
    if (!is_class(obj))
        return MRB_EACH_OBJ_OK;
    Walk walk{static_cast<Snapshot *>(data), reinterpret_cast<struct RClass *>(obj)};
    walk.snapshot->classes.insert(obj);
    std::vector<const struct RClass *> &chain = walk.snapshot->ancestors[walk.current];
    for (const struct RClass *c = walk.current; c != nullptr; c = c->super)
        chain.push_back(c->tt == MRB_TT_ICLASS ? c->c : c);
    mrb_mt_foreach(mrb, reinterpret_cast<struct RClass *>(obj), record_method, &walk);
    mrb_iv_foreach(mrb, mrb_obj_value(obj), record_constant, &walk);
    return MRB_EACH_OBJ_OK;
}

Snapshot snapshot(mrb_state *mrb)
{
    Snapshot s;
    mrb_objspace_each_objects(mrb, record_object, &s);
    return s;
}

// Does a script reach this class's methods only through a listed name (its
// constant, or a listed method returning one)? True for a class or module
// the gems created, unless a gem mixed the module into an old class, and
// for the singleton class of one; false for everything that existed before
// and for the singleton class of an old object.
bool reached_through_a_listed_name(mrb_state *mrb, const Snapshot &before,
                                   const Snapshot &after, const struct RClass *c)
{
    auto existed = [&](const void *p) {
        return before.classes.count(static_cast<const struct RBasic *>(p)) != 0;
    };
    if (existed(c))
        return false;
    if (c->tt == MRB_TT_SCLASS) {
        mrb_value attached = mrb_iv_get(mrb, mrb_obj_value(const_cast<struct RClass *>(c)),
                                        mrb_intern_lit(mrb, "__attached__"));
        return !mrb_immediate_p(attached) && !existed(mrb_basic_ptr(attached));
    }
    if (c->tt == MRB_TT_MODULE) {
        for (const auto &[klass, chain] : after.ancestors) {
            if (existed(klass) && std::find(chain.begin(), chain.end(), c) != chain.end())
                return false;
        }
    }
    return true;
}

// Did `c` answer to `name` before the gems (own method or an ancestor's)?
bool answered_before(const Snapshot &before, const Snapshot &after, const struct RClass *c,
                     mrb_sym name)
{
    auto chain = before.ancestors.find(c);
    if (chain == before.ancestors.end()) {
        // A class created with the gems: a singleton class of an old object.
        // Its ancestors as they are now, the old ones only.
        chain = after.ancestors.find(c);
        if (chain == after.ancestors.end())
            return false;
    }
    for (const struct RClass *a : chain->second) {
        if (before.classes.count(reinterpret_cast<const struct RBasic *>(a)) == 0)
            continue;
        auto m = before.methods.find({a, name});
        if (m != before.methods.end())
            return m->second != 1;   // an undef answers nothing
    }
    return false;
}

} // namespace

extern "C" const uint8_t dmr_mrblib_base[];

static mrb_value stub(mrb_state *, mrb_value self) { return self; }   // never called here

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT.cpp\n", argv[0]);
        return 2;
    }
    mrb_state *mrb = mrb_open_core(mrb_default_allocf, nullptr);
    if (mrb == nullptr)
        return 1;
    mrb->gc.disabled = TRUE;   // no address is reused between the snapshots
    Snapshot core = snapshot(mrb);
    dmr::mruby::define_gem_stubs(mrb, stub);
    mrb_load_irep(mrb, dmr_mrblib_base);   // lazy.rb's wrappers
    if (mrb->exc != nullptr)
        return 1;
    Snapshot before = snapshot(mrb);
#define DMR_INIT_GEM(name) DMR_GEM_INIT_NAME(name)(mrb);
    DMR_EXTENSION_GEMS(DMR_INIT_GEM)
#undef DMR_INIT_GEM
    if (mrb->exc != nullptr)
        return 1;
    Snapshot after = snapshot(mrb);

    bool failed = false;
    std::set<std::string> names;
    for (const auto &[key, id] : after.methods) {
        auto old = before.methods.find(key);
        if (old != before.methods.end() && old->second == id)
            continue;
        if (reached_through_a_listed_name(mrb, before, after, key.first))
            continue;
        const char *name = mrb_sym_name(mrb, key.second);
        if (old != before.methods.end()) {
            // A gem replaces a method: one of lazy.rb's, or a core one that
            // lazy.rb must wrap (its wider form would be missed).
            auto in_core = core.methods.find(key);
            if (in_core != core.methods.end() && in_core->second == old->second) {
                std::fprintf(stderr, "%s: the gems replace core method %s: wrap it in "
                             "mrblib/lazy.rb or stub it (gem_list.hpp)\n", argv[0], name);
                failed = true;
            }
            continue;
        }
        if (answered_before(before, after, key.first, key.second))
            continue;
        names.insert(name);
    }
    // Every wrapper and stub on a core class must be one the gems replace
    // (it calls itself again after loading them).
    for (const auto &[key, id] : before.methods) {
        if (core.classes.count(reinterpret_cast<const struct RBasic *>(key.first)) == 0)
            continue;
        auto in_core = core.methods.find(key);
        if (in_core != core.methods.end() && in_core->second == id)
            continue;
        const char *name = mrb_sym_name(mrb, key.second);
        if (std::strncmp(name, "__dmr_core_", 11) == 0)
            continue;
        if (after.methods.at(key) == id) {
            std::fprintf(stderr, "%s: %s is wrapped or stubbed, but no gem replaces it\n",
                         argv[0], name);
            failed = true;
        }
    }
    for (const Key &key : after.constants) {
        if (before.constants.count(key) == 0)
            names.insert(mrb_sym_name(mrb, key.second));
    }
    // The names that are presyms: their ids are fixed in libmruby, the same
    // in every VM, so a VM tests a compiled script's symbols by id.
    std::vector<unsigned char> presym_bits(MRB_PRESYM_MAX / 8 + 1, 0);
    size_t others = 0;
    for (const std::string &name : names) {
        mrb_sym sym = mrb_intern_check(mrb, name.data(), name.size());
        if (sym != 0 && sym <= MRB_PRESYM_MAX)
            presym_bits[sym / 8] |= static_cast<unsigned char>(1u << (sym % 8));
        else
            others++;
    }
    mrb_close(mrb);
    if (failed)
        return 1;

    FILE *out = std::fopen(argv[1], "w");
    if (out == nullptr)
        return 1;
    std::fprintf(out, "// Generated by mrblib/gem_names.cpp at build time: do not edit.\n"
                      "#include <cstddef>\n#include <string_view>\n\nnamespace dmr::mruby {\n\n"
                      "extern const std::string_view extension_names[];\n"
                      "extern const size_t extension_name_count;\n"
                      "extern const unsigned long long extension_name_shapes[256];\n"
                      "extern const unsigned short extension_name_starts[257];\n"
                      "extern const unsigned char extension_presyms[];\n"
                      "extern const unsigned extension_presym_max;\n"
                      "extern const size_t extension_names_not_presyms;\n\n"
                      "const std::string_view extension_names[] = {\n");
    for (const std::string &name : names) {
        std::fputs("    {\"", out);
        for (char ch : name) {
            if (ch == '"' || ch == '\\')
                std::fputc('\\', out);
            std::fputc(ch, out);
        }
        std::fprintf(out, "\", %zu},\n", name.size());
    }
    std::fprintf(out, "};\nconst size_t extension_name_count = %zu;\n\n", names.size());
    // Per first byte, a bit per length (< 64) of the names starting with it:
    // most string literals are no name and fail this test at once.
    unsigned long long shapes[256] = {};
    for (const std::string &name : names) {
        if (name.size() >= 64) {
            std::fprintf(stderr, "%s: name %s is too long\n", argv[0], name.c_str());
            return 1;
        }
        shapes[static_cast<unsigned char>(name[0])] |= 1ull << name.size();
    }
    std::fputs("const unsigned long long extension_name_shapes[256] = {", out);
    for (size_t i = 0; i < 256; i++)
        std::fprintf(out, "%s%lluull,", i % 4 == 0 ? "\n    " : " ", shapes[i]);
    std::fputs("\n};\n\n", out);
    // Per first byte, where its names begin in extension_names (sorted).
    std::fputs("const unsigned short extension_name_starts[257] = {", out);
    {
        size_t index = 0;
        auto it = names.begin();
        for (unsigned c = 0; c <= 256; c++) {
            while (it != names.end() && static_cast<unsigned char>((*it)[0]) < c) {
                ++it;
                index++;
            }
            std::fprintf(out, "%s%zu,", c % 16 == 0 ? "\n    " : " ", index);
        }
    }
    std::fputs("\n};\n\n", out);
    std::fputs("const unsigned char extension_presyms[] = {", out);
    for (size_t i = 0; i < presym_bits.size(); i++)
        std::fprintf(out, "%s%u,", i % 16 == 0 ? "\n    " : " ", presym_bits[i]);
    std::fprintf(out, "\n};\nconst unsigned extension_presym_max = %u;\n"
                      "const size_t extension_names_not_presyms = %zu;\n\n"
                      "} // namespace dmr::mruby\n",
                 static_cast<unsigned>(MRB_PRESYM_MAX), others);
    return std::fclose(out) == 0 ? 0 : 1;
}
