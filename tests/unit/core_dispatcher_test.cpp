#include <gtest/gtest.h>

#include <deque>

#include "core/dispatcher.hpp"
#include "fakes.hpp"

using namespace dmr::core;
using dmr::testing::RecordingLogger;
using dmr::testing::field_of;

namespace {

class ScriptedRuntime final : public ScriptRuntime {
public:
    bool handles(Hook) const override { return handled; }
    bool disabled() const override { return off; }
    HookResult run(const Event &event) override
    {
        calls++;
        if (delay_ms > 0 && event.auth_output() != nullptr)
            event.auth_output()->delay_ms = delay_ms;
        HookResult r = results.front();
        if (results.size() > 1)
            results.pop_front();
        return r;
    }
    bool handled = true;
    bool off = false;
    int calls = 0;
    uint32_t delay_ms = 0;   // an auth handler's delay(), written into the event
    std::deque<HookResult> results;
};

ScriptError exception_at(const char *file, int line)
{
    ScriptError e;
    e.kind = ScriptError::Kind::Exception;
    e.message = "boom (RuntimeError)";
    e.file = file;
    e.line = line;
    e.backtrace = {"policy.rb:3:in check", "policy.rb:7"};
    return e;
}

struct Fixture {
    RecordingLogger logger;
    ScriptedRuntime *runtime = nullptr;
    std::unique_ptr<Dispatcher> make(OnError on_error, std::deque<HookResult> results)
    {
        auto rt = std::make_unique<ScriptedRuntime>();
        rt->results = std::move(results);
        runtime = rt.get();
        return std::make_unique<Dispatcher>(logger, on_error, std::move(rt));
    }
};

const Event session_start = Event::make<Hook::SessionStart>();
const Event session_end = Event::make<Hook::SessionEnd>();

} // namespace

TEST(Dispatcher, PassesTheScriptVerdictThrough)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::reject("nope"), std::nullopt}});
    Verdict v = d->dispatch(session_start);
    EXPECT_EQ(v.kind, Verdict::Kind::Reject);
    EXPECT_EQ(v.text, "nope");
    EXPECT_TRUE(f.logger.lines.empty());
}

TEST(Dispatcher, SkipsTheRuntimeWhenNoHandlerIsRegistered)
{
    Fixture f;
    auto d = f.make(OnError::Reject, {HookResult{}});
    f.runtime->handled = false;
    EXPECT_FALSE(d->dispatch(session_start).decided());
    EXPECT_EQ(f.runtime->calls, 0);
}

TEST(Dispatcher, AppliesOnErrorAndLogsFileLineAndBacktrace)
{
    for (OnError mode : {OnError::Allow, OnError::Tempfail, OnError::Reject}) {
        Fixture f;
        auto d = f.make(mode, {HookResult{{}, exception_at("policy.rb", 3)}});
        Verdict v = d->dispatch(session_start);
        Verdict::Kind expected = mode == OnError::Allow      ? Verdict::Kind::Continue
                                 : mode == OnError::Reject   ? Verdict::Kind::Reject
                                                             : Verdict::Kind::Tempfail;
        EXPECT_EQ(v.kind, expected) << on_error_name(mode);
        ASSERT_EQ(f.logger.lines.size(), 1u);
        const std::string &line = f.logger.lines[0].second;
        EXPECT_EQ(f.logger.lines[0].first, LogLevel::Error);
        EXPECT_NE(line.find("session_start handler failed: policy.rb:3: exception: boom "
                            "(RuntimeError)"),
                  std::string::npos)
            << line;
        EXPECT_NE(line.find("policy.rb:3:in check <- policy.rb:7"), std::string::npos) << line;
        EXPECT_NE(line.find(std::string("mruby_on_error=") + on_error_name(mode)),
                  std::string::npos);
    }
}

TEST(Dispatcher, ObserveOnlyHooksIgnoreOnError)
{
    Fixture f;
    auto d = f.make(OnError::Reject, {HookResult{{}, exception_at("policy.rb", 9)}});
    EXPECT_FALSE(d->dispatch(session_end).decided());
    EXPECT_EQ(f.logger.count(LogLevel::Error), 1u);
    EXPECT_EQ(f.logger.text().find("mruby_on_error"), std::string::npos);
}

