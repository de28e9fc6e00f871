// The one place where a Ruby exception becomes a core::ScriptError.
//
// Describing an exception runs the exception's own Ruby code (`message`,
// which calls `to_s`, and `to_s` of whatever message returned): script code
// like a handler, so the caller runs this under the same limits (the
// allocator's memory limit and a watchdog, see run_guarded in vm.cpp). What
// can be read without running Ruby (the class name, the backtrace the VM
// recorded) is read through the C API; `inspect` and a `backtrace` method of
// the script are never called.
//
// Longjmp rule: the protected bodies below hold no C++ object; Ruby values
// are copied into C++ strings only after mrb_protect_error returned.
#include "mruby/internal.hpp"
#include "mruby/watchdog.hpp"
#include <mruby/error.h>
#include "mruby/compat.hpp"

#include <cstdlib>
#include <cstring>


namespace dmr::mruby {

// The names the API's own Ruby files are compiled under ("dovecot/state.rb",
// mrblib/meson.build), null-terminated.
extern const char *const api_files[];

namespace {

// What is copied out of the VM, at most: a message or a backtrace entry of a
// few megabytes would only be truncated in the log line anyway.
constexpr size_t kMaxMessageBytes = 1024;
constexpr size_t kMaxEntryBytes = 512;
constexpr mrb_int kMaxBacktrace = 16;

void copy_capped(mrb_value str, size_t max, std::string &out)
{
    size_t len = static_cast<size_t>(RSTRING_LEN(str));
    if (len <= max) {
        out.assign(RSTRING_PTR(str), len);
    } else {
        out.assign(RSTRING_PTR(str), max);
        out += "...";
    }
}

// The name of `obj`'s class as the VM recorded it when the class was named
// (a Symbol for a top-level class, a String such as "Site::OddError" for a
// nested one): no Ruby code runs and nothing is allocated, so this works
// after the limits stopped everything else. mrb_obj_classname would allocate.
void class_name_of(mrb_state *mrb, mrb_value obj, std::string &out)
{
    struct RClass *c = mrb_class_real(mrb_class(mrb, obj));
    if (c != nullptr) {
        mrb_value path = mrb_obj_iv_get(mrb, reinterpret_cast<struct RObject *>(c),
                                        mrb_intern_lit(mrb, "__classname__"));
        if (mrb_symbol_p(path)) {
            mrb_int len = 0;
            const char *name = mrb_sym_name_len(mrb, mrb_symbol(path), &len);
            if (name != nullptr) {
                out.assign(name, static_cast<size_t>(len));
                return;
            }
        } else if (mrb_string_p(path)) {
            copy_capped(path, kMaxEntryBytes, out);
            return;
        }
    }
    out = "an anonymous class";
}

// C only: the backtrace the VM recorded (unpacked on first use, which
// allocates). Returns an Array, or nil.
mrb_value backtrace_body(mrb_state *mrb, void *arg)
{
    mrb_value exc = *static_cast<mrb_value *>(arg);
    gc_stress_point(mrb);
    return mrb_exc_backtrace(mrb, exc);
}

// Ruby: `message`, and `to_s` of a message that is not a String.
mrb_value message_body(mrb_state *mrb, void *arg)
{
    mrb_value exc = *static_cast<mrb_value *>(arg);
    gc_stress_point(mrb);
    // A Ruby method called from C may return with mrb->exc set instead of
    // raising (it then returns the exception): raise it here.
    mrb_value message = mrb_funcall(mrb, exc, "message", 0);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
    gc_stress_point(mrb);
    if (!mrb_string_p(message)) {
        message = mrb_obj_as_string(mrb, message);
        if (mrb->exc != nullptr)
            mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
    }
    return message;
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

bool is_api_file(const std::string &file)
{
    for (const char *const *name = api_files; *name != nullptr; name++) {
        if (file == *name)
            return true;
    }
    return false;
}

// Why a protected step failed: the limits (the watchdog's deadline, which a
// loop that allocates nothing meets in the instruction hook, or what the
// allocator recorded), or an exception of its own.
DescribeFailure failure_of(Allocator &allocator)
{
    if (allocator.deadline_hit() || Watchdog::soft_expired())
        return DescribeFailure::Timeout;
    if (allocator.limit_hit())
        return DescribeFailure::MemoryLimit;
    return DescribeFailure::Raised;
}

} // namespace

core::ScriptError describe_exception(mrb_state *mrb, mrb_value exc, core::ScriptError::Kind kind,
                                     DescribeFailure *failure_r)
{
    core::ScriptError error;
    error.kind = kind;
    DescribeFailure failure = DescribeFailure::None;
    if (mrb_immediate_p(exc)) {
        error.message = "unknown error";
        if (failure_r != nullptr)
            *failure_r = failure;
        return error;
    }
    Allocator &allocator = vm_impl(mrb).allocator;
    mrb->exc = nullptr;
    int arena = mrb_gc_arena_save(mrb);
    std::string class_name;
    class_name_of(mrb, exc, class_name);

    // Each step's result is protected (by mrb_protect_error) only until the
    // next step: copy it out at once.
    mrb_bool failed = FALSE;
    mrb_value bt = mrb_protect_error(mrb, backtrace_body, &exc, &failed);
    if (failed) {
        failure = failure_of(allocator);
    } else if (mrb_array_p(bt)) {
        for (mrb_int i = 0; i < RARRAY_LEN(bt) && i < kMaxBacktrace; i++) {
            mrb_value entry = mrb_ary_entry(bt, i);
            error.backtrace.emplace_back();
            // Entries are Strings unless the script changed the Array.
            if (mrb_string_p(entry))
                copy_capped(entry, kMaxEntryBytes, error.backtrace.back());
            else
                error.backtrace.back() = "?";
        }
    }

    mrb_value message = mrb_nil_value();
    if (failure == DescribeFailure::None) {
        message = mrb_protect_error(mrb, message_body, &exc, &failed);
        if (failed) {
            failure = failure_of(allocator);
            if (failure == DescribeFailure::Raised) {
                std::string raised;
                class_name_of(mrb, message, raised);
                error.message = "message unavailable: raised " + raised + " (" + class_name + ")";
            }
        } else {
            copy_capped(message, kMaxMessageBytes, error.message);
            error.message += " (" + class_name + ")";
        }
    }
    mrb->exc = nullptr;
    if (failure == DescribeFailure::Timeout)
        error.message = "message unavailable: timed out (" + class_name + ")";
    else if (failure == DescribeFailure::MemoryLimit)
        error.message = std::string("message unavailable: exceeded ") +
                        vm_impl(mrb).options.limit_settings + "memory_limit=" +
                        std::to_string(allocator.limit()) + " bytes (" + class_name + ")";
    else if (failure == DescribeFailure::Raised && error.message.empty())
        error.message = "message unavailable (" + class_name + ")";
    mrb_gc_arena_restore(mrb, arena);

    // The innermost frame of the script (not of the API's own Ruby files,
    // known by their exact names) is where the script failed.
    for (const std::string &entry : error.backtrace) {
        std::string file;
        int line = 0;
        parse_location(entry, file, line);
        if (file.empty() || is_api_file(file))
            continue;
        error.file = std::move(file);
        error.line = line;
        break;
    }
    if (failure_r != nullptr)
        *failure_r = failure;
    return error;
}

} // namespace dmr::mruby
