// The narrow door from the protocol plugins (lib95_imap_mruby_plugin.so,
// lib95_pop3_mruby_plugin.so) to a session's policy, which lives in
// lib90_mruby_plugin.so together with the VM. Only virtual calls and one
// exported C function cross the boundary: the protocol plugins link core
// only, never mruby.
#pragma once

#include "core/events.hpp"
#include "core/verdict.hpp"

struct mail_user;

namespace dmr::dovecot {

class SessionPort {
public:
    virtual bool wants(core::Hook hook) = 0;
    // Runs one event (its session is filled in) through the dispatcher.
    virtual core::Verdict dispatch(core::Event event) = 0;
    // Dovecot's counters for this session, reported by on_session_end.
    virtual void set_session_stats(core::SessionStats stats) = 0;
    // The session start's refusal, when lib90 left it to this protocol
    // plugin (dmr_mruby_protocol_plugin()): the client is to get its text
    // and the connection closed. Null for a session that was not refused.
    virtual const core::Verdict *refusal() const = 0;
    // The protocol plugin has sent the refusal and closed (or is closing)
    // the connection: no command of the client runs any more.
    virtual void refusal_sent() = 0;

protected:
    ~SessionPort() = default;   // owned by lib90, never deleted through this
};

} // namespace dmr::dovecot

// Exported by lib90_mruby_plugin.so: the session's port, or nullptr when the
// user has no policy (mruby_script unset) or is not a session of its own.
extern "C" __attribute__((visibility("default"))) dmr::dovecot::SessionPort *
dmr_mruby_session_port(struct mail_user *user);

// Called by a protocol plugin's init (loaded = true) and deinit: from then
// on a session of `service` ("imap", "pop3") whose user has `module` in its
// mail_plugins and that its session start refuses is not failed with
// user->error (Dovecot's generic internal error and an Error line) but left
// to the protocol plugin's client-created hook, which answers the client
// with the script's text (SessionPort::refusal()).
extern "C" __attribute__((visibility("default"))) void
dmr_mruby_protocol_plugin(struct module *module, const char *service, bool loaded);
