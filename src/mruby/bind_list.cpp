// Dovecot::List: a named allow/deny list of IPs, CIDRs (IPv4 and IPv6) and
// strings with expiry and reason, in the process's store. Primitives for the
// Ruby half in mrblib/state.rb (keywords, Entry objects, fallbacks).
#include "mruby/internal.hpp"

#include <mruby/error.h>

#include "core/text.hpp"
#include "mruby/state.hpp"

namespace dmr::mruby {
namespace {

mrb_value name_of(mrb_state *mrb, mrb_value self)
{
    mrb_value name = mrb_iv_get(mrb, self, mrb_intern_lit(mrb, "@name"));
    if (!mrb_string_p(name))
        mrb_raise(mrb, E_RUNTIME_ERROR, "uninitialized Dovecot::List");
    return name;
}

// A failed call: Dovecot::Store::FAILED when the caller has a fallback,
// Dovecot::StoreError otherwise (state.hpp's store_failed_value).
mrb_value failure(mrb_state *mrb, bool log, const StateCall &call)
{
    if (log)
        return store_failed_value(mrb);
    raise_state_error(mrb, call);
}

// --- add / remove ---------------------------------------------------------------

bool add(Vm::Impl &vm, std::string_view list, std::string_view entry, int64_t ttl_us,
         std::string_view reason, bool log, StateCall &call)
{
    core::Status status = state_store(vm).list_add(list, entry, ttl_us, reason);
    if (!status.ok()) {
        state_failed(vm, call, "Dovecot::List#add", status, log);
        return false;
    }
    // An entry added (a ban, for a deny list) is the event mruby_list_add,
    // for metric {} blocks (docs/operations.md, "Metrics").
    if (vm.options.logger != nullptr) {
        std::string text = core::sanitize_for_log(reason, 200);
        core::LogEvent event{"mruby_list_add",
                             {{"list", core::sanitize_for_log(list, 200)},
                              {"entry", core::sanitize_for_log(entry, 200)},
                              {"reason", text}},
                             {{"ttl_s", ttl_us / 1000000}}};
        vm.options.logger->emit("mruby: list " + event.strings[0].second + ": added " +
                                    event.strings[1].second + " (" + text + ")",
                                event);
    }
    return true;
}

// __add(entry, ttl_seconds_or_nil, reason, fallback_given) => true | FAILED
mrb_value list_add(mrb_state *mrb, mrb_value self)
{
    mrb_value entry, ttl, reason;
    mrb_bool log;
    mrb_get_args(mrb, "SoSb", &entry, &ttl, &reason, &log);
    int64_t ttl_us = mrb_nil_p(ttl) ? 0 : seconds_to_us(mrb, ttl, "ttl");
    mrb_value name = name_of(mrb, self);
    StateCall call;
    if (add(vm_impl(mrb), string_view_of(name), string_view_of(entry), ttl_us,
            string_view_of(reason), log, call))
        return mrb_true_value();
    return failure(mrb, log, call);
}

// 1: removed, 0: absent, -1: failed.
int remove(Vm::Impl &vm, std::string_view list, std::string_view entry, bool log, StateCall &call)
{
    core::Result<bool> result = state_store(vm).list_remove(list, entry);
    if (!result.ok()) {
        state_failed(vm, call, "Dovecot::List#remove", result.status, log);
        return -1;
    }
    return result.value ? 1 : 0;
}

// __remove(entry, fallback_given) => true | false | FAILED
mrb_value list_remove(mrb_state *mrb, mrb_value self)
{
    mrb_value entry;
    mrb_bool log;
    mrb_get_args(mrb, "Sb", &entry, &log);
    mrb_value name = name_of(mrb, self);
    StateCall call;
    int removed = remove(vm_impl(mrb), string_view_of(name), string_view_of(entry), log, call);
    if (removed >= 0)
        return mrb_bool_value(removed == 1);
    return failure(mrb, log, call);
}

// --- match / entries --------------------------------------------------------------
// Their results hold strings: the Ruby values are built inside a protected
// call while the C++ result is alive, and an exception (memory limit) is
// raised only after that frame returned.

mrb_value entry_to_ruby(mrb_state *mrb, const core::ListEntry &entry)
{
    mrb_value values[3] = {
        to_ruby(mrb, entry.entry),
        entry.reason.empty() ? mrb_nil_value() : to_ruby(mrb, entry.reason),
        entry.expires_at_us == 0
            ? mrb_nil_value()
            : mrb_float_value(mrb, static_cast<double>(entry.expires_at_us) / 1e6),
    };
    return mrb_ary_new_from_values(mrb, 3, values);
}

struct BuildJob {
    const core::ListEntry *one = nullptr;
    const std::vector<core::ListEntry> *many = nullptr;
};

mrb_value build_body(mrb_state *mrb, void *arg)
{
    auto *job = static_cast<BuildJob *>(arg);
    if (job->one != nullptr)
        return entry_to_ruby(mrb, *job->one);
    if (job->many == nullptr)
        return mrb_nil_value();
    mrb_value array = mrb_ary_new_capa(mrb, static_cast<mrb_int>(job->many->size()));
    int arena = mrb_gc_arena_save(mrb);
    for (const core::ListEntry &entry : *job->many) {
        mrb_ary_push(mrb, array, entry_to_ruby(mrb, entry));
        mrb_gc_arena_restore(mrb, arena);
    }
    return array;
}

enum class Query { Match, Entries };

// The answer (an [entry, reason, expires_at] array, nil for no match, or an
// Array of those), or the exception to raise (`raised`), or a failure in `call`.
mrb_value query(mrb_state *mrb, Query what, std::string_view list, std::string_view value,
                bool log, StateCall &call, mrb_bool &raised)
{
    Vm::Impl &vm = vm_impl(mrb);
    BuildJob job;
    if (what == Query::Match) {
        auto result = state_store(vm).list_match(list, value);
        if (!result.ok()) {
            state_failed(vm, call, "Dovecot::List#match", result.status, log);
            return mrb_nil_value();
        }
        if (!result.value)
            return mrb_nil_value();
        job.one = &*result.value;
        return mrb_protect_error(mrb, build_body, &job, &raised);
    }
    auto result = state_store(vm).list_entries(list);
    if (!result.ok()) {
        state_failed(vm, call, "Dovecot::List#entries", result.status, log);
        return mrb_nil_value();
    }
    job.many = &result.value;
    return mrb_protect_error(mrb, build_body, &job, &raised);
}

mrb_value finish_query(mrb_state *mrb, mrb_value result, bool log, const StateCall &call,
                       mrb_bool raised)
{
    if (raised)
        mrb_exc_raise(mrb, result);
    if (call.failed)
        return failure(mrb, log, call);
    return result;
}

// __match(value, fallback_given) => [entry, reason, expires_at] | nil | FAILED
mrb_value list_match(mrb_state *mrb, mrb_value self)
{
    mrb_value value;
    mrb_bool log;
    mrb_get_args(mrb, "Sb", &value, &log);
    mrb_value name = name_of(mrb, self);
    StateCall call;
    mrb_bool raised = FALSE;
    mrb_value result = query(mrb, Query::Match, string_view_of(name), string_view_of(value), log,
                             call, raised);
    return finish_query(mrb, result, log, call, raised);
}

// __entries(fallback_given) => [[entry, reason, expires_at], ...] | FAILED
mrb_value list_entries(mrb_state *mrb, mrb_value self)
{
    mrb_bool log;
    mrb_get_args(mrb, "b", &log);
    mrb_value name = name_of(mrb, self);
    StateCall call;
    mrb_bool raised = FALSE;
    mrb_value result = query(mrb, Query::Entries, string_view_of(name), {}, log, call, raised);
    return finish_query(mrb, result, log, call, raised);
}

} // namespace

void init_list_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = mrb_define_class_under(mrb, vm.dovecot_module, "List", mrb->object_class);
    mrb_define_method(mrb, c, "__add", list_add, MRB_ARGS_REQ(4));
    mrb_define_method(mrb, c, "__remove", list_remove, MRB_ARGS_REQ(2));
    mrb_define_method(mrb, c, "__match", list_match, MRB_ARGS_REQ(2));
    mrb_define_method(mrb, c, "__entries", list_entries, MRB_ARGS_REQ(1));
}

} // namespace dmr::mruby
