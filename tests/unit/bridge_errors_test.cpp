// Describing a failed call's exception runs the exception's own Ruby code
// (message, to_s): it is bounded like a handler (watchdog, memory limit), and
// when it overruns or raises, the description falls back to what the VM
// knows without running Ruby (the class name).
//
// None of these assertions is about speed: every loop below would never end,
// so a call that returns at all was stopped by the limits.
#include "bridge_fixture.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

using namespace dmr;
using dmr::core::ScriptError;
using dmr::testing::BridgeTest;

namespace {

// `body` is the body of a method of the exception class; the handler
// raises it on line 6 of policy.rb.
std::string raising_policy(const std::string &method, const std::string &body)
{
    return "class OddError < StandardError\n"
           "  def " + method + "\n"
           "    " + body + "\n"
           "  end\n"
           "end\n"
           "Dovecot.on_session_start { |s| raise OddError, 'never shown' }\n";
}

// Allocates forever, and drops what it allocated: only the watchdog (whose
// soft stage makes the allocator refuse) ends it, never the memory limit.
const char *kAllocatingLoop = "list = []; loop { list << ('x' * 100); list.clear if list.size > 100 }";

} // namespace

TEST_F(BridgeTest, AMessageThatLoopsIsCutOffAndTheVmDisabled)
{
    auto vm = vm_with(raising_policy("message", kAllocatingLoop));
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(result.error->message, "message unavailable: timed out (OddError)");
    EXPECT_EQ(result.error->file, "policy.rb");
    EXPECT_EQ(result.error->line, 6);
    EXPECT_EQ(result.error->describe().rfind(
                  "policy.rb:6: timeout: message unavailable: timed out (OddError)", 0),
              0u)
        << result.error->describe();
    EXPECT_TRUE(vm->disabled());
    auto again = session_start(*vm);
    ASSERT_TRUE(again.error);
    EXPECT_EQ(again.error->kind, ScriptError::Kind::Disabled);
}

