// The regular expression engine of scripts' Regexp (src/mruby/bind_regexp.cpp):
// Oniguruma (Debian's libonig), Ruby syntax, UTF-8. Plain C calls with plain
// data, so the bridge keeps no C++ object alive across an mruby call (mruby
// raises with longjmp; see docs/architecture.md).
//
// Time bound: a search runs in rounds with a growing Oniguruma retry limit
// (onig's count of backtracking steps). Between rounds it polls `should_stop`
// (the watchdog's deadline); a search that would backtrack past the deadline
// (catastrophic patterns such as /(a+)+$/) ends with Stopped shortly after it.
#pragma once

#include <cstddef>

namespace dmr::core {

struct Regex;   // a compiled pattern and the match data of its last search

// Options, with Ruby's values (Regexp::IGNORECASE, EXTENDED, MULTILINE).
constexpr int kRegexIgnoreCase = 1;
constexpr int kRegexExtended = 2;
constexpr int kRegexMultiline = 4;

// nullptr on a syntax error, with Oniguruma's message in `error`.
Regex *regex_compile(const char *pattern, size_t length, int options, char *error,
                     size_t error_size);
void regex_free(Regex *regex);

enum class RegexResult { Match, NoMatch, Stopped, BadText, Error };

struct RegexSearch {
    size_t start = 0;        // byte offset where the search starts
    bool anchored = false;   // match at `start` only
    bool (*should_stop)() = nullptr;
};

// Searches `text` (which must be valid UTF-8: BadText otherwise). On Match,
// regex_group gives the groups of this match until the next search.
RegexResult regex_search(Regex *regex, const char *text, size_t length, const RegexSearch &search);

// Groups of the pattern, the whole match (0) not counted.
int regex_group_count(const Regex *regex);
// Group `group` of the last match: false when it did not take part.
bool regex_group(const Regex *regex, int group, size_t *begin, size_t *end);

// Named groups: calls `visit` once per name with its group numbers (a name may
// name several groups), in the order of the pattern.
void regex_names(const Regex *regex, void (*visit)(void *arg, const char *name, size_t length,
                                                  const int *groups, int count),
                 void *arg);

// The retry limit of the first round and the increment of each next one.
constexpr unsigned long kRegexRetryStep = 200000;

} // namespace dmr::core
