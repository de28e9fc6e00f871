// core/regex: the Oniguruma calls behind scripts' Regexp, as plain C++.
#include "core/regex.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace dmr::core;

namespace {

struct Compiled {
    Regex *regex = nullptr;
    char error[256] = {0};
    Compiled(const std::string &pattern, int options = 0)
    {
        regex = regex_compile(pattern.data(), pattern.size(), options, error, sizeof(error));
    }
    ~Compiled() { regex_free(regex); }
};

RegexResult search(Regex *regex, const std::string &text, size_t start = 0, bool anchored = false,
                   bool (*stop)() = nullptr)
{
    RegexSearch s;
    s.start = start;
    s.anchored = anchored;
    s.should_stop = stop;
    return regex_search(regex, text.data(), text.size(), s);
}

bool always_stop() { return true; }

} // namespace

TEST(CoreRegex, ASyntaxErrorHasOnigurumasMessage)
{
    Compiled c("a(b");
    EXPECT_EQ(c.regex, nullptr);
    EXPECT_STREQ(c.error, "end pattern with unmatched parenthesis");
    Compiled bad("\xff");
    EXPECT_EQ(bad.regex, nullptr);
    EXPECT_STREQ(bad.error, "invalid multibyte character");
}

TEST(CoreRegex, GroupsAreByteOffsets)
{
    Compiled c("(é)(z)?b");
    ASSERT_NE(c.regex, nullptr) << c.error;
    ASSERT_EQ(search(c.regex, "aaéb"), RegexResult::Match);
    EXPECT_EQ(regex_group_count(c.regex), 2);
    size_t b = 0, e = 0;
    ASSERT_TRUE(regex_group(c.regex, 0, &b, &e));
    EXPECT_EQ(b, 2u);
    EXPECT_EQ(e, 5u);
    ASSERT_TRUE(regex_group(c.regex, 1, &b, &e));
    EXPECT_EQ(e - b, 2u);
    EXPECT_FALSE(regex_group(c.regex, 2, &b, &e));   // did not take part
    EXPECT_FALSE(regex_group(c.regex, 3, &b, &e));   // no such group
}

// As in Ruby: with a named group in the pattern, plain (...) groups do not
// capture.
TEST(CoreRegex, PlainGroupsDoNotCaptureBesideNamedOnes)
{
    Compiled c("(?<x>é)(z)?b");
    EXPECT_EQ(regex_group_count(c.regex), 1);
}

TEST(CoreRegex, OptionsStartAndAnchor)
{
    Compiled i("ABC", kRegexIgnoreCase);
    EXPECT_EQ(search(i.regex, "xabc"), RegexResult::Match);
    Compiled m("a.b", kRegexMultiline);
    EXPECT_EQ(search(m.regex, "a\nb"), RegexResult::Match);
    Compiled plain("a.b");
    EXPECT_EQ(search(plain.regex, "a\nb"), RegexResult::NoMatch);
    Compiled x("a b # c", kRegexExtended);
    EXPECT_EQ(search(x.regex, "ab"), RegexResult::Match);
    Compiled b("b");
    EXPECT_EQ(search(b.regex, "abab", 2), RegexResult::Match);
    size_t s = 0, e = 0;
    regex_group(b.regex, 0, &s, &e);
    EXPECT_EQ(s, 3u);
    EXPECT_EQ(search(b.regex, "abab", 0, true), RegexResult::NoMatch);
    EXPECT_EQ(search(b.regex, "abab", 1, true), RegexResult::Match);
    EXPECT_EQ(search(b.regex, "abab", 5), RegexResult::NoMatch);
}

TEST(CoreRegex, TextThatIsNotUtf8IsRefused)
{
    Compiled c("a");
    EXPECT_EQ(search(c.regex, "a\xc3"), RegexResult::BadText);
}

TEST(CoreRegex, ABacktrackingSearchStopsWhenAsked)
{
    Compiled c("(a+)+$");
    std::string text(40, 'a');
    text += 'b';
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(search(c.regex, text, 0, false, always_stop), RegexResult::Stopped);
    // One round of kRegexRetryStep steps: milliseconds, not the 2^40 of the
    // whole search.
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(CoreRegex, NamesWithTheirGroups)
{
    Compiled c("(?<a>x)(?<b>y)(?<a>z)");
    ASSERT_NE(c.regex, nullptr) << c.error;
    std::string seen;
    regex_names(
        c.regex,
        [](void *arg, const char *name, size_t length, const int *groups, int count) {
            auto *out = static_cast<std::string *>(arg);
            out->append(name, length);
            for (int i = 0; i < count; i++)
                *out += std::to_string(groups[i]);
            *out += ' ';
        },
        &seen);
    EXPECT_TRUE(seen == "a13 b2 " || seen == "b2 a13 ") << seen;
}
