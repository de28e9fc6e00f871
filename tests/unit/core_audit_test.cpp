// JSON formatting and audit records: hostile bytes never break a record.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "core/audit.hpp"
#include "core/json.hpp"
#include "fakes.hpp"

using namespace dmr::core;

namespace {

std::string json(std::string_view text)
{
    std::string out;
    append_json_string(out, text);
    return out;
}

// Every byte of `s` is valid UTF-8 and no control character is raw.
bool valid_utf8_without_controls(const std::string &s)
{
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x20)
            return false;
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                   : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > s.size())
            return false;
        for (size_t k = 1; k < len; k++)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

AuditContext context()
{
    return {"mx1.example.com", "imap", "AbCd", "alice", "192.0.2.1", ""};
}

} // namespace

TEST(Json, EscapesQuotesBackslashesAndControlCharacters)
{
    EXPECT_EQ(json("plain"), "\"plain\"");
    EXPECT_EQ(json("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(json("line\r\nnext\tTAB"), "\"line\\r\\nnext\\tTAB\"");
    EXPECT_EQ(json(std::string("nul\0x\x01\x1f", 7)), "\"nul\\u0000x\\u0001\\u001f\"");
}

TEST(Json, KeepsValidUtf8AndReplacesInvalidBytes)
{
    EXPECT_EQ(json("Grüße 日本 😀"), "\"Grüße 日本 😀\"");
    EXPECT_EQ(json("a\xff" "b"), "\"a\xEF\xBF\xBD" "b\"");
    EXPECT_EQ(json("\xC3"), "\"\xEF\xBF\xBD\"");               // truncated sequence
    EXPECT_EQ(json("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");   // overlong "/"
    EXPECT_EQ(json("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");   // surrogate
    std::string all;
    for (int c = 0; c < 256; c++)
        all += static_cast<char>(c);
    EXPECT_TRUE(valid_utf8_without_controls(json(all)));
}

TEST(Json, WriterTracksCommasAndNesting)
{
    std::string out;
    JsonWriter w(out);
    w.begin_object();
    w.key("a");
    w.integer(-5);
    w.key("b");
    w.begin_array();
    w.boolean(true);
    w.null();
    w.number(0.5);
    w.number(1.0 / 0.0);
    w.begin_object();
    w.end_object();
    w.end_array();
    w.key("c");
    w.number(0.1);
    w.end_object();
    EXPECT_EQ(out, R"({"a":-5,"b":[true,null,0.5,null,{}],"c":0.1})");
}

TEST(AuditRecord, StandardFieldsComeFirstWithMicrosecondTime)
{
    ManualClock clock(1'714'566'896'123'456);   // 2024-05-01T12:34:56.123456Z
    Auditor auditor(context(), clock);
    AuditRecord &record = auditor.begin("imap.command");
    record.field("command", "UID FETCH");
    record.field_int("count", 3);
    record.field_bool("ok", true);
    record.field("user", "mallory");   // cannot replace a standard field
    record.finish();
    EXPECT_EQ(record.line(),
              R"({"ts":"2024-05-01T12:34:56.123456Z","kind":"imap.command",)"
              R"("host":"mx1.example.com","service":"imap","session":"AbCd","user":"alice",)"
              R"("remote_ip":"192.0.2.1","local_ip":null,"command":"UID FETCH","count":3,)"
              R"("ok":true,"x_user":"mallory"})"
              "\n");
    ASSERT_EQ(record.flat_fields().size(), 4u);
    EXPECT_EQ(record.flat_fields()[1], (std::pair<std::string, std::string>{"count", "3"}));
}

TEST(AuditRecord, AUserScriptsRecordsSayOriginUserAndCannotSayOtherwise)
{
    ManualClock clock(1'714'566'896'123'456);
    Auditor auditor(context(), clock);
    auditor.set_origin("user");   // a user's script (mruby_user_script)
    AuditRecord &record = auditor.begin("login");
    record.field("origin", "operator");   // a user script's forgery attempt
    record.finish();
    EXPECT_EQ(record.line(),
              R"({"ts":"2024-05-01T12:34:56.123456Z","kind":"login",)"
              R"("host":"mx1.example.com","service":"imap","session":"AbCd","user":"alice",)"
              R"("remote_ip":"192.0.2.1","local_ip":null,"origin":"user",)"
              R"("x_origin":"operator"})"
              "\n");
}

TEST(AuditRecord, TimestampsAcrossDatesAndBeforeTheEpoch)
{
    std::string out;
    append_iso8601_us(out, 0);
    EXPECT_EQ(out, "1970-01-01T00:00:00.000000Z");
    out.clear();
    append_iso8601_us(out, 951'782'400'000'001);   // leap day 2000
    EXPECT_EQ(out, "2000-02-29T00:00:00.000001Z");
    out.clear();
    append_iso8601_us(out, -1);
    EXPECT_EQ(out, "1969-12-31T23:59:59.999999Z");
}

TEST(AuditRecord, IsOneLineOfValidUtf8WhateverTheFieldsHold)
{
    ManualClock clock;
    AuditContext ctx = context();
    ctx.user = "evil\r\nuser\xff";
    Auditor auditor(ctx, clock);
    AuditRecord &record = auditor.begin("x\n");
    record.field("args", std::string("A1 LOGIN \"\r\n* OK\0\xfe", 18));
    record.field(std::string("k\"ey\n"), std::string(65536, 'A'));
    record.finish();
    const std::string &line = record.line();
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    EXPECT_TRUE(valid_utf8_without_controls(line.substr(0, line.size() - 1)));
}

TEST(AuditSettings, ParsesSinksAndReportsUnknownOnes)
{
    std::vector<std::string> errors;
    auto s = AuditSettings::parse("file:/var/log/audit.log  syslog,event", "local3", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(s.file, "/var/log/audit.log");
    EXPECT_TRUE(s.syslog);
    EXPECT_TRUE(s.event);
    EXPECT_EQ(s.syslog_facility, LOG_LOCAL3);

    auto bad = AuditSettings::parse("file:relative kafka", "nope", errors);
    EXPECT_FALSE(bad.any());
    EXPECT_EQ(bad.syslog_facility, LOG_MAIL);
    EXPECT_EQ(errors.size(), 3u);
    EXPECT_FALSE(AuditSettings::parse("", "", errors).any());
}

TEST(FileAuditSink, ConcurrentWritersNeverInterleaveOrLoseRecords)
{
    char path[] = "/tmp/dmr-audit-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    constexpr int kProcesses = 8;
    constexpr int kRecords = 300;
    for (int p = 0; p < kProcesses; p++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            dmr::testing::RecordingLogger logger;
            ManualClock clock;
            Auditor auditor(context(), clock);
            auditor.add_sink(std::make_unique<FileAuditSink>(path, logger));
            for (int i = 0; i < kRecords; i++) {
                AuditRecord &r = auditor.begin("test");
                r.field_int("process", p);
                r.field("pad", std::string(static_cast<size_t>(1000 + i * 7), 'x'));
                auditor.commit();
            }
            _exit(logger.lines.empty() ? 0 : 1);
        }
    }
    for (int p = 0; p < kProcesses; p++) {
        int status = 0;
        wait(&status);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::ifstream in(path);
    std::string line;
    int count = 0;
    while (std::getline(in, line)) {
        ASSERT_EQ(line.front(), '{');
        ASSERT_EQ(line.back(), '}');
        ASSERT_EQ(line.find("{", 1), std::string::npos) << "records interleaved";
        count++;
    }
    EXPECT_EQ(count, kProcesses * kRecords);
    unlink(path);
}

TEST(FileAuditSink, AnUnwritablePathIsLoggedOnce)
{
    dmr::testing::RecordingLogger logger;
    ManualClock clock;
    Auditor auditor(context(), clock);
    auditor.add_sink(std::make_unique<FileAuditSink>("/nonexistent/dir/audit.log", logger));
    for (int i = 0; i < 3; i++) {
        auditor.begin("x");
        auditor.commit();
    }
    ASSERT_EQ(logger.lines.size(), 1u);
    EXPECT_NE(logger.lines[0].second.find("/nonexistent/dir/audit.log"), std::string::npos);
}

// --- the record cap ----------------------------------------------------------

namespace {

// The record with only the standard fields, without its closing "}\n".
std::string standard_prefix(const AuditContext &ctx, std::string_view kind, const Clock &clock)
{
    Auditor auditor(ctx, clock);
    AuditRecord &r = auditor.begin(kind);
    r.finish();
    return r.line().substr(0, r.line().size() - 2);
}

constexpr std::string_view kMarker = ",\"truncated\":true}\n";

bool ends_with(const std::string &s, std::string_view end)
{
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

} // namespace

TEST(AuditRecordCap, ATwentyMegabyteFieldIsCutToOneValidRecordWithTheMarker)
{
    ManualClock clock;
    Auditor auditor(context(), clock);
    AuditRecord &r = auditor.begin("big");
    r.field_int("n", 1);
    r.field("blob", std::string(20'000'000, 'x'));
    r.field("after", "does not fit any more");
    r.finish();
    const std::string &line = r.line();
    EXPECT_LE(line.size(), kMaxAuditRecordBytes);
    EXPECT_GT(line.size(), kMaxAuditRecordBytes - 100);
    EXPECT_TRUE(r.truncated());
    std::string head = standard_prefix(context(), "big", clock) + ",\"n\":1,\"blob\":\"";
    ASSERT_EQ(line.compare(0, head.size(), head), 0) << line.substr(0, 400);
    ASSERT_TRUE(ends_with(line, "\"" + std::string(kMarker)));
    size_t xs = line.size() - head.size() - 1 - kMarker.size();
    EXPECT_EQ(line.substr(head.size(), xs), std::string(xs, 'x'));
    // The event sink's copy is cut the same way.
    ASSERT_EQ(r.flat_fields().size(), 2u);
    EXPECT_EQ(r.flat_fields()[1].second.size(), xs);
}

TEST(AuditRecordCap, CutsEscapedAndMultibyteTextAtACharacterBoundary)
{
    ManualClock clock;
    Auditor auditor(context(), clock);
    std::string text;
    for (int i = 0; i < 40000; i++)
        text += i % 3 == 0 ? "\x01" : i % 3 == 1 ? "\xC3\xA9" : "\xff";   // \u0001, é, U+FFFD
    AuditRecord &r = auditor.begin(std::string(5000, 'k'));   // the kind is cut too
    r.field(std::string(100000, 'n'), "v");                    // so is a name
    r.field("text", text);
    r.finish();
    const std::string &line = r.line();
    EXPECT_LE(line.size(), kMaxAuditRecordBytes);
    EXPECT_TRUE(ends_with(line, kMarker));
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    EXPECT_TRUE(valid_utf8_without_controls(line.substr(0, line.size() - 1)));
    EXPECT_LE(r.kind().size(), kMaxAuditStandardBytes);
    EXPECT_GT(line.size(), kMaxAuditRecordBytes - 100);   // cut where the room ends
    EXPECT_NE(line.find("\"text\":\"\\u0001\xC3\xA9\xEF\xBF\xBD"), std::string::npos);
}

TEST(AuditRecordCap, ANestedValueStopsAtTheCapAndClosesItsBrackets)
{
    ManualClock clock;
    Auditor auditor(context(), clock);
    AuditRecord &r = auditor.begin("nested");
    r.nested_key("list");
    JsonWriter &w = r.writer();
    w.begin_array();
    int written = 0;
    while (r.more()) {   // as the binding does: ask before each element
        w.begin_object();
        r.nested_object_key("s");
        r.nested_string(std::string(1000, 'y'));
        w.end_object();
        written++;
    }
    w.end_array();
    r.field_int("after", 7);   // too late: no room left
    r.finish();
    const std::string &line = r.line();
    EXPECT_LE(line.size(), kMaxAuditRecordBytes);
    EXPECT_GT(written, 50);
    EXPECT_TRUE(ends_with(line, "}]" + std::string(kMarker)));
    EXPECT_EQ(line.find("\"after\""), std::string::npos);
}

TEST(AuditRecordCap, AnOrdinaryRecordHasNoMarkerAndTheNameIsReserved)
{
    ManualClock clock;
    Auditor auditor(context(), clock);
    AuditRecord &r = auditor.begin("small");
    r.field_bool("truncated", false);
    r.field("v", std::string(60000, 'v'));
    r.finish();
    EXPECT_FALSE(r.truncated());
    EXPECT_TRUE(ends_with(r.line(), "\"}\n"));
    EXPECT_NE(r.line().find("\"x_truncated\":false"), std::string::npos);
}

// --- the audit file: rotation, retries, short writes ---------------------------

namespace {

struct TempDir {
    std::string path;
    TempDir()
    {
        char tmpl[] = "/tmp/dmr-audit-dir-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The "probe" tags of the records in a file, checking each line is one record.
std::vector<std::string> tags_in(const std::string &path)
{
    std::vector<std::string> tags;
    std::istringstream in(read_file(path));
    std::string line;
    while (std::getline(in, line)) {
        EXPECT_EQ(line.front(), '{') << line;
        EXPECT_TRUE(ends_with(line, "\"}")) << line;
        size_t at = line.find("\"tag\":\"");
        EXPECT_NE(at, std::string::npos) << line;
        if (at != std::string::npos)
            tags.push_back(line.substr(at + 7, line.find('"', at + 7) - at - 7));
    }
    return tags;
}

bool probe(Auditor &auditor, const std::string &tag, size_t pad = 10)
{
    AuditRecord &r = auditor.begin("probe");
    r.field("pad", std::string(pad, 'p'));
    r.field("tag", tag);
    return auditor.commit();
}

size_t count_containing(const dmr::testing::RecordingLogger &logger, std::string_view text)
{
    size_t n = 0;
    for (const auto &line : logger.lines)
        n += line.second.find(text) != std::string::npos;
    return n;
}

} // namespace

TEST(AuditFile, AfterRenameAndCreateRecordsGoToTheNewFileWithinASecond)
{
    TempDir dir;
    std::string path = dir.path + "/audit.log";
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>(path, logger, steady));
    EXPECT_TRUE(probe(auditor, "a"));
    ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);
    close(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0640));
    steady.advance(500'000);
    EXPECT_TRUE(probe(auditor, "b"));   // not checked yet: the rotated file
    steady.advance(500'000);
    EXPECT_TRUE(probe(auditor, "c"));
    EXPECT_TRUE(probe(auditor, "d"));
    EXPECT_EQ(tags_in(path + ".1"), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(tags_in(path), (std::vector<std::string>{"c", "d"}));
    EXPECT_EQ(count_containing(logger, "failed"), 0u);
}

TEST(AuditFile, ADeletedFileIsCreatedAgainWithTheSameMode)
{
    TempDir dir;
    std::string path = dir.path + "/audit.log";
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>(path, logger, steady));
    EXPECT_TRUE(probe(auditor, "a"));
    struct stat before;
    ASSERT_EQ(stat(path.c_str(), &before), 0);
    ASSERT_EQ(unlink(path.c_str()), 0);
    steady.advance(1'000'000);
    EXPECT_TRUE(probe(auditor, "b"));
    struct stat after;
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    EXPECT_EQ(after.st_mode, before.st_mode);
    EXPECT_NE(after.st_ino, before.st_ino);
    EXPECT_EQ(tags_in(path), (std::vector<std::string>{"b"}));
}

TEST(AuditFile, InASetgidDirectoryANewFileIsGroupWritableWhateverTheUmask)
{
    // A directory a group shares (root:dovecot-mruby 2770): every mail uid
    // and auth append to the file whichever of them created it.
    TempDir shared, plain;
    ASSERT_EQ(chmod(shared.path.c_str(), 02770), 0);
    mode_t old_umask = umask(0077);
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>(shared.path + "/audit.log", logger, steady));
    auditor.add_sink(std::make_unique<FileAuditSink>(plain.path + "/audit.log", logger, steady));
    bool written = probe(auditor, "a");
    umask(old_umask);
    EXPECT_TRUE(written);
    struct stat st;
    ASSERT_EQ(stat((shared.path + "/audit.log").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    ASSERT_EQ(stat((plain.path + "/audit.log").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);   // 0640 less the umask
    // An existing file keeps its mode.
    std::string kept = shared.path + "/kept.log";
    close(open(kept.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    ASSERT_EQ(chmod(kept.c_str(), 0600), 0);
    Auditor other(context(), wall);
    other.add_sink(std::make_unique<FileAuditSink>(kept, logger, steady));
    EXPECT_TRUE(probe(other, "b"));
    ASSERT_EQ(stat(kept.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(tags_in(kept), (std::vector<std::string>{"b"}));
}

TEST(AuditFile, AFailedOpenIsRetriedAtMostOnceASecondAndLoggedOnce)
{
    TempDir dir;
    std::string path = dir.path + "/later/audit.log";
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>(path, logger, steady));
    EXPECT_FALSE(probe(auditor, "a"));
    ASSERT_EQ(mkdir((dir.path + "/later").c_str(), 0755), 0);
    steady.advance(999'999);
    EXPECT_FALSE(probe(auditor, "b"));   // no new attempt before a second has passed
    steady.advance(1);
    EXPECT_TRUE(probe(auditor, "c"));
    EXPECT_EQ(tags_in(path), (std::vector<std::string>{"c"}));
    ASSERT_EQ(logger.lines.size(), 2u) << logger.text();
    EXPECT_EQ(logger.lines[0].first, LogLevel::Error);
    EXPECT_EQ(logger.lines[0].second,
              "mruby: audit: open(" + path + ") failed: No such file or directory; 1 record not written");
    EXPECT_EQ(logger.lines[1].first, LogLevel::Info);
    EXPECT_EQ(logger.lines[1].second, "mruby: audit: " + path + ": writing again, 2 records not written");
}

TEST(AuditFile, FailuresAreLoggedAtMostOnceAMinute)
{
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>("/nonexistent/dir/audit.log", logger, steady));
    for (int i = 0; i < 120; i++) {   // two minutes, a retried open every second
        EXPECT_FALSE(probe(auditor, "x"));
        steady.advance(500'000);
        EXPECT_FALSE(probe(auditor, "x"));
        steady.advance(500'000);
    }
    ASSERT_EQ(logger.lines.size(), 2u) << logger.text();
    EXPECT_NE(logger.lines[1].second.find("; 121 records not written"), std::string::npos)
        << logger.lines[1].second;
}

namespace {

// A file size limit makes write(2) short, as a full file system does.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes)
    {
        getrlimit(RLIMIT_FSIZE, &saved_);
        old_handler_ = signal(SIGXFSZ, SIG_IGN);
        set(bytes);
    }
    void set(rlim_t bytes)
    {
        struct rlimit limit = saved_;
        limit.rlim_cur = bytes;
        setrlimit(RLIMIT_FSIZE, &limit);
    }
    ~FileSizeLimit()
    {
        setrlimit(RLIMIT_FSIZE, &saved_);
        signal(SIGXFSZ, old_handler_);
    }

private:
    struct rlimit saved_;
    void (*old_handler_)(int);
};

} // namespace

TEST(AuditFile, AShortWriteLeavesNoPartialRecordAndIsReported)
{
    TempDir dir;
    std::string path = dir.path + "/audit.log";
    dmr::testing::RecordingLogger logger;
    ManualClock wall, steady(0);
    Auditor auditor(context(), wall);
    auditor.add_sink(std::make_unique<FileAuditSink>(path, logger, steady));
    EXPECT_TRUE(probe(auditor, "a"));
    off_t size = static_cast<off_t>(read_file(path).size());
    size_t size_b = 0;   // the length of record b
    {
        AuditRecord &b = auditor.begin("probe");
        b.field("pad", std::string(300, 'p'));
        b.field("tag", "b");
        b.finish();
        size_b = b.line().size();
    }
    {
        FileSizeLimit limit(static_cast<rlim_t>(size + 250));
        EXPECT_FALSE(probe(auditor, "b", 300));   // 250 of its ~470 bytes would fit
        EXPECT_EQ(static_cast<off_t>(read_file(path).size()), size);
        EXPECT_FALSE(probe(auditor, "c", 300));
        EXPECT_TRUE(probe(auditor, "d", 5));      // a small one fits
        EXPECT_FALSE(probe(auditor, "e", 300));
        limit.set(RLIM_INFINITY);
        EXPECT_TRUE(probe(auditor, "f", 300));
    }
    EXPECT_EQ(tags_in(path), (std::vector<std::string>{"a", "d", "f"}));
    EXPECT_EQ(read_file(path).back(), '\n');
    ASSERT_EQ(count_containing(logger, "failed"), 1u) << logger.text();
    EXPECT_EQ(logger.lines[0].second,
              "mruby: audit: write(" + path + ") failed: File too large (250 of " +
                  std::to_string(size_b) + " bytes were written, then removed); 1 record not written");
    // d ended the first episode; e's failure, within the minute, was not
    // logged, so f's success is not either.
    ASSERT_EQ(logger.lines.size(), 2u) << logger.text();
    EXPECT_EQ(logger.lines[1].second,
              "mruby: audit: " + path + ": writing again, 2 records not written");
}

TEST(AuditFile, APartialRecordIsTruncatedAtTheEndAndBlankedInTheMiddle)
{
    TempDir dir;
    std::string path = dir.path + "/audit.log";
    int fd = open(path.c_str(), O_RDWR | O_APPEND | O_CREAT, 0640);
    ASSERT_GE(fd, 0);
    std::string whole = "{\"a\":1}\n";
    std::string partial = "{\"torn\":\"ha";
    ASSERT_EQ(write(fd, whole.data(), whole.size()), static_cast<ssize_t>(whole.size()));
    ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
    int64_t start = static_cast<int64_t>(whole.size());
    int64_t end = start + static_cast<int64_t>(partial.size());
    EXPECT_EQ(erase_partial_record(fd, start, end), PartialRecord::Truncated);
    EXPECT_EQ(read_file(path), whole);

    // Another writer appended after the partial record: it is blanked, and
    // the line it shares with that record still parses.
    ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
    std::string other = "{\"b\":2}\n";
    int other_fd = open(path.c_str(), O_WRONLY | O_APPEND);
    ASSERT_EQ(write(other_fd, other.data(), other.size()), static_cast<ssize_t>(other.size()));
    close(other_fd);
    EXPECT_EQ(erase_partial_record(fd, start, end), PartialRecord::Blanked);
    EXPECT_EQ(read_file(path), whole + std::string(partial.size(), ' ') + other);

    // The file was emptied meanwhile (copytruncate): nothing to do.
    ASSERT_EQ(ftruncate(fd, 0), 0);
    EXPECT_EQ(erase_partial_record(fd, start, end), PartialRecord::Gone);
    EXPECT_EQ(read_file(path), "");
    close(fd);
}
