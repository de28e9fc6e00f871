// Dovecot::Counter: counters with a fixed window (TTL) in the process's
// store. Primitives for the Ruby half in mrblib/state.rb, which turns
// Dovecot::Store::FAILED (a store failure that the call asked to survive)
// into its fallback: the convention of state.hpp's store_failed_value.
#include "mruby/internal.hpp"

#include "mruby/state.hpp"

namespace dmr::mruby {
namespace {

enum class Op { Incr, Get, Reset };

const char *op_name(Op op)
{
    switch (op) {
    case Op::Incr: return "Dovecot::Counter.incr";
    case Op::Get: return "Dovecot::Counter.get";
    case Op::Reset: return "Dovecot::Counter.reset";
    }
    return "Dovecot::Counter";
}

// The store work, in a frame that mruby never unwinds. False: `call` says why.
bool run(Vm::Impl &vm, Op op, std::string_view key, int64_t by, int64_t ttl_us, bool log,
         StateCall &call, int64_t &value)
{
    core::Store &store = state_store(vm);
    core::Result<int64_t> result;
    if (op == Op::Incr) {
        result = store.counter_incr(key, by, ttl_us);
    } else if (op == Op::Get) {
        result = store.counter_get(key);
    } else {
        result = store.counter_reset(key);
        result.value = 0;
    }
    if (!result.ok()) {
        state_failed(vm, call, op_name(op), result.status, log);
        return false;
    }
    value = result.value;
    return true;
}

// Dovecot::Store::FAILED when the store failed and `log` (the caller has a
// fallback); raises Dovecot::StoreError when it failed otherwise.
mrb_value finish(mrb_state *mrb, bool ok, bool log, const StateCall &call, mrb_value value)
{
    if (ok)
        return value;
    if (log)
        return store_failed_value(mrb);
    raise_state_error(mrb, call);
}

// __incr(key, by, ttl_seconds, fallback_given) => Integer | FAILED
mrb_value counter_incr(mrb_state *mrb, mrb_value)
{
    mrb_value key, ttl;
    mrb_int by;
    mrb_bool log;
    mrb_get_args(mrb, "Siob", &key, &by, &ttl, &log);
    int64_t ttl_us = seconds_to_us(mrb, ttl, "ttl");
    StateCall call;
    int64_t value = 0;
    bool ok = run(vm_impl(mrb), Op::Incr, string_view_of(key), by, ttl_us, log, call, value);
    return finish(mrb, ok, log, call, mrb_int_value(mrb, static_cast<mrb_int>(value)));
}

// __get(key, fallback_given) => Integer | FAILED
mrb_value counter_get(mrb_state *mrb, mrb_value)
{
    mrb_value key;
    mrb_bool log;
    mrb_get_args(mrb, "Sb", &key, &log);
    StateCall call;
    int64_t value = 0;
    bool ok = run(vm_impl(mrb), Op::Get, string_view_of(key), 0, 0, log, call, value);
    return finish(mrb, ok, log, call, mrb_int_value(mrb, static_cast<mrb_int>(value)));
}

// __reset(key, fallback_given) => true | FAILED
mrb_value counter_reset(mrb_state *mrb, mrb_value)
{
    mrb_value key;
    mrb_bool log;
    mrb_get_args(mrb, "Sb", &key, &log);
    StateCall call;
    int64_t value = 0;
    bool ok = run(vm_impl(mrb), Op::Reset, string_view_of(key), 0, 0, log, call, value);
    return finish(mrb, ok, log, call, mrb_true_value());
}

} // namespace

void init_counter_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = mrb_define_class_under(mrb, vm.dovecot_module, "Counter",
                                              mrb->object_class);
    mrb_undef_class_method(mrb, c, "new");
    mrb_define_class_method(mrb, c, "__incr", counter_incr, MRB_ARGS_REQ(4));
    mrb_define_class_method(mrb, c, "__get", counter_get, MRB_ARGS_REQ(2));
    mrb_define_class_method(mrb, c, "__reset", counter_reset, MRB_ARGS_REQ(2));
}

} // namespace dmr::mruby
