// Time and memory limits: what happens to a runaway handler.
#include "bridge_fixture.hpp"

#include "mruby/watchdog.hpp"

#include <ctime>

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

// A handler stopped at its deadline: the call fails as a timeout, the VM is
// disabled, and the process (and the test binary) lives on.
void expect_timeout(const core::HookResult &result, mruby::Vm &vm, const char *message)
{
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Timeout) << result.error->describe();
    EXPECT_EQ(result.error->message, message);
    EXPECT_TRUE(vm.disabled());
}

TEST_F(BridgeTest, RescuingTheTimeoutDoesNotHelp)
{
    // Every allocation fails after the deadline and every instruction
    // raises, so a handler that rescues and goes on cannot make progress.
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
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, ANonAllocatingEndlessLoopEndsWithATimeout)
{
    auto vm = vm_with("Dovecot.on_session_start { |s| x = 0; while true; x += 1; end }\n",
                      32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
    auto again = session_start(*vm);
    ASSERT_TRUE(again.error);
    EXPECT_EQ(again.error->kind, ScriptError::Kind::Disabled);
}

TEST_F(BridgeTest, AnEmptyEndlessLoopEndsWithATimeout)
{
    // Nothing but a backward jump.
    auto vm = vm_with("Dovecot.on_mailbox_open { |b| while true; end }\n", 32u << 20, 50);
    expect_timeout(mailbox_open(*vm, "INBOX"), *vm, "mailbox_open handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, RescueExceptionAndRetryCannotSwallowTheTimeout)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          x = 0
          begin
            while true; x += 1; end
          rescue Exception
            retry
          end
        end
    )", 32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, ALoopInsideARescueClauseEndsToo)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          x = 0
          begin
            while true; x += 1; end
          rescue Exception
            while true; x -= 1; end
          end
        end
    )", 32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, EnsureCannotRunTheLoopAgain)
{
    auto vm = vm_with(R"(
        def spin
          x = 0
          while true; x += 1; end
        ensure
          spin
        end
        Dovecot.on_session_start do |s|
          begin
            spin
          rescue Exception => e
            spin
          ensure
            while true; end
          end
        end
    )", 32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, ALoopInAFiberOrABlockCalledFromCEndsToo)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          Fiber.new { while true; end }.resume
        end
    )", 32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
    auto vm2 = vm_with(R"(
        Dovecot.on_mailbox_open do |b|
          [3, 1, 2].sort { |a, c| while true; end }
        end
    )", 32u << 20, 50);
    expect_timeout(mailbox_open(*vm2, "INBOX"), *vm2, "mailbox_open handler exceeded mruby_timeout=50ms");
}

TEST_F(BridgeTest, AStoppedLoopLeavesNothingBehindForTheNextVm)
{
    // The instruction hook is gone once the call has unwound: a fresh VM in
    // the same process runs long (but finite) handlers normally, and the
    // error description of the stopped call could itself run Ruby.
    auto vm = vm_with("Dovecot.on_session_start { |s| while true; end }\n", 32u << 20, 50);
    expect_timeout(session_start(*vm), *vm, "session_start handler exceeded mruby_timeout=50ms");
    auto fresh = vm_with(R"(
        Dovecot.on_session_start do |s|
          x = 0
          200_000.times { x += 1 }
          s.deny("counted #{x}")
        end
    )", 32u << 20, 5000);
    auto result = session_start(*fresh);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.text, "counted 200000");
}

// Keeps this thread's CPU busy for `ms` without running Ruby: what a C
// function that never returns looks like to the watchdog.
void spin_cpu(int64_t ms)
{
    auto cpu_ms = [] {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
    };
    int64_t end = cpu_ms() + ms;
    while (cpu_ms() < end) {
    }
}

TEST(WatchdogHardStage, EndsTheProcessOnlyAfterTenTimeoutsWhereAllowed)
{
    // Mail processes: the last resort when no Ruby instruction comes.
    EXPECT_EXIT(
        {
            mruby::Watchdog::arm(20, "mailbox_open", " handler", nullptr, true);
            spin_cpu(20 * 1000);
        },
        ::testing::ExitedWithCode(mruby::Watchdog::kHardExitStatus),
        "mruby: mailbox_open handler ran past mruby_timeout=20ms and did not stop at its next "
        "Ruby instruction for 10 times as long");
}

TEST(WatchdogHardStage, NeverWhereNotAllowed)
{
    // The auth process: the call just goes on (and fails as a timeout if it
    // ever returns into Ruby); the process is never ended.
    mruby::Watchdog::arm(20, "auth", " handler", nullptr, false);
    spin_cpu(20 * (mruby::Watchdog::kHardStageFactor + 3));
    EXPECT_TRUE(mruby::Watchdog::soft_expired());
    mruby::Watchdog::disarm();
}

// The timer is one-shot and shared by the calls: a tick that came during a
// long call re-armed it for that call's far deadline. A short call after
// it must still stop at its own deadline (it used to wait for the far one:
// the next call was unbounded for up to the long call's timeout).
TEST(Watchdog, AShortCallAfterALongOneStopsAtItsOwnDeadline)
{
    mruby::Watchdog::arm(10, "a", "", nullptr, false);
    mruby::Watchdog::disarm();   // before its tick
    mruby::Watchdog::arm(2000, "b", "", nullptr, false);
    spin_cpu(30);   // the tick for the first call comes now: re-armed for +2 s
    EXPECT_FALSE(mruby::Watchdog::soft_expired());
    mruby::Watchdog::disarm();
    mruby::Watchdog::arm(20, "c", "", nullptr, false);
    spin_cpu(100);
    EXPECT_TRUE(mruby::Watchdog::soft_expired());
    mruby::Watchdog::disarm();
}

TEST_F(BridgeTest, AnEndlessLoopInTheScriptBodyIsBoundedToo)
{
    auto vm = make_vm(32u << 20, 50);
    auto error = vm->load_source("loop { [1, 2, 3].map { |x| x.to_s } }\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Timeout);
    auto quiet = make_vm(32u << 20, 50);
    error = quiet->load_source("i = 0\nwhile true\n  i += 1\nend\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Timeout);
    EXPECT_EQ(error->message, "script policy.rb exceeded mruby_timeout=50ms");
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
