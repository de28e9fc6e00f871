#include "core/admin.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <type_traits>
#include <utility>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/dispatcher.hpp"
#include "core/events.hpp"
#include "core/rate_limiter.hpp"
#include "core/runtime.hpp"
#include "core/script_cache.hpp"

namespace dmr::core::admin {
namespace {

Status invalid(std::string message) { return Status::error(Status::Code::Invalid, std::move(message)); }

Status check_list_name(std::string_view list)
{
    if (list.empty() || list.size() > kMaxListNameBytes || list.find('\0') != std::string_view::npos)
        return invalid("list name must be 1 to 100 bytes without NUL");
    return {};
}

} // namespace

Result<std::vector<ListEntry>> list_show(Store &store, std::string_view list)
{
    Status name = check_list_name(list);
    if (!name.ok())
        return name;
    Result<std::vector<ListEntry>> result = store.list_entries(list);
    if (result.ok())
        std::sort(result.value.begin(), result.value.end(),
                  [](const ListEntry &a, const ListEntry &b) { return a.entry < b.entry; });
    return result;
}

Status list_add(Store &store, std::string_view list, std::string_view entry, int64_t ttl_seconds,
                std::string_view reason)
{
    Status name = check_list_name(list);
    if (!name.ok())
        return name;
    if (entry.empty())
        return invalid("the entry must not be empty");
    if (ttl_seconds < 0 || ttl_seconds > kMaxSpanUs / 1'000'000)
        return invalid("ttl must be 0 (never expires) to " +
                       std::to_string(kMaxSpanUs / 1'000'000) + " seconds");
    return store.list_add(list, entry, ttl_seconds * 1'000'000, reason);
}

Result<bool> list_remove(Store &store, std::string_view list, std::string_view entry)
{
    Status name = check_list_name(list);
    if (!name.ok())
        return name;
    return store.list_remove(list, entry);
}

Result<RateShow> rate_show(Store &store, std::string_view name, std::string_view key,
                           const std::optional<GcraRate> &rate)
{
    if (name.empty())
        return invalid("rate limit name must not be empty");
    std::string store_key = RateLimiter::store_key(name, key);
    // A peek of cost 0 under a rate whose tolerance covers every span the
    // store accepts: reset_after is then exactly the stored TAT minus now,
    // whatever the limit's own rate is (core/ratelimit.hpp).
    GcraRate widest;
    widest.emission_us = 1;
    widest.tolerance_us = kMaxSpanUs;
    widest.burst = kMaxSpanUs;
    Result<GcraDecision> idle = store.rate_peek(store_key, widest, 0);
    if (!idle.ok())
        return idle.status;
    RateShow show;
    show.idle_after_us = idle.value.reset_after_us;
    if (rate) {
        Result<GcraDecision> peek = store.rate_peek(store_key, *rate, 1);
        if (!peek.ok())
            return peek.status;
        show.peek = peek.value;
    }
    return show;
}

Status rate_reset(Store &store, std::string_view name, std::string_view key)
{
    if (name.empty())
        return invalid("rate limit name must not be empty");
    return store.rate_reset(RateLimiter::store_key(name, key));
}

Result<int64_t> counter_show(Store &store, std::string_view key) { return store.counter_get(key); }

Status counter_reset(Store &store, std::string_view key) { return store.counter_reset(key); }

CheckReport check_script(ScriptBuilder &builder, const std::string &path)
{
    CheckReport report;
    ScriptError error;
    std::unique_ptr<ScriptRuntime> runtime = builder.from_file(path, nullptr, error);
    if (runtime == nullptr) {
        if (error.file.empty())
            error.file = path;
        report.error = std::move(error);
        return report;
    }
    for (unsigned i = 0; i < static_cast<unsigned>(Hook::Count); i++) {
        if (runtime->handles(static_cast<Hook>(i)))
            report.hooks.emplace_back(hook_name(static_cast<Hook>(i)));
    }
    return report;
}

namespace {

// Whether `hook` carries a P (the hook table, core/events.hpp).
template <class P, size_t... I>
constexpr bool carries(Hook hook, std::index_sequence<I...>)
{
    return ((static_cast<size_t>(hook) == I &&
             std::is_same_v<P, PayloadOf<static_cast<Hook>(I)>>) || ...);
}
template <class P>
constexpr bool carries(Hook hook)
{
    return carries<P>(hook, std::make_index_sequence<kHookCount>());
}

// Whether sample_event can fill the payload of `hook`.
bool can_sample(Hook hook)
{
    return carries<SessionPayload>(hook) || carries<MailboxPayload>(hook) ||
           carries<CommandPayload>(hook) || carries<MessagePayload>(hook) ||
           carries<AuthPayload>(hook) || carries<AuthResultPayload>(hook);
}

} // namespace

std::optional<std::vector<std::string>> fields_from_json(std::string_view json,
                                                         std::string &error)
{
    if (json.size() > kMaxSampleJsonBytes) {
        error = "more than " + std::to_string(kMaxSampleJsonBytes / 1024) + " KiB of JSON";
        return std::nullopt;
    }
    // nlohmann's parser keeps its nesting on a heap stack (no recursion), and
    // only a flat object is accepted below: deep input cannot hurt.
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(json.begin(), json.end());
    } catch (const nlohmann::json::parse_error &e) {
        error = std::string("invalid JSON: ") + e.what();
        return std::nullopt;
    }
    if (!doc.is_object()) {
        error = "the JSON must be an object of fields, e.g. {\"user\": \"bob\"}";
        return std::nullopt;
    }
    std::vector<std::string> fields;
    for (const auto &[name, value] : doc.items()) {
        if (value.is_string())
            fields.push_back(name + "=" + value.get<std::string>());
        else if (value.is_boolean() || value.is_number())
            fields.push_back(name + "=" + value.dump());
        else {
            error = "field '" + name + "': a string, number or boolean was expected, not " +
                    value.type_name();
            return std::nullopt;
        }
    }
    return fields;
}

