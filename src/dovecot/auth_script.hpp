// The policy script of the auth process: one VM per script file per process
// (auth master and each auth-worker), shared by every passdb/userdb block
// that names the same file. In the auth process a handler that waits for
// its store is suspended (auth_async.hpp) and keeps its VM: a call that
// starts meanwhile runs in another VM of a small pool (kMaxVms per script,
// created when concurrency needs them, then reused). Ruby globals are
// therefore per pooled VM (docs/auth.md). Reloaded when the file changes; a reload that
// fails keeps the previous VM and logs why. A process that starts with a
// broken file runs the last good version from the script cache
// (core::ScriptCache, as the mail sessions do).
#pragma once

#include <sys/types.h>

#include <ctime>
#include <list>
#include <memory>

#include "core/audit.hpp"
#include "core/auth.hpp"
#include "core/dispatcher.hpp"
#include "core/script_cache.hpp"
#include "dovecot/auth_async.hpp"
#include "dovecot/auth_headers.hpp"

namespace dmr::dovecot {

// Logs through the event of the request being served (so the auth request's
// prefix and log filters apply), or through auth_event between requests.
class RequestLogger final : public core::Logger {
public:
    void log(core::LogLevel level, std::string_view message) override;
    void log_event(core::LogLevel level, std::string_view message,
                   const core::LogEvent &log_event) override;
    void emit(std::string_view message, const core::LogEvent &log_event) override
    {
        this->log_event(core::LogLevel::Debug, message, log_event);
    }
    struct event *event = nullptr;
};

class AuthScript {
public:
    explicit AuthScript(const core::AuthDriverArgs &args);
    ~AuthScript();
    AuthScript(const AuthScript &) = delete;
    AuthScript &operator=(const AuthScript &) = delete;

    // Reloads the script if its file changed (checked at most once a second),
    // or restarts the VM if a timeout or memory-limit failure disabled it.
    void refresh();
    // Whether to run `hook`: it has a handler, or the script is broken and
    // mruby_on_error answers it (the rule is core::Dispatcher::wants).
    bool handles(core::Hook hook) const;
    // Runs one event; `log_event` is the request's event for log lines.
    core::Verdict dispatch(const core::Event &event, struct event *log_event);

    const core::AuthDriverArgs &args() const { return args_; }

    // VMs per script file at most; a call that finds them all busy (each
    // with a suspended handler) waits for one to be free, in order.
    static constexpr size_t kMaxVms = 64;
    // Whether a handler call can wait for its store: a network store
    // (Redis). With LMDB or memory nothing ever waits, so the calls run
    // directly, without a coroutine (docs/auth.md).
    bool store_may_wait() const
    {
        const std::string &spec = args_.store;
        return spec.rfind("redis", 0) == 0 || spec.rfind("unix://", 0) == 0;
    }
    // VMs this script has now (tests: the pool grows only under concurrency).
    size_t vm_count() const { return slots_.size(); }

private:
    struct Stamp {
        bool exists = false;
        dev_t dev = 0;
        ino_t ino = 0;
        off_t size = 0;
        long long mtime_ns = 0;
        bool operator==(const Stamp &o) const
        {
            return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
                   mtime_ns == o.mtime_ns;
        }
        bool operator!=(const Stamp &o) const { return !(*this == o); }
    };
    Stamp stat_file() const;
    // A fresh VM with the file, or its last good version, loaded; with the
    // logger that VM's calls log through (one per VM: a suspended call keeps
    // its request's event set there).
    struct Loaded {
        std::unique_ptr<RequestLogger> logger;
        core::ScriptLoad load;
    };
    // pooled: a further VM of the current generation (acquire()), whose
    // version the first one already kept in the script cache.
    Loaded load(bool pooled = false);
    // Makes `loaded` the newest generation; idle VMs of older ones go now,
    // busy ones when their call ends.
    void install(Loaded loaded);

    struct Slot {
        std::unique_ptr<RequestLogger> logger;
        std::unique_ptr<core::Dispatcher> dispatcher;
        unsigned generation = 0;
        bool busy = false;
    };
    // A VM slot of the current generation around `loaded`, idle.
    Slot make_slot(Loaded loaded) const;
    Slot &newest() { return slots_.front(); }
    const Slot &newest() const { return slots_.front(); }
    Slot &acquire();
    void release(Slot &slot);
    core::Verdict run_in(Slot &slot, const core::Event &event, struct event *log_event);

    // audit=: Dovecot.audit's sinks, with the standard fields of the request
    // being served (set in dispatch()); null when audit= is unset.
    void create_auditor();

    core::AuthDriverArgs args_;
    RequestLogger logger_;
    std::unique_ptr<core::Auditor> auditor_;   // before dispatcher_: the VM points at it
    std::list<Slot> slots_;   // front: the newest load (handles(), active())
    unsigned generation_ = 0;
    WaitQueue vm_free_;
    Stamp stamp_;
    time_t last_check_ = 0;
};

// The process-wide script for `args.file` (created on first use).
AuthScript &auth_script_for(const core::AuthDriverArgs &args);
// Every script of this process, for on_auth_result.
template <typename Fn> void for_each_auth_script(Fn &&fn);
void auth_scripts_clear();

namespace detail {
std::vector<std::unique_ptr<AuthScript>> &auth_scripts();
}
template <typename Fn> void for_each_auth_script(Fn &&fn)
{
    for (auto &script : detail::auth_scripts())
        fn(*script);
}

} // namespace dmr::dovecot
