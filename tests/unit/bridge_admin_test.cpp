// core::admin, what `doveadm mruby ...` does, against the Ruby API in a real
// VM on one store: what the commands show is what a script sees, and what
// they write a script reads (the key naming of RateLimit, Counter and List).
// And `doveadm mruby check` with the real VM factory.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "core/admin.hpp"
#include "core/clock.hpp"
#include "core/store_registry.hpp"
#include "fakes.hpp"
#include "mruby/vm.hpp"
#include "store/memory_store.hpp"

using namespace dmr;
using dmr::testing::RecordingLogger;

namespace {

class AdminTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        memory = std::make_unique<store::MemoryStore>(clock);
        handle = std::make_unique<core::StoreHandle>(*memory);
        mruby::VmOptions options;
        options.logger = &logger;
        options.store = handle.get();
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        core::ScriptError error;
        vm = mruby::Vm::create(options, error);
        ASSERT_NE(vm, nullptr) << error.describe();
    }

    std::string run(const std::string &source)
    {
        logger.lines.clear();
        auto error = vm->load_source(source, "admin.rb");
        if (error)
            return "ERROR " + error->describe();
        return logger.text();
    }

    core::ManualClock clock{1'700'000'000'000'000};
    RecordingLogger logger;
    std::unique_ptr<core::Store> memory;
    std::unique_ptr<core::StoreHandle> handle;
    std::unique_ptr<mruby::Vm> vm;
};