std::optional<std::vector<std::string>> fields_from_json_file(const std::string &path,
                                                              std::string &error)
{
    FILE *file = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        error = std::string("cannot open: ") + std::strerror(errno);
        return std::nullopt;
    }
    std::string text;
    char buffer[4096];
    size_t n;
    // One byte more than allowed: fields_from_json says it is too big.
    while (text.size() <= kMaxSampleJsonBytes && (n = std::fread(buffer, 1, sizeof(buffer), file)) > 0)
        text.append(buffer, n);
    bool failed = std::ferror(file) != 0;
    int read_errno = errno;
    if (file != stdin)
        std::fclose(file);
    if (failed) {
        error = std::string("cannot read: ") + std::strerror(read_errno);
        return std::nullopt;
    }
    return fields_from_json(text, error);
}

Event SampleEvent::event()
{
    if (carries<AuthPayload>(hook))
        return Event::make_any<AuthPayload>(hook, auth, auth_output);
    if (carries<AuthResultPayload>(hook))
        return Event::make_any<AuthResultPayload>(hook, auth);
    // A mail event: its session as the session port fills it in.
    Event event = carries<MailboxPayload>(hook)   ? Event::make_any<MailboxPayload>(hook, mailbox)
                  : carries<CommandPayload>(hook) ? Event::make_any<CommandPayload>(hook, command)
                  : carries<MessagePayload>(hook) ? Event::make_any<MessagePayload>(hook, message)
                                                  : Event::make_any<SessionPayload>(
                                                        hook, hook == Hook::SessionEnd ? &stats
                                                                                       : nullptr);
    event.session = &session;
    return event;
}

namespace {

bool parse_bool(std::string_view text, bool &out)
{
    if (text == "yes" || text == "y" || text == "true" || text == "1")
        out = true;
    else if (text == "no" || text == "n" || text == "false" || text == "0")
        out = false;
    else
        return false;
    return true;
}

template <class T>
bool parse_number(std::string_view text, T max, T &out)
{
    if (text.empty() || text.size() > 19)
        return false;
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
        value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (value > static_cast<uint64_t>(max))
        return false;
    out = static_cast<T>(value);
    return true;
}

} // namespace

