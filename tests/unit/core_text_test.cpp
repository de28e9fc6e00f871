#include <gtest/gtest.h>

#include "core/text.hpp"

using dmr::core::sanitize_for_log;
using dmr::core::sanitize_reply_text;

TEST(SanitizeForLog, EscapesControlCharactersSoALineCannotBeSplit)
{
    EXPECT_EQ(sanitize_for_log("a\r\nb"), "a\\x0d\\x0ab");
    EXPECT_EQ(sanitize_for_log(std::string("x\0y", 3)), "x\\x00y");
    EXPECT_EQ(sanitize_for_log("tab\there"), "tab\\x09here");
    EXPECT_EQ(sanitize_for_log("back\\slash"), "back\\\\slash");
}

TEST(SanitizeForLog, KeepsValidUtf8AndEscapesInvalidBytes)
{
    EXPECT_EQ(sanitize_for_log("j\xc3\xbcrgen"), "j\xc3\xbcrgen");
    EXPECT_EQ(sanitize_for_log("\xe2\x82\xac"), "\xe2\x82\xac");
    EXPECT_EQ(sanitize_for_log("bad\xff\xfe"), "bad\\xff\\xfe");
    EXPECT_EQ(sanitize_for_log("trunc\xe2\x82"), "trunc\\xe2\\x82");
    EXPECT_EQ(sanitize_for_log("\xc0\xaf"), "\\xc0\\xaf");          // overlong
    EXPECT_EQ(sanitize_for_log("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
}

TEST(SanitizeForLog, TruncatesLongInput)
{
    std::string big(100000, 'a');
    std::string out = sanitize_for_log(big, 100);
    EXPECT_EQ(out, std::string(100, 'a') + "...");
}

TEST(SanitizeReplyText, ReplacesControlCharactersAndCapsLength)
{
    EXPECT_EQ(sanitize_reply_text("Slow\r\n* BYE down"), "Slow  * BYE down");
    EXPECT_EQ(sanitize_reply_text(std::string(500, 'x')).size(), 200u);
}

// cmd.args: what the client sent, a backslash as one backslash (an IMAP flag
// `\Flagged` must read "\\Flagged" in Ruby source, not "\\\\Flagged").
TEST(SanitizeCommandArgs, KeepsBackslashesAndStillEscapesControlBytes)
{
    using dmr::core::sanitize_command_args;
    EXPECT_EQ(sanitize_command_args("1 +FLAGS (\\Flagged \\Seen)", 1000),
              "1 +FLAGS (\\Flagged \\Seen)");
    EXPECT_EQ(sanitize_command_args("a\r\nb\x01", 1000), "a\\x0d\\x0ab\\x01");
    EXPECT_EQ(sanitize_command_args("x\xff", 1000), "x\\xff");
    EXPECT_EQ(sanitize_command_args("abcdef", 3), "abc...");
}
