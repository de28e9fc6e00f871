// The Ruby API as a script sees it, through a real VM and a fake host.
#include "bridge_fixture.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

using namespace dmr;
using dmr::core::LogLevel;
using dmr::core::ScriptError;
using dmr::core::Verdict;
using dmr::testing::BridgeTest;

TEST_F(BridgeTest, SessionAttributesReachTheScript)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          Dovecot.log.info([s.user, s.service, s.remote_ip, s.local_ip, s.remote_port,
                            s.local_port, s.session_id, s.secured?].join(","))
          Dovecot.log.info("#{s['quota_rule']} #{s['zip'].class}:#{s['zip']} #{s['missing'].inspect}")
          Dovecot.log.info("#{s.setting('mruby_greeting')} #{s.setting('nope').inspect}")
          Dovecot.log.info(s.fields.keys.join("+"))
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_FALSE(result.verdict.decided());
    ASSERT_EQ(logger.lines.size(), 4u);
    EXPECT_EQ(logger.lines[0].second,
              "alice@example.com,imap,192.0.2.10,127.0.0.1,50123,143,AbCdEf,false");
    EXPECT_EQ(logger.lines[1].second, "*:storage=1G String:01234 nil");
    EXPECT_EQ(logger.lines[2].second, "hello nil");
    EXPECT_EQ(logger.lines[3].second, "quota_rule+zip");
}

// Secrets among the userdb fields (the login's auth_token, passwords a passdb
// passed along) are not shown to scripts: neither in s.fields nor by s[].
TEST_F(BridgeTest, SessionFieldsHideTheAuthTokenAndPasswords)
{
    session.userdb_fields = {{"quota_rule", "*:storage=1G"}, {"auth_token", "0123abcd"},
                             {"pass", "secret1"}, {"userdb_password", "secret2"},
                             {"Proxy_Password", "secret3"}, {"passive", "yes"}};
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          Dovecot.log.info(s.fields.inspect)
          Dovecot.log.info(%w[auth_token pass userdb_password Proxy_Password passive]
                             .map { |k| s[k].inspect }.join(" "))
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    ASSERT_EQ(logger.lines.size(), 2u);
    EXPECT_EQ(logger.lines[0].second, R"({"quota_rule"=>"*:storage=1G", "passive"=>"yes"})");
    EXPECT_EQ(logger.lines[1].second, R"(nil nil nil nil "yes")");
}

TEST_F(BridgeTest, HandlersRunInOrderAndTheFirstVerdictWins)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| Dovecot.log.info("first") }
        Dovecot.on_session_start { |s| s.deny("second says no"); s.deny("ignored") }
        Dovecot.on_session_start { |s| Dovecot.log.info("third must not run") }
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error);
    EXPECT_EQ(result.verdict.kind, Verdict::Kind::Reject);
    EXPECT_EQ(result.verdict.text, "second says no");
    EXPECT_EQ(logger.text(), "first\n");
}

TEST_F(BridgeTest, MailboxEventsCarryNameReadonlyAndSession)
{
    auto vm = vm_with(R"(
        Dovecot.on_mailbox_open do |box|
          Dovecot.log.info("#{box.name} #{box.readonly?} #{box.session.user}")
          box.deny("Archive is closed\r\n* BYE injected") if box.name == "Archive"
        end
    )");
    auto inbox = mailbox_open(*vm, "INBOX", true);
    ASSERT_FALSE(inbox.error);
    EXPECT_FALSE(inbox.verdict.decided());
    auto archive = mailbox_open(*vm, "Archive");
    EXPECT_EQ(archive.verdict.kind, Verdict::Kind::Reject);
    EXPECT_EQ(archive.verdict.text, "Archive is closed  * BYE injected");
    EXPECT_EQ(logger.text(), "INBOX true alice@example.com\nArchive false alice@example.com\n");
}

TEST_F(BridgeTest, AnEventObjectKeptForLaterRaisesAClearError)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start { |s| $kept = s }
        Dovecot.on_mailbox_open do |box|
          $kept_box = box
          $kept.user
        end
    )");
    ASSERT_FALSE(session_start(*vm).error);
    auto result = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_NE(result.error->message.find("Dovecot::Session used outside of its event"),
              std::string::npos)
        << result.error->message;
    EXPECT_NE(result.error->message.find("(Dovecot::StaleEventError)"), std::string::npos);
    EXPECT_EQ(result.error->file, "policy.rb");
    EXPECT_EQ(result.error->line, 5);
}

