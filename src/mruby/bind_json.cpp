// The JSON module of scripts: JSON.parse, JSON.generate, JSON.pretty_generate,
// Object#to_json and the JSON::*Error classes (the supported subset of Ruby's
// json library; docs/ruby-api.md "JSON"). Loaded only into a VM whose script
// names JSON or to_json (load_json_if_named, called with the gem scan).
//
// Parsing is core's (core/json_parse.*: nlohmann-json into a flat token
// list); the Ruby values are built from those tokens inside
// mrb_protect_error while the token list is alive, and whatever was raised
// is raised again after that C++ frame has returned (the longjmp rule,
// docs/architecture.md). Generating writes straight into a Ruby String and
// keeps no C++ object at all.
#include "mruby/internal.hpp"
#include "mruby/irep_scan.hpp"
#include "mruby/watchdog.hpp"

#include "core/json_parse.hpp"
#include "core/text.hpp"

#include <mruby/error.h>
#include <mruby/irep.h>
#include <mruby/proc.h>

#include <cmath>
#include <cstdio>
#include <cstring>

namespace dmr::mruby {
namespace {

constexpr int kMaxNesting = 100;   // as Ruby's json (max_nesting)

struct RClass *json_module(mrb_state *mrb) { return mrb_module_get(mrb, "JSON"); }

struct RClass *json_error(mrb_state *mrb, const char *name)
{
    return mrb_class_get_under(mrb, json_module(mrb), name);
}

// --- parse -------------------------------------------------------------------

struct BuildJob {
    const core::JsonParse *parse;
    bool symbolize_names;
    size_t next;   // the token to read
};

mrb_value build_value(mrb_state *mrb, BuildJob &job)
{
    const core::JsonToken &token = job.parse->tokens[job.next++];
    gc_stress_point(mrb);
    switch (token.kind) {
    case core::JsonToken::Kind::Null: return mrb_nil_value();
    case core::JsonToken::Kind::False: return mrb_false_value();
    case core::JsonToken::Kind::True: return mrb_true_value();
    case core::JsonToken::Kind::Integer: return mrb_int_value(mrb, token.integer);
    case core::JsonToken::Kind::Float: return mrb_float_value(mrb, token.number);
    case core::JsonToken::Kind::String:
    case core::JsonToken::Kind::Key:
        return mrb_str_new(mrb, job.parse->strings.data() + token.offset, token.length);
    case core::JsonToken::Kind::BeginArray: {
        mrb_value array = mrb_ary_new(mrb);
        int arena = mrb_gc_arena_save(mrb);
        while (job.parse->tokens[job.next].kind != core::JsonToken::Kind::EndArray) {
            mrb_value element = build_value(mrb, job);
            mrb_ary_push(mrb, array, element);
            mrb_gc_arena_restore(mrb, arena);
        }
        job.next++;
        return array;
    }
    case core::JsonToken::Kind::BeginObject: {
        mrb_value hash = mrb_hash_new(mrb);
        int arena = mrb_gc_arena_save(mrb);
        while (job.parse->tokens[job.next].kind != core::JsonToken::Kind::EndObject) {
            const core::JsonToken &key_token = job.parse->tokens[job.next++];
            const char *name = job.parse->strings.data() + key_token.offset;
            mrb_value key = job.symbolize_names
                                ? mrb_symbol_value(mrb_intern(mrb, name, key_token.length))
                                : mrb_str_new(mrb, name, key_token.length);
            gc_stress_point(mrb);
            mrb_value member = build_value(mrb, job);
            mrb_hash_set(mrb, hash, key, member);
            mrb_gc_arena_restore(mrb, arena);
        }
        job.next++;
        return hash;
    }
    case core::JsonToken::Kind::EndArray:
    case core::JsonToken::Kind::EndObject:
        break;
    }
    mrb_raise(mrb, E_RUNTIME_ERROR, "JSON token list out of order");
    return mrb_nil_value();
}

mrb_value build_body(mrb_state *mrb, void *arg)
{
    return build_value(mrb, *static_cast<BuildJob *>(arg));
}

// Why a parse failed, as plain data for the binding frame to raise.
struct ParseFailure {
    bool nesting;   // JSON::NestingError rather than JSON::ParserError
    char message[320];
};

bool deadline_passed() { return Watchdog::soft_expired(); }

// Parses and builds; its C++ objects are gone when it returns. Returns the
// value, or sets `raised` (the value is the exception) or `failed`.
mrb_value parse_to_ruby(mrb_state *mrb, const char *text, size_t length, bool symbolize_names,
                        mrb_bool *raised, bool *failed, ParseFailure *failure)
{
    core::JsonParseLimits limits;
    uint64_t memory_limit = vm_impl(mrb).options.memory_limit;
    limits.max_bytes = static_cast<size_t>(memory_limit / 8);
    limits.max_depth = kMaxNesting;
    limits.should_stop = deadline_passed;
    core::JsonParse parse = core::parse_json({text, length}, limits);
    if (parse.error != core::JsonParse::Error::None) {
        *failed = true;
        failure->nesting = parse.error == core::JsonParse::Error::TooDeep;
        std::snprintf(failure->message, sizeof(failure->message), "%s", parse.message.c_str());
        return mrb_nil_value();
    }
    BuildJob job{&parse, symbolize_names, 0};
    return mrb_protect_error(mrb, build_body, &job, raised);
}

// Is `opts` empty or only symbolize_names: ...? Returns its value.
bool symbolize_names_option(mrb_state *mrb, mrb_value opts)
{
    if (mrb_nil_p(opts))
        return false;
    mrb_value key = mrb_symbol_value(mrb_intern_lit(mrb, "symbolize_names"));
    mrb_int known = mrb_hash_key_p(mrb, opts, key) ? 1 : 0;
    if (mrb_hash_size(mrb, opts) != known)
        mrb_raise(mrb, E_ARGUMENT_ERROR,
                  "JSON.parse supports one option, symbolize_names: (see docs/ruby-api.md)");
    return mrb_test(mrb_hash_get(mrb, opts, key));
}

// JSON.parse(source, symbolize_names: false)
mrb_value json_parse(mrb_state *mrb, mrb_value)
{
    mrb_value source;
    mrb_value opts = mrb_nil_value();
    mrb_get_args(mrb, "S|H!", &source, &opts);
    bool symbolize_names = symbolize_names_option(mrb, opts);
    mrb_bool raised = FALSE;
    bool failed = false;
    ParseFailure failure;
    mrb_value result = parse_to_ruby(mrb, RSTRING_PTR(source), static_cast<size_t>(RSTRING_LEN(source)),
                                     symbolize_names, &raised, &failed, &failure);
    if (raised)
        mrb_exc_raise(mrb, result);
    if (failed)
        mrb_raise(mrb, json_error(mrb, failure.nesting ? "NestingError" : "ParserError"),
                  failure.message);
    return result;
}

// --- generate ----------------------------------------------------------------

struct Generator {
    mrb_value out;
    bool pretty;
};

mrb_value json_to_json(mrb_state *mrb, mrb_value self);

void put(mrb_state *mrb, Generator &gen, const char *text, size_t length)
{
    mrb_str_cat(mrb, gen.out, text, length);
}

void put_newline(mrb_state *mrb, Generator &gen, int depth)
{
    static const char spaces[] = "                                ";
    put(mrb, gen, "\n", 1);
    for (int n = depth * 2; n > 0; n -= 32)
        put(mrb, gen, spaces, static_cast<size_t>(n < 32 ? n : 32));
}

// A JSON string literal of UTF-8 `text`, escaped as Ruby's json does:
// quote, backslash and control characters; nothing else.
void put_string(mrb_state *mrb, Generator &gen, const char *text, size_t length)
{
    static const char hex[] = "0123456789abcdef";
    std::string_view view(text, length);
    char buffer[256];
    size_t used = 0;
    auto flush = [&] {
        put(mrb, gen, buffer, used);
        used = 0;
    };
    buffer[used++] = '"';
    for (size_t i = 0; i < length;) {
        if (used > sizeof(buffer) - 8)
            flush();
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            size_t len = core::utf8_sequence_length(view, i);
            if (len == 0)
                mrb_raise(mrb, json_error(mrb, "GeneratorError"),
                          "source sequence is illegal/malformed utf-8");
            std::memcpy(buffer + used, text + i, len);
            used += len;
            i += len;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            buffer[used++] = static_cast<char>(c);
            continue;
        }
        buffer[used++] = '\\';
        switch (c) {
        case '"': buffer[used++] = '"'; break;
        case '\\': buffer[used++] = '\\'; break;
        case '\b': buffer[used++] = 'b'; break;
        case '\f': buffer[used++] = 'f'; break;
        case '\n': buffer[used++] = 'n'; break;
        case '\r': buffer[used++] = 'r'; break;
        case '\t': buffer[used++] = 't'; break;
        default:
            std::memcpy(buffer + used, "u00", 3);
            used += 3;
            buffer[used++] = hex[c >> 4];
            buffer[used++] = hex[c & 15];
        }
    }
    buffer[used++] = '"';
    flush();
}

void put_string_value(mrb_state *mrb, Generator &gen, mrb_value string)
{
    put_string(mrb, gen, RSTRING_PTR(string), static_cast<size_t>(RSTRING_LEN(string)));
}

// Does `value` answer to_json with a method of its own (not Object#to_json)?
bool has_own_to_json(mrb_state *mrb, mrb_value value)
{
    struct RClass *klass = mrb_class(mrb, value);
    mrb_method_t m = mrb_method_search_vm(mrb, &klass, mrb_intern_lit(mrb, "to_json"));
    return !MRB_METHOD_UNDEF_P(m) && !(MRB_METHOD_FUNC_P(m) && MRB_METHOD_FUNC(m) == json_to_json);
}

void generate_value(mrb_state *mrb, Generator &gen, mrb_value value, int depth);

void check_depth(mrb_state *mrb, int depth)
{
    if (depth > kMaxNesting)
        mrb_raisef(mrb, json_error(mrb, "NestingError"), "nesting of %d is too deep",
                   static_cast<mrb_int>(depth));
}

// A container is held in the arena while its members are written: a
// member's to_s or to_json (script code) may remove it from its parent.
void generate_array(mrb_state *mrb, Generator &gen, mrb_value array, int depth)
{
    check_depth(mrb, depth);
    mrb_gc_protect(mrb, array);
    put(mrb, gen, "[", 1);
    int arena = mrb_gc_arena_save(mrb);
    for (mrb_int i = 0; i < RARRAY_LEN(array); i++) {
        if (i > 0)
            put(mrb, gen, ",", 1);
        if (gen.pretty)
            put_newline(mrb, gen, depth);
        generate_value(mrb, gen, mrb_ary_ref(mrb, array, i), depth);
        mrb_gc_arena_restore(mrb, arena);
    }
    if (gen.pretty && RARRAY_LEN(array) > 0)
        put_newline(mrb, gen, depth - 1);
    put(mrb, gen, "]", 1);
}

void generate_hash(mrb_state *mrb, Generator &gen, mrb_value hash, int depth)
{
    check_depth(mrb, depth);
    mrb_gc_protect(mrb, hash);
    put(mrb, gen, "{", 1);
    mrb_value keys = mrb_hash_keys(mrb, hash);
    int arena = mrb_gc_arena_save(mrb);
    for (mrb_int i = 0; i < RARRAY_LEN(keys); i++) {
        mrb_value key = mrb_ary_ref(mrb, keys, i);
        if (i > 0)
            put(mrb, gen, ",", 1);
        if (gen.pretty)
            put_newline(mrb, gen, depth);
        mrb_value name = mrb_symbol_p(key) ? mrb_sym_str(mrb, mrb_symbol(key))
                                           : mrb_obj_as_string(mrb, key);
        gc_stress_point(mrb);
        put_string_value(mrb, gen, name);
        put(mrb, gen, gen.pretty ? ": " : ":", gen.pretty ? 2 : 1);
        generate_value(mrb, gen, mrb_hash_get(mrb, hash, key), depth);
        mrb_gc_arena_restore(mrb, arena);
    }
    if (gen.pretty && RARRAY_LEN(keys) > 0)
        put_newline(mrb, gen, depth - 1);
    put(mrb, gen, "}", 1);
}

void generate_value(mrb_state *mrb, Generator &gen, mrb_value value, int depth)
{
    switch (mrb_type(value)) {
    case MRB_TT_FALSE:
        if (mrb_nil_p(value))
            put(mrb, gen, "null", 4);
        else
            put(mrb, gen, "false", 5);
        return;
    case MRB_TT_TRUE: put(mrb, gen, "true", 4); return;
    case MRB_TT_INTEGER: {
        char digits[32];
        int n = std::snprintf(digits, sizeof(digits), "%lld",
                              static_cast<long long>(mrb_integer(value)));
        put(mrb, gen, digits, static_cast<size_t>(n));
        return;
    }
    case MRB_TT_FLOAT: {
        mrb_float f = mrb_float(value);
        if (std::isnan(f))
            mrb_raise(mrb, json_error(mrb, "GeneratorError"), "NaN not allowed in JSON");
        if (std::isinf(f))
            mrb_raise(mrb, json_error(mrb, "GeneratorError"),
                      f > 0 ? "Infinity not allowed in JSON" : "-Infinity not allowed in JSON");
        mrb_value text = mrb_obj_as_string(mrb, value);   // Float#to_s: 1.0, 1.0e+20
        put(mrb, gen, RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text)));
        return;
    }
    case MRB_TT_STRING: put_string_value(mrb, gen, value); return;
    case MRB_TT_SYMBOL: put_string_value(mrb, gen, mrb_sym_str(mrb, mrb_symbol(value))); return;
    case MRB_TT_ARRAY: generate_array(mrb, gen, value, depth + 1); return;
    case MRB_TT_HASH: generate_hash(mrb, gen, value, depth + 1); return;
    default: break;
    }
    // Any other object: its own to_json (which must return a String of
    // JSON), else its to_s as a JSON string.
    if (has_own_to_json(mrb, value)) {
        mrb_value json = mrb_funcall(mrb, value, "to_json", 0);
        if (!mrb_string_p(json))
            mrb_raisef(mrb, json_error(mrb, "GeneratorError"), "%C#to_json returned %C, not a String",
                       mrb_obj_class(mrb, value), mrb_obj_class(mrb, json));
        put(mrb, gen, RSTRING_PTR(json), static_cast<size_t>(RSTRING_LEN(json)));
        return;
    }
    put_string_value(mrb, gen, mrb_obj_as_string(mrb, value));
}

