// JSON formatting and audit records: hostile bytes never break a record.
#include <gtest/gtest.h>

#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <string>
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
