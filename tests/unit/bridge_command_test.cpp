// IMAP/POP3 command events and Dovecot.audit through a real VM.
#include "bridge_fixture.hpp"

#include "core/audit.hpp"

using namespace dmr;
using dmr::core::Hook;
using dmr::core::Verdict;
using dmr::testing::BridgeTest;

namespace {

class RecordingSink final : public core::AuditSink {
public:
    bool write(const core::AuditRecord &record) override
    {
        lines.push_back(record.line());
        return true;
    }
    std::vector<std::string> lines;
};

class CommandTest : public BridgeTest {
protected:
    core::HookResult command(mruby::Vm &vm, Hook hook, const core::CommandInfo &info)
    {
        auto event = core::Event::make_any<core::CommandPayload>(hook, info);
        event.session = &session;
        return vm.run(event);
    }

    std::unique_ptr<mruby::Vm> vm_with_audit(const std::string &source)
    {
        mruby::VmOptions options;
        options.logger = &logger;
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        auditor = std::make_unique<core::Auditor>(
            core::AuditContext{"mx", "imap", "sess", "alice", "192.0.2.1", "127.0.0.1"}, clock);
        auto sink = std::make_unique<RecordingSink>();
        recorded = sink.get();
        auditor->add_sink(std::move(sink));
        options.auditor = auditor.get();
        core::ScriptError error;
        auto vm = mruby::Vm::create(options, error);
        EXPECT_NE(vm, nullptr);
        auto load_error = vm->load_source(source, "policy.rb");
        EXPECT_FALSE(load_error) << load_error->describe();
        return vm;
    }

    core::ManualClock clock{1'714'566'896'000'000};
    std::unique_ptr<core::Auditor> auditor;
    RecordingSink *recorded = nullptr;
};

} // namespace

TEST_F(CommandTest, BeforeCommandRejectsWithACleanResponseCode)
{
    auto vm = vm_with(R"(
        Dovecot::IMAP.before_command do |cmd|
          Dovecot.log.info("#{cmd.protocol} #{cmd.name} #{cmd.tag} #{cmd.args.inspect} #{cmd.session.user}")
          cmd.reject("Slow down\r\n* BYE", code: "limit]\r\n") if cmd.name == "UID FETCH"
        end
    )");
    core::CommandInfo fetch{"UID FETCH", "a1", "", "", "", 0};
    auto result = command(*vm, Hook::ImapCommandBefore, fetch);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(result.verdict.kind, Verdict::Kind::Reject);
    EXPECT_EQ(result.verdict.text, "Slow down  * BYE");
    EXPECT_EQ(result.verdict.code, "LIMIT");
    core::CommandInfo noop{"NOOP", "a2", "", "", "", 0};
    EXPECT_FALSE(command(*vm, Hook::ImapCommandBefore, noop).verdict.decided());
    EXPECT_EQ(logger.text(), "imap UID FETCH a1 nil alice@example.com\nimap NOOP a2 nil alice@example.com\n");
}

TEST_F(CommandTest, Pop3CommandsDisconnectAndReport)
{
    auto vm = vm_with(R"(
        Dovecot::POP3.before_command { |cmd| cmd.disconnect("bye") if cmd.name == "RETR" }
        Dovecot::POP3.after_command do |cmd|
          Dovecot.log.info("#{cmd.name} #{cmd.args} #{cmd.tag.inspect} #{cmd.reply} #{cmd.reply_text} #{cmd.duration}")
        end
    )");
    core::CommandInfo retr{"RETR", "", "1", "", "", 0};
    EXPECT_EQ(command(*vm, Hook::Pop3CommandBefore, retr).verdict.kind, Verdict::Kind::Disconnect);
    core::CommandInfo stat{"STAT", "", "", "+OK", "2 320", 1500};
    auto after = command(*vm, Hook::Pop3CommandAfter, stat);
    ASSERT_FALSE(after.error) << after.error->describe();
    EXPECT_EQ(logger.text(), "STAT  nil +OK 2 320 0.0015\n");
}

TEST_F(CommandTest, RejectAfterTheCommandRanIsAnError)
{
    auto vm = vm_with(R"(
        Dovecot::IMAP.after_command { |cmd| $kept = cmd; cmd.reject("late") }
        Dovecot::IMAP.before_command { |cmd| $kept.name }
    )");
    core::CommandInfo info{"NOOP", "a1", "", "OK", "done", 10};
    auto after = command(*vm, Hook::ImapCommandAfter, info);
    ASSERT_TRUE(after.error);
    EXPECT_NE(after.error->message.find("only possible in before_command"), std::string::npos);
    auto stale = command(*vm, Hook::ImapCommandBefore, info);
    ASSERT_TRUE(stale.error);
    EXPECT_NE(stale.error->message.find("used outside of its event"), std::string::npos);
}

TEST_F(CommandTest, AuditWritesOneRecordWithStandardAndGivenFields)
{
    auto vm = vm_with_audit(R"(
        Dovecot.on_session_start do |s|
          ok = Dovecot.audit("login", secured: false, n: 2, ratio: 0.5, nothing: nil,
                             list: [1, "two", :three], map: {"k" => {a: [true]}}, sym: :x,
                             user: "forged", bad: "\xff\r\n")
          Dovecot.log.info(ok.inspect)
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    ASSERT_EQ(recorded->lines.size(), 1u);
    EXPECT_EQ(recorded->lines[0],
              R"({"ts":"2024-05-01T12:34:56.000000Z","kind":"login","host":"mx","service":"imap",)"
              R"("session":"sess","user":"alice","remote_ip":"192.0.2.1","local_ip":"127.0.0.1",)"
              R"("secured":false,"n":2,"ratio":0.5,"nothing":null,"list":[1,"two","three"],)"
              R"("map":{"k":{"a":[true]}},"sym":"x","x_user":"forged","bad":")" "\xEF\xBF\xBD" R"(\r\n"})"
              "\n");
    EXPECT_EQ(logger.text(), "true\n");
}

TEST_F(CommandTest, AuditFloatsAreWrittenAsTheScriptMeantThem)
{
    // Word-boxed floats lose their last bits: 0.028 used to be written as
    // 0.027999999999999997 (duration_ms of Dovecot::Audit).
    auto vm = vm_with_audit(R"(
        Dovecot.on_session_start do |s|
          Dovecot.audit("x", a: 0.028, b: (0.000028 * 1000).round(3), c: [1.5e-7, 1234.568])
        end
    )");
    ASSERT_FALSE(session_start(*vm).error);
    ASSERT_EQ(recorded->lines.size(), 1u);
    EXPECT_NE(recorded->lines[0].find(R"("a":0.028,"b":0.028,"c":[1.5e-07,1234.568]})"),
              std::string::npos)
        << recorded->lines[0];
}

TEST_F(CommandTest, AuditWithoutSinksReturnsFalse)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| Dovecot.log.info(Dovecot.audit("x", a: 1).inspect) }
    )");
    ASSERT_FALSE(session_start(*vm).error);
    EXPECT_EQ(logger.text(), "false\n");
}
