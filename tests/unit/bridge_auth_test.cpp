// Dovecot::Auth and Dovecot::AuthResult through a real VM and a fake host.
#include "bridge_fixture.hpp"


#include "core/auth.hpp"

using namespace dmr;
using dmr::core::AuthOutput;
using dmr::core::Hook;
using dmr::core::LogLevel;
using dmr::core::ScriptError;
using dmr::core::Verdict;
using dmr::testing::BridgeTest;

namespace {

class AuthBridgeTest : public BridgeTest {
protected:
    void SetUp() override
    {
        BridgeTest::SetUp();
        auth.user = "alice@example.com";
        auth.service = "imap";
        auth.remote_ip = "192.0.2.10";
        auth.local_ip = "127.0.0.1";
        auth.remote_port = 50123;
        auth.local_port = 143;
        auth.mechanism = "PLAIN";
        auth.secured = true;
        auth.client_id = "";
        auth.session_id = "sess1";
        auth.passdb_fields = {{"zip", "01234"}};
    }

    core::HookResult run(mruby::Vm &vm, Hook hook, AuthOutput *out)
    {
        if (out == nullptr)
            return vm.run(core::Event::make_any<core::AuthResultPayload>(hook, auth));
        return vm.run(core::Event::make_any<core::AuthPayload>(hook, auth, *out));
    }

    core::AuthRequestInfo auth;
};

} // namespace

TEST_F(AuthBridgeTest, RequestDataReachesTheScript)
{
    auto vm = vm_with(R"(
        Dovecot.on_auth do |a|
          Dovecot.log.info([a.user, a.username, a.domain, a.service, a.remote_ip, a.local_ip,
                            a.remote_port, a.local_port, a.mechanism, a.secured?,
                            a.client_id.inspect, a.session_id].join(","))
          Dovecot.log.info("#{a['zip'].class}:#{a['zip']} #{a['nope'].inspect} #{a.fields}")
        end
    )");
    AuthOutput out;
    auto r = run(*vm, Hook::Auth, &out);
    ASSERT_FALSE(r.error) << r.error->describe();
    EXPECT_FALSE(r.verdict.decided());
    ASSERT_EQ(logger.lines.size(), 2u);
    EXPECT_EQ(logger.lines[0].second, "alice@example.com,alice,example.com,imap,192.0.2.10,"
                                      "127.0.0.1,50123,143,PLAIN,true,nil,sess1");
    EXPECT_EQ(logger.lines[1].second, "String:01234 nil {\"zip\"=>\"01234\"}");
}

TEST_F(AuthBridgeTest, VerdictsDelayAndFields)
{
    auto vm = vm_with(R"(
        Dovecot.on_auth do |a|
          a.delay(0.25)
          a.delay(0.1)              # the longest delay wins
          a.set("nodelay", "y")
          a.set("zip", "01234")
          a.set("flag", true)
          a.set("count", 3)
          a.set("bad name", "x")    # ignored with a warning
          a.set("password", "x")    # only on_passdb_lookup returns a password
          a.set("obj", [1])         # not a string: ignored
          a.reject("Blocked\r\nnetwork")
          a.tempfail("ignored: the first verdict wins")
        end
        Dovecot.on_auth { |a| Dovecot.log.info("must not run after a verdict") }
    )");
    AuthOutput out;
    auto r = run(*vm, Hook::Auth, &out);
    ASSERT_FALSE(r.error) << r.error->describe();
    EXPECT_EQ(r.verdict.kind, Verdict::Kind::Reject);
    EXPECT_EQ(r.verdict.text, "Blocked  network");
    EXPECT_EQ(out.delay_ms, 250u);
    core::Fields expected = {{"nodelay", "y"}, {"zip", "01234"}, {"flag", "yes"}, {"count", "3"}};
    EXPECT_EQ(out.fields, expected);
    EXPECT_EQ(logger.count(LogLevel::Warning), 3u) << logger.text();
    EXPECT_NE(logger.text().find("invalid name 'bad name'"), std::string::npos);
    EXPECT_EQ(logger.text().find("must not run"), std::string::npos);
}

