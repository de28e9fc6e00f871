// core::Coroutine: a body that stops half-way and is continued from the main
// stack (the auth process's handlers, src/dovecot/auth_async.cpp).
#include <gtest/gtest.h>

#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/coroutine.hpp"
#include "core/clock.hpp"
#include "core/io_wait.hpp"

namespace dmr::core {
namespace {

TEST(Coroutine, ABodyThatNeverSuspendsEndsInTheFirstResume)
{
    int ran = 0;
    Coroutine co([&] { ran++; });
    ASSERT_TRUE(co.ok());
    EXPECT_FALSE(co.started());
    EXPECT_EQ(Coroutine::current(), nullptr);
    co.resume();
    EXPECT_TRUE(co.done());
    EXPECT_EQ(ran, 1);
}

TEST(Coroutine, TwoBodiesInterleaveAtTheirSuspensions)
{
    std::vector<std::string> trace;
    Coroutine *seen = nullptr;
    Coroutine a([&] {
        trace.push_back("a1");
        Coroutine::suspend();
        trace.push_back("a2");
    });
    Coroutine b([&] {
        seen = Coroutine::current();
        trace.push_back("b1");
        Coroutine::suspend();
        trace.push_back("b2");
        Coroutine::suspend();
        trace.push_back("b3");
    });
    a.resume();
    b.resume();
    EXPECT_EQ(seen, &b);
    EXPECT_EQ(Coroutine::current(), nullptr);
    b.resume();
    a.resume();
    EXPECT_TRUE(a.done());
    EXPECT_FALSE(b.done());
    b.resume();
    EXPECT_TRUE(b.done());
    EXPECT_EQ(trace, (std::vector<std::string>{"a1", "b1", "b2", "a2", "b3"}));
}

// Locals of a suspended body keep their values: it has a stack of its own.
TEST(Coroutine, DeepFramesSurviveASuspension)
{
    std::string out;
    std::function<int(int)> depth = [&](int n) -> int {
        volatile char pad[1024];
        pad[0] = static_cast<char>(n);
        if (n == 0) {
            Coroutine::suspend();
            return 0;
        }
        return depth(n - 1) + pad[0];
    };
    int sum = -1;
    Coroutine co([&] { sum = depth(100); });
    co.resume();
    EXPECT_FALSE(co.done());
    // The main stack is used meanwhile.
    volatile char noise[4096];
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = 'x';
    co.resume();
    EXPECT_TRUE(co.done());
    EXPECT_EQ(sum, 5050);
}

TEST(Coroutine, AnExceptionLeavesThroughTheResumeThatRanIt)
{
    Coroutine co([] {
        Coroutine::suspend();
        throw std::runtime_error("from the body");
    });
    co.resume();
    EXPECT_THROW(co.resume(), std::runtime_error);
    EXPECT_TRUE(co.done());
}

TEST(IoWaiter, TheProcessWaiterForwardsToTheInstalledOneAndPollsWithout)
{
    struct Counting final : IoWaiter {
        WaitResult wait(int, IoEvent, int64_t) override
        {
            calls++;
            return WaitResult::TimedOut;
        }
        int calls = 0;
    } counting;
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const int64_t soon = MonotonicClock::instance().now_us() + 1000;
    EXPECT_EQ(process_io_waiter().wait(fds[1], IoEvent::Writable, soon), WaitResult::Ready);
    EXPECT_EQ(process_io_waiter().wait(fds[0], IoEvent::Readable, soon), WaitResult::TimedOut);
    install_io_waiter(&counting);
    EXPECT_EQ(process_io_waiter().wait(fds[1], IoEvent::Writable, soon), WaitResult::TimedOut);
    EXPECT_EQ(counting.calls, 1);
    install_io_waiter(nullptr);
    EXPECT_EQ(process_io_waiter().wait(fds[1], IoEvent::Writable, soon), WaitResult::Ready);
    close(fds[0]);
    close(fds[1]);
}

} // namespace
} // namespace dmr::core
