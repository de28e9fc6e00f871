// Runs the Ruby tests (tests/ruby/*_test.rb, with tests/ruby/harness.rb) as
// Ruby: every test in a fresh real VM, the plugin's Ruby half as it ships,
// with its own memory store (or a broken one: `store: :broken`) and a manual
// clock. The harness reports through log lines starting with "ruby-test ":
// "test I STORE NAME" (listing), "fail FILE:LINE: MESSAGE" (an assertion or
// an error), "fire HOOK key=value ..." (an event the test wants; the runner
// runs it through Vm::run and resumes the test with the verdict).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "fakes.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"
#include "store/memory_store.hpp"

using namespace dmr;
using dmr::testing::RecordingLogger;

namespace {

const std::string kDir = DMR_RUBY_TEST_DIR;
const std::string kPrefix = "ruby-test ";

std::string read_file(const std::string &path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// A Ruby string literal holding `text`.
std::string ruby_quote(const std::string &text)
{
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\' || c == '#')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

// "key=value key2=value2" after "fire HOOK " (a space in a value is "%20").
std::vector<std::pair<std::string, std::string>> parse_fields(std::istringstream &in)
{
    std::vector<std::pair<std::string, std::string>> fields;
    std::string word;
    while (in >> word) {
        size_t eq = word.find('=');
        if (eq == std::string::npos)
            continue;
        std::string value = word.substr(eq + 1);
        for (size_t at = value.find("%20"); at != std::string::npos; at = value.find("%20", at))
            value.replace(at, 3, " ");
        fields.emplace_back(word.substr(0, eq), value);
    }
    return fields;
}

std::string verdict_text(const core::HookResult &result)
{
    if (result.error)
        return "error: " + result.error->describe();
    switch (result.verdict.kind) {
    case core::Verdict::Kind::Continue: return "continue";
    case core::Verdict::Kind::Reject: return "reject: " + result.verdict.text;
    case core::Verdict::Kind::Tempfail: return "tempfail: " + result.verdict.text;
    case core::Verdict::Kind::Disconnect: return "disconnect: " + result.verdict.text;
    }
    return "?";
}

class RubyRunner {
public:
    RubyRunner(const std::string &file, const std::string &store_kind) : file_(file)
    {
        if (store_kind == "broken") {
            handle_ = std::make_unique<core::StoreHandle>("bogus:broken-on-purpose");
        } else {
            memory_ = std::make_unique<store::MemoryStore>(clock_);
            handle_ = std::make_unique<core::StoreHandle>(*memory_);
        }
        mruby::VmOptions options;
        options.logger = &logger_;
        options.store = handle_.get();
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        core::ScriptError create_error;
        vm_ = mruby::Vm::create(options, create_error);
        EXPECT_NE(vm_, nullptr) << create_error.describe();
    }

    // Loads the harness and the test file; false (and a test failure) on an error.
    bool load()
    {
        if (!vm_)
            return false;
        return load_file(kDir + "/harness.rb") && load_file(file_);
    }

    // Runs Ruby code; the harness lines it logged.
    std::vector<std::string> step(const std::string &code)
    {
        logger_.lines.clear();
        auto error = vm_->load_source(code, "runner.rb");
        if (error)
            ADD_FAILURE() << file_ << ": " << code << ": " << error->describe();
        std::vector<std::string> out;
        for (const auto &line : logger_.lines) {
            if (line.second.compare(0, kPrefix.size(), kPrefix) == 0)
                out.push_back(line.second.substr(kPrefix.size()));
        }
        return out;
    }

    // Runs test `index` to its end: its body, then every event it fires.
    void run_test(size_t index, const std::string &name)
    {
        std::vector<std::string> lines = step("RubyTest.run(" + std::to_string(index) + ")");
        for (int events = 0; events < 1000; events++) {
            std::string fire;
            for (const std::string &line : lines) {
                if (line.compare(0, 5, "fail ") == 0)
                    ADD_FAILURE_AT(location(line).c_str(), line_of(line))
                        << "[" << name << "] " << line.substr(5);
                else if (line.compare(0, 5, "fire ") == 0)
                    fire = line.substr(5);
            }
            if (fire.empty())
                return;
            lines = step("RubyTest.resume(" + ruby_quote(run_event(fire)) + ")");
        }
        ADD_FAILURE() << file_ << " [" << name << "]: more than 1000 events";
    }

private:
    bool load_file(const std::string &path)
    {
        auto error = vm_->load_source(read_file(path), path);
        if (error)
            ADD_FAILURE() << path << ": " << error->describe();
        return !error;
    }

    // "FILE:LINE: message" -> FILE, LINE (the runner's file when unknown).
    std::string location(const std::string &line) const
    {
        std::string rest = line.substr(5);
        size_t colon = rest.find(':');
        return colon == std::string::npos ? file_ : rest.substr(0, colon);
    }
    static int line_of(const std::string &line)
    {
        std::string rest = line.substr(5);
        size_t colon = rest.find(':');
        return colon == std::string::npos ? 0 : std::atoi(rest.c_str() + colon + 1);
    }

    std::string run_event(const std::string &request)
    {
        std::istringstream in(request);
        std::string hook;
        in >> hook;
        auto fields = parse_fields(in);
        core::AuthRequestInfo auth;
        auth.user = "alice@example.com";
        auth.service = "imap";
        auth.remote_ip = "192.0.2.10";
        auth.local_ip = "127.0.0.1";
        auth.mechanism = "PLAIN";
        core::SessionInfo session;
        session.user = "alice@example.com";
        session.service = "imap";
        session.remote_ip = "192.0.2.10";
        core::CommandInfo command;
        command.name = "NOOP";
        for (const auto &[key, value] : fields) {
            if (key == "user") {
                auth.user = value;
                session.user = value;
            } else if (key == "remote_ip") {
                auth.remote_ip = value;
                session.remote_ip = value;
            } else if (key == "trusted") {
                auth.trusted = value == "true";
            } else if (key == "real_remote_ip") {
                auth.real_remote_ip = value;
            } else if (key == "success") {
                auth.success = value == "true";
            } else if (key == "reason") {
                auth.reason = value;
            } else if (key == "internal_failure") {
                auth.internal_failure = value == "true";
            } else if (key == "name") {
                command.name = value;
            } else {
                ADD_FAILURE() << file_ << ": fire " << hook << ": unknown field " << key;
            }
        }
        core::AuthOutput output;
        if (hook == "auth") {
            // A delay the handler asked for follows the verdict: "continue delay=2000ms".
            std::string text = verdict_text(vm_->run(core::Event::make<core::Hook::Auth>(auth, output)));
            if (output.delay_ms > 0)
                text += " delay=" + std::to_string(output.delay_ms) + "ms";
            return text;
        }
        if (hook == "auth_result")
            return verdict_text(vm_->run(core::Event::make<core::Hook::AuthResult>(auth)));
        if (hook == "imap_command") {
            auto event = core::Event::make<core::Hook::ImapCommandBefore>(command);
            event.session = &session;
            return verdict_text(vm_->run(event));
        }
        ADD_FAILURE() << file_ << ": fire: unknown event " << hook;
        return "error: unknown event";
    }

    std::string file_;
    core::ManualClock clock_{1'700'000'000'000'000};
    RecordingLogger logger_;
    std::unique_ptr<core::Store> memory_;
    std::unique_ptr<core::StoreHandle> handle_;
    std::unique_ptr<mruby::Vm> vm_;
};

std::vector<std::string> test_files()
{
    std::vector<std::string> files;
    for (const auto &entry : std::filesystem::directory_iterator(kDir)) {
        std::string name = entry.path().filename().string();
        if (name.size() > 8 && name.compare(name.size() - 8, 8, "_test.rb") == 0)
            files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    return files;
}

struct Listed {
    size_t index;
    std::string store;
    std::string name;
};

} // namespace

TEST(RubyTests, EveryTestFilePassesInARealVm)
{
    std::vector<std::string> files = test_files();
    ASSERT_FALSE(files.empty()) << "no *_test.rb in " << kDir;
    size_t total = 0;
    for (const std::string &file : files) {
        RubyRunner lister(file, "memory");
        if (!lister.load())
            continue;
        std::vector<Listed> tests;
        for (const std::string &line : lister.step("RubyTest.list")) {
            std::istringstream in(line);
            std::string word;
            Listed listed;
            in >> word >> listed.index >> listed.store;
            std::getline(in >> std::ws, listed.name);
            tests.push_back(listed);
        }
        EXPECT_FALSE(tests.empty()) << file << " defines no test";
        for (const Listed &listed : tests) {
            SCOPED_TRACE(file + ": " + listed.name);
            RubyRunner runner(file, listed.store);
            if (runner.load())
                runner.run_test(listed.index, listed.name);
            total++;
        }
    }
    std::printf("ran %zu Ruby tests from %zu files\n", total, files.size());
}

// The runner itself: a failing assertion is reported with its file and line.
TEST(RubyTests, AFailingAssertionIsReportedWithFileAndLine)
{
    std::string dir = ::testing::TempDir();
    std::string file = dir + "/runner_selfcheck_test.rb";
    {
        std::ofstream out(file);
        out << "test \"fails\" do\n"
               "  x = 1\n"
               "  assert_equal 2, x\n"
               "end\n";
    }
    RubyRunner runner(file, "memory");
    ASSERT_TRUE(runner.load());
    std::vector<std::string> lines = runner.step("RubyTest.run(0)");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "fail " + file + ":3: expected 2, got 1");
    std::filesystem::remove(file);
}
