// JSON in a real VM: loaded only when a script names it, and its limits
// (nesting, input size, memory, time) end as Ruby exceptions or as the
// call's timeout, never as a crash. The supported surface itself is tested
// as Ruby in tests/ruby/json_test.rb.
#include "bridge_fixture.hpp"

#include <chrono>

using namespace dmr;
using dmr::core::ScriptError;
using dmr::core::Verdict;
using dmr::testing::BridgeTest;

namespace {

// A handler that reports (deny text) whether JSON is defined, without naming
// it (the name is built at run time, so the scan cannot see it).
const char *kReportJson = R"(
    Dovecot.on_session_start do |s|
      s.deny(Object.constants.map(&:to_s).include?("JS" + "ON") ? "json" : "none")
    end
)";

std::string json_state(core::HookResult result)
{
    EXPECT_FALSE(result.error) << result.error->describe();
    return result.verdict.text;
}

} // namespace

TEST_F(BridgeTest, JsonIsNotLoadedIntoAVmWhoseScriptDoesNotNameIt)
{
    auto vm = vm_with(kReportJson);
    EXPECT_EQ(json_state(session_start(*vm)), "none");
}

TEST_F(BridgeTest, JsonLoadsWhenTheScriptNamesJsonOrToJsonAnywhere)
{
    for (const char *use : {"def later(x) = JSON.generate(x)\n", "def later(x) = x.to_json\n",
                            "def later = Object.const_get('JSON')\n",
                            "class Audit; def payload(h); h.map { |k, v| v.to_json }; end; end\n"}) {
        SCOPED_TRACE(use);
        auto vm = vm_with(std::string(use) + kReportJson);
        EXPECT_EQ(json_state(session_start(*vm)), "json");
    }
}

TEST_F(BridgeTest, JsonParsesAUserdbFieldAndTheScriptSeesRubyValues)
{
    session.userdb_fields = {{"policy", R"({"imap_from": ["192.0.2.0/24"], "max": 5})"}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          policy = JSON.parse(s["policy"], symbolize_names: true)
          s.deny("#{policy[:imap_from].first} #{policy[:max] + 1}")
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.text, "192.0.2.0/24 6");
}

TEST_F(BridgeTest, BadJsonIsAParserErrorTheScriptCanRescue)
{
    session.userdb_fields = {{"policy", R"({"max": 5,})"}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          begin
            JSON.parse(s["policy"])
          rescue JSON::ParserError => e
            s.deny("#{e.class}: #{e.message}")
          end
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.text.rfind("JSON::ParserError: parse error at line 1, column 11", 0), 0u)
        << result.verdict.text;
}

TEST_F(BridgeTest, AnUnrescuedParserErrorFailsTheCallWithItsClass)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| JSON.parse("[1, 2") }
    )");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_NE(result.error->message.find("(JSON::ParserError)"), std::string::npos)
        << result.error->message;
    EXPECT_FALSE(vm->disabled());
}

// The input limit is an eighth of mruby_memory_limit: the C++ token list
// (outside the VM's allocator) stays about as large as the limit.
TEST_F(BridgeTest, AJsonTextOverAnEighthOfTheMemoryLimitIsAParserError)
{
    session.userdb_fields = {{"big", "[" + std::string(600'000, ' ') + "1]"}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          begin
            JSON.parse(s["big"])
          rescue JSON::ParserError => e
            s.deny(e.message)
          end
        end
    )", 4u << 20);
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.text,
              "JSON text of 600003 bytes is larger than the limit of 524288 bytes");
}

TEST_F(BridgeTest, AJsonTextThatBuildsTooManyObjectsEndsAtTheMemoryLimit)
{
    // 500 KB of text, 100k nested-array objects: more than 4 MiB of Ruby.
    std::string text = "[";
    for (int i = 0; i < 100'000; i++)
        text += i ? ",[]" : "[]";
    text += "]";
    session.userdb_fields = {{"big", text}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| $kept = JSON.parse(s["big"]) }
    )", 4u << 20);
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    if (std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr)   // a full GC per value: slower
        EXPECT_TRUE(result.error->kind == ScriptError::Kind::MemoryLimit ||
                    result.error->kind == ScriptError::Kind::Timeout)
            << result.error->describe();
    else
        EXPECT_EQ(result.error->kind, ScriptError::Kind::MemoryLimit) << result.error->describe();
}

TEST_F(BridgeTest, ALongParseStopsAtTheTimeout)
{
    // ~24 MB of numbers: parsing all of it takes far longer than 20 ms.
    std::string text = "[";
    text.reserve(24u << 20);
    while (text.size() < (24u << 20))
        text += "123456789,";
    text += "0]";
    session.userdb_fields = {{"big", text}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| JSON.parse(s["big"]) }
    )", 256u << 20, 20);
    auto start = std::chrono::steady_clock::now();
    auto result = session_start(*vm);
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout) << result.error->describe();
    // A whole parse takes ~500 ms here; the poll every 1024 tokens ends it soon
    // after the deadline.
    EXPECT_LT(took, std::chrono::milliseconds(300));
}

TEST_F(BridgeTest, GenerateNestingAndNanAreRubyExceptions)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          a = []
          a << a
          errors = []
          [a, [0.0 / 0.0], "\xff"].each do |v|
            begin
              JSON.generate(v)
            rescue JSON::JSONError => e
              errors << "#{e.class}: #{e.message}"
            end
          end
          s.deny(errors.join("; "))
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.text,
              "JSON::NestingError: nesting of 101 is too deep; "
              "JSON::GeneratorError: NaN not allowed in JSON; "
              "JSON::GeneratorError: source sequence is illegal/malformed utf-8");
}
