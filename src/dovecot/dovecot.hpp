// The one place that includes Dovecot's headers, for every adapter file.
// Dovecot's headers are C: wrapped in extern "C", compiled as gnu++17
// (they use typeof). Nothing outside src/dovecot/ includes this file.
#pragma once

extern "C" {
#include "config.h"
#include "lib.h"
#include "array.h"
#include "str.h"
#include "net.h"
#include "llist.h"
#include "ioloop.h"
#include "module-context.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "hostpid.h"
}

#include <string>
#include <string_view>

#include "core/logger.hpp"

#define DMR_EXPORT extern "C" __attribute__((visibility("default")))

namespace dmr::dovecot {

// MODULE_CONTEXT() yields void* in C++; this restores the type.
template <typename T, typename Obj, typename Id>
T *module_context(Obj *obj, Id &id)
{
    return static_cast<T *>(MODULE_CONTEXT(obj, id));
}

// For where the context must exist: a vfunc we installed together with it
// (the object's deinit, open, destroy, ...). A missing one is our bug:
// panic, naming the caller, rather than dereference NULL. Dovecot's
// MODULE_CONTEXT_REQUIRE catches only a short context array, not a NULL slot.
template <typename T, typename Obj, typename Id>
T *module_context_require(Obj *obj, Id &id, const char *caller = __builtin_FUNCTION())
{
    T *ctx = module_context<T>(obj, id);
    if (ctx == nullptr)
        i_panic("mruby: %s: module context missing", caller);
    return ctx;
}

// Logs through a Dovecot event, so the session prefix and log filters apply.
class EventLogger final : public core::Logger {
public:
    explicit EventLogger(struct event *event) : event_(event) {}
    void log(core::LogLevel level, std::string_view message) override;
    // The line through a passthrough event named event.name, with its fields.
    void log_event(core::LogLevel level, std::string_view message,
                   const core::LogEvent &event) override;
    void emit(std::string_view message, const core::LogEvent &event) override
    {
        log_event(core::LogLevel::Debug, message, event);
    }

private:
    struct event *event_;
};

// Logs with the process's own prefix (i_info ...), for what belongs to no
// session: the process-wide store (e.g. an LMDB directory reopened). Lives
// as long as the process.
core::Logger &process_logger();

// Never let a C++ exception unwind into Dovecot: runs `fn`, logs and returns
// false on any exception.
template <typename Fn>
bool no_throw(struct event *event, const char *where, Fn &&fn) noexcept
{
    try {
        fn();
        return true;
    } catch (const std::exception &e) {
        e_error(event, "mruby: %s: %s", where, e.what());
    } catch (...) {
        e_error(event, "mruby: %s: unknown C++ exception", where);
    }
    return false;
}

inline std::string ip_to_string(const struct ip_addr *ip)
{
    if (ip == nullptr || ip->family == 0)
        return {};
    return net_ip2addr(ip);
}

} // namespace dmr::dovecot
