// Dovecot::RateLimit: a named GCRA limit over the process's store
// (core::RateLimiter). The Ruby half (keyword arguments, the Decision
// object) is in mrblib/state.rb; these are its primitives.
#include "mruby/internal.hpp"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "mruby/state.hpp"
#include "core/rate_limiter.hpp"

namespace dmr::mruby {
namespace {

// Plain data in mruby-allocated memory; the name lives in @name.
struct LimitData {
    core::GcraRate rate;
    core::FailMode mode;
};

const mrb_data_type limit_type = {"Dovecot::RateLimit", mrb_free};

const LimitData &limit_of(mrb_state *mrb, mrb_value self)
{
    auto *data = static_cast<LimitData *>(mrb_data_get_ptr(mrb, self, &limit_type));
    if (data == nullptr)
        mrb_raise(mrb, E_RUNTIME_ERROR, "uninitialized Dovecot::RateLimit");
    return *data;
}

mrb_value name_of(mrb_state *mrb, mrb_value self)
{
    mrb_value name = mrb_iv_get(mrb, self, mrb_intern_lit(mrb, "@name"));
    if (!mrb_string_p(name))
        mrb_raise(mrb, E_RUNTIME_ERROR, "uninitialized Dovecot::RateLimit");
    return name;
}

// GcraRate::make in a frame of its own (its error is a std::string).
bool make_rate(int64_t limit, int64_t period_us, int64_t burst, core::GcraRate &out,
               char *error, size_t error_size)
{
    std::string why;
    auto rate = core::GcraRate::make(limit, period_us, burst, &why);
    if (!rate) {
        std::snprintf(error, error_size, "%s", why.c_str());
        return false;
    }
    out = *rate;
    return true;
}

// __configure(limit, period_seconds, burst, fail_mode_string)
mrb_value limit_configure(mrb_state *mrb, mrb_value self)
{
    mrb_int limit, burst;
    mrb_value period;
    const char *fail;
    mrb_get_args(mrb, "ioiz", &limit, &period, &burst, &fail);
    if (limit < 1)
        mrb_raise(mrb, E_ARGUMENT_ERROR, "limit must be at least 1");
    if (burst < 1)
        mrb_raise(mrb, E_ARGUMENT_ERROR, "burst must be at least 1");
    int64_t period_us = seconds_to_us(mrb, period, "period");
    LimitData data{};
    if (std::strcmp(fail, "open") == 0)
        data.mode = core::FailMode::Open;
    else if (std::strcmp(fail, "closed") == 0)
        data.mode = core::FailMode::Closed;
    else
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "fail: must be :open or :closed, not :%s", fail);
    char error[160];
    if (!make_rate(limit, period_us, burst, data.rate, error, sizeof(error)))
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "invalid rate limit: %s", error);

    void *memory = DATA_PTR(self);
    if (memory == nullptr)
        memory = mrb_malloc(mrb, sizeof(LimitData));
    *static_cast<LimitData *>(memory) = data;
    DATA_PTR(self) = memory;
    DATA_TYPE(self) = &limit_type;
    return self;
}

enum class Op { Hit, Peek };

// The store work, with its C++ objects, in a frame that mruby never unwinds.
core::RateDecision decide(Vm::Impl &vm, std::string_view name, const LimitData &data,
                           std::string_view key, int64_t cost, Op op)
{
    core::RateLimiter limiter(state_store(vm), state_failures(vm), std::string(name), data.rate,
                               data.mode);
    return op == Op::Hit ? limiter.hit(key, cost) : limiter.peek(key, cost);
}

bool reset(Vm::Impl &vm, std::string_view name, const LimitData &data, std::string_view key)
{
    core::RateLimiter limiter(state_store(vm), state_failures(vm), std::string(name), data.rate,
                               data.mode);
    return limiter.reset(key);
}

double us_to_seconds(int64_t us) { return static_cast<double>(us) / 1e6; }

// Held in limit_decide's frame while it makes Ruby values (which may raise).
static_assert(std::is_trivially_destructible<core::RateDecision>::value,
              "a longjmp out of limit_decide must skip no destructor");

// __decide(key, cost, record) => [allowed, remaining, retry_after, reset_after, store_failed]
// Seconds as Floats; retry_after is Float::INFINITY when the cost exceeds the burst.
mrb_value limit_decide(mrb_state *mrb, mrb_value self)
{
    mrb_value key;
    mrb_int cost;
    mrb_bool record;
    mrb_get_args(mrb, "Sib", &key, &cost, &record);
    if (cost < 0)
        mrb_raise(mrb, E_ARGUMENT_ERROR, "cost must not be negative");
    const LimitData &data = limit_of(mrb, self);
    mrb_value name = name_of(mrb, self);
    core::RateDecision d = decide(vm_impl(mrb), string_view_of(name), data,
                                   string_view_of(key), cost, record ? Op::Hit : Op::Peek);
    gc_stress_point(mrb);
    mrb_value values[5] = {
        mrb_bool_value(d.allowed),
        mrb_int_value(mrb, static_cast<mrb_int>(d.remaining)),
        mrb_float_value(mrb, d.retry_after_us == core::kRetryNever
                                 ? INFINITY
                                 : us_to_seconds(d.retry_after_us)),
        mrb_float_value(mrb, us_to_seconds(d.reset_after_us)),
        mrb_bool_value(d.store_failed),
    };
    return mrb_ary_new_from_values(mrb, 5, values);
}

// reset(key) => true, or false when the store failed (logged).
mrb_value limit_reset(mrb_state *mrb, mrb_value self)
{
    mrb_value key;
    mrb_get_args(mrb, "o", &key);
    key = mrb_obj_as_string(mrb, key);
    const LimitData &data = limit_of(mrb, self);
    mrb_value name = name_of(mrb, self);
    return mrb_bool_value(reset(vm_impl(mrb), string_view_of(name), data, string_view_of(key)));
}

} // namespace

void init_ratelimit_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = mrb_define_class_under(mrb, vm.dovecot_module, "RateLimit",
                                              mrb->object_class);
    MRB_SET_INSTANCE_TT(c, MRB_TT_DATA);
    mrb_define_method(mrb, c, "__configure", limit_configure, MRB_ARGS_REQ(4));
    mrb_define_method(mrb, c, "__decide", limit_decide, MRB_ARGS_REQ(3));
    mrb_define_method(mrb, c, "reset", limit_reset, MRB_ARGS_REQ(1));
}

} // namespace dmr::mruby
