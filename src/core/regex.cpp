#include "core/regex.hpp"

#include "core/text.hpp"

#include <oniguruma.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace dmr::core {

struct Regex {
    regex_t *onig = nullptr;
    OnigRegion *region = nullptr;
    OnigMatchParam *param = nullptr;
};

namespace {

bool onig_ready()
{
    static const bool ready = [] {
        OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
        return onig_initialize(encodings, 1) == ONIG_NORMAL;
    }();
    return ready;
}

void message(int code, OnigErrorInfo *info, char *error, size_t error_size)
{
    if (error_size == 0)
        return;
    OnigUChar text[ONIG_MAX_ERROR_MESSAGE_LEN];
    int len = info != nullptr ? onig_error_code_to_str(text, code, info)
                              : onig_error_code_to_str(text, code);
    if (len < 0)
        len = 0;
    std::snprintf(error, error_size, "%.*s", len, reinterpret_cast<const char *>(text));
}

bool valid_utf8(const char *text, size_t length)
{
    std::string_view view(text, length);
    for (size_t i = 0; i < length;) {
        if (static_cast<unsigned char>(text[i]) < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_sequence_length(view, i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

} // namespace

Regex *regex_compile(const char *pattern, size_t length, int options, char *error,
                     size_t error_size)
{
    if (!onig_ready()) {
        std::snprintf(error, error_size, "Oniguruma did not initialise");
        return nullptr;
    }
    if (!valid_utf8(pattern, length)) {
        std::snprintf(error, error_size, "invalid multibyte character");
        return nullptr;
    }
    OnigOptionType onig_options = ONIG_OPTION_NONE;
    if (options & kRegexIgnoreCase)
        onig_options |= ONIG_OPTION_IGNORECASE;
    if (options & kRegexExtended)
        onig_options |= ONIG_OPTION_EXTEND;
    if (options & kRegexMultiline)
        onig_options |= ONIG_OPTION_MULTILINE;
    Regex *regex = new (std::nothrow) Regex;
    if (regex == nullptr) {
        std::snprintf(error, error_size, "out of memory");
        return nullptr;
    }
    OnigErrorInfo info;
    const auto *begin = reinterpret_cast<const OnigUChar *>(pattern);
    int code = onig_new(&regex->onig, begin, begin + length, onig_options, ONIG_ENCODING_UTF8,
                        ONIG_SYNTAX_RUBY, &info);
    if (code != ONIG_NORMAL) {
        message(code, &info, error, error_size);
        regex->onig = nullptr;
        regex_free(regex);
        return nullptr;
    }
    regex->region = onig_region_new();
    regex->param = onig_new_match_param();
    if (regex->region == nullptr || regex->param == nullptr) {
        std::snprintf(error, error_size, "out of memory");
        regex_free(regex);
        return nullptr;
    }
    onig_initialize_match_param(regex->param);
    return regex;
}

void regex_free(Regex *regex)
{
    if (regex == nullptr)
        return;
    if (regex->onig != nullptr)
        onig_free(regex->onig);
    if (regex->region != nullptr)
        onig_region_free(regex->region, 1);
    if (regex->param != nullptr)
        onig_free_match_param(regex->param);
    delete regex;
}

RegexResult regex_search(Regex *regex, const char *text, size_t length, const RegexSearch &search)
{
    if (!valid_utf8(text, length))
        return RegexResult::BadText;
    if (search.start > length)
        return RegexResult::NoMatch;
    const auto *str = reinterpret_cast<const OnigUChar *>(text);
    const OnigUChar *end = str + length;
    const OnigUChar *start = str + search.start;
    // Rounds of a growing retry limit; the deadline is polled between them.
    // Linear growth: a runaway search passes the deadline by about
    // sqrt(2 * timeout * round time), and a search that needs N steps costs
    // about N^2 / (2 * step) steps (it needs N / step rounds only past step).
    for (unsigned long limit = kRegexRetryStep;; limit += kRegexRetryStep) {
        onig_set_retry_limit_in_match_of_match_param(regex->param, limit);
        onig_set_retry_limit_in_search_of_match_param(regex->param, limit);
        onig_region_clear(regex->region);
        int r = search.anchored
                    ? onig_match_with_param(regex->onig, str, end, start, regex->region,
                                            ONIG_OPTION_NONE, regex->param)
                    : onig_search_with_param(regex->onig, str, end, start, end, regex->region,
                                             ONIG_OPTION_NONE, regex->param);
        if (r >= 0)
            return RegexResult::Match;
        if (r == ONIG_MISMATCH)
            return RegexResult::NoMatch;
        if (r != ONIGERR_RETRY_LIMIT_IN_MATCH_OVER && r != ONIGERR_RETRY_LIMIT_IN_SEARCH_OVER)
            return RegexResult::Error;
        if (search.should_stop != nullptr && search.should_stop())
            return RegexResult::Stopped;
    }
}

int regex_group_count(const Regex *regex) { return onig_number_of_captures(regex->onig); }

bool regex_group(const Regex *regex, int group, size_t *begin, size_t *end)
{
    if (group < 0 || group >= regex->region->num_regs || regex->region->beg[group] < 0)
        return false;
    *begin = static_cast<size_t>(regex->region->beg[group]);
    *end = static_cast<size_t>(regex->region->end[group]);
    return true;
}

namespace {

struct NamesVisit {
    void (*visit)(void *, const char *, size_t, const int *, int);
    void *arg;
};

int name_callback(const OnigUChar *name, const OnigUChar *name_end, int count, int *groups,
                  regex_t *, void *arg)
{
    auto *v = static_cast<NamesVisit *>(arg);
    v->visit(v->arg, reinterpret_cast<const char *>(name), static_cast<size_t>(name_end - name),
             groups, count);
    return 0;
}

} // namespace

void regex_names(const Regex *regex, void (*visit)(void *arg, const char *name, size_t length,
                                                  const int *groups, int count),
                 void *arg)
{
    NamesVisit v{visit, arg};
    onig_foreach_name(regex->onig, name_callback, &v);
}

} // namespace dmr::core
