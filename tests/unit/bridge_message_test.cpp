// Dovecot.on_message_read and Dovecot::Message through a real VM and a fake
// host: the event object's readers and a kept object going stale.
#include "bridge_fixture.hpp"

using namespace dmr;
using dmr::core::Hook;
using dmr::core::ScriptError;
using dmr::testing::BridgeTest;

namespace {

class MessageBridgeTest : public BridgeTest {
protected:
    core::HookResult message_read(mruby::Vm &vm, const core::MessageInfo &message)
    {
        auto event = core::Event::make<Hook::MessageRead>(message);
        event.session = &session;
        return vm.run(event);
    }
};

core::MessageInfo message(const std::string &mailbox, uint32_t uid, const std::string &id)
{
    core::MessageInfo info;
    info.mailbox = mailbox;
    info.uid = uid;
    info.message_id = id;
    info.has_message_id = !id.empty();
    return info;
}

} // namespace

TEST_F(MessageBridgeTest, TheEventObjectReadsMailboxUidMessageIdAndSession)
{
    auto vm = vm_with(R"(
        Dovecot.on_message_read do |m|
          Dovecot.log.info([m.class, m.mailbox, m.mailbox.class, m.uid, m.uid.class,
                            m.message_id.inspect, m.session.user, m.session.service].join(" "))
        end
    )");
    ASSERT_TRUE(vm->handles(Hook::MessageRead));
    auto read = message_read(*vm, message("Archive/2024", 4294967295u, "<1234@example.com>"));
    ASSERT_FALSE(read.error) << read.error->describe();
    EXPECT_FALSE(read.verdict.decided());
    auto none = message_read(*vm, message("INBOX", 7, ""));
    ASSERT_FALSE(none.error) << none.error->describe();
    EXPECT_EQ(logger.text(),
              "Dovecot::Message Archive/2024 String 4294967295 Integer \"<1234@example.com>\" "
              "alice@example.com imap\n"
              "Dovecot::Message INBOX String 7 Integer nil alice@example.com imap\n");
}

TEST_F(MessageBridgeTest, HandlersRunInOrderAndTheirValueIsIgnored)
{
    auto vm = vm_with(R"(
        Dovecot.on_message_read { |m| Dovecot.log.info("first #{m.uid}"); :reject }
        Dovecot.on_message_read { |m| Dovecot.log.info("second #{m.uid}"); false }
    )");
    auto read = message_read(*vm, message("INBOX", 3, "<a@b>"));
    ASSERT_FALSE(read.error) << read.error->describe();
    EXPECT_FALSE(read.verdict.decided());
    EXPECT_EQ(logger.text(), "first 3\nsecond 3\n");
}

TEST_F(MessageBridgeTest, AKeptMessageAndItsSessionRaiseStaleEventErrorAfterTheEvent)
{
    auto vm = vm_with(R"(
        Dovecot.on_message_read do |m|
          $kept = m
          $kept_session = m.session
          nil
        end
        Dovecot.on_mailbox_open do |box|
          begin
            $kept.uid
          rescue Dovecot::StaleEventError => e
            Dovecot.log.info("message: #{e.message}")
          end
          begin
            $kept_session.user
          rescue Dovecot::StaleEventError => e
            Dovecot.log.info("session: #{e.message}")
          end
          $kept.mailbox
        end
    )");
    ASSERT_FALSE(message_read(*vm, message("INBOX", 1, "<x@y>")).error);
    auto result = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_NE(result.error->message.find("(Dovecot::StaleEventError)"), std::string::npos)
        << result.error->message;
    EXPECT_NE(result.error->message.find("Dovecot::Message used outside of its event"),
              std::string::npos)
        << result.error->message;
    EXPECT_EQ(result.error->line, 18);
    const std::string valid = " used outside of its event (event objects are valid only while "
                              "their handler runs)";
    EXPECT_EQ(logger.lines.at(0).second, "message: Dovecot::Message" + valid);
    EXPECT_EQ(logger.lines.at(1).second, "session: Dovecot::Session" + valid);
}

TEST_F(MessageBridgeTest, OnMessageReadNeedsABlock)
{
    auto vm = make_vm();
    auto error = vm->load_source("Dovecot.on_message_read\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_NE(error->message.find("Dovecot.on_message_read needs a block"), std::string::npos)
        << error->message;
}
