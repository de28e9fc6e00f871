// Time and memory limits: what happens to a runaway handler.
#include "bridge_fixture.hpp"

#include "mruby/watchdog.hpp"

using namespace dmr;
using dmr::core::ScriptError;
using dmr::testing::BridgeTest;

TEST_F(BridgeTest, MemoryLimitStopsTheHandlerAndDisablesTheVm)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          hoard = []
          loop { hoard << ("x" * 10_000) }
        end
    )", 4u << 20);
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::MemoryLimit);
    EXPECT_NE(result.error->message.find("exceeded mruby_memory_limit=4194304 bytes"),
              std::string::npos)
        << result.error->message;
    EXPECT_TRUE(vm->disabled());
    auto again = session_start(*vm);
    ASSERT_TRUE(again.error);
    EXPECT_EQ(again.error->kind, ScriptError::Kind::Disabled);
}

TEST_F(BridgeTest, MemoryLimitAlsoBindsTheScriptBody)
{
    auto vm = make_vm(2u << 20);
    auto error = vm->load_source("$a = []\nloop { $a << 'y' * 100_000 }\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::MemoryLimit);
}

TEST_F(BridgeTest, AnAllocatingEndlessLoopEndsWithATimeout)
{
    auto vm = vm_with(R"(
        Dovecot.on_mailbox_open do |box|
          i = 0
          loop { i += 1; "spin #{i}" }
        end
    )", 32u << 20, 50);
    auto result = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(result.error->message, "mailbox_open handler exceeded mruby_timeout=50ms");
    EXPECT_TRUE(vm->disabled());
}

TEST_F(BridgeTest, RescuingTheTimeoutDoesNotHelp)
{
    // Every allocation fails after the deadline, so a handler that rescues
    // NoMemoryError and goes on cannot make progress either; it ends at the
    // hard stage, which ends the process.
    EXPECT_EXIT(
        {
            auto vm = vm_with(R"(
                Dovecot.on_session_start do |s|
                  loop do
                    begin
                      "x" * 100
                    rescue Exception
                    end
                  end
                end
            )", 32u << 20, 50);
            session_start(*vm);
        },
        ::testing::ExitedWithCode(mruby::Watchdog::kHardExitStatus),
        "mruby: session_start handler ran past mruby_timeout=50ms twice over");
}

TEST_F(BridgeTest, ANonAllocatingEndlessLoopEndsTheProcess)
{
    EXPECT_EXIT(
        {
            auto vm = vm_with("Dovecot.on_session_start { |s| x = 0; while true; x += 1; end }\n",
                              32u << 20, 50);
            session_start(*vm);
        },
        ::testing::ExitedWithCode(mruby::Watchdog::kHardExitStatus),
        "mruby: session_start handler ran past mruby_timeout=50ms twice over without allocating");
}

TEST_F(BridgeTest, AnEndlessLoopInTheScriptBodyIsBoundedToo)
{
    auto vm = make_vm(32u << 20, 50);
    auto error = vm->load_source("loop { [1, 2, 3].map { |x| x.to_s } }\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Timeout);
}

TEST_F(BridgeTest, ATooSmallMemoryLimitFailsVmCreationCleanly)
{
    mruby::VmOptions options;
    options.logger = &logger;
    options.memory_limit = 64 * 1024;
    core::ScriptError error;
    // The limit is enforced only once the VM is up; opening itself must work
    // or fail cleanly, never crash.
    auto vm = mruby::Vm::create(options, error);
    if (vm) {
        auto load = vm->load_source("$x = 'a' * 200_000\n", "policy.rb");
        ASSERT_TRUE(load);
        EXPECT_EQ(load->kind, ScriptError::Kind::MemoryLimit);
    }
}
