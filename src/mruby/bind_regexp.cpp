// Regexp of scripts (the engine side; MatchData and the String methods are
// Ruby, mrblib/regexp.rb). Loaded only into a VM whose script names Regexp,
// MatchData or a matching method (load_regexp_if_named, with the gem scan):
// a literal /re/ compiles to `Regexp.compile("re", "opts")`.
// docs/ruby-api.md "Regexp" lists what is supported.
//
// The engine is core's (core/regex.*: Oniguruma). No C++ object with a
// destructor lives in these frames, so raising here is safe (the longjmp
// rule, docs/architecture.md). A search polls the watchdog's deadline
// between rounds of a retry limit, so a catastrophic pattern ends at the
// script's mruby_timeout (RegexpError, and the call fails as a timeout).
#include "mruby/internal.hpp"
#include "mruby/irep_scan.hpp"
#include "mruby/watchdog.hpp"

#include "core/regex.hpp"

#include <mruby/array.h>
#include <mruby/data.h>
#include <mruby/hash.h>
#include <mruby/irep.h>
#include <mruby/string.h>
#include <mruby/variable.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace dmr::mruby {
namespace {

void free_regex(mrb_state *, void *p) { core::regex_free(static_cast<core::Regex *>(p)); }

const mrb_data_type regexp_type = {"Regexp", free_regex};

struct RClass *regexp_class(mrb_state *mrb) { return mrb_class_get(mrb, "Regexp"); }

core::Regex *regex_of(mrb_state *mrb, mrb_value self)
{
    auto *regex = static_cast<core::Regex *>(mrb_data_get_ptr(mrb, self, &regexp_type));
    if (regex == nullptr)
        mrb_raise(mrb, E_TYPE_ERROR, "uninitialized Regexp");
    return regex;
}

// Ruby's option argument: an Integer of flags, a String of "imx" letters, or
// any other true value for IGNORECASE.
int options_of(mrb_state *mrb, mrb_value opts)
{
    if (mrb_integer_p(opts))
        return static_cast<int>(mrb_integer(opts)) &
               (core::kRegexIgnoreCase | core::kRegexExtended | core::kRegexMultiline);
    if (mrb_string_p(opts)) {
        int options = 0;
        for (mrb_int i = 0; i < RSTRING_LEN(opts); i++) {
            switch (RSTRING_PTR(opts)[i]) {
            case 'i': options |= core::kRegexIgnoreCase; break;
            case 'x': options |= core::kRegexExtended; break;
            case 'm': options |= core::kRegexMultiline; break;
            default: mrb_raisef(mrb, E_ARGUMENT_ERROR, "unknown regexp option: %v", opts);
            }
        }
        return options;
    }
    return mrb_test(opts) ? core::kRegexIgnoreCase : 0;
}

mrb_sym sym_source(mrb_state *mrb) { return mrb_intern_lit(mrb, "@source"); }
mrb_sym sym_options(mrb_state *mrb) { return mrb_intern_lit(mrb, "@options"); }

void compile_into(mrb_state *mrb, mrb_value self, mrb_value source, int options)
{
    char error[256];
    core::Regex *regex = core::regex_compile(RSTRING_PTR(source), static_cast<size_t>(RSTRING_LEN(source)),
                                             options, error, sizeof(error));
    if (regex == nullptr)
        mrb_raisef(mrb, E_REGEXP_ERROR, "%s: /%v/", error, source);
    if (DATA_PTR(self) != nullptr)
        core::regex_free(static_cast<core::Regex *>(DATA_PTR(self)));
    DATA_PTR(self) = regex;
    DATA_TYPE(self) = &regexp_type;
    mrb_value frozen = mrb_str_dup(mrb, source);
    MRB_SET_FROZEN_FLAG(mrb_obj_ptr(frozen));
    mrb_iv_set(mrb, self, sym_source(mrb), frozen);
    mrb_iv_set(mrb, self, sym_options(mrb), mrb_int_value(mrb, options));
}

// Regexp.new(source_or_regexp, options = nil); Regexp.compile is the same.
mrb_value regexp_initialize(mrb_state *mrb, mrb_value self)
{
    mrb_value source;
    mrb_value opts = mrb_nil_value();
    mrb_get_args(mrb, "o|o", &source, &opts);
    int options = 0;
    if (mrb_obj_is_kind_of(mrb, source, regexp_class(mrb))) {
        options = static_cast<int>(mrb_integer(mrb_iv_get(mrb, source, sym_options(mrb))));
        source = mrb_iv_get(mrb, source, sym_source(mrb));
    }
    else {
        source = mrb_ensure_string_type(mrb, source);
        options = options_of(mrb, opts);
    }
    compile_into(mrb, self, source, options);
    return self;
}

// dup/clone: mruby copies a Data object's instance variables, not its
// pointer; the copy compiles the same pattern (its own Oniguruma regex).
mrb_value regexp_initialize_copy(mrb_state *mrb, mrb_value self)
{
    mrb_value other;
    mrb_get_args(mrb, "o", &other);
    regex_of(mrb, other);
    compile_into(mrb, self, mrb_iv_get(mrb, other, sym_source(mrb)),
                 static_cast<int>(mrb_integer(mrb_iv_get(mrb, other, sym_options(mrb)))));
    return self;
}

mrb_value regexp_source(mrb_state *mrb, mrb_value self)
{
    regex_of(mrb, self);
    return mrb_iv_get(mrb, self, sym_source(mrb));
}

mrb_value regexp_options(mrb_state *mrb, mrb_value self)
{
    regex_of(mrb, self);
    return mrb_iv_get(mrb, self, sym_options(mrb));
}

bool stop_now() { return Watchdog::soft_expired(); }

// Regexp#__search(string, start, anchored) -> nil, or [begin0, end0,
// begin1, end1, ...] in bytes (-1 for a group that did not take part).
mrb_value regexp_search(mrb_state *mrb, mrb_value self)
{
    mrb_value string;
    mrb_int start = 0;
    mrb_bool anchored = FALSE;
    mrb_get_args(mrb, "S|ib", &string, &start, &anchored);
    core::Regex *regex = regex_of(mrb, self);
    if (start < 0 || start > RSTRING_LEN(string))
        return mrb_nil_value();
    core::RegexSearch search;
    search.start = static_cast<size_t>(start);
    search.anchored = anchored;
    search.should_stop = stop_now;
    core::RegexResult result = core::regex_search(regex, RSTRING_PTR(string),
                                                  static_cast<size_t>(RSTRING_LEN(string)), search);
    switch (result) {
    case core::RegexResult::Match: break;
    case core::RegexResult::NoMatch: return mrb_nil_value();
    case core::RegexResult::Stopped:
        mrb_raise(mrb, E_REGEXP_ERROR, "regexp match stopped at the script's time limit (mruby_timeout)");
    case core::RegexResult::BadText:
        mrb_raise(mrb, E_ARGUMENT_ERROR, "invalid byte sequence in UTF-8");
    case core::RegexResult::Error: mrb_raise(mrb, E_REGEXP_ERROR, "regexp match failed");
    }
    int groups = core::regex_group_count(regex);
    gc_stress_point(mrb);
    mrb_value offsets = mrb_ary_new_capa(mrb, 2 * (groups + 1));
    for (int i = 0; i <= groups; i++) {
        size_t begin = 0;
        size_t end = 0;
        bool taken = core::regex_group(regex, i, &begin, &end);
        mrb_ary_push(mrb, offsets, mrb_int_value(mrb, taken ? static_cast<mrb_int>(begin) : -1));
        mrb_ary_push(mrb, offsets, mrb_int_value(mrb, taken ? static_cast<mrb_int>(end) : -1));
    }
    return offsets;
}

struct NamesJob {
    mrb_state *mrb;
    mrb_value hash;
};

void add_name(void *arg, const char *name, size_t length, const int *groups, int count)
{
    auto *job = static_cast<NamesJob *>(arg);
    mrb_value numbers = mrb_ary_new_capa(job->mrb, count);
    for (int i = 0; i < count; i++)
        mrb_ary_push(job->mrb, numbers, mrb_int_value(job->mrb, groups[i]));
    mrb_hash_set(job->mrb, job->hash, mrb_str_new(job->mrb, name, static_cast<mrb_int>(length)), numbers);
}

// Regexp#__names -> {"name" => [group, ...]} (mrblib/regexp.rb orders them).
// (Oniguruma's name walk is plain C: nothing in it unwinds through C++.)
mrb_value regexp_names(mrb_state *mrb, mrb_value self)
{
    core::Regex *regex = regex_of(mrb, self);
    NamesJob job{mrb, mrb_hash_new(mrb)};
    core::regex_names(regex, add_name, &job);
    return job.hash;
}

// Regexp.escape(string): the string with the characters that are special
// in a pattern escaped, as Ruby's.
mrb_value regexp_escape(mrb_state *mrb, mrb_value)
{
    mrb_value string;
    mrb_get_args(mrb, "S", &string);
    mrb_value out = mrb_str_new_capa(mrb, RSTRING_LEN(string));
    for (mrb_int i = 0; i < RSTRING_LEN(string); i++) {
        char c = RSTRING_PTR(string)[i];
        const char *escaped = nullptr;
        switch (c) {
        case '\n': escaped = "\\n"; break;
        case '\t': escaped = "\\t"; break;
        case '\r': escaped = "\\r"; break;
        case '\f': escaped = "\\f"; break;
        case '\v': escaped = "\\v"; break;
        case ' ': escaped = "\\ "; break;
        default: break;
        }
        if (escaped != nullptr) {
            mrb_str_cat_cstr(mrb, out, escaped);
            continue;
        }
        if (std::strchr("[]{}()|-*.\\?+^$#", c) != nullptr && c != '\0')
            mrb_str_cat(mrb, out, "\\", 1);
        mrb_str_cat(mrb, out, &c, 1);
    }
    return out;
}

// Regexp.union(*patterns) / Regexp.union(array): one Regexp matching any of
// them, Strings escaped, Regexps as their to_s. (In C: the name `union` in
// mrblib/regexp.rb would make the gem scan load the extension gems.)
mrb_value regexp_union(mrb_state *mrb, mrb_value klass)
{
    const mrb_value *argv = nullptr;
    mrb_int argc = 0;
    mrb_get_args(mrb, "*", &argv, &argc);
    mrb_value list = mrb_ary_new_from_values(mrb, argc, argv);
    if (argc == 1 && mrb_array_p(argv[0]))
        list = argv[0];
    if (RARRAY_LEN(list) == 0)
        return mrb_funcall(mrb, klass, "new", 1, mrb_str_new_lit(mrb, "(?!)"));
    mrb_value source = mrb_str_new_capa(mrb, 64);
    for (mrb_int i = 0; i < RARRAY_LEN(list); i++) {
        mrb_value item = mrb_ary_ref(mrb, list, i);
        if (i > 0)
            mrb_str_cat_lit(mrb, source, "|");
        mrb_value part = mrb_obj_is_kind_of(mrb, item, regexp_class(mrb))
                             ? mrb_funcall(mrb, item, "to_s", 0)
                             : mrb_funcall(mrb, klass, "escape", 1, mrb_obj_as_string(mrb, item));
        mrb_str_cat_str(mrb, source, part);
    }
    return mrb_funcall(mrb, klass, "new", 1, source);
}

// Regexp.__set_last_match(match_data_or_nil): $~ and $1..$9. mruby has no
// frame-local match variables: these are globals of the VM, set by the
// matching methods of mrblib/regexp.rb. $N is set only when its symbol
// exists, that is when some code names it (a script that never reads $1
// pays nothing for it); the groups are cut from the MatchData's offsets.
mrb_value regexp_set_last_match(mrb_state *mrb, mrb_value)
{
    mrb_value match;
    mrb_get_args(mrb, "o", &match);
    mrb_gv_set(mrb, mrb_intern_lit(mrb, "$~"), match);
    mrb_value offsets = mrb_nil_value();
    mrb_value string = mrb_nil_value();
    if (!mrb_nil_p(match)) {
        offsets = mrb_iv_get(mrb, match, mrb_intern_lit(mrb, "@offsets"));
        string = mrb_iv_get(mrb, match, mrb_intern_lit(mrb, "@string"));
    }
    char name[3] = {'$', '1', '\0'};
    for (int i = 1; i <= 9; i++) {
        name[1] = static_cast<char>('0' + i);
        mrb_sym sym = mrb_intern_check(mrb, name, 2);
        if (sym == 0)
            continue;
        mrb_value group = mrb_nil_value();
        if (mrb_array_p(offsets) && mrb_string_p(string) && 2 * i + 1 < RARRAY_LEN(offsets)) {
            mrb_value b = mrb_ary_ref(mrb, offsets, 2 * i);
            mrb_value e = mrb_ary_ref(mrb, offsets, 2 * i + 1);
            if (mrb_integer_p(b) && mrb_integer_p(e) && mrb_integer(b) >= 0 &&
                mrb_integer(e) >= mrb_integer(b) && mrb_integer(e) <= RSTRING_LEN(string))
                group = mrb_str_new(mrb, RSTRING_PTR(string) + mrb_integer(b),
                                    mrb_integer(e) - mrb_integer(b));
        }
        mrb_gv_set(mrb, sym, group);
    }
    return match;
}

// String#start_with?(*prefixes): each a String or a Regexp (matched at 0).
mrb_value string_start_with(mrb_state *mrb, mrb_value self)
{
    const mrb_value *argv = nullptr;
    mrb_int argc = 0;
    mrb_get_args(mrb, "*", &argv, &argc);
    for (mrb_int i = 0; i < argc; i++) {
        mrb_value prefix = argv[i];
        if (mrb_obj_is_kind_of(mrb, prefix, regexp_class(mrb))) {
            mrb_value m = mrb_funcall(mrb, prefix, "__match_at", 2, self, mrb_int_value(mrb, 0));
            if (mrb_test(m))
                return mrb_true_value();
            continue;
        }
        prefix = mrb_ensure_string_type(mrb, prefix);
        if (RSTRING_LEN(prefix) <= RSTRING_LEN(self) &&
            std::memcmp(RSTRING_PTR(self), RSTRING_PTR(prefix), static_cast<size_t>(RSTRING_LEN(prefix))) == 0)
            return mrb_true_value();
    }
    return mrb_false_value();
}

// The symbols that make a script load Regexp (see load_regexp_if_named).
const char *const trigger_names[] = {"Regexp", "MatchData", "=~", "!~", "match", "match?", "scan"};

constexpr unsigned kRegexpBit = 1u << static_cast<unsigned>(Library::Regexp);

} // namespace

