#include "core/user_layer.hpp"

namespace dmr::core {

bool user_layer_hook(Hook hook)
{
    switch (hook) {
    case Hook::SessionStart:
    case Hook::SessionEnd:
    case Hook::MailboxOpen:
    case Hook::ImapCommandBefore:
    case Hook::ImapCommandAfter:
    case Hook::Pop3CommandBefore:
    case Hook::Pop3CommandAfter:
    case Hook::MessageRead:
        return true;
    default:
        return false;
    }
}

bool LayeredPolicy::wants(Hook hook) const
{
    return operator_.wants(hook) ||
           (user_ != nullptr && user_layer_hook(hook) && user_->wants(hook));
}

Verdict LayeredPolicy::dispatch(const Event &event)
{
    Verdict verdict = operator_.wants(event.hook) ? operator_.dispatch(event) : Verdict::proceed();
    if (verdict.decided() || user_ == nullptr || !user_layer_hook(event.hook) ||
        !user_->wants(event.hook))
        return verdict;
    Verdict user;
    if (user_session_ != nullptr) {
        Event copy = event;
        copy.session = user_session_;
        user = user_->dispatch(copy);
    } else {
        user = user_->dispatch(event);
    }
    // Only a refusal of a hook that can refuse; nothing the user's handlers
    // return can loosen what the operator's said.
    if (user.decided() && hook_can_refuse(event.hook))
        return user;
    return verdict;
}

bool UserSettings::secret(std::string_view name)
{
    std::string lower(name);
    for (char &c : lower)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return lower.find("password") != std::string::npos ||
           lower.find("secret") != std::string::npos ||
           (lower.size() >= 4 && lower.compare(lower.size() - 4, 4, "_key") == 0);
}

const char *UserSettings::setting(const char *name) const
{
    if (inner_ == nullptr || name == nullptr || secret(name))
        return nullptr;
    return inner_->setting(name);
}

std::string user_state_prefix(std::string_view username)
{
    return "user:" + std::to_string(username.size()) + ":" + std::string(username) + ":";
}

Store *UserStore::store(Status &status)
{
    std::string error;
    Store *store = inner_.get(error);
    if (store == nullptr)
        status = Status::error(Status::Code::Unavailable, error);
    return store;
}

bool UserStore::list_name(std::string_view list, std::string &out, Status &status) const
{
    out = key(list);
    if (list.empty() || out.size() > kMaxListNameBytes) {
        status = Status::error(Status::Code::Invalid,
                               "a user script's list name is 1.." +
                                   std::to_string(kMaxListNameBytes > prefix_.size()
                                                      ? kMaxListNameBytes - prefix_.size()
                                                      : 0) +
                                   " bytes for this user");
        return false;
    }
    return true;
}

Result<GcraDecision> UserStore::rate_hit(std::string_view k, const GcraRate &rate, int64_t cost)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<GcraDecision>(status) : s->rate_hit(key(k), rate, cost);
}

Result<GcraDecision> UserStore::rate_peek(std::string_view k, const GcraRate &rate, int64_t cost)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<GcraDecision>(status) : s->rate_peek(key(k), rate, cost);
}

Status UserStore::rate_reset(std::string_view k)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? status : s->rate_reset(key(k));
}

Result<int64_t> UserStore::counter_incr(std::string_view k, int64_t by, int64_t ttl_us)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<int64_t>(status) : s->counter_incr(key(k), by, ttl_us);
}

Result<int64_t> UserStore::counter_get(std::string_view k)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<int64_t>(status) : s->counter_get(key(k));
}

Status UserStore::counter_reset(std::string_view k)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? status : s->counter_reset(key(k));
}

Result<int64_t> UserStore::distinct_add(std::string_view k, std::string_view member,
                                        int64_t window_us)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<int64_t>(status) : s->distinct_add(key(k), member, window_us);
}

Result<int64_t> UserStore::distinct_count(std::string_view k, int64_t window_us)
{
    Status status;
    Store *s = store(status);
    return s == nullptr ? Result<int64_t>(status) : s->distinct_count(key(k), window_us);
}

Status UserStore::list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                           std::string_view reason)
{
    Status status;
    std::string name;
    if (!list_name(list, name, status))
        return status;
    Store *s = store(status);
    return s == nullptr ? status : s->list_add(name, entry, ttl_us, reason);
}

Result<bool> UserStore::list_remove(std::string_view list, std::string_view entry)
{
    Status status;
    std::string name;
    if (!list_name(list, name, status))
        return status;
    Store *s = store(status);
    return s == nullptr ? Result<bool>(status) : s->list_remove(name, entry);
}

Result<std::optional<ListEntry>> UserStore::list_match(std::string_view list,
                                                       std::string_view value)
{
    Status status;
    std::string name;
    if (!list_name(list, name, status))
        return status;
    Store *s = store(status);
    return s == nullptr ? Result<std::optional<ListEntry>>(status) : s->list_match(name, value);
}

Result<std::vector<ListEntry>> UserStore::list_entries(std::string_view list)
{
    Status status;
    std::string name;
    if (!list_name(list, name, status))
        return status;
    Store *s = store(status);
    return s == nullptr ? Result<std::vector<ListEntry>>(status) : s->list_entries(name);
}

} // namespace dmr::core