TEST_F(AdminTest, ListCommandsShowAndChangeWhatAScriptSees)
{
    ASSERT_EQ(run(R"(
        $bans = Dovecot::List.new("bans")
        $bans.add("192.0.2.0/24", ttl: 600, reason: "brute force")
    )"), "");
    auto shown = core::admin::list_show(*memory, "bans");
    ASSERT_TRUE(shown.ok()) << shown.status.message();
    ASSERT_EQ(shown.value.size(), 1u);
    EXPECT_EQ(shown.value[0].entry, "192.0.2.0/24");
    EXPECT_EQ(shown.value[0].reason, "brute force");
    EXPECT_EQ(shown.value[0].expires_at_us, clock.now_us() + 600'000'000);

    ASSERT_TRUE(core::admin::list_add(*memory, "bans", "alice", 0, "abuse").ok());
    ASSERT_TRUE(core::admin::list_add(*memory, "bans", "198.51.100.7", 60, "").ok());
    EXPECT_EQ(run(R"(
        Dovecot.log.info $bans.match("alice").inspect
        Dovecot.log.info $bans.include?("198.51.100.7").to_s
    )"), "#<Dovecot::List::Entry alice (abuse)>\ntrue\n");
    shown = core::admin::list_show(*memory, "bans");
    ASSERT_EQ(shown.value.size(), 3u);   // sorted by value
    EXPECT_EQ(shown.value[0].entry, "192.0.2.0/24");
    EXPECT_EQ(shown.value[1].entry, "198.51.100.7");
    EXPECT_EQ(shown.value[2].entry, "alice");

    auto removed = core::admin::list_remove(*memory, "bans", "192.0.2.0/24");
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(removed.value);
    EXPECT_FALSE(core::admin::list_remove(*memory, "bans", "192.0.2.0/24").value);
    EXPECT_EQ(run(R"(Dovecot.log.info $bans.include?("192.0.2.10").to_s)"), "false\n");

    // Bad input is refused before the store, as the Ruby API refuses it.
    EXPECT_EQ(core::admin::list_add(*memory, "", "x", 0, "").code(), core::Status::Code::Invalid);
    EXPECT_EQ(core::admin::list_add(*memory, "bans", "x", -1, "").code(),
              core::Status::Code::Invalid);
    EXPECT_EQ(core::admin::list_show(*memory, std::string(101, 'x')).status.code(),
              core::Status::Code::Invalid);
}

TEST_F(AdminTest, RateLimitShowIsWhatPeekAnswersAndResetFreesTheKey)
{
    // 3 per minute: T = 20 s, tau = 60 s.
    ASSERT_EQ(run(R"(
        $limit = Dovecot::RateLimit.new("imap-commands", limit: 3, period: 60)
        2.times { $limit.hit("alice") }
        d = $limit.peek("alice")
        Dovecot.log.info "#{d.allowed?} #{d.remaining} #{d.retry_after} #{d.reset_after}"
    )"), "true 0 0.0 60.0\n");
    auto rate = core::GcraRate::make(3, 60'000'000, 3);
    auto shown = core::admin::rate_show(*memory, "imap-commands", "alice", rate);
    ASSERT_TRUE(shown.ok()) << shown.status.message();
    EXPECT_EQ(shown.value.idle_after_us, 40'000'000);   // two hits of 20 s
    ASSERT_TRUE(shown.value.peek.has_value());
    EXPECT_TRUE(shown.value.peek->allowed);
    EXPECT_EQ(shown.value.peek->remaining, 0);
    EXPECT_EQ(shown.value.peek->reset_after_us, 60'000'000);

    // Without the rate: how long until idle, nothing else; other names and keys are idle.
    shown = core::admin::rate_show(*memory, "imap-commands", "alice", std::nullopt);
    EXPECT_EQ(shown.value.idle_after_us, 40'000'000);
    EXPECT_FALSE(shown.value.peek.has_value());
    EXPECT_EQ(core::admin::rate_show(*memory, "pop3-commands", "alice", std::nullopt)
                  .value.idle_after_us, 0);
    EXPECT_EQ(core::admin::rate_show(*memory, "imap-commands", "bob", std::nullopt)
                  .value.idle_after_us, 0);
    clock.advance(10'000'000);
    EXPECT_EQ(core::admin::rate_show(*memory, "imap-commands", "alice", std::nullopt)
                  .value.idle_after_us, 30'000'000);
    // Showing wrote nothing.
    EXPECT_EQ(core::admin::rate_show(*memory, "imap-commands", "alice", std::nullopt)
                  .value.idle_after_us, 30'000'000);

    ASSERT_TRUE(core::admin::rate_reset(*memory, "imap-commands", "alice").ok());
    EXPECT_EQ(run(R"(Dovecot.log.info $limit.hit("alice").remaining.to_s)"), "2\n");
}

TEST_F(AdminTest, CounterShowAndResetUseTheScriptsKey)
{
    ASSERT_EQ(run(R"(3.times { Dovecot::Counter.incr("logins:alice", ttl: 60) })"), "");
    auto value = core::admin::counter_show(*memory, "logins:alice");
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(value.value, 3);
    EXPECT_EQ(core::admin::counter_show(*memory, "logins:bob").value, 0);
    ASSERT_TRUE(core::admin::counter_reset(*memory, "logins:alice").ok());
    EXPECT_EQ(run(R"(Dovecot.log.info Dovecot::Counter.get("logins:alice").to_s)"), "0\n");
}

TEST(AdminFormat, SecondsText)
{
    EXPECT_EQ(core::admin::seconds_text(0), "0");
    EXPECT_EQ(core::admin::seconds_text(600'000'000), "600");
    EXPECT_EQ(core::admin::seconds_text(250'000), "0.25");
    EXPECT_EQ(core::admin::seconds_text(1'000'001), "1.000001");
}

class CheckTest : public ::testing::Test {
protected:
    std::string write(const std::string &name, const std::string &source)
    {
        std::string path = ::testing::TempDir() + name;
        std::ofstream(path) << source;
        paths.push_back(path);
        return path;
    }
    void TearDown() override
    {
        for (const std::string &path : paths)
            std::remove(path.c_str());
    }

    core::admin::CheckReport check(const std::string &path)
    {
        memory = std::make_unique<store::MemoryStore>(clock);
        handle = std::make_unique<core::StoreHandle>(*memory);
        mruby::VmOptions options;
        options.logger = &logger;
        options.store = handle.get();
        mruby::VmBuilder builder(options);
        return core::admin::check_script(builder, path);
    }

    std::vector<std::string> paths;
    core::ManualClock clock{1'700'000'000'000'000};
    RecordingLogger logger;
    std::unique_ptr<core::Store> memory;
    std::unique_ptr<core::StoreHandle> handle;
};

TEST_F(CheckTest, AGoodScriptReportsTheHooksItHandles)
{
    auto report = check(write("check_good.rb", R"(
        Dovecot.on_auth { |a| a.allow }
        Dovecot.on_session_start { |s| s.allow }
        Dovecot.on_auth_result { |r| }
    )"));
    ASSERT_FALSE(report.error.has_value()) << report.error->describe();
    EXPECT_EQ(report.hooks, (std::vector<std::string>{"session_start", "auth", "auth_result"}));
}

TEST_F(CheckTest, ASyntaxErrorOrAFailingTopLevelNamesFileAndLine)
{
    std::string broken = write("check_syntax.rb", "Dovecot.on_auth do |a|\n  a.allow\n\n  if\n");
    auto report = check(broken);
    ASSERT_TRUE(report.error.has_value());
    EXPECT_EQ(report.error->kind, core::ScriptError::Kind::Compile);
    EXPECT_EQ(report.error->file, broken);
    EXPECT_GT(report.error->line, 0);
    EXPECT_NE(report.error->describe().find(broken + ":"), std::string::npos)
        << report.error->describe();

    std::string raising = write("check_raise.rb", "x = 1\nDovecot::List.new(\"\")\n");
    report = check(raising);
    ASSERT_TRUE(report.error.has_value());
    EXPECT_EQ(report.error->line, 2) << report.error->describe();
    EXPECT_NE(report.error->describe().find("list name must be"), std::string::npos);

    report = check(::testing::TempDir() + "check_missing.rb");
    ASSERT_TRUE(report.error.has_value());
    EXPECT_EQ(report.error->kind, core::ScriptError::Kind::Load);
}

} // namespace

namespace {

class DryRunTest : public CheckTest {
protected:
    core::admin::DryRun dry(const std::string &path, std::string_view event,
                            const std::vector<std::string> &fields,
                            core::OnError on_error = core::OnError::Tempfail)
    {
        std::string error;
        sample = core::admin::sample_event(event, fields, error);
        EXPECT_TRUE(sample.has_value()) << error;
        memory = std::make_unique<store::MemoryStore>(clock);
        handle = std::make_unique<core::StoreHandle>(*memory);
        mruby::VmOptions options;
        options.logger = &logger;
        options.store = handle.get();
        mruby::VmBuilder builder(options);
        return core::admin::dry_run(builder, path, logger, on_error, *sample);
    }
    std::optional<core::admin::SampleEvent> sample;
};

TEST_F(DryRunTest, TheVerdictAndAuthFieldsOfOneSampleEvent)
{
    std::string policy = write("dry_policy.rb", R"(
        Dovecot.on_auth do |auth|
          auth.reject("no #{auth.user} from #{auth.remote_ip}") if auth.remote_ip.to_s == "203.0.113.9"
          auth.set("nodelay", "y")
          auth.delay(1.5) if auth.mechanism == "LOGIN"
        end
        Dovecot::IMAP.before_command do |cmd|
          cmd.reject("no deletes", code: "NOPERM") if cmd.name == "DELETE"
        end
    )");
    auto run = dry(policy, "auth", {"user=bob", "remote_ip=203.0.113.9"});
    EXPECT_TRUE(run.handled);
    EXPECT_EQ(run.errors, 0u);
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(run.verdict.text, "no bob from 203.0.113.9");

    run = dry(policy, "auth", {"mechanism=LOGIN"});
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Continue);
    EXPECT_EQ(run.auth_output.delay_ms, 1500u);
    EXPECT_EQ(run.auth_output.fields, (core::Fields{{"nodelay", "y"}}));

    run = dry(policy, "imap_before_command", {"command=DELETE", "args=Trash"});
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_EQ(run.verdict.code, "NOPERM");
    // LOGOUT is always allowed, as in a real session (the dispatcher's rule).
    std::string logout = write("dry_logout.rb", R"(
        Dovecot::IMAP.before_command { |cmd| cmd.reject("no") }
    )");
    EXPECT_EQ(dry(logout, "imap_before_command", {"command=LOGOUT"}).verdict.kind,
              core::Verdict::Kind::Continue);

    run = dry(policy, "session_start", {});
    EXPECT_FALSE(run.handled);
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Continue);
}

TEST_F(DryRunTest, AFailingScriptGivesTheOnErrorVerdictAndCountsTheError)
{
    std::string raising = write("dry_raise.rb", "Dovecot.on_auth { |a| raise 'boom' }\n");
    auto run = dry(raising, "auth", {}, core::OnError::Reject);
    EXPECT_EQ(run.errors, 1u);
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Reject);
    EXPECT_NE(logger.text().find("dry_raise.rb:1"), std::string::npos) << logger.text();

    run = dry(::testing::TempDir() + "dry_missing.rb", "auth", {});
    EXPECT_EQ(run.errors, 1u);
    EXPECT_EQ(run.verdict.kind, core::Verdict::Kind::Tempfail);
}

TEST(SampleEvent, FieldsFromAJsonObject)
{
    std::string error;
    auto fields = core::admin::fields_from_json(
        R"j({"user": "bob", "secured": true, "uid": 7, "args": "1:* (FLAGS)"})j", error);
    ASSERT_TRUE(fields.has_value()) << error;
    auto s = core::admin::sample_event("imap_after_command", *fields, error);
    ASSERT_TRUE(s.has_value()) << error;
    EXPECT_EQ(s->session.user, "bob");
    EXPECT_TRUE(s->session.secured);
    EXPECT_EQ(s->command.args, "1:* (FLAGS)");

    EXPECT_FALSE(core::admin::fields_from_json("[1, 2]", error));
    EXPECT_NE(error.find("must be an object"), std::string::npos) << error;
    EXPECT_FALSE(core::admin::fields_from_json(R"({"user": {"name": "bob"}})", error));
    EXPECT_EQ(error, "field 'user': a string, number or boolean was expected, not object");
    EXPECT_FALSE(core::admin::fields_from_json(R"({"user": null})", error));
    EXPECT_EQ(error, "field 'user': a string, number or boolean was expected, not null");
    EXPECT_FALSE(core::admin::fields_from_json(R"({"user": "bob")", error));
    EXPECT_EQ(error.rfind("invalid JSON: ", 0), 0u) << error;
    // Hostile input: deep nesting is a parse, not a crash; size is bounded.
    EXPECT_FALSE(core::admin::fields_from_json(std::string(100000, '['), error));
    EXPECT_NE(error.find("KiB of JSON"), std::string::npos) << error;
    EXPECT_FALSE(
        core::admin::fields_from_json(std::string(30000, '[') + std::string(30000, ']'), error));
    EXPECT_NE(error.find("must be an object"), std::string::npos) << error;
    EXPECT_FALSE(core::admin::fields_from_json_file("/nonexistent/fields.json", error));
    EXPECT_EQ(error, "cannot open: No such file or directory");
}

TEST(SampleEvent, FieldsAndTheirErrors)
{
    std::string error;
    auto s = core::admin::sample_event("auth_result", {"success=no", "remote_port=2525"}, error);
    ASSERT_TRUE(s.has_value()) << error;
    EXPECT_EQ(s->hook, core::Hook::AuthResult);
    EXPECT_EQ(s->auth.reason, "password mismatch");
    EXPECT_EQ(s->auth.remote_port, 2525);
    EXPECT_EQ(s->auth.remote_ip, "192.0.2.1");   // the documented default
    s = core::admin::sample_event("pop3_before_command", {}, error);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->command.name, "STAT");
    EXPECT_EQ(s->session.service, "pop3");

    EXPECT_FALSE(core::admin::sample_event("login", {}, error));
    EXPECT_NE(error.find("unknown event 'login' (one of: session_start"), std::string::npos);
    EXPECT_FALSE(core::admin::sample_event("auth", {"colour=red"}, error));
    EXPECT_EQ(error, "unknown field 'colour'");
    EXPECT_FALSE(core::admin::sample_event("auth", {"remote_port=70000"}, error));
    EXPECT_EQ(error, "bad value for remote_port: '70000'");
    EXPECT_FALSE(core::admin::sample_event("auth", {"secured"}, error));
    EXPECT_EQ(error, "field 'secured' is not NAME=VALUE");
}

} // namespace