void init_regexp_classes(mrb_state *mrb)
{
    struct RClass *regexp = mrb_define_class(mrb, "Regexp", mrb->object_class);
    MRB_SET_INSTANCE_TT(regexp, MRB_TT_DATA);
    mrb_define_const(mrb, regexp, "IGNORECASE", mrb_int_value(mrb, core::kRegexIgnoreCase));
    mrb_define_const(mrb, regexp, "EXTENDED", mrb_int_value(mrb, core::kRegexExtended));
    mrb_define_const(mrb, regexp, "MULTILINE", mrb_int_value(mrb, core::kRegexMultiline));
    mrb_define_method(mrb, regexp, "initialize", regexp_initialize, MRB_ARGS_ARG(1, 1));
    mrb_define_method(mrb, regexp, "initialize_copy", regexp_initialize_copy, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, regexp, "source", regexp_source, MRB_ARGS_NONE());
    mrb_define_method(mrb, regexp, "options", regexp_options, MRB_ARGS_NONE());
    mrb_define_method(mrb, regexp, "__search", regexp_search, MRB_ARGS_ARG(1, 2));
    mrb_define_method(mrb, regexp, "__names", regexp_names, MRB_ARGS_NONE());
    mrb_define_class_method(mrb, regexp, "escape", regexp_escape, MRB_ARGS_REQ(1));
    mrb_define_class_method(mrb, regexp, "quote", regexp_escape, MRB_ARGS_REQ(1));
    mrb_define_class_method(mrb, regexp, "union", regexp_union, MRB_ARGS_ANY());
    mrb_define_class_method(mrb, regexp, "__set_last_match", regexp_set_last_match, MRB_ARGS_REQ(1));
    mrb_define_class(mrb, "MatchData", mrb->object_class);
    redefine_regexp_string_methods(mrb);
}

void redefine_regexp_string_methods(mrb_state *mrb)
{
    if ((vm_impl(mrb).optional_libraries_loaded & kRegexpBit) == 0)
        return;
    mrb_define_method(mrb, mrb->string_class, "start_with?", string_start_with, MRB_ARGS_ANY());
}

void load_regexp_if_named(mrb_state *mrb, const mrb_irep *irep)
{
    if ((vm_impl(mrb).optional_libraries_loaded & kRegexpBit) != 0)
        return;
    constexpr size_t count = sizeof(trigger_names) / sizeof(trigger_names[0]);
    mrb_sym syms[count];
    for (size_t i = 0; i < count; i++)   // never interned: the script does not name it (0)
        syms[i] = mrb_intern_check_cstr(mrb, trigger_names[i]);
    // irep_scan.hpp: the symbols, and string literals (const_get("Regexp")).
    bool named = irep_names(
        irep,
        [&](mrb_sym sym) {
            return sym != 0 && std::find(syms, syms + count, sym) != syms + count;
        },
        [](std::string_view text) { return text == "Regexp" || text == "MatchData"; });
    if (named)
        ensure_library(mrb, Library::Regexp);
}

} // namespace dmr::mruby