std::optional<SampleEvent> sample_event(std::string_view event,
                                        const std::vector<std::string> &fields,
                                        std::string &error)
{
    SampleEvent s;
    for (unsigned i = 0; i < static_cast<unsigned>(Hook::Count); i++) {
        if (event == hook_name(static_cast<Hook>(i)))
            s.hook = static_cast<Hook>(i);
    }
    if (s.hook == Hook::Count || !can_sample(s.hook)) {
        error = "unknown event '" + std::string(event) + "' (one of:";
        for (unsigned i = 0; i < static_cast<unsigned>(Hook::Count); i++) {
            if (can_sample(static_cast<Hook>(i)))
                error += std::string(" ") + hook_name(static_cast<Hook>(i));
        }
        error += ")";
        return std::nullopt;
    }
    // Defaults: a plain IMAP login of alice from a documentation address.
    s.session.user = s.auth.user = "alice";
    s.session.service = s.auth.service = "imap";
    s.session.remote_ip = s.auth.remote_ip = "192.0.2.1";
    s.session.local_ip = s.auth.local_ip = "127.0.0.1";
    s.auth.mechanism = "PLAIN";
    s.mailbox.name = "INBOX";
    bool command_given = false;
    for (const std::string &field : fields) {
        size_t eq = field.find('=');
        if (eq == std::string::npos) {
            error = "field '" + field + "' is not NAME=VALUE";
            return std::nullopt;
        }
        std::string name = field.substr(0, eq);
        std::string value = field.substr(eq + 1);
        bool ok = true;
        if (name == "user") {
            s.session.user = s.auth.user = value;
        } else if (name == "service") {
            s.session.service = s.auth.service = value;
        } else if (name == "remote_ip") {
            s.session.remote_ip = s.auth.remote_ip = value;
        } else if (name == "local_ip") {
            s.session.local_ip = s.auth.local_ip = value;
        } else if (name == "remote_port") {
            ok = parse_number<uint16_t>(value, 65535, s.session.remote_port);
            s.auth.remote_port = s.session.remote_port;
        } else if (name == "local_port") {
            ok = parse_number<uint16_t>(value, 65535, s.session.local_port);
            s.auth.local_port = s.session.local_port;
        } else if (name == "secured") {
            ok = parse_bool(value, s.session.secured);
            s.auth.secured = s.session.secured;
        } else if (name == "session_id") {
            s.session.session_id = s.auth.session_id = value;
        } else if (name == "mechanism") {
            s.auth.mechanism = value;
        } else if (name == "client_id") {
            s.auth.client_id = value;
        } else if (name == "password") {
            s.auth.password = value;
        } else if (name == "success") {
            ok = parse_bool(value, s.auth.success);
        } else if (name == "reason") {
            s.auth.reason = value;
        } else if (name == "internal_failure") {
            ok = parse_bool(value, s.auth.internal_failure);
        } else if (name == "mailbox") {
            s.mailbox.name = s.message.mailbox = value;
        } else if (name == "readonly") {
            ok = parse_bool(value, s.mailbox.readonly);
        } else if (name == "command") {
            s.command.name = value;
            command_given = true;
        } else if (name == "tag") {
            s.command.tag = value;
        } else if (name == "args") {
            s.command.args = value;
        } else if (name == "reply") {
            s.command.reply = value;
        } else if (name == "reply_text") {
            s.command.reply_text = value;
        } else if (name == "uid") {
            ok = parse_number<uint32_t>(value, UINT32_MAX, s.message.uid);
        } else if (name == "message_id") {
            s.message.message_id = value;
            s.message.has_message_id = true;
        } else {
            error = "unknown field '" + name + "'";
            return std::nullopt;
        }
        if (!ok) {
            error = "bad value for " + name + ": '" + value + "'";
            return std::nullopt;
        }
    }
    if (!command_given) {
        bool pop3 = s.hook == Hook::Pop3CommandBefore || s.hook == Hook::Pop3CommandAfter;
        s.command.name = pop3 ? "STAT" : "NOOP";
        if (pop3)
            s.session.service = s.auth.service = "pop3";
    }
    if (s.message.mailbox.empty())
        s.message.mailbox = s.mailbox.name;
    if (s.hook == Hook::AuthResult && !s.auth.success && s.auth.reason.empty())
        s.auth.reason = s.auth.internal_failure ? "internal failure" : "password mismatch";
    return s;
}

namespace {

// Forwards to the real logger and counts error lines.
class CountingLogger final : public Logger {
public:
    explicit CountingLogger(Logger &inner) : inner_(inner) {}
    void log(LogLevel level, std::string_view message) override
    {
        errors += level == LogLevel::Error;
        inner_.log(level, message);
    }
    void log_event(LogLevel level, std::string_view message, const LogEvent &event) override
    {
        errors += level == LogLevel::Error;
        inner_.log_event(level, message, event);
    }
    unsigned errors = 0;

private:
    Logger &inner_;
};

} // namespace

DryRun dry_run(ScriptBuilder &builder, const std::string &path, Logger &logger, OnError on_error,
               SampleEvent &sample)
{
    CountingLogger counting(logger);
    ScriptError error;
    std::unique_ptr<ScriptRuntime> runtime = builder.from_file(path, nullptr, error);
    std::optional<ScriptError> load_error;
    if (runtime == nullptr)
        load_error = std::move(error);
    DryRun run;
    run.handled = runtime != nullptr && runtime->handles(sample.hook);
    Dispatcher dispatcher(counting, on_error, std::move(runtime), std::move(load_error));
    run.verdict = dispatcher.dispatch(sample.event());
    run.auth_output = sample.auth_output;
    run.errors = counting.errors;
    return run;
}

const char *verdict_kind_name(Verdict::Kind kind)
{
    switch (kind) {
    case Verdict::Kind::Continue: return "continue";
    case Verdict::Kind::Reject: return "reject";
    case Verdict::Kind::Tempfail: return "tempfail";
    case Verdict::Kind::Disconnect: return "disconnect";
    }
    return "?";
}

std::string seconds_text(int64_t us)
{
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%lld.%06lld", static_cast<long long>(us / 1'000'000),
                  static_cast<long long>((us < 0 ? -us : us) % 1'000'000));
    std::string text = buf;
    if (us < 0 && us > -1'000'000)
        text.insert(0, "-");
    while (text.back() == '0')
        text.pop_back();
    if (text.back() == '.')
        text.pop_back();
    return text;
}

} // namespace dmr::core::admin
