// The auth driver's decisions without Dovecot: args, field names and how a
// verdict plus handler output become passdb/userdb results.
#include <gtest/gtest.h>

#include <map>

#include "core/auth.hpp"
#include "core/dispatcher.hpp"
#include "fakes.hpp"

using namespace dmr::core;

TEST(AuthDriverArgs, ParsesEveryKey)
{
    std::vector<std::string> errors;
    auto args = AuthDriverArgs::parse(
        "  file=/etc/dovecot/mruby/policy.rb on_error=reject timeout=1.5s memory_limit=8M "
        "blocking=yes cache_key=%u scheme=SHA256-CRYPT store=memory ",
        errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(args.file, "/etc/dovecot/mruby/policy.rb");
    EXPECT_EQ(args.on_error, OnError::Reject);
    EXPECT_EQ(args.timeout_ms, 1500u);
    EXPECT_EQ(args.memory_limit, 8u << 20);
    EXPECT_TRUE(args.blocking);
    EXPECT_EQ(args.cache_key, "%u");
    EXPECT_EQ(args.default_scheme, "SHA256-CRYPT");
    EXPECT_EQ(args.store, "memory");
}

TEST(AuthDriverArgs, DefaultsAreNonBlockingUncachedTempfail)
{
    std::vector<std::string> errors;
    auto args = AuthDriverArgs::parse("file=p.rb", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_FALSE(args.blocking);
    EXPECT_TRUE(args.cache_key.empty());
    EXPECT_EQ(args.on_error, OnError::Tempfail);
    EXPECT_EQ(args.timeout_ms, 200u);
    EXPECT_EQ(args.default_scheme, "PLAIN");
    EXPECT_EQ(args.store, RuntimeSettings::kDefaultStore);
}

TEST(AuthDriverArgs, ReportsEveryProblem)
{
    std::vector<std::string> errors;
    AuthDriverArgs::parse("on_error=maybe timeout=soon memory_limit=10k blocking=1 colour=red",
                          errors);
    ASSERT_EQ(errors.size(), 6u);   // five bad values plus the missing file
    EXPECT_NE(errors[0].find("on_error"), std::string::npos);
    EXPECT_NE(errors[1].find("timeout"), std::string::npos);
    EXPECT_NE(errors[2].find("memory_limit"), std::string::npos);
    EXPECT_NE(errors[3].find("blocking"), std::string::npos);
    EXPECT_NE(errors[4].find("colour=red"), std::string::npos);
    EXPECT_NE(errors[5].find("file="), std::string::npos);
}

TEST(AuthFieldNames, AcceptDovecotNamesOnly)
{
    for (const char *good : {"nodelay", "proxy", "host", "userdb_quota_rule",
                             "namespace/inbox/location", "x-client.id"})
        EXPECT_TRUE(valid_auth_field_name(good)) << good;
    for (const char *bad : {"", "bad name", "a=b", "tab\there", "new\nline", "ü"})
        EXPECT_FALSE(valid_auth_field_name(bad)) << bad;
}

TEST(AuthResults, PolicyVerdicts)
{
    EXPECT_EQ(policy_result(Verdict::proceed()), PassdbResult::Next);
    EXPECT_EQ(policy_result(Verdict::reject("no")), PassdbResult::UserDisabled);
    EXPECT_EQ(policy_result(Verdict::tempfail("later")), PassdbResult::InternalFailure);
}

TEST(AuthResults, PolicyReasonsAreWhatTheLogAndAuthResultSay)
{
    EXPECT_EQ(policy_reason(Verdict::proceed()), "");
    EXPECT_EQ(policy_reason(Verdict::reject("go away")), "rejected by policy: go away");
    EXPECT_EQ(policy_reason(Verdict::tempfail("later")), "temporary failure by policy: later");
}

TEST(AuthResults, OnlyExactlyTrueVerifiesAPassword)
{
    AuthOutput out;
    EXPECT_EQ(password_verify_result(Verdict::proceed(), out), PassdbResult::PasswordMismatch);
    out.returned_true = true;
    EXPECT_EQ(password_verify_result(Verdict::proceed(), out), PassdbResult::Ok);
    // A verdict wins over a returned true.
    EXPECT_EQ(password_verify_result(Verdict::reject("x"), out), PassdbResult::UserDisabled);
    EXPECT_EQ(password_verify_result(Verdict::tempfail("x"), out), PassdbResult::InternalFailure);
}

TEST(AuthResults, PassdbLookupTakesThePasswordFieldApart)
{
    AuthOutput out;
    out.fields = {{"password", "{SHA256-CRYPT}$5$abc"}, {"zip", "01234"}};
    auto lookup = passdb_lookup_result(Verdict::proceed(), out, "PLAIN");
    EXPECT_EQ(lookup.result, PassdbResult::Ok);
    EXPECT_EQ(lookup.scheme, "SHA256-CRYPT");
    EXPECT_EQ(lookup.password, "$5$abc");
    ASSERT_EQ(lookup.fields.size(), 1u);
    EXPECT_EQ(lookup.fields[0].second, "01234");   // stays a string

    out.fields = {{"password", "plain-secret"}};
    lookup = passdb_lookup_result(Verdict::proceed(), out, "CRYPT");
    EXPECT_EQ(lookup.scheme, "CRYPT");
    EXPECT_EQ(lookup.password, "plain-secret");

    out.fields = {{"zip", "1"}};
    EXPECT_EQ(passdb_lookup_result(Verdict::proceed(), out, "PLAIN").result,
              PassdbResult::UserUnknown);
    out.fields = {{"nopassword", "y"}};
    EXPECT_EQ(passdb_lookup_result(Verdict::proceed(), out, "PLAIN").result, PassdbResult::Ok);
    out.fields = {{"password", "{PLAIN}x"}};
    EXPECT_EQ(passdb_lookup_result(Verdict::reject("no"), out, "PLAIN").result,
              PassdbResult::UserDisabled);
}

TEST(AuthResults, UserdbFoundWhenAFieldWasSetOrTrueReturned)
{
    AuthOutput out;
    EXPECT_EQ(userdb_result(Verdict::proceed(), out), UserdbResult::UserUnknown);
    out.returned_true = true;
    EXPECT_EQ(userdb_result(Verdict::proceed(), out), UserdbResult::Ok);
    out = {};
    out.fields = {{"home", "/var/mail/a"}};
    EXPECT_EQ(userdb_result(Verdict::proceed(), out), UserdbResult::Ok);
    EXPECT_EQ(userdb_result(Verdict::tempfail("x"), out), UserdbResult::InternalFailure);
    EXPECT_EQ(userdb_result(Verdict::reject("x"), out), UserdbResult::UserUnknown);
}

TEST(AuthResults, SplitPasswordScheme)
{
    std::string scheme, password;
    split_password_scheme("{BLF-CRYPT}$2y$05$x", scheme, password);
    EXPECT_EQ(scheme, "BLF-CRYPT");
    EXPECT_EQ(password, "$2y$05$x");
    split_password_scheme("{}x", scheme, password);
    EXPECT_EQ(scheme, "");
    EXPECT_EQ(password, "{}x");
    split_password_scheme("{unclosed", scheme, password);
    EXPECT_EQ(scheme, "");
    EXPECT_EQ(password, "{unclosed");
}

TEST(AuthResults, ReasonsForOnAuthResult)
{
    EXPECT_STREQ(passdb_result_reason(PassdbResult::PasswordMismatch), "password mismatch");
    EXPECT_STREQ(passdb_result_reason(PassdbResult::UserUnknown), "unknown user");
    EXPECT_STREQ(passdb_result_reason(PassdbResult::Ok), "");
}

namespace {
class FieldsThenRaise final : public ScriptRuntime {
public:
    bool handles(Hook) const override { return true; }
    HookResult run(const Event &event) override
    {
        event.auth_output()->fields.emplace_back("nodelay", "y");
        event.auth_output()->delay_ms = 500;
        HookResult r;
        r.error = ScriptError{ScriptError::Kind::Exception, "boom", "policy.rb", 4, {}};
        return r;
    }
};
} // namespace

TEST(AuthDispatch, AFailedCallAppliesNoneOfItsOutput)
{
    dmr::testing::RecordingLogger logger;
    Dispatcher d(logger, OnError::Allow, std::make_unique<FieldsThenRaise>());
    AuthRequestInfo info;
    AuthOutput out;
    auto event = Event::make<Hook::Auth>(info, out);
    Verdict v = d.dispatch(event);
    EXPECT_FALSE(v.decided());
    EXPECT_TRUE(out.fields.empty());
    EXPECT_EQ(out.delay_ms, 0u);
    EXPECT_NE(logger.text().find("auth handler failed: policy.rb:4"), std::string::npos)
        << logger.text();
}

TEST(AuthDispatch, AuthResultIsObserveOnly)
{
    EXPECT_TRUE(hook_can_refuse(Hook::Auth));
    EXPECT_TRUE(hook_can_refuse(Hook::PasswordVerify));
    EXPECT_TRUE(hook_can_refuse(Hook::PassdbLookup));
    EXPECT_TRUE(hook_can_refuse(Hook::UserdbLookup));
    EXPECT_FALSE(hook_can_refuse(Hook::AuthResult));
    EXPECT_STREQ(hook_name(Hook::AuthResult), "auth_result");
}

TEST(AuthDriverArgs, ScriptCacheFollowsStoreUnlessGiven)
{
    std::vector<std::string> errors;
    EXPECT_EQ(AuthDriverArgs::parse("file=p.rb store=lmdb:/srv/m", errors).script_cache,
              "/srv/m/scripts");
    EXPECT_EQ(AuthDriverArgs::parse("file=p.rb", errors).script_cache,
              "/var/lib/dovecot/mruby/scripts");
    EXPECT_EQ(AuthDriverArgs::parse("file=p.rb script_cache=/c", errors).script_cache, "/c");
    EXPECT_EQ(AuthDriverArgs::parse("file=p.rb script_cache=no", errors).script_cache, "");
    EXPECT_TRUE(errors.empty());
    AuthDriverArgs::parse("file=p.rb script_cache=rel", errors);
    EXPECT_EQ(errors, std::vector<std::string>{"script_cache: 'rel' is not an absolute path (or no)"});
}

// The four shared settings and script_cache come from one parser
// (ScriptSettings): the same text gives the same values on both sides, and
// each side reports a bad value under its own name.
TEST(AuthDriverArgs, SharedSettingsReadAsTheMailPluginReadsThem)
{
    std::map<std::string, std::string> plugin = {
        {"mruby_script", "/p.rb"},        {"mruby_on_error", "allow"},
        {"mruby_timeout", "1.5s"},        {"mruby_memory_limit", "8M"},
        {"mruby_store", "lmdb:/srv/mr/"}, {"mruby_script_cache", ""},
    };
    std::vector<std::string> errors;
    RuntimeSettings settings = RuntimeSettings::from(
        [&](const char *name) {
            auto it = plugin.find(name);
            return it == plugin.end() ? nullptr : it->second.c_str();
        },
        errors);
    AuthDriverArgs args = AuthDriverArgs::parse(
        "file=/p.rb on_error=allow timeout=1.5s memory_limit=8M store=lmdb:/srv/mr/", errors);
    EXPECT_TRUE(errors.empty());
    const ScriptSettings &a = settings, &b = args;
    EXPECT_EQ(a.on_error, b.on_error);
    EXPECT_EQ(a.timeout_ms, b.timeout_ms);
    EXPECT_EQ(a.memory_limit, b.memory_limit);
    EXPECT_EQ(a.store, b.store);
    EXPECT_EQ(a.script_cache, "/srv/mr/scripts");
    EXPECT_EQ(b.script_cache, a.script_cache);

    std::vector<std::string> plugin_errors, args_errors;
    ScriptSettings p, d;
    EXPECT_TRUE(p.set("timeout", "soon", ScriptSettings::kPluginSettings, plugin_errors));
    EXPECT_TRUE(d.set("timeout", "soon", ScriptSettings::kDriverArgs, args_errors));
    EXPECT_FALSE(d.set("scheme", "PLAIN", ScriptSettings::kDriverArgs, args_errors));
    EXPECT_EQ(plugin_errors, std::vector<std::string>{
                                 "mruby_timeout: invalid duration 'soon' (expected e.g. 200ms "
                                 "or 2s, at most 1h); using 200ms"});
    EXPECT_EQ(args_errors, std::vector<std::string>{"timeout: invalid duration 'soon' (expected "
                                                    "e.g. 200ms or 2s, at most 1h)"});
    EXPECT_EQ(p.timeout_ms, ScriptSettings::kDefaultTimeoutMs);
}

TEST(AuthDriverArgs, ShadowAndAuditAreDriverArgs)
{
    std::vector<std::string> errors;
    auto args = AuthDriverArgs::parse(
        "file=p.rb shadow=yes audit=file:/var/log/dovecot/audit.log,event "
        "audit_syslog_facility=auth",
        errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_TRUE(args.shadow);
    EXPECT_EQ(args.audit, "file:/var/log/dovecot/audit.log,event");
    EXPECT_EQ(args.audit_syslog_facility, "auth");

    AuthDriverArgs::parse("file=p.rb shadow=perhaps audit=file:relative,syslog", errors);
    ASSERT_EQ(errors.size(), 2u);   // a bad driver arg stops auth (no default is kept)
    EXPECT_EQ(errors[0], "shadow: invalid value 'perhaps' (expected yes or no)");
    EXPECT_NE(errors[1].find("audit: unknown sink 'file:relative'"), std::string::npos)
        << errors[1];
}

TEST(AuthDriverArgs, AnUnknownParameterNamesTheClosestKnownOne)
{
    std::vector<std::string> errors;
    AuthDriverArgs::parse("file=/x.rb tmeout=2s", errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "unknown parameter 'tmeout=2s' (did you mean timeout=?)");

    errors.clear();
    AuthDriverArgs::parse("file=/x.rb colour=red", errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].rfind("unknown parameter 'colour=red' (known: file blocking ", 0), 0u)
        << errors[0];
}

TEST(AuthDriverArgs, AMisspelledPasswordParameterKeepsItsValueOutOfTheError)
{
    std::vector<std::string> errors;
    AuthDriverArgs::parse("file=/x.rb store_pasword=hunter2", errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "unknown parameter 'store_pasword' (did you mean store_password=?)");
}

TEST(AuthDriverArgs, TakeTheStorePasswordApartFromTheSpec)
{
    std::vector<std::string> errors;
    auto args = AuthDriverArgs::parse(
        "file=/x.rb store=redis://127.0.0.1/0 store_password=hunter2", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(args.store, "redis://127.0.0.1/0");
    EXPECT_EQ(args.store_password, "hunter2");
    args = AuthDriverArgs::parse("file=/x.rb store_password_file=/etc/dovecot/redis.pass", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(args.store_password_file, "/etc/dovecot/redis.pass");
}

// Dovecot 2.4: the driver reads the mruby_* settings its passdb/userdb block
// sees (typed values come back as the adapter writes them: milliseconds,
// bytes, yes/no) and gives the same args as the 2.3 args string.
TEST(AuthDriverArgs, FromBlockSettingsMatchesTheArgsString)
{
    std::map<std::string, std::string> block = {
        {"mruby_script", "/etc/dovecot/mruby/auth.rb"},
        {"mruby_on_error", "reject"},
        {"mruby_timeout", "1500"},
        {"mruby_memory_limit", "8388608"},
        {"mruby_store", "lmdb:/srv/mr"},
        {"mruby_shadow", "yes"},
        {"mruby_audit", "file:/var/log/dovecot/audit.log,event"},
        {"mruby_audit_syslog_facility", "auth"},
        {"mruby_store_password_file", "/etc/dovecot/store.pw"},
    };
    auto lookup = [&](const char *name) -> const char * {
        auto it = block.find(name);
        return it == block.end() ? nullptr : it->second.c_str();
    };
    std::vector<std::string> errors;
    AuthDriverArgs a = AuthDriverArgs::from_settings(lookup, errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    AuthDriverArgs b = AuthDriverArgs::parse(
        "file=/etc/dovecot/mruby/auth.rb on_error=reject timeout=1.5s memory_limit=8M "
        "store=lmdb:/srv/mr shadow=yes audit=file:/var/log/dovecot/audit.log,event "
        "audit_syslog_facility=auth store_password_file=/etc/dovecot/store.pw",
        errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(a.file, b.file);
    EXPECT_EQ(a.on_error, b.on_error);
    EXPECT_EQ(a.timeout_ms, b.timeout_ms);
    EXPECT_EQ(a.memory_limit, b.memory_limit);
    EXPECT_EQ(a.store, b.store);
    EXPECT_EQ(a.shadow, b.shadow);
    EXPECT_EQ(a.audit, b.audit);
    EXPECT_EQ(a.audit_syslog_facility, b.audit_syslog_facility);
    EXPECT_EQ(a.store_password_file, b.store_password_file);
    EXPECT_EQ(a.script_cache, "/srv/mr/scripts");
    EXPECT_EQ(a.script_cache, b.script_cache);
    EXPECT_EQ(a.default_scheme, "PLAIN");   // passdb_default_password_scheme's, set by the adapter
    EXPECT_FALSE(a.blocking);               // passdb_use_worker's, likewise
    EXPECT_TRUE(a.cache_key.empty());       // no auth cache on 2.4
}

TEST(AuthDriverArgs, FromBlockSettingsReportsUnderTheSettingsNames)
{
    std::map<std::string, std::string> block = {
        {"mruby_script_cache", "relative"},
        {"mruby_store_password_file", "store.pw"},
    };
    auto lookup = [&](const char *name) -> const char * {
        auto it = block.find(name);
        return it == block.end() ? nullptr : it->second.c_str();
    };
    std::vector<std::string> errors;
    AuthDriverArgs::from_settings(lookup, errors);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0], "mruby_store_password_file: 'store.pw' is not an absolute path");
    EXPECT_EQ(errors[1], "mruby_script: not set");
    // No "; using the default": a bad setting of the driver stops auth.
    EXPECT_EQ(errors[2], "mruby_script_cache: 'relative' is not an absolute path (or no)");
}
