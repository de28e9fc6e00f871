// Regexp in a real VM: loaded only when a script names it, usable in a
// handler, and its limits (time: a catastrophic pattern; memory) end as the
// call's timeout or memory error, never as a hang or a crash. The supported
// surface itself is tested as Ruby in tests/ruby/regexp_test.rb.
#include "bridge_fixture.hpp"

#include <chrono>

using namespace dmr;
using dmr::core::ScriptError;
using dmr::testing::BridgeTest;

namespace {

// A handler that reports (deny text) whether Regexp is defined, without
// naming it (the name is built at run time, so the scan cannot see it).
const char *kReportRegexp = R"(
    Dovecot.on_session_start do |s|
      s.deny(Object.constants.map(&:to_s).include?("Reg" + "exp") ? "regexp" : "none")
    end
)";

std::string verdict_of(core::HookResult result)
{
    EXPECT_FALSE(result.error) << result.error->describe();
    return result.verdict.text;
}

} // namespace

TEST_F(BridgeTest, RegexpIsNotLoadedIntoAVmWhoseScriptDoesNotNameIt)
{
    auto vm = vm_with(kReportRegexp);
    EXPECT_EQ(verdict_of(session_start(*vm)), "none");
}

TEST_F(BridgeTest, RegexpLoadsForALiteralOrAMatchingMethodAnywhere)
{
    for (const char *use : {"def later(x) = x =~ /a/\n", "def later(x, y) = x.match?(y)\n",
                            "def later = Object.const_get('Regexp')\n",
                            "def later(x) = x.scan('a')\n", "def later(x) = Regexp.new(x)\n",
                            "class Foo; def bar(x) = x.match(\"a+\"); end\n"}) {
        SCOPED_TRACE(use);
        auto vm = vm_with(std::string(use) + kReportRegexp);
        EXPECT_EQ(verdict_of(session_start(*vm)), "regexp");
    }
}

// Dovecot.require_gems loads the extension gems, not Regexp or JSON: a
// script that only builds their names at run time finds neither, and one
// that names them anywhere (here in a constant) has both
// (docs/ruby-api.md "Standard library").
TEST_F(BridgeTest, RequireGemsLoadsNeitherRegexpNorJsonAndNamingThemDoes)
{
    const std::string handler = R"(
        Dovecot.on_session_start do |s|
          found = ["Reg" + "exp", "JS" + "ON"].map do |name|
            begin
              Object.const_get(name).name
            rescue NameError
              "no #{name}"
            end
          end
          s.deny(found.join(", "))
        end
    )";
    auto vm = vm_with("Dovecot.require_gems\n" + handler);
    EXPECT_EQ(verdict_of(session_start(*vm)), "no Regexp, no JSON");
    vm = vm_with("LIBRARIES = [Regexp, JSON]\n" + handler);
    EXPECT_EQ(verdict_of(session_start(*vm)), "Regexp, JSON");
}

// Dovecot::List#match (mrblib/state.rb) names `match`: loading the API's
// own code does not load Regexp.
TEST_F(BridgeTest, RegexpIsNotLoadedByTheApisOwnCode)
{
    auto vm = vm_with(std::string("def later = Dovecot::List.new('x')\n") +
                      "Dovecot::Counter.name\n" + kReportRegexp);
    EXPECT_EQ(verdict_of(session_start(*vm)), "none");
}

// The example of docs/ruby-api.md "Regexp".
TEST_F(BridgeTest, TheDocsRegexpExampleRuns)
{
    session.user = "test_bob@Example.COM";
    auto vm = vm_with(R"(
Dovecot.on_session_start do |s|
  if s.user =~ /\A(?<local>[^@]+)@example\.(com|org)\z/i
    Dovecot.log.info("local part #{$~[:local]}, domain .#{$2}")
  end
  case s.service
  when /\Aimap/ then s.deny("no IMAP for test accounts") if s.user.start_with?(/test[-_]/)
  when "pop3" then nil
  end
end
    )");
    EXPECT_EQ(verdict_of(session_start(*vm)), "no IMAP for test accounts");
}