TEST_F(BridgeTest, SyntaxErrorsNameFileAndLine)
{
    auto vm = make_vm();
    auto error = vm->load_source("Dovecot.on_session_start do |s|\n  s.deny(\"x\"\nend\n",
                                 "/etc/dovecot/policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Compile);
    EXPECT_EQ(error->file, "/etc/dovecot/policy.rb");
    EXPECT_EQ(error->line, 3);
    EXPECT_NE(error->describe().find("/etc/dovecot/policy.rb:3: syntax error"), std::string::npos)
        << error->describe();
}

TEST_F(BridgeTest, ExceptionsCarryFileLineAndBacktrace)
{
    auto vm = vm_with(R"(
        def check(user)
          raise ArgumentError, "no such user #{user}"
        end
        Dovecot.on_session_start { |s| check(s.user) }
    )");
    auto result = session_start(*vm);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(result.error->kind, ScriptError::Kind::Exception);
    EXPECT_EQ(result.error->message, "no such user alice@example.com (ArgumentError)");
    EXPECT_EQ(result.error->file, "policy.rb");
    EXPECT_EQ(result.error->line, 3);
    ASSERT_GE(result.error->backtrace.size(), 2u);
    EXPECT_NE(result.error->backtrace[1].find("policy.rb:5"), std::string::npos);
    // The VM stays usable after an ordinary exception.
    EXPECT_FALSE(vm->disabled());
}

TEST_F(BridgeTest, AnExceptionInTheScriptBodyIsALoadError)
{
    auto vm = make_vm();
    auto error = vm->load_source("x = 1\nundefined_thing_here\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Exception);
    EXPECT_EQ(error->line, 2);
    EXPECT_EQ(error->message, "undefined method 'undefined_thing_here' (NoMethodError)");
}

TEST_F(BridgeTest, AMissingScriptFileIsALoadError)
{
    auto vm = make_vm();
    auto error = vm->load_file("/nonexistent/dir/policy.rb");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, ScriptError::Kind::Load);
    EXPECT_EQ(error->describe(),
              "/nonexistent/dir/policy.rb: load error: cannot open script: No such file or "
              "directory");
}

// A user's own script (mruby_user_script) is hostile input: a FIFO must not
// hang the process, /dev/zero or a huge file must not exhaust its memory.
TEST_F(BridgeTest, AScriptThatIsNoRegularFileOrTooLargeIsALoadError)
{
    char dir[] = "/tmp/dmr-load-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/fifo.rb";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    auto vm = make_vm(1u << 20);
    auto error = vm->load_file(fifo);   // returns: never opened for a writer
    ASSERT_TRUE(error);
    EXPECT_EQ(error->describe(), fifo + ": load error: cannot open script: not a regular file");

    error = make_vm(1u << 20)->load_file("/dev/zero");
    ASSERT_TRUE(error);
    EXPECT_EQ(error->describe(), "/dev/zero: load error: cannot open script: not a regular file");

    const std::string big = std::string(dir) + "/big.rb";
    {
        FILE *f = std::fopen(big.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::string line(1023, '#');
        line += '\n';
        for (int i = 0; i < 1025; i++)   // 1 MiB + 1 KiB of comments
            std::fputs(line.c_str(), f);
        std::fclose(f);
    }
    error = make_vm(1u << 20)->load_file(big);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->describe(), big + ": load error: cannot read script: larger than "
                                       "mruby_memory_limit (1049600 > 1048576 bytes)");
    unlink(fifo.c_str());
    unlink(big.c_str());
    rmdir(dir);
}

TEST_F(BridgeTest, RegisteringWithoutABlockIsAnError)
{
    auto vm = make_vm();
    auto error = vm->load_source("Dovecot.on_session_start\n", "policy.rb");
    ASSERT_TRUE(error);
    EXPECT_NE(error->message.find("Dovecot.on_session_start needs a block"), std::string::npos);
}

TEST_F(BridgeTest, LogLevelsMapAndMessagesAreSanitized)
{
    auto vm = vm_with(R"(
        Dovecot.log.debug("d")
        Dovecot.log.info("i")
        Dovecot.log.warning("w")
        Dovecot.log.error("line1\nline2")
        Dovecot.log.info(42)
    )");
    ASSERT_EQ(logger.lines.size(), 5u);
    EXPECT_EQ(logger.lines[0].first, LogLevel::Debug);
    EXPECT_EQ(logger.lines[1].first, LogLevel::Info);
    EXPECT_EQ(logger.lines[2].first, LogLevel::Warning);
    EXPECT_EQ(logger.lines[3].first, LogLevel::Error);
    EXPECT_EQ(logger.lines[3].second, "line1\\x0aline2");
    EXPECT_EQ(logger.lines[4].second, "42");
}

TEST_F(BridgeTest, TheStandardLibraryLoadsOnFirstUse)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          out = []
          out << format("%05.1f|%-3s|", 3.14159, "ab")
          out << s.user.start_with?("alice").to_s
          out << s.user.split("@").last.center(13, "*")
          out << Struct.new(:a, :b).new(1, 2).b.to_s
          out << (Time.now.year >= 2024).to_s
          out << Math.sqrt(16).to_i.to_s
          out << [1, "a", :b].any?(String).to_s
          out << (1..10).first(3).inspect
          out << [5, 6, 7].index { |x| x > 5 }.to_s
          out << [1, 2, 3].each_slice(2).to_a.inspect
          out << "x".respond_to?(:ljust).to_s
          Dovecot.log.info(out.join(" "))
          begin
            s.no_such_method
          rescue NoMethodError => e
            Dovecot.log.info("NoMethodError: #{e.message}")
          end
          begin
            NoSuchConstant
          rescue NameError => e
            Dovecot.log.info("NameError: #{e.message}")
          end
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    ASSERT_EQ(logger.lines.size(), 3u) << logger.text();
    EXPECT_EQ(logger.lines[0].second,
              "003.1|ab | true *example.com* 2 true 4 true [1, 2, 3] 1 [[1, 2], [3]] true");
    EXPECT_NE(logger.lines[1].second.find("undefined method 'no_such_method'"), std::string::npos)
        << logger.lines[1].second;
    EXPECT_NE(logger.lines[2].second.find("NoSuchConstant"), std::string::npos);
}

