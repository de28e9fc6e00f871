// Per-user scripts (core/user_layer.hpp): the operator's verdict wins, the
// user's can only tighten; a user's state lives under a prefix no username
// or name can forge; its settings hide secrets; the settings parse.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>

#include "core/user_layer.hpp"
#include "fakes.hpp"

using namespace dmr::core;
using dmr::testing::MapSettings;
using dmr::testing::RecordingLogger;
using dmr::testing::field_of;

namespace {

class FixedRuntime final : public ScriptRuntime {
public:
    explicit FixedRuntime(Verdict verdict, bool handled = true)
        : verdict_(std::move(verdict)), handled_(handled) {}
    bool handles(Hook) const override { return handled_; }
    HookResult run(const Event &event) override
    {
        calls++;
        seen_session = event.session;
        if (fail)
            return HookResult{Verdict::proceed(), ScriptError{ScriptError::Kind::Timeout,
                                                              "timeout", "", 0, {}}};
        return HookResult{verdict_, std::nullopt};
    }
    int calls = 0;
    bool fail = false;
    const SessionInfo *seen_session = nullptr;

private:
    Verdict verdict_;
    bool handled_;
};

struct Layers {
    RecordingLogger logger;
    FixedRuntime *op = nullptr;
    FixedRuntime *user = nullptr;
    std::unique_ptr<Dispatcher> op_dispatcher;
    std::unique_ptr<Dispatcher> user_dispatcher;

    Layers(Verdict op_verdict, Verdict user_verdict, OnError user_on_error = OnError::Allow)
    {
        auto o = std::make_unique<FixedRuntime>(std::move(op_verdict));
        op = o.get();
        op_dispatcher = std::make_unique<Dispatcher>(logger, OnError::Tempfail, std::move(o));
        auto u = std::make_unique<FixedRuntime>(std::move(user_verdict));
        user = u.get();
        user_dispatcher =
            Dispatcher::for_user(logger, user_on_error, std::move(u), std::nullopt);
    }
};

const Event session_start = Event::make<Hook::SessionStart>();
const Event session_end = Event::make<Hook::SessionEnd>();

} // namespace

TEST(LayeredPolicy, TheOperatorsRefusalWinsAndTheUserIsNotAsked)
{
    for (Verdict op : {Verdict::reject("operator says no"), Verdict::tempfail("later")}) {
        Layers l(op, Verdict::reject("user says no"));
        LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
        Verdict v = policy.dispatch(session_start);
        EXPECT_EQ(v.kind, op.kind);
        EXPECT_EQ(v.text, op.text);
        EXPECT_EQ(l.user->calls, 0);
    }
}

TEST(LayeredPolicy, TheUsersRefusalCountsWhenTheOperatorAllowed)
{
    Layers l(Verdict::proceed(), Verdict::reject("not from there"));
    LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
    Verdict v = policy.dispatch(session_start);
    EXPECT_EQ(v.kind, Verdict::Kind::Reject);
    EXPECT_EQ(v.text, "not from there");
    EXPECT_EQ(l.op->calls, 1);
    EXPECT_EQ(l.user->calls, 1);
    // Its mruby_verdict event says where the refusal came from.
    auto verdicts = l.logger.named(kVerdictEvent);
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(field_of(verdicts[0], "source"), "user_script");
}

TEST(LayeredPolicy, HooksThatCannotRefuseRunBothLayersInOrder)
{
    Layers l(Verdict::proceed(), Verdict::reject("ignored"));
    LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
    EXPECT_FALSE(policy.dispatch(session_end).decided());
    EXPECT_EQ(l.op->calls, 1);
    EXPECT_EQ(l.user->calls, 1);
}

