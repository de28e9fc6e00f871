#include "core/admin.hpp"

#include <algorithm>
#include <cstdio>

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