mrb_value generate(mrb_state *mrb, mrb_value value, bool pretty)
{
    Generator gen{mrb_str_new_capa(mrb, 64), pretty};
    generate_value(mrb, gen, value, 0);
    return gen.out;
}

// JSON.generate(obj)
mrb_value json_generate(mrb_state *mrb, mrb_value)
{
    mrb_value value;
    mrb_get_args(mrb, "o", &value);
    return generate(mrb, value, false);
}

// JSON.pretty_generate(obj)
mrb_value json_pretty_generate(mrb_state *mrb, mrb_value)
{
    mrb_value value;
    mrb_get_args(mrb, "o", &value);
    return generate(mrb, value, true);
}

// Object#to_json(*ignored): JSON.generate(self). The arguments (Ruby's json
// passes a generator state) are accepted and ignored.
mrb_value json_to_json(mrb_state *mrb, mrb_value self)
{
    const mrb_value *argv = nullptr;
    mrb_int argc = 0;
    mrb_get_args(mrb, "*", &argv, &argc);
    return generate(mrb, self, false);
}


} // namespace

void init_json_module(mrb_state *mrb)
{
    struct RClass *json = mrb_define_module(mrb, "JSON");
    struct RClass *json_error = mrb_define_class_under(mrb, json, "JSONError", mrb->eStandardError_class);
    struct RClass *parser_error = mrb_define_class_under(mrb, json, "ParserError", json_error);
    mrb_define_class_under(mrb, json, "NestingError", parser_error);
    mrb_define_class_under(mrb, json, "GeneratorError", json_error);
    mrb_define_const(mrb, json, "MAX_NESTING", mrb_int_value(mrb, kMaxNesting));
    mrb_define_module_function(mrb, json, "parse", json_parse, MRB_ARGS_ARG(1, 1));
    mrb_define_module_function(mrb, json, "generate", json_generate, MRB_ARGS_REQ(1));
    mrb_define_module_function(mrb, json, "pretty_generate", json_pretty_generate, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, mrb->object_class, "to_json", json_to_json, MRB_ARGS_ANY());
}

void load_json_if_named(mrb_state *mrb, const mrb_irep *irep)
{
    constexpr unsigned bit = 1u << static_cast<unsigned>(Library::Json);
    if ((vm_impl(mrb).optional_libraries_loaded & bit) != 0)
        return;
    // Symbols the script does not name were never interned (check: 0).
    mrb_sym json = mrb_intern_check(mrb, "JSON", 4);
    mrb_sym to_json = mrb_intern_check(mrb, "to_json", 7);
    bool named = irep_names(
        irep, [&](mrb_sym sym) { return sym != 0 && (sym == json || sym == to_json); },
        [](std::string_view text) { return text == "JSON" || text == "to_json"; });
    if (named)
        ensure_library(mrb, Library::Json);
}

} // namespace dmr::mruby