TEST(LayeredPolicy, AFailingUserScriptFollowsMrubyUserOnError)
{
    {
        Layers l(Verdict::proceed(), Verdict::proceed());   // default: allow
        l.user->fail = true;
        LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
        EXPECT_FALSE(policy.dispatch(session_start).decided());
        EXPECT_NE(l.logger.text().find("mruby: user script: session_start handler failed: "),
                  std::string::npos) << l.logger.text();
        EXPECT_NE(l.logger.text().find("(mruby_user_on_error=allow)"), std::string::npos);
    }
    {
        Layers l(Verdict::proceed(), Verdict::proceed(), OnError::Tempfail);
        l.user->fail = true;
        LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
        EXPECT_EQ(policy.dispatch(session_start).kind, Verdict::Kind::Tempfail);
    }
}

TEST(LayeredPolicy, ABrokenUserScriptIsLoggedAsTheUsers)
{
    RecordingLogger logger;
    ScriptError error{ScriptError::Kind::Compile, "syntax error", "/home/a/u.rb", 3, {}};
    auto d = Dispatcher::for_user(logger, OnError::Allow, nullptr, error);
    EXPECT_NE(logger.text().find("mruby: user script: "), std::string::npos) << logger.text();
    EXPECT_NE(logger.text().find("(mruby_user_on_error=allow)"), std::string::npos);
    EXPECT_FALSE(d->dispatch(session_start).decided());
}

TEST(LayeredPolicy, WithoutAUserScriptOnlyTheOperatorRuns)
{
    RecordingLogger logger;
    auto op = std::make_unique<FixedRuntime>(Verdict::proceed(), false);
    Dispatcher d(logger, OnError::Tempfail, std::move(op));
    LayeredPolicy policy(d, nullptr);
    EXPECT_FALSE(policy.wants(Hook::SessionStart));
    EXPECT_FALSE(policy.has_user());
}

TEST(LayeredPolicy, TheUserIsNeverAskedAboutTheAuthProcessHooks)
{
    Layers l(Verdict::proceed(), Verdict::reject("no"));
    LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get());
    EXPECT_TRUE(policy.wants(Hook::MailboxOpen));
    EXPECT_FALSE(user_layer_hook(Hook::Auth));
    EXPECT_FALSE(user_layer_hook(Hook::PasswordVerify));
    EXPECT_TRUE(user_layer_hook(Hook::MessageRead));
}

TEST(LayeredPolicy, TheUsersHandlersSeeTheirOwnSession)
{
    Layers l(Verdict::proceed(), Verdict::proceed());
    SessionInfo op_session, user_session;
    LayeredPolicy policy(*l.op_dispatcher, l.user_dispatcher.get(), &user_session);
    Event event = Event::make<Hook::SessionStart>();
    event.session = &op_session;
    policy.dispatch(event);
    EXPECT_EQ(l.op->seen_session, &op_session);
    EXPECT_EQ(l.user->seen_session, &user_session);
}

TEST(UserSettings, HidesSecretsAndPassesTheRest)
{
    MapSettings inner;
    inner.values = {{"mruby_store_password", "s3cret"},
                    {"mruby_store_password_file", "/etc/pw"},
                    {"mruby_api_key", "k"},
                    {"mruby_greeting", "hello"}};
    UserSettings settings(&inner);
    EXPECT_EQ(settings.setting("mruby_store_password"), nullptr);
    EXPECT_EQ(settings.setting("MRUBY_STORE_PASSWORD_FILE"), nullptr);
    EXPECT_EQ(settings.setting("mruby_api_key"), nullptr);
    ASSERT_NE(settings.setting("mruby_greeting"), nullptr);
    EXPECT_STREQ(settings.setting("mruby_greeting"), "hello");
}