TEST_F(BridgeTest, CoreMethodsKeepTheirCommonFormWithoutLoadingExtensions)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          Dovecot.log.info([[1, 2].any? { |x| x > 1 }, [1, 2].all?, [4, 5].index(5),
                            (1..3).first, (1..3).last].inspect)
        end
    )");
    ASSERT_FALSE(session_start(*vm).error);
    EXPECT_EQ(logger.text(), "[true, true, 1, 1, 3]\n");
}

// A script's own method_missing sees each missing call once, and `super`
// in it reaches mruby's NoMethodError (the extension gems are not loaded
// through method_missing).
TEST_F(BridgeTest, AScriptsOwnMethodMissingRunsOnceAndItsSuperRaisesNoMethodError)
{
    auto vm = vm_with(R"(
        $calls = 0
        class Greeter
          def method_missing(name, *args)
            $calls += 1
            return "hi #{args[0]}" if name == :greet
            super
          end

          def respond_to_missing?(name, include_private = false)
            name == :greet
          end
        end
        Dovecot.on_session_start do |s|
          g = Greeter.new
          out = [g.greet("bob"), $calls]
          begin
            g.shout
          rescue NoMethodError => e
            out << e.message
          end
          out << $calls << g.respond_to?(:greet) << g.respond_to?(:shout)
          Dovecot.log.info(out.inspect)
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(logger.text(), "[\"hi bob\", 1, \"undefined method 'shout'\", 2, true, false]\n");
}

// The documented way for a script that builds method names at run time
// (docs/ruby-api.md, "Standard library"): the same code as the example.
TEST_F(BridgeTest, ARunTimeMethodNameNeedsRequireGems)
{
    auto without = vm_with(R"(
        Dovecot.on_session_start do |s|
          Dovecot.log.info(s.user.respond_to?(["cen", "ter"].join.to_sym).to_s)
        end
    )");
    ASSERT_FALSE(session_start(*without).error);
    auto with = vm_with(R"(
        Dovecot.require_gems   # names below are built at run time
        Dovecot.on_session_start do |s|
          pad = ["cen", "ter"].join
          Dovecot.log.info(s.user.__send__(pad.to_sym, 21, "*"))
        end
    )");
    auto result = session_start(*with);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(logger.text(), "false\n**alice@example.com**\n");
}

// docs/ruby-api.md: the API's constants load also when named at run time,
// and a script's own const_missing sees only its own misses.
TEST_F(BridgeTest, AnApiConstantNamedAtRunTimeLoadsItsLibrary)
{
    auto vm = vm_with(R"(
        $missed = []
        class Object
          def self.const_missing(name)
            $missed << name
            name == :Fallback ? 42 : super
          end
        end
        Dovecot.on_session_start do |s|
          klass = Dovecot.const_get(["Rate", "Limit"].join.to_sym)
          Dovecot.log.info([klass.to_s, Fallback, $missed].inspect)
        end
    )");
    auto result = session_start(*vm);
    ASSERT_FALSE(result.error) << result.error->describe();
    EXPECT_EQ(logger.text(), "[\"Dovecot::RateLimit\", 42, [:Fallback]]\n");
}

// Common names that core answers but the gems define on a rare receiver do
// not load the gems by being named; called on that receiver, they do.
TEST_F(BridgeTest, StubbedNamesLoadTheGemsOnlyWhenCalledOnTheirRareReceiver)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          out = [[1, 2].size, s.user.size, Dovecot.require_gems]
          Dovecot.log.info(out.inspect)
        end
        Dovecot.on_mailbox_open do |b|
          out = [:abc.size, nil.to_a, Hash[[[1, 2]]], Dovecot::Mailbox.name, "%03d" % 7,
                 "a" << "b", [3, 1, 3] - [3], String(5), Dovecot.require_gems]
          Dovecot.log.info(out.inspect)
        end
    )");
    ASSERT_FALSE(session_start(*vm).error);
    auto open = mailbox_open(*vm, "INBOX");
    ASSERT_FALSE(open.error) << open.error->describe();
    EXPECT_EQ(logger.text(), "[2, 17, true]\n"
                             "[3, [], {1=>2}, \"Dovecot::Mailbox\", \"007\", \"ab\", [1], \"5\", false]\n");
}

