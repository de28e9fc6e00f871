// core::ScriptCache on a real temporary directory (real open/rename/chmod),
// with a fake builder standing in for the VM.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/script_cache.hpp"
#include "fakes.hpp"

using namespace dmr::core;

namespace {

// Remembers every event besides the line.
class EventLogger final : public Logger {
public:
    void log(LogLevel level, std::string_view message) override
    {
        lines.log(level, message);
    }
    void log_event(LogLevel level, std::string_view message, const LogEvent &event) override
    {
        lines.log(level, message);
        events.push_back(event);
    }
    dmr::testing::RecordingLogger lines;
    std::vector<LogEvent> events;
};

// Which version a runtime runs ("v1", ...).
class VersionRuntime final : public ScriptRuntime {
public:
    explicit VersionRuntime(std::string v) : version(std::move(v)) {}
    bool handles(Hook) const override { return true; }
    HookResult run(const Event &) override { return {Verdict::reject(version), std::nullopt}; }
    std::string version;
};

std::string version_of(const ScriptLoad &load)
{
    return load.runtime ? static_cast<VersionRuntime *>(load.runtime.get())->version : "";
}

// "Files" are versions or errors; bytecode is "RITE:" + version.
class FakeBuilder final : public ScriptBuilder {
public:
    std::unique_ptr<ScriptRuntime> from_file(const std::string &path, std::string *bytecode,
                                             ScriptError &error) override
    {
        file_loads++;
        auto it = files.find(path);
        if (it == files.end()) {
            error = ScriptError{ScriptError::Kind::Load, "cannot open script: No such file or directory",
                                path, 0, {}};
            return nullptr;
        }
        if (it->second.rfind("syntax:", 0) == 0) {
            error = ScriptError{ScriptError::Kind::Compile, it->second.substr(7), path, 3, {}};
            return nullptr;
        }
        if (bytecode != nullptr)
            *bytecode = "RITE:" + it->second;
        return std::make_unique<VersionRuntime>(it->second);
    }
    std::unique_ptr<ScriptRuntime> from_bytecode(std::string_view bytecode, const std::string &path,
                                                 ScriptError &error) override
    {
        bytecode_loads++;
        if (bytecode.substr(0, 5) != "RITE:" || bytecode.find("raises") != std::string_view::npos) {
            error = ScriptError{ScriptError::Kind::Exception, "top level raised (RuntimeError)",
                                path, 1, {}};
            return nullptr;
        }
        return std::make_unique<VersionRuntime>(std::string(bytecode.substr(5)));
    }
    std::map<std::string, std::string> files;
    int file_loads = 0;
    int bytecode_loads = 0;
};

class ScriptCacheTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/dmr-script-cache-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root = tmpl;
        dir = root + "/scripts";
    }
    void TearDown() override { ASSERT_EQ(std::system(("rm -rf " + root).c_str()), 0); }

    static std::string read_all(const std::string &path)
    {
        std::ifstream in(path, std::ios::binary);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    static void write_all(const std::string &path, const std::string &data)
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << data;
    }

    std::string root, dir;
    const std::string script = "/etc/dovecot/mruby/policy.rb";
    ManualClock clock{1'700'000'000'000'000};   // 2023-11-14T22:13:20Z
    EventLogger logger;
    FakeBuilder builder;
};

TEST(ScriptCacheDirectory, DefaultsFollowTheStoreAndNoTurnsItOff)
{
    std::vector<std::string> errors;
    EXPECT_EQ(ScriptCache::directory_for("", "lmdb:/var/lib/dovecot/mruby", errors),
              "/var/lib/dovecot/mruby/scripts");
    EXPECT_EQ(ScriptCache::directory_for("", "lmdb:/srv/state/?map_size=64M", errors),
              "/srv/state/scripts");
    EXPECT_EQ(ScriptCache::directory_for("", "redis://127.0.0.1", errors),
              ScriptCache::kDefaultDir);
    EXPECT_EQ(ScriptCache::directory_for("", "memory", errors), ScriptCache::kDefaultDir);
    EXPECT_EQ(ScriptCache::directory_for("/srv/cache", "memory", errors), "/srv/cache");
    EXPECT_EQ(ScriptCache::directory_for("no", "lmdb:/x", errors), "");
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(ScriptCache::directory_for("cache", "lmdb:/x", errors), "/x/scripts");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("not an absolute path"), std::string::npos);
}

