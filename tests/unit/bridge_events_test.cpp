// The hook table and its bindings as a whole: every row of DMR_HOOKS
// (core/events.hpp) is reachable from Ruby through its binding's
// registration method, and a payload is read only as the kind its hook
// carries. A new event's own test goes at the end of this file
// (docs/architecture.md, "How to add an event").
#include "bridge_fixture.hpp"

#include <stdexcept>

#include "mruby/internal.hpp"

using namespace dmr;
using dmr::core::Hook;
using dmr::testing::BridgeTest;

namespace {

class EventsTest : public BridgeTest {
protected:
    // Ruby that registers an empty handler for `hook` through its binding.
    static std::string registration(Hook hook)
    {
        const mruby::EventBinding &binding = mruby::event_binding(hook);
        std::string receiver = binding.module == nullptr
                                   ? std::string("Dovecot")
                                   : std::string("Dovecot::") + binding.module;
        return receiver + "." + binding.method + " { |e| }\n";
    }
};

} // namespace

TEST_F(EventsTest, EveryHookIsRegisteredThroughItsBindingsMethod)
{
    for (size_t i = 0; i < core::kHookCount; i++) {
        Hook hook = static_cast<Hook>(i);
        SCOPED_TRACE(core::hook_name(hook));
        auto vm = vm_with(registration(hook));
        ASSERT_NE(vm, nullptr);
        for (size_t j = 0; j < core::kHookCount; j++)
            EXPECT_EQ(vm->handles(static_cast<Hook>(j)), i == j) << core::hook_name(hook);
    }
}

TEST_F(EventsTest, EveryHookHasItsOwnName)
{
    for (size_t i = 0; i < core::kHookCount; i++) {
        for (size_t j = i + 1; j < core::kHookCount; j++)
            EXPECT_STRNE(core::hook_name(static_cast<Hook>(i)),
                         core::hook_name(static_cast<Hook>(j)));
    }
    EXPECT_STREQ(core::hook_name(Hook::Count), "?");
}

TEST_F(EventsTest, APayloadIsReadOnlyAsTheKindItsHookCarries)
{
    core::MailboxInfo box{"INBOX", false};
    auto event = core::Event::make<Hook::MailboxOpen>(box);
    ASSERT_NE(event.payload<core::MailboxPayload>(), nullptr);
    EXPECT_EQ(&event.payload<core::MailboxPayload>()->mailbox, &box);
    EXPECT_EQ(event.payload<core::CommandPayload>(), nullptr);
    EXPECT_EQ(event.payload<core::AuthPayload>(), nullptr);
    EXPECT_EQ(event.auth_output(), nullptr);

    core::AuthRequestInfo request;
    core::AuthOutput output;
    auto auth = core::Event::make_any<core::AuthPayload>(Hook::UserdbLookup, request, output);
    EXPECT_EQ(auth.hook, Hook::UserdbLookup);
    EXPECT_EQ(auth.auth_output(), &output);
    EXPECT_THROW(core::Event::make_any<core::AuthPayload>(Hook::AuthResult, request, output),
                 std::invalid_argument);
}

// A mail event handed to a runtime without its session (an adapter bug)
// raises in Ruby instead of crashing the process.
TEST_F(EventsTest, AMissingSessionRaisesInsteadOfCrashing)
{
    auto vm = vm_with(R"(
        Dovecot.on_mailbox_open { |box| Dovecot.log.info(box.name); box.session.user }
    )");
    core::MailboxInfo box{"INBOX", false};
    auto result = vm->run(core::Event::make<Hook::MailboxOpen>(box));
    ASSERT_TRUE(result.error);
    EXPECT_NE(result.error->message.find("a mailbox_open event has no session"),
              std::string::npos)
        << result.error->describe();
    EXPECT_EQ(logger.text(), "INBOX\n");
}