TEST_F(AuthBridgeTest, DelayIsCappedAndValidated)
{
    auto vm = vm_with(R"(
        Dovecot.on_auth { |a| a.delay(3600) }
    )");
    AuthOutput out;
    ASSERT_FALSE(run(*vm, Hook::Auth, &out).error);
    EXPECT_EQ(out.delay_ms, core::kMaxAuthDelayMs);

    auto bad = vm_with("Dovecot.on_auth { |a| a.delay(-1) }");
    AuthOutput out2;
    auto r = run(*bad, Hook::Auth, &out2);
    ASSERT_TRUE(r.error);
    EXPECT_NE(r.error->message.find("non-negative"), std::string::npos);
}

TEST_F(AuthBridgeTest, PasswordVerifyAnswersByReturningTrue)
{
    auto vm = vm_with(R"(
        Dovecot.on_password_verify do |req|
          req.set("userdb_zip", "01234")
          req.password == "hunter2"
        end
    )");
    auth.password = "hunter2";
    AuthOutput ok;
    ASSERT_FALSE(run(*vm, Hook::PasswordVerify, &ok).error);
    EXPECT_TRUE(ok.returned_true);
    auth.password = "wrong";
    AuthOutput bad;
    ASSERT_FALSE(run(*vm, Hook::PasswordVerify, &bad).error);
    EXPECT_FALSE(bad.returned_true);
}

TEST_F(AuthBridgeTest, TruthyIsNotTrue)
{
    auto vm = vm_with(R"(Dovecot.on_password_verify { |req| "yes" })");
    AuthOutput out;
    ASSERT_FALSE(run(*vm, Hook::PasswordVerify, &out).error);
    EXPECT_FALSE(out.returned_true);
}

TEST_F(AuthBridgeTest, PasswordIsOnlyGivenToPasswordVerify)
{
    auto vm = vm_with(R"(Dovecot.on_auth { |a| a.password })");
    auth.password = "secret";
    AuthOutput out;
    auto r = run(*vm, Hook::Auth, &out);
    ASSERT_TRUE(r.error);
    EXPECT_NE(r.error->message.find("only given to on_password_verify"), std::string::npos);
}

TEST_F(AuthBridgeTest, PassdbLookupMaySetThePassword)
{
    auto vm = vm_with(R"(
        Dovecot.on_passdb_lookup { |req| req.set("password", "{PLAIN}x") }
        Dovecot.on_userdb_lookup do |req|
          req.set("home", "/var/mail/#{req.username}")
          req.set("uid", "01000")
        end
    )");
    AuthOutput out;
    ASSERT_FALSE(run(*vm, Hook::PassdbLookup, &out).error);
    EXPECT_EQ(out.fields, (core::Fields{{"password", "{PLAIN}x"}}));
    AuthOutput user;
    ASSERT_FALSE(run(*vm, Hook::UserdbLookup, &user).error);
    EXPECT_EQ(user.fields, (core::Fields{{"home", "/var/mail/alice"}, {"uid", "01000"}}));
}

TEST_F(AuthBridgeTest, AuthResultIsObserveOnlyAndKnowsTheOutcome)
{
    auto vm = vm_with(R"(
        $kept = nil
        Dovecot.on_auth_result do |res|
          $kept = res
          Dovecot.log.info("#{res.user} #{res.success?} #{res.reason.inspect}")
          res.reject("x") if res.respond_to?(:reject)
        end
        Dovecot.on_auth { |a| $kept.user }
    )");
    auth.success = false;
    auth.reason = "password mismatch";
    auto r = run(*vm, Hook::AuthResult, nullptr);
    ASSERT_FALSE(r.error) << r.error->describe();
    EXPECT_EQ(logger.lines.at(0).second, "alice@example.com false \"password mismatch\"");
    // The kept object is stale once its event ended.
    AuthOutput out;
    auto stale = run(*vm, Hook::Auth, &out);
    ASSERT_TRUE(stale.error);
    EXPECT_NE(stale.error->message.find("StaleEventError"), std::string::npos);
}
