// Micro-benchmarks of the per-session costs on the login path:
//   VM start-up + loading the example policy, and one hook call.
// Run: build/bench/vm_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/events.hpp"
#include "core/logger.hpp"
#include "core/script_cache.hpp"
#include "mruby/vm.hpp"

namespace {

class NullLogger final : public dmr::core::Logger {
public:
    void log(dmr::core::LogLevel, std::string_view) override {}
};

std::string example_policy()
{
    std::ifstream in(DMR_SOURCE_ROOT "/conf.d/mruby/policy.rb");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

dmr::core::SessionInfo sample_session()
{
    dmr::core::SessionInfo s;
    s.user = "alice@example.com";
    s.service = "imap";
    s.remote_ip = "192.0.2.10";
    s.local_ip = "127.0.0.1";
    s.session_id = "AbCdEfGh";
    s.userdb_fields = {{"role", "staff"}};
    return s;
}

std::unique_ptr<dmr::mruby::Vm> make_vm(NullLogger &logger)
{
    dmr::mruby::VmOptions options;
    options.logger = &logger;
    // Under callgrind (bench/callgrind_cost.py) on a loaded machine, loading
    // the example policy ran past the default 200 ms and the run was lost.
    options.timeout_ms = 60000;
    dmr::core::ScriptError error;
    return dmr::mruby::Vm::create(options, error);
}

void BM_VmStart(benchmark::State &state)
{
    NullLogger logger;
    for (auto _ : state) {
        auto vm = make_vm(logger);
        benchmark::DoNotOptimize(vm.get());
    }
}
BENCHMARK(BM_VmStart)->Unit(benchmark::kMicrosecond);

void BM_VmStartAndLoadExamplePolicy(benchmark::State &state)
{
    NullLogger logger;
    const std::string source = example_policy();
    if (source.empty()) {
        state.SkipWithError("conf.d/mruby/policy.rb not found");
        return;
    }
    for (auto _ : state) {
        auto vm = make_vm(logger);
        auto error = vm->load_source(source, "policy.rb");
        if (error) {
            state.SkipWithError(error->describe().c_str());
            return;
        }
        benchmark::DoNotOptimize(vm.get());
    }
}
BENCHMARK(BM_VmStartAndLoadExamplePolicy)->Unit(benchmark::kMicrosecond);

// A script that names JSON: VM start, the JSON module loaded (bind_json.cpp)
// and a handler registered; what JSON adds to a VM that uses it.
void BM_VmStartAndLoadJsonScript(benchmark::State &state)
{
    NullLogger logger;
    const std::string source =
        "Dovecot.on_session_start { |s| JSON.parse(s['mruby_policy'] || '{}') }\n";
    for (auto _ : state) {
        auto vm = make_vm(logger);
        auto error = vm->load_source(source, "policy.rb");
        if (error) {
            state.SkipWithError(error->describe().c_str());
            return;
        }
        benchmark::DoNotOptimize(vm.get());
    }
}
BENCHMARK(BM_VmStartAndLoadJsonScript)->Unit(benchmark::kMicrosecond);

// The same script without JSON: the baseline of the one above.
void BM_VmStartAndLoadPlainScript(benchmark::State &state)
{
    NullLogger logger;
    const std::string source = "Dovecot.on_session_start { |s| s['mruby_policy'] || '{}' }\n";
    for (auto _ : state) {
        auto vm = make_vm(logger);
        auto error = vm->load_source(source, "policy.rb");
        if (error) {
            state.SkipWithError(error->describe().c_str());
            return;
        }
        benchmark::DoNotOptimize(vm.get());
    }
}
BENCHMARK(BM_VmStartAndLoadPlainScript)->Unit(benchmark::kMicrosecond);

// A script with a regexp literal: Regexp (Oniguruma, mrblib/regexp.rb)
// loads with it. Baseline: BM_VmStartAndLoadPlainScript.
void BM_VmStartAndLoadRegexpScript(benchmark::State &state)
{
    NullLogger logger;
    const std::string source =
        "Dovecot.on_session_start { |s| s.deny('x') if s.user =~ /@example\\.com\\z/ }\n";
    for (auto _ : state) {
        auto vm = make_vm(logger);
        auto error = vm->load_source(source, "policy.rb");
        if (error) {
            state.SkipWithError(error->describe().c_str());
            return;
        }
        benchmark::DoNotOptimize(vm.get());
    }
}
BENCHMARK(BM_VmStartAndLoadRegexpScript)->Unit(benchmark::kMicrosecond);

// The session start-up path as the plugin runs it: the example policy file
// loaded through core::ScriptCache, with the cache on (steady state: the
// kept version is read and compared, the compiled script dumped, nothing
// written) or off ("no"): the difference is what keeping the last good
// version costs per session.
void BM_LoadPolicyFileThroughScriptCache(benchmark::State &state)
{
    NullLogger logger;
    char dir[] = "/tmp/dmr-bench-cache-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
        state.SkipWithError("mkdtemp failed");
        return;
    }
    dmr::mruby::VmOptions options;
    options.logger = &logger;
    dmr::mruby::VmBuilder builder(options);
    dmr::core::ScriptCache cache(state.range(0) ? std::string(dir) + "/scripts" : "", logger);
    const std::string script = DMR_SOURCE_ROOT "/conf.d/mruby/policy.rb";
    for (auto _ : state) {
        dmr::core::ScriptLoad load = cache.load(script, builder);
        if (load.runtime == nullptr) {
            state.SkipWithError(load.error->describe().c_str());
            break;
        }
        benchmark::DoNotOptimize(load.runtime.get());
    }
    std::string file = cache.file_for(script);
    if (!file.empty())
        unlink(file.c_str());
    rmdir((std::string(dir) + "/scripts").c_str());
    rmdir(dir);
}
BENCHMARK(BM_LoadPolicyFileThroughScriptCache)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// One on_mailbox_open call per iteration, with `source` loaded (a load
// error stops the benchmark instead of measuring a VM without handlers).
void run_mailbox_hook(benchmark::State &state, const std::string &source, const char *mailbox)
{
    NullLogger logger;
    auto vm = make_vm(logger);
    if (auto error = vm->load_source(source, "policy.rb")) {
        state.SkipWithError(error->describe().c_str());
        return;
    }
    dmr::core::SessionInfo session = sample_session();
    dmr::core::MailboxInfo box{mailbox, false};
    auto event = dmr::core::Event::make<dmr::core::Hook::MailboxOpen>(box);
    event.session = &session;
    for (auto _ : state) {
        auto result = vm->run(event);
        benchmark::DoNotOptimize(result);
    }
}

void BM_HookCallTrivialHandler(benchmark::State &state)
{
    run_mailbox_hook(state, "Dovecot.on_mailbox_open { |box| }\n", "INBOX");
}
BENCHMARK(BM_HookCallTrivialHandler)->Unit(benchmark::kMicrosecond);

// A handler matching a regexp literal at every call (Regexp.compile keeps
// the compiled literal: mrblib/regexp.rb).
void BM_HookCallRegexpHandler(benchmark::State &state)
{
    run_mailbox_hook(state, "Dovecot.on_mailbox_open { |box| box.name =~ /\\A(Archive|Trash)\\z/i }\n",
                     "INBOX");
}
BENCHMARK(BM_HookCallRegexpHandler)->Unit(benchmark::kMicrosecond);

void BM_HookCallExamplePolicy(benchmark::State &state)
{
    run_mailbox_hook(state, example_policy(), "Restricted");
}
BENCHMARK(BM_HookCallExamplePolicy)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