TEST_F(BridgeTest, AToSThatLoopsIsCutOffToo)
{
    // Exception#message calls to_s.
    auto vm = vm_with(raising_policy("to_s", kAllocatingLoop));
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(result.error->message, "message unavailable: timed out (OddError)");
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, AMessageThatLoopsWithoutAllocatingIsStoppedAtItsNextInstruction)
{
    // Only the watchdog's instruction hook can stop this one; the process goes on.
    auto vm = vm_with(raising_policy("message", "i = 0; while true; i += 1; end"));
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(result.error->message, "message unavailable: timed out (OddError)");
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, AMessageObjectWhoseToSLoopsIsCutOff)
{
    // message returns something that is not a String: its to_s (or an
    // inspect that to_s calls) is Ruby code as well.
    auto vm = vm_with("class Weird\n"
                      "  def inspect\n"
                      "    " + std::string(kAllocatingLoop) + "\n"
                      "  end\n"
                      "  def to_s; inspect; end\n"
                      "end\n"
                      "class OddError < StandardError\n"
                      "  def message; Weird.new; end\n"
                      "end\n"
                      "Dovecot.on_session_start { |s| raise OddError }\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(result.error->message, "message unavailable: timed out (OddError)");
    EXPECT_EQ(result.error->line, 10);
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, InspectAndBacktraceOfTheExceptionAreNeverRun)
{
    // Loops without allocating: if the description ran either, only the
    // watchdog's hard stage could end it. The recorded backtrace is read
    // through the C API instead.
    auto vm = vm_with("class OddError < StandardError\n"
                      "  def inspect; x = 0; while true; x += 1; end; end\n"
                      "  def backtrace; x = 0; while true; x += 1; end; end\n"
                      "end\n"
                      "Dovecot.on_session_start { |s| raise OddError, 'plain text' }\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_EQ(result.error->message, "plain text (OddError)");
    EXPECT_EQ(result.error->line, 5);
    EXPECT_FALSE(vm->disabled());
}

TEST_F(BridgeTest, AMessageThatRaisesFallsBackToTheClassName)
{
    auto vm = vm_with(raising_policy("message", "raise ArgumentError, 'not today'"));
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_EQ(result.error->message, "message unavailable: raised ArgumentError (OddError)");
    EXPECT_EQ(result.error->line, 6);
    // An exception is an ordinary failure: the VM goes on.
    EXPECT_FALSE(vm->disabled());
    auto again = session_start(*vm);
    ASSERT_TRUE(again.error);
    EXPECT_EQ(again.error->message, "message unavailable: raised ArgumentError (OddError)");
}

TEST_F(BridgeTest, AMessageThatRaisesAnExceptionWhoseMessageLoopsIsNotAskedForIt)
{
    auto vm = vm_with("class InnerError < StandardError\n"
                      "  def message\n"
                      "    " + std::string(kAllocatingLoop) + "\n"
                      "  end\n"
                      "end\n"
                      "class OddError < StandardError\n"
                      "  def message; raise InnerError; end\n"
                      "end\n"
                      "Dovecot.on_session_start { |s| raise OddError }\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->message, "message unavailable: raised InnerError (OddError)");
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
}

TEST_F(BridgeTest, AHugeMessageHitsTheMemoryLimit)
{
    auto vm = vm_with(raising_policy("message", "'x' * 100_000_000"));
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::MemoryLimit);
    EXPECT_EQ(result.error->message,
              "message unavailable: exceeded mruby_memory_limit=33554432 bytes (OddError)");
    EXPECT_EQ(result.error->line, 6);
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, ALongMessageIsCappedWhenCopied)
{
    auto vm = vm_with("Dovecot.on_session_start { |s| raise 'y' * 5_000_000 }\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_LE(result.error->message.size(), 1100u);
    EXPECT_EQ(result.error->message.rfind("yyyy", 0), 0u);
    EXPECT_NE(result.error->message.find("... (RuntimeError)"), std::string::npos);
}

TEST_F(BridgeTest, ALoopingMessageInTheScriptBodyIsCutOff)
{
    auto vm = make_vm();
    auto error = vm->load_source("class OddError < StandardError\n"
                                 "  def message\n"
                                 "    " + std::string(kAllocatingLoop) + "\n"
                                 "  end\n"
                                 "end\n"
                                 "raise OddError\n",
                                 "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(error->message, "message unavailable: timed out (OddError)");
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, ANestedExceptionClassIsNamedInTheFallback)
{
    auto vm = vm_with("module Site\n"
                      "  class OddError < StandardError\n"
                      "    def message; raise 'again'; end\n"
                      "  end\n"
                      "end\n"
                      "Dovecot.on_session_start { |s| raise Site::OddError }\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->message, "message unavailable: raised RuntimeError (Site::OddError)");
}

// A script stored under a folder named mrblib/ is the script's, not the
// API's: its frames name the failure.
TEST_F(BridgeTest, AScriptUnderAnMrblibFolderKeepsItsFileAndLine)
{
    char dir[] = "/tmp/dmr-mrblib-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string sub = std::string(dir) + "/mrblib";
    ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
    std::string rb = sub + "/policy.rb";
    FILE *f = fopen(rb.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("def check(box)\n  raise 'denied ' + box.name\nend\n"
          "Dovecot.on_mailbox_open { |b| check(b) }\n", f);
    fclose(f);
    auto vm = make_vm();
    auto error = vm->load_file(rb);
    ASSERT_FALSE(error) << error->describe();
    auto open = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(open.error);
    EXPECT_EQ(open.error->file, rb);
    EXPECT_EQ(open.error->line, 2);
    ASSERT_GE(open.error->backtrace.size(), 2u);
    EXPECT_EQ(open.error->backtrace[0].rfind(rb + ":2", 0), 0u) << open.error->backtrace[0];
    unlink(rb.c_str());
    rmdir(sub.c_str());
    rmdir(dir);
}

// An error raised inside the API's own Ruby code names the API file by a
// stable name (never a build-tree path) and the script's line as the place.
TEST_F(BridgeTest, AnApiErrorsBacktraceNamesApiFilesByStableNames)
{
    auto vm = vm_with("Dovecot.on_session_start do |s|\n"
                      "  Dovecot::RateLimit.new('', limit: 1, period: 1)\n"
                      "end\n");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->message, "rate limit name must not be empty (ArgumentError)");
    EXPECT_EQ(result.error->file, "policy.rb");
    EXPECT_EQ(result.error->line, 2);
    ASSERT_GE(result.error->backtrace.size(), 2u);
    EXPECT_EQ(result.error->backtrace[0].rfind("dovecot/state.rb:", 0), 0u)
        << result.error->backtrace[0];
    for (const std::string &entry : result.error->backtrace) {
        EXPECT_EQ(entry.find("mrblib"), std::string::npos) << entry;
        EXPECT_EQ(entry.find("../"), std::string::npos) << entry;
    }
}