// A stubbed name answers respond_to? on its rare receiver (loading the gems
// then), and only there: elsewhere it is mruby's NoMethodError, gems unloaded.
TEST_F(BridgeTest, StubbedNamesAnswerRespondToOnlyOnTheirRareReceiver)
{
    auto vm = vm_with(R"(
        Dovecot.on_session_start do |s|
          out = [5.respond_to?(:upcase)]
          begin
            Object.new.upcase
          rescue NoMethodError => e
            out << e.message
          end
          out << Dovecot.require_gems
          Dovecot.log.info(out.inspect)
        end
        Dovecot.on_mailbox_open do |b|
          out = [:abc.respond_to?(:size), nil.respond_to?(:to_i), Dovecot.require_gems]
          Dovecot.log.info(out.inspect)
        end
    )");
    auto start = session_start(*vm);
    ASSERT_FALSE(start.error) << start.error->describe();
    auto open = mailbox_open(*vm, "INBOX");
    ASSERT_FALSE(open.error) << open.error->describe();
    EXPECT_EQ(logger.text(), "[false, \"undefined method 'upcase'\", true]\n"
                             "[true, true, false]\n");
}

TEST_F(BridgeTest, ManyEventsDoNotGrowMemory)
{
    auto vm = vm_with(R"(
        Dovecot.on_mailbox_open do |box|
          box.deny("no") if box.name.start_with?("Secret") && box.session.user.include?("@")
        end
    )");
    // Warm up past the first GC cycles: the garbage mruby lets accumulate
    // before collecting grows with the live set (the API's classes), so the
    // plateau is reached after about a thousand events, then stays flat.
    for (int i = 0; i < 2000; i++)
        mailbox_open(*vm, "INBOX");
    uint64_t after_warmup = vm->memory_used();
    for (int i = 0; i < 5000; i++) {
        auto r = mailbox_open(*vm, i % 2 ? "Secret" : "INBOX");
        ASSERT_FALSE(r.error);
        ASSERT_EQ(r.verdict.decided(), i % 2 == 1);
    }
    EXPECT_LT(vm->memory_used(), after_warmup + 64 * 1024);
}