namespace {

// Records the names it is called with; counters and lists in maps.
class NameStore final : public Store {
public:
    const char *backend() const override { return "names"; }
    Result<GcraDecision> rate_hit(std::string_view key, const GcraRate &, int64_t) override
    {
        names.insert(std::string(key));
        return GcraDecision{};
    }
    Result<GcraDecision> rate_peek(std::string_view key, const GcraRate &, int64_t) override
    {
        names.insert(std::string(key));
        return GcraDecision{};
    }
    Status rate_reset(std::string_view key) override
    {
        names.insert(std::string(key));
        return {};
    }
    Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t) override
    {
        return counters[std::string(key)] += by;
    }
    Result<int64_t> counter_get(std::string_view key) override
    {
        return counters[std::string(key)];
    }
    Status counter_reset(std::string_view key) override
    {
        counters.erase(std::string(key));
        return {};
    }
    Status list_add(std::string_view list, std::string_view entry, int64_t,
                    std::string_view) override
    {
        lists[std::string(list)].insert(std::string(entry));
        return {};
    }
    Result<bool> list_remove(std::string_view list, std::string_view entry) override
    {
        return lists[std::string(list)].erase(std::string(entry)) > 0;
    }
    Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                std::string_view value) override
    {
        if (lists[std::string(list)].count(std::string(value)) == 0)
            return std::optional<ListEntry>();
        return std::optional<ListEntry>(ListEntry{std::string(value), "", 0});
    }
    Result<std::vector<ListEntry>> list_entries(std::string_view list) override
    {
        std::vector<ListEntry> out;
        for (const std::string &e : lists[std::string(list)])
            out.push_back(ListEntry{e, "", 0});
        return out;
    }

    Result<int64_t> distinct_add(std::string_view key, std::string_view member, int64_t) override
    {
        auto &members = distinct[std::string(key)];
        members.insert(std::string(member));
        return static_cast<int64_t>(members.size());
    }
    Result<int64_t> distinct_count(std::string_view key, int64_t) override
    {
        return static_cast<int64_t>(distinct[std::string(key)].size());
    }

    std::set<std::string> names;
    std::map<std::string, std::set<std::string>> distinct;
    std::map<std::string, int64_t> counters;
    std::map<std::string, std::set<std::string>> lists;
};

} // namespace

TEST(UserStore, EveryNameLivesUnderTheUsersPrefix)
{
    NameStore inner;
    StoreHandle handle(inner);
    UserStore alice(handle, "alice");
    EXPECT_EQ(alice.prefix(), "user:5:alice:");
    GcraRate rate{};
    alice.rate_hit("cmds", rate, 1);
    alice.rate_reset("login:192.0.2.1");
    EXPECT_EQ(inner.names, (std::set<std::string>{"user:5:alice:cmds",
                                                  "user:5:alice:login:192.0.2.1"}));
    alice.counter_incr("n", 2, 60'000'000);
    EXPECT_EQ(inner.counters.count("user:5:alice:n"), 1u);
    alice.list_add("mine", "192.0.2.1", 0, "");
    EXPECT_EQ(inner.lists.count("user:5:alice:mine"), 1u);
    alice.distinct_add("ips", "192.0.2.1", 60'000'000);
    EXPECT_EQ(inner.distinct.count("user:5:alice:ips"), 1u);
}

TEST(UserStore, CannotReachTheOperatorsStateNorAnotherUsers)
{
    NameStore inner;
    inner.lists["bruteforce"].insert("192.0.2.9");   // the operator's ban
    inner.counters["logins"] = 7;
    inner.counters["user:3:bob:n"] = 5;                // bob's counter
    StoreHandle handle(inner);
    UserStore mallory(handle, "mallory");
    auto removed = mallory.list_remove("bruteforce", "192.0.2.9");
    ASSERT_TRUE(removed.ok());
    EXPECT_FALSE(removed.value);
    EXPECT_EQ(inner.lists["bruteforce"].count("192.0.2.9"), 1u);
    EXPECT_EQ(mallory.counter_get("logins").value, 0);
    EXPECT_TRUE(mallory.counter_reset("logins").ok());
    EXPECT_EQ(inner.counters["logins"], 7);
    EXPECT_EQ(mallory.counter_get("user:3:bob:n").value, 0);
    EXPECT_EQ(mallory.counter_get("../bob:n").value, 0);
    EXPECT_EQ(inner.counters["user:3:bob:n"], 5);
    // The operator's distinct counts (Policy::Distributed) are out of reach too.
    inner.distinct["distributed:users:192.0.2.0/24"] = {"a", "b", "c"};
    EXPECT_EQ(mallory.distinct_count("distributed:users:192.0.2.0/24", 60'000'000).value, 0);
    EXPECT_EQ(mallory.distinct_add("distributed:users:192.0.2.0/24", "d", 60'000'000).value, 1);
    EXPECT_EQ(inner.distinct["distributed:users:192.0.2.0/24"].size(), 3u);
}