TEST_F(BridgeTest, AHandlerMatchesTheUserWithALiteral)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          if s.user =~ /\A(?<local>[^@]+)@example\.com\z/
            s.deny("#{$~[:local]} #{$1} #{s.user.sub(/@.*/, '')}")
          end
        end
    )");
    EXPECT_EQ(verdict_of(session_start(*vm)), "alice alice alice");
}

TEST_F(BridgeTest, AnUnrescuedRegexpErrorFailsTheCallWithItsClass)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| Regexp.new("(") }
    )");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_NE(result.error->message.find("(RegexpError)"), std::string::npos)
        << result.error->message;
    EXPECT_NE(result.error->message.find("end pattern with unmatched parenthesis"), std::string::npos)
        << result.error->message;
    EXPECT_FALSE(vm->disabled());
}

// /(a+)+$/ on "aaa...ab" backtracks 2^n times: unbounded it would run for
// ages. The search polls the watchdog between rounds of Oniguruma's retry
// limit, and the call ends as a timeout soon after the deadline; rescuing
// the RegexpError does not keep the handler going.
TEST_F(BridgeTest, ACatastrophicPatternStopsAtTheTimeout)
{
    for (const char *body : {"s.deny((/(a+)+$/ =~ ('a' * 40 + 'b')).to_s)",
                             "begin; ('a' * 40 + 'b').gsub(/(a+)+$/, ''); rescue RegexpError; "
                             "s.deny('rescued'); end"}) {
        SCOPED_TRACE(body);
        auto vm = vm_with(std::string("Dovecot.on_session_start { |s| ") + body + " }\n",
                          32u << 20, 50);
        auto start = std::chrono::steady_clock::now();
        auto result = session_start(*vm);
        auto took = std::chrono::steady_clock::now() - start;
        ASSERT_TRUE(result.error);
        EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout) << result.error->describe();
        EXPECT_LT(took, std::chrono::milliseconds(400));
    }
}

TEST_F(BridgeTest, ALegitimateSearchOverManyRetryRoundsStillMatches)
{
    // Millions of backtracking steps before the match at 26: many retry
    // rounds (core::kRegexRetryStep each), well within the timeout.
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          s.deny(((/(a|aa)+b/ =~ ("a" * 25 + "c" + "aaab")) || -1).to_s)
        end
    )", 32u << 20, 5000);
    EXPECT_EQ(verdict_of(session_start(*vm)), "26");
}

TEST_F(BridgeTest, AGsubThatGrowsWithoutEndStopsAtTheMemoryLimit)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          t = "a" * 1000
          loop { t = t.gsub(/a+/) { |run| run + run } }
        end
    )", 4u << 20, 5000);   // the memory limit, long before the timeout (~250 ms of work)
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    if (std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr)
        EXPECT_TRUE(result.error->kind == ScriptError::Kind::MemoryLimit ||
                    result.error->kind == ScriptError::Kind::Timeout)
            << result.error->describe();
    else
        EXPECT_EQ(result.error->kind, ScriptError::Kind::MemoryLimit) << result.error->describe();
}

// mruby-string-ext defines its own String#start_with? (Strings only) when
// the extension gems load, before or after Regexp: the Regexp-aware one wins.
TEST_F(BridgeTest, StartWithTakesARegexpWhetherTheGemsLoadBeforeOrAfter)
{
    for (const char *script : {
             // both named at load: the gems load with the script
             "Dovecot.on_session_start { |s| s.deny(\"#{s.user.ljust(1)}\".start_with?(/al/).to_s) }\n",
             // the gems load later, by Dovecot.require_gems
             "Dovecot.on_session_start { |s| Dovecot.require_gems; s.deny(s.user.start_with?(/al/).to_s) }\n",
         }) {
        SCOPED_TRACE(script);
        auto vm = vm_with(script);
        EXPECT_EQ(verdict_of(session_start(*vm)), "true");
    }
}