TEST(Dispatcher, ALoadFailureIsLoggedOnceThenEveryRefusingHookFollowsOnError)
{
    RecordingLogger logger;
    ScriptError load{ScriptError::Kind::Compile, "syntax error, unexpected end", "policy.rb", 4, {}};
    Dispatcher d(logger, OnError::Reject, nullptr, load);
    ASSERT_EQ(logger.lines.size(), 1u);
    EXPECT_NE(logger.lines[0].second.find("policy.rb:4: syntax error: syntax error, unexpected end"),
              std::string::npos)
        << logger.lines[0].second;
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(d.dispatch(session_start).kind, Verdict::Kind::Reject);
    EXPECT_FALSE(d.dispatch(session_end).decided());
    EXPECT_EQ(logger.lines.size(), 1u);
}

TEST(Dispatcher, ADisabledRuntimeIsNotReportedAgain)
{
    Fixture f;
    ScriptError disabled{ScriptError::Kind::Disabled, "disabled", "", 0, {}};
    auto d = f.make(OnError::Tempfail, {HookResult{{}, disabled}});
    EXPECT_EQ(d->dispatch(session_start).kind, Verdict::Kind::Tempfail);
    EXPECT_TRUE(f.logger.lines.empty());
}

// The one rule for a broken script, asked by both adapters (mail session,
// auth driver): a script that failed to load and one that a timeout or memory
// failure disabled want the same hooks, the refusing ones, except the
// authoritative passdb stages, and answer them with mruby_on_error.
TEST(Dispatcher, ABrokenScriptWantsTheRefusingHooksButNotThePasswordStages)
{
    RecordingLogger logger;
    ScriptError load{ScriptError::Kind::Compile, "syntax error", "policy.rb", 4, {}};
    Dispatcher not_loaded(logger, OnError::Allow, nullptr, load);

    Fixture f;
    ScriptError timeout{ScriptError::Kind::Timeout, "timed out", "policy.rb", 2, {}};
    ScriptError disabled{ScriptError::Kind::Disabled, "disabled", "", 0, {}};
    auto d = f.make(OnError::Allow, {HookResult{{}, timeout}, HookResult{{}, disabled}});
    f.runtime->handled = false;   // only on_auth: its handler times out below
    EXPECT_FALSE(d->wants(Hook::PasswordVerify));
    f.runtime->handled = true;
    AuthRequestInfo request;
    AuthOutput output;
    EXPECT_FALSE(d->dispatch(Event::make<Hook::Auth>(request, output)).decided());   // allow
    f.runtime->off = true;        // the VM disabled itself

    for (Dispatcher *broken : {&not_loaded, d.get()}) {
        for (Hook hook : {Hook::SessionStart, Hook::MailboxOpen, Hook::ImapCommandBefore,
                          Hook::Pop3CommandBefore, Hook::Auth, Hook::UserdbLookup})
            EXPECT_TRUE(broken->wants(hook)) << hook_name(hook);
        for (Hook hook : {Hook::PasswordVerify, Hook::PassdbLookup, Hook::AuthResult,
                          Hook::SessionEnd, Hook::MessageRead, Hook::ImapCommandAfter})
            EXPECT_FALSE(broken->wants(hook)) << hook_name(hook);
        EXPECT_FALSE(broken->dispatch(Event::make<Hook::PasswordVerify>(request, output)).decided());
    }
    EXPECT_TRUE(d->runtime_disabled());
    EXPECT_FALSE(not_loaded.runtime_disabled());
    EXPECT_EQ(f.runtime->calls, 1);   // the password stage never reached the runtime
}

TEST(Dispatcher, AFallbackLoadIsNotReportedAsBroken)
{
    RecordingLogger logger;
    ScriptLoad loaded;
    loaded.runtime = std::make_unique<ScriptedRuntime>();
    loaded.error = ScriptError{ScriptError::Kind::Compile, "syntax error", "policy.rb", 4, {}};
    loaded.fallback = ScriptLoad::Fallback{"/cache/policy.mrb", 0};
    Dispatcher d(logger, OnError::Reject, std::move(loaded));
    EXPECT_TRUE(logger.lines.empty());   // the cache logged the fallback
    EXPECT_TRUE(d.active());
    EXPECT_TRUE(d.wants(Hook::PasswordVerify));
}

TEST(Dispatcher, ErrorMessagesCannotSplitTheLogLine)
{
    Fixture f;
    ScriptError e = exception_at("policy.rb", 1);
    e.message = "evil\r\nFake: line";
    auto d = f.make(OnError::Tempfail, {HookResult{{}, e}});
    d->dispatch(session_start);
    EXPECT_EQ(f.logger.lines[0].second.find('\n'), std::string::npos);
    EXPECT_NE(f.logger.lines[0].second.find("evil\\x0d\\x0aFake: line"), std::string::npos);
}

