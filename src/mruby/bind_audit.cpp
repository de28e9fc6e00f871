// Dovecot.audit(kind, **fields): one JSON record to the session's audit sinks;
// true when every sink took it, false when none is configured or one could
// not store it (a full disk). The record is built in the session's
// core::Auditor (not on this frame), so a Ruby error raised half-way (a
// failing to_s) skips no C++ destructor; the half-built record is simply
// never committed. The record caps its own size (core::kMaxAuditRecordBytes):
// strings are cut before they are escaped, and nested values stop when it
// says no more fit.
#include "mruby/internal.hpp"

#include <cstdio>
#include <cstdlib>

#include "core/audit.hpp"

namespace dmr::mruby {
namespace {

// A Ruby Float as the number it stands for. libmruby boxes floats in a word
// (MRB_WORD_BOXING) and drops their last 2 bits, so 0.028 (and
// `(0.000028 * 1000).round(3)`) arrives as 0.027999999999999997. A boxed
// float carries 15 significant digits at most: reading those back gives
// the double nearest to what the script meant, which the record writes as 0.028.
double float_of(mrb_value value)
{
    char text[32];
    std::snprintf(text, sizeof(text), "%.15g", static_cast<double>(mrb_float(value)));
    return std::strtod(text, nullptr);
}

constexpr int kMaxNesting = 8;

std::string_view view(mrb_value str)
{
    return std::string_view(RSTRING_PTR(str), static_cast<size_t>(RSTRING_LEN(str)));
}

// Symbols and strings as they are, anything else through to_s.
mrb_value text_of(mrb_state *mrb, mrb_value value)
{
    if (mrb_symbol_p(value))
        return mrb_sym_str(mrb, mrb_symbol(value));
    return mrb_obj_as_string(mrb, value);
}

void write_value(mrb_state *mrb, core::AuditRecord &record, mrb_value value, int depth)
{
    core::JsonWriter &writer = record.writer();
    if (mrb_nil_p(value)) {
        writer.null();
    } else if (mrb_true_p(value) || mrb_false_p(value)) {
        writer.boolean(mrb_true_p(value));
    } else if (mrb_integer_p(value)) {
        writer.integer(mrb_integer(value));
    } else if (mrb_float_p(value)) {
        writer.number(float_of(value));
    } else if (mrb_array_p(value) && depth < kMaxNesting) {
        writer.begin_array();
        for (mrb_int i = 0; i < RARRAY_LEN(value) && record.more(); i++)
            write_value(mrb, record, mrb_ary_entry(value, i), depth + 1);
        writer.end_array();
    } else if (mrb_hash_p(value) && depth < kMaxNesting) {
        mrb_value keys = mrb_hash_keys(mrb, value);
        writer.begin_object();
        for (mrb_int i = 0; i < RARRAY_LEN(keys) && record.more(); i++) {
            mrb_value key = mrb_ary_entry(keys, i);
            record.nested_object_key(view(text_of(mrb, key)));
            write_value(mrb, record, mrb_hash_get(mrb, value, key), depth + 1);
        }
        writer.end_object();
    } else {
        record.nested_string(view(text_of(mrb, value)));
    }
}

void write_field(mrb_state *mrb, core::AuditRecord &record, std::string_view name, mrb_value value)
{
    if (mrb_nil_p(value))
        record.field_null(name);
    else if (mrb_true_p(value) || mrb_false_p(value))
        record.field_bool(name, mrb_true_p(value));
    else if (mrb_integer_p(value))
        record.field_int(name, mrb_integer(value));
    else if (mrb_float_p(value))
        record.field_number(name, float_of(value));
    else if (mrb_array_p(value) || mrb_hash_p(value)) {
        record.nested_key(name);
        write_value(mrb, record, value, 1);
    } else
        record.field(name, view(text_of(mrb, value)));
}

mrb_value dovecot_audit(mrb_state *mrb, mrb_value)
{
    mrb_value kind;
    mrb_value fields = mrb_nil_value();
    mrb_kwargs kwargs = {0, 0, nullptr, nullptr, &fields};
    mrb_get_args(mrb, "o:", &kind, &kwargs);
    kind = text_of(mrb, kind);
    core::Auditor *auditor = vm_impl(mrb).options.auditor;
    if (auditor == nullptr || !auditor->active())
        return mrb_false_value();
    mrb_value keys = mrb_hash_p(fields) ? mrb_hash_keys(mrb, fields) : mrb_ary_new(mrb);
    gc_stress_point(mrb);
    core::AuditRecord &record = auditor->begin(view(kind));
    for (mrb_int i = 0; i < RARRAY_LEN(keys); i++) {
        mrb_value key = mrb_ary_entry(keys, i);
        mrb_value name = text_of(mrb, key);
        write_field(mrb, record, view(name), mrb_hash_get(mrb, fields, key));
    }
    return mrb_bool_value(auditor->commit());
}

} // namespace

void init_audit(mrb_state *mrb)
{
    mrb_define_module_function(mrb, vm_impl(mrb).dovecot_module, "audit", dovecot_audit,
                               MRB_ARGS_REQ(1) | MRB_ARGS_KEY(0, 1));
}

} // namespace dmr::mruby
