// Dovecot::Distinct: how many distinct members were added to a key within a
// window, estimated by a HyperLogLog in the process's store
// (core/store.hpp distinct_add / distinct_count). Primitives for the Ruby
// half in mrblib/state.rb, with Dovecot::Counter's return convention
// (state.hpp's store_failed_value).
#include "mruby/internal.hpp"

#include "mruby/state.hpp"

namespace dmr::mruby {
namespace {

// The store work, in a frame that mruby never unwinds. False: `call` says why.
bool run(Vm::Impl &vm, std::string_view key, const std::string_view *member, int64_t window_us,
         bool log, StateCall &call, int64_t &value)
{
    core::Store &store = state_store(vm);
    core::Result<int64_t> result = member != nullptr
                                       ? store.distinct_add(key, *member, window_us)
                                       : store.distinct_count(key, window_us);
    if (!result.ok()) {
        state_failed(vm, call, member != nullptr ? "Dovecot::Distinct#add" : "Dovecot::Distinct#count",
                     result.status, log);
        return false;
    }
    value = result.value;
    return true;
}

mrb_value finish(mrb_state *mrb, bool ok, bool log, const StateCall &call, int64_t value)
{
    if (ok)
        return mrb_int_value(mrb, static_cast<mrb_int>(value));
    if (log)
        return store_failed_value(mrb);
    raise_state_error(mrb, call);
}

// __add(key, member, window_seconds, fallback_given) => Integer | FAILED
mrb_value distinct_add(mrb_state *mrb, mrb_value)
{
    mrb_value key, member, window;
    mrb_bool log;
    mrb_get_args(mrb, "SSob", &key, &member, &window, &log);
    const int64_t window_us = seconds_to_us(mrb, window, "window");
    const std::string_view bytes = string_view_of(member);
    StateCall call;
    int64_t value = 0;
    bool ok = run(vm_impl(mrb), string_view_of(key), &bytes, window_us, log, call, value);
    return finish(mrb, ok, log, call, value);
}

// __count(key, window_seconds, fallback_given) => Integer | FAILED
mrb_value distinct_count(mrb_state *mrb, mrb_value)
{
    mrb_value key, window;
    mrb_bool log;
    mrb_get_args(mrb, "Sob", &key, &window, &log);
    const int64_t window_us = seconds_to_us(mrb, window, "window");
    StateCall call;
    int64_t value = 0;
    bool ok = run(vm_impl(mrb), string_view_of(key), nullptr, window_us, log, call, value);
    return finish(mrb, ok, log, call, value);
}

} // namespace

void init_distinct_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = mrb_define_class_under(mrb, vm.dovecot_module, "Distinct",
                                              mrb->object_class);
    mrb_define_class_method(mrb, c, "__add", distinct_add, MRB_ARGS_REQ(4));
    mrb_define_class_method(mrb, c, "__count", distinct_count, MRB_ARGS_REQ(3));
}

} // namespace dmr::mruby