namespace {

Event command_event(Hook hook, const CommandInfo &info)
{
    return Event::make_any<CommandPayload>(hook, info);
}

} // namespace

TEST(Dispatcher, LogoutAndQuitAreNeverRefusedButTheirHandlersRun)
{
    ScriptError disabled{ScriptError::Kind::Disabled, "disabled", "", 0, {}};
    CommandInfo logout;
    logout.name = "LOGOUT";
    CommandInfo quit;
    quit.name = "QUIT";
    for (OnError mode : {OnError::Tempfail, OnError::Reject}) {
        for (const HookResult &result :
             {HookResult{Verdict::reject("no way out"), std::nullopt},
              HookResult{Verdict{Verdict::Kind::Disconnect, "bye", {}}, std::nullopt},
              HookResult{{}, exception_at("policy.rb", 2)}, HookResult{{}, disabled}}) {
            Fixture f;
            auto d = f.make(mode, {result});
            EXPECT_FALSE(d->dispatch(command_event(Hook::ImapCommandBefore, logout)).decided());
            EXPECT_FALSE(d->dispatch(command_event(Hook::Pop3CommandBefore, quit)).decided());
            EXPECT_EQ(f.runtime->calls, 2);   // the handlers saw both
            EXPECT_EQ(f.logger.count(LogLevel::Info), 1u) << f.logger.text();
            EXPECT_NE(f.logger.text().find("is always allowed"), std::string::npos);
        }
    }
}

TEST(Dispatcher, OnlyTheProtocolsOwnExitCommandIsExempt)
{
    CommandInfo noop;
    noop.name = "NOOP";
    CommandInfo quit;
    quit.name = "QUIT";
    CommandInfo logout;
    logout.name = "LOGOUT";
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::reject("no"), std::nullopt}});
    EXPECT_EQ(d->dispatch(command_event(Hook::ImapCommandBefore, noop)).kind, Verdict::Kind::Reject);
    EXPECT_EQ(d->dispatch(command_event(Hook::ImapCommandBefore, quit)).kind, Verdict::Kind::Reject);
    EXPECT_EQ(d->dispatch(command_event(Hook::Pop3CommandBefore, logout)).kind, Verdict::Kind::Reject);
    EXPECT_EQ(f.logger.count(LogLevel::Info), 0u);
}

TEST(Dispatcher, ABrokenScriptStillLetsTheClientLeave)
{
    RecordingLogger logger;
    ScriptError load{ScriptError::Kind::Compile, "syntax error", "policy.rb", 1, {}};
    Dispatcher d(logger, OnError::Reject, nullptr, load);
    CommandInfo logout;
    logout.name = "LOGOUT";
    CommandInfo noop;
    noop.name = "NOOP";
    EXPECT_EQ(d.dispatch(command_event(Hook::ImapCommandBefore, noop)).kind, Verdict::Kind::Reject);
    EXPECT_FALSE(d.dispatch(command_event(Hook::ImapCommandBefore, logout)).decided());
}

// --- shadow mode and the metric events ------------------------------------------

TEST(DispatcherEvents, AnEnforcedVerdictIsAnEventWithoutALogLine)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::reject("nope", "LIMIT"), std::nullopt}});
    EXPECT_EQ(d->dispatch(session_start).kind, Verdict::Kind::Reject);
    EXPECT_TRUE(f.logger.lines.empty());   // the adapter logs what it applies
    auto verdicts = f.logger.named(kVerdictEvent);
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(field_of(verdicts[0], "hook"), "session_start");
    EXPECT_EQ(field_of(verdicts[0], "verdict"), "reject");
    EXPECT_EQ(field_of(verdicts[0], "reason"), "nope");
    EXPECT_EQ(field_of(verdicts[0], "code"), "LIMIT");
    EXPECT_EQ(field_of(verdicts[0], "source"), "script");
    EXPECT_EQ(field_of(verdicts[0], "shadow"), "no");
    // No decision, no event.
    f.runtime->results = {HookResult{Verdict::proceed(), std::nullopt}};
    d->dispatch(session_start);
    EXPECT_EQ(f.logger.named(kVerdictEvent).size(), 1u);
}

