// The auth adapter's own interface between its files (libauthdb_mruby.so; see
// docs/auth.md), split as Pigeonhole's imapsieve splits plugin/storage/settings:
//
//  auth_module.cpp  glue: authdb_mruby_init/deinit, shared argument parsing,
//                   request values at the edge, the request's policy memory
//  auth_passdb.cpp  passdb "mruby": on_auth (with its delay), then
//                   on_password_verify or on_passdb_lookup
//  auth_userdb.cpp  userdb "mruby": on_userdb_lookup
//  auth_result.cpp  on_auth_result, from Dovecot's auth_request_finished event
//  auth_script.cpp  the process-wide script (VM) each block runs
//
// Each section keeps its own state in its file; only what is declared here
// crosses files.
#pragma once

#include <utility>

#include "dovecot/auth_script.hpp"

namespace dmr::dovecot::authdb {

// --- values at the edge --------------------------------------------------------

// The request as scripts see it (passwords are never copied in).
core::AuthRequestInfo request_info(const struct auth_request *request);
enum passdb_result to_dovecot(core::PassdbResult result);
core::PassdbResult from_dovecot(enum passdb_result result);

// --- the request's memory of our policy (for on_auth_result) --------------------

struct request_ctx {
    struct auth_request *request;
    const char *policy;   // "rejected by policy: ..." or NULL
    const char *shadowed; // shadow mode: the on_auth decision not applied, or NULL
};

// Created on the request's first passdb lookup in this process.
request_ctx *remember_request(struct auth_request *request);
// The memory attached to `event` (a request's event), or NULL when our
// passdb did not serve that request in this process.
request_ctx *remembered_request(struct event *event);

// --- driver arguments --------------------------------------------------------------

// A bad configuration stops auth at start-up, as Dovecot's own drivers do.
// `kind` is "passdb" or "userdb". The result lives as long as the module
// (made in preinit, which runs in every auth process: master and workers).
#if DMR_DOVECOT_VERSION >= 204
// 2.4: the mruby_* settings of the passdb/userdb block, read through the
// `event` preinit gets (its filters: `passdb mruby { ... }`). mruby_script
// must be set inside the block: the global one names the mail policy.
// blocking and scheme are Dovecot's passdb_use_worker and
// passdb_default_password_scheme (it applies them after preinit).
core::AuthDriverArgs *args_or_die(const char *kind, struct event *event);
#else
// 2.3: the args string (`args = file=... timeout=...`).
core::AuthDriverArgs *args_or_die(const char *kind, const char *args);
// The auth cache stays off unless the args name a cache_key: a policy
// decision must not be answered from the cache. (2.4: always off.)
const char *cache_key_of(pool_t pool, const core::AuthDriverArgs &args);
#endif

// Start-up entry points: nothing C++ may throw through Dovecot's frames; a
// failure here is fatal for auth anyway, as for Dovecot's own drivers.
template <typename Fn> void at_startup(const char *what, Fn &&fn)
{
    if (!no_throw(auth_event, what, std::forward<Fn>(fn)))
        i_fatal("mruby: %s failed", what);
}

// --- the sections, for the glue's init/deinit ----------------------------------------

void passdb_register();
// Also drops every lookup still waiting on a policy delay.
void passdb_unregister();
void userdb_register();
void userdb_unregister();
void auth_result_init();
void auth_result_deinit();

} // namespace dmr::dovecot::authdb