TEST(UserStore, NoUsernameSpellsAnotherUsersPrefix)
{
    // A hostile username that ends like a prefix, or holds the separator.
    const char *names[] = {"bob", "bob:", "b", "ob", "user:3:bob", "3:bob", "", "bo"};
    std::set<std::string> prefixes;
    for (const char *name : names)
        prefixes.insert(user_state_prefix(name));
    EXPECT_EQ(prefixes.size(), std::size(names));
    // The prefix is injective: user "b" with name "ob:x" never meets bob's "x".
    EXPECT_NE(user_state_prefix("b") + "ob:x", user_state_prefix("bob") + "x");
    EXPECT_NE(user_state_prefix("bob:3:x") + "y", user_state_prefix("bob") + "3:x:y");
}

TEST(UserStore, AListNameThatNoLongerFitsIsRefused)
{
    NameStore inner;
    StoreHandle handle(inner);
    UserStore alice(handle, "alice");
    Status status = alice.list_add(std::string(kMaxListNameBytes, 'x'), "a", 0, "");
    EXPECT_EQ(status.code(), Status::Code::Invalid);
    EXPECT_TRUE(inner.lists.empty());
}

TEST(UserStore, AStoreThatCannotOpenFailsAsUnavailable)
{
    StoreRegistry empty;
    StoreHandle handle("nosuch:x", {}, &empty);
    UserStore alice(handle, "alice");
    EXPECT_EQ(alice.counter_get("n").status.code(), Status::Code::Unavailable);
}

TEST(UserSettingsParse, DefaultsAndValues)
{
    std::vector<std::string> errors;
    RuntimeSettings d = RuntimeSettings::from([](const char *) { return nullptr; }, errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(d.user_script, "");
    EXPECT_EQ(d.user_timeout_ms, 50u);
    EXPECT_EQ(d.user_memory_limit, 8ull << 20);
    EXPECT_EQ(d.user_on_error, OnError::Allow);
    EXPECT_LT(d.user_timeout_ms, d.timeout_ms);

    std::map<std::string, std::string> values = {{"mruby_user_script", "/home/a/.mruby.rb"},
                                                 {"mruby_user_timeout", "20ms"},
                                                 {"mruby_user_memory_limit", "4M"},
                                                 {"mruby_user_on_error", "reject"},
                                                 {"mruby_timeout", "300ms"}};
    RuntimeSettings s = RuntimeSettings::from(
        [&](const char *name) {
            auto it = values.find(name);
            return it == values.end() ? nullptr : it->second.c_str();
        },
        errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(s.user_script, "/home/a/.mruby.rb");
    EXPECT_EQ(s.user_timeout_ms, 20u);
    EXPECT_EQ(s.user_memory_limit, 4ull << 20);
    EXPECT_EQ(s.user_on_error, OnError::Reject);
    EXPECT_EQ(s.timeout_ms, 300u);   // the operator's own limits are untouched
    ScriptSettings user = s.user_script_settings();
    EXPECT_EQ(user.timeout_ms, 20u);
    EXPECT_EQ(user.memory_limit, 4ull << 20);
    EXPECT_EQ(user.on_error, OnError::Reject);
}

TEST(UserSettingsParse, ABadValueNamesTheUserSettingAndKeepsItsDefault)
{
    std::vector<std::string> errors;
    RuntimeSettings s = RuntimeSettings::from(
        [](const char *name) {
            return std::string(name) == "mruby_user_on_error" ? "maybe" : nullptr;
        },
        errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "mruby_user_on_error: invalid value 'maybe' (expected allow, "
                         "tempfail or reject); using allow");
    EXPECT_EQ(s.user_on_error, OnError::Allow);
    EXPECT_EQ(s.on_error, OnError::Tempfail);
}