TEST(DispatcherEvents, AScriptFailureIsAnErrorEventAndItsOnErrorAnswerAVerdictEvent)
{
    Fixture f;
    auto d = f.make(OnError::Reject, {HookResult{{}, exception_at("policy.rb", 3)}});
    EXPECT_EQ(d->dispatch(session_start).kind, Verdict::Kind::Reject);
    auto errors = f.logger.named(kScriptErrorEvent);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(field_of(errors[0], "hook"), "session_start");
    EXPECT_EQ(field_of(errors[0], "error"), "exception");
    EXPECT_EQ(field_of(errors[0], "on_error"), "reject");
    auto verdicts = f.logger.named(kVerdictEvent);
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(field_of(verdicts[0], "source"), "on_error");

    ScriptError timeout = exception_at("policy.rb", 4);
    timeout.kind = ScriptError::Kind::Timeout;
    f.runtime->results = {HookResult{{}, timeout}};
    d->dispatch(session_start);
    EXPECT_EQ(field_of(f.logger.named(kScriptErrorEvent).back(), "error"), "timeout");
}

TEST(DispatcherShadow, ARefusalIsLoggedAsWouldHaveAndProceeds)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::reject("not from there"), std::nullopt}});
    d->set_shadow(true);
    EXPECT_FALSE(d->dispatch(session_start).decided());
    ASSERT_EQ(f.logger.lines.size(), 1u);
    EXPECT_EQ(f.logger.lines[0].first, LogLevel::Info);
    EXPECT_EQ(f.logger.lines[0].second,
              "mruby: shadow: would have refused session_start: reject (not from there)");
    auto verdicts = f.logger.named(kVerdictEvent);
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(field_of(verdicts[0], "shadow"), "yes");
    EXPECT_EQ(field_of(verdicts[0], "verdict"), "reject");
}

TEST(DispatcherShadow, OnErrorAnswersAreShadowedToo)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{{}, exception_at("policy.rb", 3)}});
    d->set_shadow(true);
    EXPECT_FALSE(d->dispatch(session_start).decided());
    EXPECT_EQ(f.logger.count(LogLevel::Error), 1u);   // the failure is still an error
    EXPECT_NE(f.logger.text().find("would have refused session_start: tempfail (Temporary "
                                   "policy failure, try again later) by mruby_on_error=tempfail"),
              std::string::npos)
        << f.logger.text();
}

TEST(DispatcherShadow, ATarpitIsNotApplied)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::proceed(), std::nullopt}});
    f.runtime->delay_ms = 3000;
    d->set_shadow(true);
    AuthRequestInfo request;
    AuthOutput output;
    EXPECT_FALSE(d->dispatch(Event::make<Hook::Auth>(request, output)).decided());
    EXPECT_EQ(output.delay_ms, 0u);
    EXPECT_EQ(output.shadowed, "delay");   // on_auth_result's res.shadowed
    EXPECT_NE(f.logger.text().find("would have applied auth: delay of 3000 ms"), std::string::npos)
        << f.logger.text();
    auto verdicts = f.logger.named(kVerdictEvent);
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(field_of(verdicts[0], "verdict"), "delay");
    ASSERT_EQ(verdicts[0].numbers.size(), 1u);
    EXPECT_EQ(verdicts[0].numbers[0], (std::pair<std::string, int64_t>("delay_ms", 3000)));

    // Enforced, the same tarpit stays.
    d->set_shadow(false);
    AuthOutput enforced;
    d->dispatch(Event::make<Hook::Auth>(request, enforced));
    EXPECT_EQ(enforced.delay_ms, 3000u);
    EXPECT_EQ(enforced.shadowed, "");
}

TEST(DispatcherShadow, AShadowedAuthRefusalIsKeptForTheResult)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::tempfail("later"), std::nullopt}});
    d->set_shadow(true);
    AuthRequestInfo request;
    AuthOutput output;
    EXPECT_FALSE(d->dispatch(Event::make<Hook::Auth>(request, output)).decided());
    EXPECT_EQ(output.shadowed, "tempfail");
}

TEST(DispatcherShadow, ThePasswordCheckIsNeverShadowed)
{
    Fixture f;
    auto d = f.make(OnError::Tempfail, {HookResult{Verdict::reject("wrong"), std::nullopt}});
    d->set_shadow(true);
    AuthRequestInfo request;
    AuthOutput output;
    EXPECT_EQ(d->dispatch(Event::make<Hook::PasswordVerify>(request, output)).kind,
              Verdict::Kind::Reject);
    EXPECT_EQ(d->dispatch(Event::make<Hook::PassdbLookup>(request, output)).kind,
              Verdict::Kind::Reject);
    EXPECT_TRUE(f.logger.lines.empty());
    for (const LogEvent &e : f.logger.named(kVerdictEvent))
        EXPECT_EQ(field_of(e, "shadow"), "no");
}
