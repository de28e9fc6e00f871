// One on_auth call with a trivial handler, as the auth driver makes it per
// login (target: <= 2 us median), and one on_auth_result call.
// Run: build/bench/auth_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "core/dispatcher.hpp"
#include "core/events.hpp"
#include "core/logger.hpp"
#include "mruby/vm.hpp"

namespace {

class NullLogger final : public dmr::core::Logger {
public:
    void log(dmr::core::LogLevel, std::string_view) override {}
};

const char kTrivialPolicy[] = R"(
  Dovecot.on_auth { |auth| auth.reject("blocked") if auth.user == "mallory" }
  Dovecot.on_auth_result { |res| res.success? }
)";

dmr::core::AuthRequestInfo sample_request()
{
    dmr::core::AuthRequestInfo info;
    info.user = "alice@example.com";
    info.service = "imap";
    info.remote_ip = "192.0.2.10";
    info.local_ip = "127.0.0.1";
    info.remote_port = 50123;
    info.local_port = 143;
    info.mechanism = "PLAIN";
    info.session_id = "AbCdEfGhIjKl";
    return info;
}

std::unique_ptr<dmr::mruby::Vm> make_vm(NullLogger &logger)
{
    dmr::mruby::VmOptions options;
    options.logger = &logger;
    dmr::core::ScriptError error;
    auto vm = dmr::mruby::Vm::create(options, error);
    if (vm == nullptr || vm->load_source(kTrivialPolicy, "policy.rb"))
        std::abort();
    return vm;
}

// The VM call alone.
void BM_OnAuthTrivialHandler(benchmark::State &state)
{
    NullLogger logger;
    auto vm = make_vm(logger);
    const dmr::core::AuthRequestInfo info = sample_request();
    for (auto _ : state) {
        dmr::core::AuthOutput out;
        auto event = dmr::core::Event::make<dmr::core::Hook::Auth>(info, out);
        auto result = vm->run(event);
        benchmark::DoNotOptimize(result);
    }
}
BENCHMARK(BM_OnAuthTrivialHandler)->Unit(benchmark::kMicrosecond);

// What the driver does per login besides Dovecot's own work: copy the
// request into a core value, then dispatch (failure policy included).
void BM_OnAuthWithRequestCopyAndDispatcher(benchmark::State &state)
{
    NullLogger logger;
    dmr::core::Dispatcher dispatcher(logger, dmr::core::OnError::Tempfail, make_vm(logger));
    const dmr::core::AuthRequestInfo source = sample_request();
    for (auto _ : state) {
        dmr::core::AuthRequestInfo info = source;
        dmr::core::AuthOutput out;
        auto event = dmr::core::Event::make<dmr::core::Hook::Auth>(info, out);
        auto verdict = dispatcher.dispatch(event);
        benchmark::DoNotOptimize(verdict);
    }
}
BENCHMARK(BM_OnAuthWithRequestCopyAndDispatcher)->Unit(benchmark::kMicrosecond);

void BM_OnAuthResultTrivialHandler(benchmark::State &state)
{
    NullLogger logger;
    auto vm = make_vm(logger);
    dmr::core::AuthRequestInfo info = sample_request();
    info.success = true;
    for (auto _ : state) {
        auto event = dmr::core::Event::make<dmr::core::Hook::AuthResult>(info);
        auto result = vm->run(event);
        benchmark::DoNotOptimize(result);
    }
}
BENCHMARK(BM_OnAuthResultTrivialHandler)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