TEST_F(BridgeTest, PrecompiledBytecodeLoadsWithFileAndLineIntact)
{
    char dir[] = "/tmp/dmr-bytecode-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string rb = std::string(dir) + "/policy.rb";
    std::string mrb = std::string(dir) + "/policy.mrb";
    FILE *f = fopen(rb.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("Dovecot.on_session_start do |s|\n  s.deny('compiled') if s.user.include?('@')\n"
          "end\nDovecot.on_mailbox_open { |b| raise 'from bytecode' }\n", f);
    fclose(f);
    ASSERT_EQ(system(("mrbc -g -o " + mrb + " " + rb).c_str()), 0);

    auto vm = make_vm();
    auto error = vm->load_file(mrb);
    ASSERT_FALSE(error) << error->describe();
    auto start = session_start(*vm);
    ASSERT_FALSE(start.error);
    EXPECT_EQ(start.verdict.text, "compiled");
    auto open = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(open.error);
    EXPECT_EQ(open.error->file, rb);
    EXPECT_EQ(open.error->line, 4);

    // Something that only looks like bytecode is refused with a clear error.
    f = fopen(mrb.c_str(), "w");
    fputs("RITE0300 not really bytecode", f);
    fclose(f);
    auto vm2 = make_vm();
    auto bad = vm2->load_file(mrb);
    ASSERT_TRUE(bad);
    EXPECT_NE(bad->message.find("not bytecode of this mruby (3.1)"), std::string::npos)
        << bad->message;
    unlink(rb.c_str());
    unlink(mrb.c_str());
    rmdir(dir);
}

TEST_F(BridgeTest, ScriptsCannotMakeEventObjects)
{
    auto vm = vm_with(R"(
        [Dovecot::Session, Dovecot::Mailbox, Dovecot::Auth, Dovecot::IMAP::Command].each do |c|
          begin
            c.new
            Dovecot.log.info("#{c}: made")
          rescue NoMethodError
            Dovecot.log.info("#{c}: no new")
          end
        end
    )");
    EXPECT_EQ(logger.text(), "Dovecot::Session: no new\nDovecot::Mailbox: no new\n"
                             "Dovecot::Auth: no new\nDovecot::IMAP::Command: no new\n");
}

// The bridge half of core::ScriptCache: what a file compiled to, loaded again
// in a fresh VM, runs the same handlers with the same file and line.
TEST_F(BridgeTest, VmBuilderKeepsTheCompiledScriptAndLoadsItAgain)
{
    char dir[] = "/tmp/dmr-builder-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string rb = std::string(dir) + "/policy.rb";
    auto write = [&](const char *source) {
        FILE *f = fopen(rb.c_str(), "w");
        ASSERT_NE(f, nullptr);
        fputs(source, f);
        fclose(f);
    };
    write("Dovecot.on_session_start do |s|\n  s.deny('kept')\nend\n"
          "Dovecot.on_mailbox_open { |b| raise 'line 4' }\n");
    mruby::VmOptions options;
    options.logger = &logger;
    options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
    mruby::VmBuilder builder(options);

    std::string bytecode;
    core::ScriptError error;
    auto fresh = builder.from_file(rb, &bytecode, error);
    ASSERT_NE(fresh, nullptr) << error.describe();
    ASSERT_GT(bytecode.size(), 4u);
    EXPECT_EQ(bytecode.substr(0, 4), "RITE");

    write("this is not ruby (\n");   // the file is broken now; the bytecode is not
    auto kept = builder.from_bytecode(bytecode, rb, error);
    ASSERT_NE(kept, nullptr) << error.describe();
    auto *vm = static_cast<mruby::Vm *>(kept.get());
    auto start = session_start(*vm);
    ASSERT_FALSE(start.error);
    EXPECT_EQ(start.verdict.text, "kept");
    auto open = mailbox_open(*vm, "INBOX");
    ASSERT_TRUE(open.error);
    EXPECT_EQ(open.error->file, rb);
    EXPECT_EQ(open.error->line, 4);

    // A broken file gives no bytecode; neither does a top level that raises.
    std::string none;
    EXPECT_EQ(builder.from_file(rb, &none, error), nullptr);
    EXPECT_EQ(error.kind, core::ScriptError::Kind::Compile);
    write("Dovecot.on_session_start { |s| s.deny('x') }\nraise 'half way'\n");
    EXPECT_EQ(builder.from_file(rb, &none, error), nullptr);
    EXPECT_EQ(error.kind, core::ScriptError::Kind::Exception);
    EXPECT_TRUE(none.empty());

    // Only bytecode is taken as bytecode; bad bytecode is an error, not a crash.
    EXPECT_EQ(builder.from_bytecode("Dovecot.on_session_start { }", rb, error), nullptr);
    EXPECT_EQ(error.message, "not mruby bytecode");
    EXPECT_EQ(builder.from_bytecode("RITE0300 not really bytecode", rb, error), nullptr);

    // A precompiled file is kept as it is.
    std::string mrb = std::string(dir) + "/policy.mrb";
    write("Dovecot.on_session_start { |s| s.deny('precompiled') }\n");
    ASSERT_EQ(system(("mrbc -g -o " + mrb + " " + rb).c_str()), 0);
    std::string precompiled;
    ASSERT_NE(builder.from_file(mrb, &precompiled, error), nullptr) << error.describe();
    FILE *f = fopen(mrb.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::string on_disk;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), f)) > 0)
        on_disk.append(buffer, n);
    fclose(f);
    EXPECT_EQ(precompiled, on_disk);

    unlink(rb.c_str());
    unlink(mrb.c_str());
    rmdir(dir);
}
