#include "core/regex.hpp"

#include "core/text.hpp"

#include <dlfcn.h>
#include <oniguruma.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace dmr::core {

struct Regex {
    regex_t *onig = nullptr;
    OnigRegion *region = nullptr;
    OnigMatchParam *param = nullptr;
};

namespace {

// Oniguruma is loaded on first use (dlopen, RTLD_LOCAL), not linked: a
// library the plugin links is loaded into every mail process, and Dovecot's
// RTLD_GLOBAL load of the plugin would put it in the scope of every later
// symbol lookup (docs/benchmarks.md). Only a VM that compiles a Regexp pays.
// Debian 12 and 13 both ship it as libonig.so.5 (package libonig5).
constexpr const char *kOnigLibraries[] = {"libonig.so.5", "libonig.so"};

struct Onig {
    decltype(&::onig_initialize) initialize;
    decltype(&::onig_error_code_to_str) error_code_to_str;
    decltype(&::onig_new) compile;
    decltype(&::onig_free) free;
    decltype(&::onig_region_new) region_new;
    decltype(&::onig_region_free) region_free;
    decltype(&::onig_region_clear) region_clear;
    decltype(&::onig_new_match_param) new_match_param;
    decltype(&::onig_free_match_param) free_match_param;
    decltype(&::onig_initialize_match_param) initialize_match_param;
    decltype(&::onig_set_retry_limit_in_match_of_match_param) set_retry_limit_in_match;
    decltype(&::onig_set_retry_limit_in_search_of_match_param) set_retry_limit_in_search;
    decltype(&::onig_match_with_param) match_with_param;
    decltype(&::onig_search_with_param) search_with_param;
    decltype(&::onig_number_of_captures) number_of_captures;
    decltype(&::onig_foreach_name) foreach_name;
    OnigEncoding utf8;      // ONIG_ENCODING_UTF8 (&OnigEncodingUTF8)
    OnigSyntaxType *ruby;   // ONIG_SYNTAX_RUBY (&OnigSyntaxRuby)
};

// The loaded and initialised library, or nullptr with `why` set (once per
// process: a failure is not retried).
const Onig *onig(std::string &why)
{
    static std::string failure;
    static const Onig *loaded = []() -> const Onig * {
        void *handle = nullptr;
        for (const char *name : kOnigLibraries) {
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
            if (handle != nullptr)
                break;
            const char *e = dlerror();
            failure = std::string("cannot load Oniguruma: ") + (e != nullptr ? e : name);
        }
        if (handle == nullptr)
            return nullptr;
        static Onig o;
        bool ok = true;
        auto get = [&](auto &slot, const char *symbol) {
            void *p = dlsym(handle, symbol);
            if (p == nullptr && ok) {
                failure = std::string("Oniguruma lacks ") + symbol;
                ok = false;
            }
            slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(p);
        };
        get(o.initialize, "onig_initialize");
        get(o.error_code_to_str, "onig_error_code_to_str");
        get(o.compile, "onig_new");
        get(o.free, "onig_free");
        get(o.region_new, "onig_region_new");
        get(o.region_free, "onig_region_free");
        get(o.region_clear, "onig_region_clear");
        get(o.new_match_param, "onig_new_match_param");
        get(o.free_match_param, "onig_free_match_param");
        get(o.initialize_match_param, "onig_initialize_match_param");
        get(o.set_retry_limit_in_match, "onig_set_retry_limit_in_match_of_match_param");
        get(o.set_retry_limit_in_search, "onig_set_retry_limit_in_search_of_match_param");
        get(o.match_with_param, "onig_match_with_param");
        get(o.search_with_param, "onig_search_with_param");
        get(o.number_of_captures, "onig_number_of_captures");
        get(o.foreach_name, "onig_foreach_name");
        get(o.utf8, "OnigEncodingUTF8");
        get(o.ruby, "OnigSyntaxRuby");
        if (!ok)
            return nullptr;
        OnigEncoding encodings[] = {o.utf8};
        if (o.initialize(encodings, 1) != ONIG_NORMAL) {
            failure = "Oniguruma did not initialise";
            return nullptr;
        }
        return &o;
    }();
    if (loaded == nullptr)
        why = failure;
    return loaded;
}

// Only called once a Regex exists, so the library is loaded.
const Onig &lib()
{
    std::string unused;
    return *onig(unused);
}

void message(int code, OnigErrorInfo *info, char *error, size_t error_size)
{
    if (error_size == 0)
        return;
    OnigUChar text[ONIG_MAX_ERROR_MESSAGE_LEN];
    int len = info != nullptr ? lib().error_code_to_str(text, code, info)
                              : lib().error_code_to_str(text, code);
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
    std::string why;
    const Onig *o = onig(why);
    if (o == nullptr) {
        std::snprintf(error, error_size, "%s", why.c_str());
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
    int code = o->compile(&regex->onig, begin, begin + length, onig_options, o->utf8, o->ruby,
                          &info);
    if (code != ONIG_NORMAL) {
        message(code, &info, error, error_size);
        regex->onig = nullptr;
        regex_free(regex);
        return nullptr;
    }
    regex->region = o->region_new();
    regex->param = o->new_match_param();
    if (regex->region == nullptr || regex->param == nullptr) {
        std::snprintf(error, error_size, "out of memory");
        regex_free(regex);
        return nullptr;
    }
    o->initialize_match_param(regex->param);
    return regex;
}

void regex_free(Regex *regex)
{
    if (regex == nullptr)
        return;
    if (regex->onig != nullptr)
        lib().free(regex->onig);
    if (regex->region != nullptr)
        lib().region_free(regex->region, 1);
    if (regex->param != nullptr)
        lib().free_match_param(regex->param);
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
    const Onig &o = lib();
    for (unsigned long limit = kRegexRetryStep;; limit += kRegexRetryStep) {
        o.set_retry_limit_in_match(regex->param, limit);
        o.set_retry_limit_in_search(regex->param, limit);
        o.region_clear(regex->region);
        int r = search.anchored
                    ? o.match_with_param(regex->onig, str, end, start, regex->region,
                                         ONIG_OPTION_NONE, regex->param)
                    : o.search_with_param(regex->onig, str, end, start, end, regex->region,
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

int regex_group_count(const Regex *regex) { return lib().number_of_captures(regex->onig); }

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
    lib().foreach_name(regex->onig, name_callback, &v);
}

} // namespace dmr::core