TEST_F(ScriptCacheTest, AGoodLoadIsKeptWithTheSharedLayout)
{
    mode_t old_umask = umask(077);   // the cache sets its modes whatever the umask
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v1";
    ScriptLoad load = cache.load(script, builder);
    umask(old_umask);
    EXPECT_EQ(version_of(load), "v1");
    EXPECT_FALSE(load.error);
    EXPECT_FALSE(load.fallback);

    struct stat st;
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 02770u);
    std::string file = cache.file_for(script);
    EXPECT_EQ(file.rfind(dir + "/policy.rb-", 0), 0u) << file;
    ASSERT_EQ(stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_NE(logger.lines.text().find("mruby: saved " + script + " as the last good version"),
              std::string::npos);

    ScriptCache::Entry entry;
    std::string why;
    ASSERT_EQ(cache.read(script, entry, why), ScriptCache::ReadResult::Ok) << why;
    EXPECT_EQ(entry.bytecode, "RITE:v1");
    EXPECT_EQ(entry.saved_at, 1'700'000'000);
}

TEST_F(ScriptCacheTest, TheSameVersionIsNotWrittenAgain)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v1";
    cache.load(script, builder);
    struct stat before;
    ASSERT_EQ(stat(cache.file_for(script).c_str(), &before), 0);
    clock.advance(3600 * kMicrosPerSecond);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(version_of(cache.load(script, builder)), "v1");
    struct stat after;
    ASSERT_EQ(stat(cache.file_for(script).c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "rewritten";
    EXPECT_EQ(logger.lines.count(LogLevel::Info), 1u);

    builder.files[script] = "v2";
    EXPECT_EQ(version_of(cache.load(script, builder)), "v2");
    ScriptCache::Entry entry;
    std::string why;
    ASSERT_EQ(cache.read(script, entry, why), ScriptCache::ReadResult::Ok);
    EXPECT_EQ(entry.bytecode, "RITE:v2");
    EXPECT_EQ(entry.saved_at, 1'700'003'600);
}

TEST_F(ScriptCacheTest, ABrokenFileRunsTheLastGoodVersionAndSaysSoEveryTime)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v1";
    cache.load(script, builder);
    builder.files[script] = "syntax:unexpected end";
    for (int i = 1; i <= 2; i++) {
        ScriptLoad load = cache.load(script, builder);
        EXPECT_EQ(version_of(load), "v1");
        ASSERT_TRUE(load.error);
        EXPECT_EQ(load.error->kind, ScriptError::Kind::Compile);
        ASSERT_TRUE(load.fallback);
        EXPECT_EQ(load.fallback->cache_file, cache.file_for(script));
        EXPECT_EQ(load.fallback->saved_at, 1'700'000'000);
        ASSERT_EQ(logger.events.size(), static_cast<size_t>(i));
    }
    EXPECT_EQ(logger.lines.lines.back().first, LogLevel::Error);
    EXPECT_EQ(logger.lines.lines.back().second,
              "mruby: " + script + ":3: syntax error: unexpected end; enforcing the last good "
              "version from 2023-11-14T22:13:20Z (" + cache.file_for(script) +
              ") until the file is fixed");
    const LogEvent &event = logger.events.back();
    EXPECT_EQ(event.name, "mruby_script_fallback");
    auto str = [&](const char *key) {
        for (const auto &[k, v] : event.strings)
            if (k == key)
                return v;
        return std::string("<none>");
    };
    EXPECT_EQ(str("script"), script);
    EXPECT_EQ(str("error_kind"), "syntax error");
    EXPECT_EQ(str("error_file"), script);
    EXPECT_EQ(str("cache_file"), cache.file_for(script));
    EXPECT_EQ(str("last_good"), "2023-11-14T22:13:20Z");
    EXPECT_EQ(event.numbers, (std::vector<std::pair<std::string, int64_t>>{
                                 {"error_line", 3}, {"last_good_unix", 1'700'000'000}}));

    // A missing file: the same.
    builder.files.erase(script);
    ScriptLoad load = cache.load(script, builder);
    EXPECT_EQ(version_of(load), "v1");
    EXPECT_NE(logger.lines.lines.back().second.find(
                  "policy.rb: load error: cannot open script: No such file or directory; "
                  "enforcing the last good version"),
              std::string::npos);

    // Fixed: the new version, and silence.
    builder.files[script] = "v2";
    size_t events = logger.events.size();
    load = cache.load(script, builder);
    EXPECT_EQ(version_of(load), "v2");
    EXPECT_FALSE(load.fallback);
    EXPECT_EQ(logger.events.size(), events);
}

TEST_F(ScriptCacheTest, NoGoodVersionEverLeavesTheErrorToMrubyOnError)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "syntax:oops";
    ScriptLoad load = cache.load(script, builder);
    EXPECT_EQ(load.runtime, nullptr);
    ASSERT_TRUE(load.error);
    EXPECT_EQ(load.error->message, "oops");
    EXPECT_FALSE(load.fallback);
    EXPECT_TRUE(logger.lines.lines.empty()) << "the dispatcher logs the error, as before";
    EXPECT_EQ(builder.bytecode_loads, 0);
}

TEST_F(ScriptCacheTest, ADamagedCacheFileIsNeverTrusted)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v1";
    cache.load(script, builder);
    std::string file = cache.file_for(script);
    const std::string good = read_all(file);

    std::vector<std::pair<std::string, std::string>> damages = {
        {"truncated", good.substr(0, good.size() - 1)},
        {"flipped", good.substr(0, good.size() - 2) + "X" + good.substr(good.size() - 1)},
        {"empty", ""},
        {"header only", good.substr(0, good.find("\n\n"))},
        {"bad magic", "RITE0300" + good},
        {"longer", good + "junk"},
    };
    builder.files[script] = "syntax:broken";
    for (const auto &[name, data] : damages) {
        write_all(file, data);
        logger.lines.lines.clear();
        ScriptLoad load = cache.load(script, builder);
        EXPECT_EQ(load.runtime, nullptr) << name;
        EXPECT_FALSE(load.fallback) << name;
        ASSERT_TRUE(load.error) << name;
        ASSERT_EQ(logger.lines.lines.size(), 1u) << name;
        EXPECT_EQ(logger.lines.lines[0].first, LogLevel::Warning);
        EXPECT_EQ(logger.lines.lines[0].second.rfind("mruby: ignoring the script cache file " +
                                                         file + ": ",
                                                     0),
                  0u)
            << logger.lines.lines[0].second;
    }
    EXPECT_EQ(builder.bytecode_loads, 0) << "nothing damaged reaches the VM";

    // Another script's file under this name (a hash collision, a copy).
    ScriptCache other_cache(dir, logger, clock);
    const std::string other = "/etc/dovecot/mruby/other.rb";
    builder.files[other] = "other";
    other_cache.load(other, builder);
    write_all(file, read_all(cache.file_for(other)));
    ScriptCache::Entry entry;
    std::string why;
    EXPECT_EQ(cache.read(script, entry, why), ScriptCache::ReadResult::Invalid);
    EXPECT_EQ(why, "it belongs to " + other);
}

TEST_F(ScriptCacheTest, BytecodeThatNoLongerLoadsIsReportedAndIgnored)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v1 raises";   // its top level raises when run again
    cache.load(script, builder);
    builder.files[script] = "syntax:broken";
    ScriptLoad load = cache.load(script, builder);
    EXPECT_EQ(load.runtime, nullptr);
    EXPECT_FALSE(load.fallback);
    EXPECT_NE(logger.lines.text().find("it does not load: " + script +
                                       ":1: exception: top level raised"),
              std::string::npos)
        << logger.lines.text();
}

TEST_F(ScriptCacheTest, AnUnusableDirectoryIsAWarningAndTheFileStillRuns)
{
    ScriptCache cache(root + "/missing/scripts", logger, clock);
    builder.files[script] = "v1";
    ScriptLoad load = cache.load(script, builder);
    EXPECT_EQ(version_of(load), "v1");
    ASSERT_EQ(logger.lines.lines.size(), 1u);
    EXPECT_EQ(logger.lines.lines[0].first, LogLevel::Warning);
    EXPECT_NE(logger.lines.lines[0].second.find("cannot keep the last good version of " + script +
                                                ": mkdir(" + root + "/missing/scripts)"),
              std::string::npos)
        << logger.lines.lines[0].second;
}

TEST_F(ScriptCacheTest, AFurtherVmOfAKeptVersionNeitherWritesNorWarnsAgain)
{
    // The auth process's VM pool: only the generation's first VM keeps the
    // version, so an unusable directory is one warning, not one per VM.
    ScriptCache cache(root + "/missing/scripts", logger, clock);
    builder.files[script] = "v1";
    EXPECT_EQ(version_of(cache.load(script, builder)), "v1");
    ASSERT_EQ(logger.lines.lines.size(), 1u);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(version_of(cache.load(script, builder, /*keep=*/false)), "v1");
    EXPECT_EQ(logger.lines.lines.size(), 1u);

    ScriptCache usable(dir, logger, clock);
    builder.files[script] = "v2";
    EXPECT_EQ(version_of(usable.load(script, builder, /*keep=*/false)), "v2");
    struct stat st;
    EXPECT_NE(stat(dir.c_str(), &st), 0);   // nothing written
}

TEST_F(ScriptCacheTest, TurnedOffItNeitherWritesNorFallsBack)
{
    ScriptCache cache("", logger, clock);
    builder.files[script] = "v1";
    EXPECT_EQ(version_of(cache.load(script, builder)), "v1");
    builder.files[script] = "syntax:x";
    EXPECT_EQ(cache.load(script, builder).runtime, nullptr);
    EXPECT_TRUE(logger.lines.lines.empty());
    struct stat st;
    EXPECT_NE(stat(dir.c_str(), &st), 0);
}

TEST_F(ScriptCacheTest, ScriptsAreKeyedByTheirAbsolutePath)
{
    ScriptCache cache(dir, logger, clock);
    EXPECT_NE(cache.file_for("/a/policy.rb"), cache.file_for("/b/policy.rb"));
    char cwd[4096];
    ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
    EXPECT_EQ(cache.file_for("policy.rb"), cache.file_for(std::string(cwd) + "/policy.rb"));
    EXPECT_EQ(cache.file_for("/a/we ird\n.rb").find('\n'), std::string::npos);
}

TEST_F(ScriptCacheTest, ConcurrentWritersNeverLeaveHalfAFile)
{
    ScriptCache cache(dir, logger, clock);
    builder.files[script] = "v0";
    cache.load(script, builder);
    std::atomic<bool> stop{false};
    std::atomic<int> invalid{0};
    std::thread reader([&] {
        ScriptCache::Entry entry;
        std::string why;
        while (!stop) {
            if (cache.read(script, entry, why) != ScriptCache::ReadResult::Ok)
                invalid++;
        }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; w++) {
        writers.emplace_back([&, w] {
            std::string why;
            for (int i = 0; i < 200; i++) {
                std::string version(1000 + (i * 37 + w) % 5000, static_cast<char>('a' + w));
                EXPECT_TRUE(cache.save(script, "RITE:" + version, why) || why.empty()) << why;
            }
        });
    }
    for (auto &t : writers)
        t.join();
    stop = true;
    reader.join();
    EXPECT_EQ(invalid.load(), 0);
    // No temp file is left behind.
    int files = 0;
    DIR *d = opendir(dir.c_str());
    ASSERT_NE(d, nullptr);
    while (struct dirent *e = readdir(d))
        files += e->d_name[0] != '.';
    closedir(d);
    EXPECT_EQ(files, 1);
}

} // namespace
