// The one place where a Ruby exception becomes a core::ScriptError.
#include "mruby/internal.hpp"
#include <mruby/error.h>

#include <cstdlib>


namespace dmr::mruby {
namespace {

struct Described {
    mrb_value exc;
    core::ScriptError *out;
};

std::string ruby_string(mrb_state *mrb, mrb_value v)
{
    if (!mrb_string_p(v))
        v = mrb_obj_as_string(mrb, v);
    return std::string(RSTRING_PTR(v), static_cast<size_t>(RSTRING_LEN(v)));
}

// "policy.rb:12:in foo" -> file "policy.rb", line 12
void parse_location(const std::string &entry, std::string &file, int &line)
{
    size_t colon = entry.find(':');
    while (colon != std::string::npos) {
        size_t end = colon + 1;
        while (end < entry.size() && entry[end] >= '0' && entry[end] <= '9')
            end++;
        if (end > colon + 1 && (end == entry.size() || entry[end] == ':')) {
            file = entry.substr(0, colon);
            line = std::atoi(entry.c_str() + colon + 1);
            return;
        }
        colon = entry.find(':', colon + 1);
    }
}

mrb_value describe_body(mrb_state *mrb, void *arg)
{
    auto *d = static_cast<Described *>(arg);
    gc_stress_point(mrb);
    mrb_value message = mrb_funcall(mrb, d->exc, "message", 0);
    gc_stress_point(mrb);
    const char *class_name = mrb_obj_classname(mrb, d->exc);
    d->out->message = ruby_string(mrb, message) + " (" + (class_name ? class_name : "?") + ")";
    mrb_value bt = mrb_exc_backtrace(mrb, d->exc);
    gc_stress_point(mrb);
    if (mrb_array_p(bt)) {
        for (mrb_int i = 0; i < RARRAY_LEN(bt) && i < 16; i++)
            d->out->backtrace.push_back(ruby_string(mrb, mrb_ary_entry(bt, i)));
    }
    return mrb_nil_value();
}

} // namespace

core::ScriptError describe_exception(mrb_state *mrb, mrb_value exc, core::ScriptError::Kind kind)
{
    core::ScriptError error;
    error.kind = kind;
    if (mrb_immediate_p(exc)) {
        error.message = "unknown error";
        return error;
    }
    mrb->exc = nullptr;
    int arena = mrb_gc_arena_save(mrb);
    mrb_gc_protect(mrb, exc);
    Described d{exc, &error};
    mrb_bool failed = FALSE;
    mrb_protect_error(mrb, describe_body, &d, &failed);
    if (failed) {
        mrb->exc = nullptr;
        const char *class_name = mrb_obj_classname(mrb, exc);
        error.message = std::string("exception ") + (class_name ? class_name : "?") +
                        " (could not be described)";
    }
    mrb_gc_arena_restore(mrb, arena);
    // The innermost frame of the script (not of the API's own mrblib/) is
    // where the script failed.
    for (const std::string &entry : error.backtrace) {
        if (entry.find("mrblib/") != std::string::npos)
            continue;
        parse_location(entry, error.file, error.line);
        if (!error.file.empty())
            break;
    }
    return error;
}

} // namespace dmr::mruby
