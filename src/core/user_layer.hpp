// Per-user scripts (mruby_user_script, docs/ruby-api.md "Per-user scripts"):
// the rules that make a user's script a second layer that can only tighten
// the operator's policy, as plain C++ (tested with fakes):
// - LayeredPolicy runs the operator's dispatcher first; the user's runs only
//   when the operator let the event through, and only its refusal counts.
// - UserStore is the store a user's VM sees: every rate, counter and list
//   name lives under the user's prefix, so a user script can reach neither
//   the operator's state nor another user's.
#pragma once

#include <string>
#include <string_view>

#include "core/dispatcher.hpp"
#include "core/store.hpp"
#include "core/store_registry.hpp"

namespace dmr::core {

// The hooks a user's script sees: those of a mail session (never the auth
// process's).
bool user_layer_hook(Hook hook);

class LayeredPolicy {
public:
    // `user` may be null: no user script (nothing is created for it).
    // `user_session` (if any) replaces the event's session for the user's
    // handlers (its settings filtered: UserSettings).
    LayeredPolicy(Dispatcher &operator_policy, Dispatcher *user_policy,
                  const SessionInfo *user_session = nullptr)
        : operator_(operator_policy), user_(user_policy), user_session_(user_session) {}

    bool wants(Hook hook) const;
    // The operator's verdict when it refuses (the user's handlers are then
    // not run for this event); otherwise the user's refusal, if any. Hooks
    // that cannot refuse run both, the operator's first.
    Verdict dispatch(const Event &event);

    bool has_user() const { return user_ != nullptr; }

private:
    Dispatcher &operator_;
    Dispatcher *user_;
    const SessionInfo *user_session_;
};

// What Session#setting shows a user's script: the session's settings
// without secrets (a name containing "password", "secret" or ending in
// "_key", ignoring case: mruby_store_password and its file, say).
class UserSettings final : public SettingSource {
public:
    explicit UserSettings(const SettingSource *inner) : inner_(inner) {}
    const char *setting(const char *name) const override;
    static bool secret(std::string_view name);

private:
    const SettingSource *inner_;
};

// "user:<bytes>:<username>:": the prefix of every name a user's script
// stores under. The length makes it injective (no username and name pair can
// spell another user's prefix); the operator's names are those not starting
// with "user:<digits>:" (docs/ruby-api.md).
std::string user_state_prefix(std::string_view username);

// The store as `username`'s script sees it: names prefixed, the process's
// store opened on first use (through `inner`, which must outlive this).
class UserStore final : public Store {
public:
    UserStore(StoreHandle &inner, std::string_view username)
        : inner_(inner), prefix_(user_state_prefix(username)) {}

    const char *backend() const override { return "user"; }
    const std::string &prefix() const { return prefix_; }

    Result<GcraDecision> rate_hit(std::string_view key, const GcraRate &rate,
                                  int64_t cost) override;
    Result<GcraDecision> rate_peek(std::string_view key, const GcraRate &rate,
                                   int64_t cost) override;
    Status rate_reset(std::string_view key) override;
    Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t ttl_us) override;
    Result<int64_t> counter_get(std::string_view key) override;
    Status counter_reset(std::string_view key) override;
    Status list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                    std::string_view reason) override;
    Result<bool> list_remove(std::string_view list, std::string_view entry) override;
    Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                std::string_view value) override;
    Result<std::vector<ListEntry>> list_entries(std::string_view list) override;
    Result<int64_t> distinct_add(std::string_view key, std::string_view member,
                                 int64_t window_us) override;
    Result<int64_t> distinct_count(std::string_view key, int64_t window_us) override;

private:
    // The process's store, or nullptr with `status` set.
    Store *store(Status &status);
    std::string key(std::string_view name) const { return prefix_ + std::string(name); }
    // A list name with the prefix, or an Invalid status when it no longer
    // fits kMaxListNameBytes.
    bool list_name(std::string_view list, std::string &out, Status &status) const;

    StoreHandle &inner_;
    std::string prefix_;
};

} // namespace dmr::core
