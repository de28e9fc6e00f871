#include "mruby/state.hpp"

#include <cmath>

#include "core/ratelimit.hpp"
#include "core/store_registry.hpp"

namespace dmr::mruby {
namespace {

class NullLogger final : public core::Logger {
public:
    void log(core::LogLevel, std::string_view) override {}
};

void set_message(StateCall &call, const char *what, std::string_view detail)
{
    call.failed = true;
    std::snprintf(call.message, sizeof(call.message), "%s: %.*s", what,
                  static_cast<int>(detail.size()), detail.data());
}

} // namespace

core::FailureLog &state_failures(Vm::Impl &vm)
{
    if (!vm.store_failures) {
        static NullLogger null_logger;
        core::Logger &logger = vm.options.logger != nullptr ? *vm.options.logger : null_logger;
        vm.store_failures = std::make_unique<core::FailureLog>(logger);
    }
    return *vm.store_failures;
}

namespace {

// Stands in for a store that cannot be opened: every call fails at once.
class UnavailableStore final : public core::Store {
public:
    std::string reason;

    const char *backend() const override { return "none"; }
    core::Result<core::GcraDecision> rate_hit(std::string_view, const core::GcraRate &,
                                               int64_t) override { return fail(); }
    core::Result<core::GcraDecision> rate_peek(std::string_view, const core::GcraRate &,
                                                int64_t) override { return fail(); }
    core::Status rate_reset(std::string_view) override { return fail(); }
    core::Result<int64_t> counter_incr(std::string_view, int64_t, int64_t) override
    {
        return fail();
    }
    core::Result<int64_t> counter_get(std::string_view) override { return fail(); }
    core::Status counter_reset(std::string_view) override { return fail(); }
    core::Status list_add(std::string_view, std::string_view, int64_t,
                           std::string_view) override { return fail(); }
    core::Result<bool> list_remove(std::string_view, std::string_view) override
    {
        return fail();
    }
    core::Result<std::optional<core::ListEntry>> list_match(std::string_view,
                                                              std::string_view) override
    {
        return fail();
    }
    core::Result<std::vector<core::ListEntry>> list_entries(std::string_view) override
    {
        return fail();
    }
    core::Result<int64_t> distinct_add(std::string_view, std::string_view, int64_t) override
    {
        return fail();
    }
    core::Result<int64_t> distinct_count(std::string_view, int64_t) override { return fail(); }

private:
    core::Status fail() const
    {
        return core::Status::error(core::Status::Code::Unavailable, reason);
    }
};

} // namespace

core::Store &state_store(Vm::Impl &vm)
{
    std::string error = "no store configured (mruby_store)";
    core::Store *store = vm.options.store != nullptr ? vm.options.store->get(error) : nullptr;
    if (store != nullptr)
        return *store;
    static UnavailableStore unavailable;   // processes are single-threaded
    unavailable.reason = error;
    return unavailable;
}

void state_failed(Vm::Impl &vm, StateCall &call, const char *what, const core::Status &status,
                  bool log)
{
    std::string detail = std::string(status_code_name(status.code())) + ": " + status.message();
    set_message(call, what, detail);
    if (log)
        state_failures(vm).report(what, status);
}

void init_store_module(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *store = mrb_define_module_under(mrb, vm.dovecot_module, "Store");
    mrb_value failed = mrb_obj_new(mrb, mrb->object_class, 0, nullptr);
    mrb_obj_freeze(mrb, failed);
    mrb_define_const(mrb, store, "FAILED", failed);
}

mrb_value store_failed_value(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *store = mrb_module_get_under(mrb, vm.dovecot_module, "Store");
    return mrb_const_get(mrb, mrb_obj_value(store), mrb_intern_lit(mrb, "FAILED"));
}

void raise_state_error(mrb_state *mrb, const StateCall &call)
{
    Vm::Impl &vm = vm_impl(mrb);
    if (vm.store_error == nullptr)   // defined by mrblib/state.rb
        vm.store_error = mrb_class_get_under(mrb, vm.dovecot_module, "StoreError");
    mrb_raise(mrb, vm.store_error, call.message);
}

int64_t seconds_to_us(mrb_state *mrb, mrb_value seconds, const char *what)
{
    double value;
    if (mrb_integer_p(seconds))
        value = static_cast<double>(mrb_integer(seconds));
    else if (mrb_float_p(seconds))
        value = mrb_float(seconds);
    else
        mrb_raisef(mrb, E_TYPE_ERROR, "%s must be a number of seconds", what);
    double us = std::ceil(value * 1e6);
    if (!(us >= 1) || us > static_cast<double>(core::kMaxSpanUs))
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "%s must be between 1 microsecond and 10 years", what);
    return static_cast<int64_t>(us);
}

} // namespace dmr::mruby
