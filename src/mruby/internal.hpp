// Shared by the bridge's translation units only: the VM internals and the
// helpers every binding uses. The only place besides *.cpp here that sees mruby.
#pragma once

#include <mruby.h>
#include <mruby/array.h>
#include <mruby/class.h>
#include <mruby/data.h>
#include <mruby/hash.h>
#include <mruby/string.h>
#include <mruby/variable.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/events.hpp"
#include "core/logger.hpp"
#include "core/verdict.hpp"
#include "mruby/allocator.hpp"
#include "mruby/vm.hpp"
#include "core/rate_limiter.hpp"

namespace dmr::mruby {

// The state of one event while its handlers run. Lives on the C++ stack of
// Vm::run, outside every frame that mruby can unwind.
struct EventCell {
    const core::Event *event = nullptr;
    core::Verdict verdict;
    uint64_t serial = 0;
};

struct Vm::Impl {
    explicit Impl(const VmOptions &o) : options(o), allocator(o.memory_limit) {}

    VmOptions options;
    Allocator allocator;   // must outlive mrb
    mrb_state *mrb = nullptr;
    mrb_value handler_lists = mrb_nil_value();   // Array of Arrays, index = core::Hook
    bool extensions_loaded = false;
    unsigned optional_libraries_loaded = 0;   // bit per Library loaded on demand
    uint64_t next_serial = 1;
    std::vector<EventCell *> live;   // events whose handlers are running (innermost last)
    std::string current_what;        // "session_start handler" for timeout messages

    // Classes the bindings create objects of.
    struct RClass *dovecot_module = nullptr;
    struct RClass *stale_event_error = nullptr;
    struct RClass *session_class = nullptr;
    struct RClass *mailbox_class = nullptr;
    struct RClass *ip_class = nullptr;        // Dovecot::IP
    struct RClass *store_error = nullptr;     // Dovecot::StoreError
    struct RClass *message_class = nullptr;   // Dovecot::Message (on_message_read)

    // Store failures of this VM's state calls, logged at most once a minute
    // (state.cpp); created on the first failure.
    std::unique_ptr<core::FailureLog> store_failures;
    struct RClass *imap_command_class = nullptr;   // Dovecot::IMAP::Command
    struct RClass *pop3_command_class = nullptr;   // Dovecot::POP3::Command
    struct RClass *auth_class = nullptr;          // Dovecot::Auth
    struct RClass *auth_result_class = nullptr;   // Dovecot::AuthResult
};

inline Vm::Impl &vm_impl(mrb_state *mrb) { return *static_cast<Vm::Impl *>(mrb->ud); }

// GC stress (VmOptions::gc_stress, tests only): a full collection wherever
// the bridge holds Ruby values in C variables, so a value that is not
// protected (arena, ivar, register) is freed at once and the bug shows.
// Debian's libmruby is not built with MRB_GC_STRESS; this is the substitute.
inline void gc_stress_point(mrb_state *mrb)
{
    if (static_cast<Vm::Impl *>(mrb->ud)->options.gc_stress)
        mrb_full_gc(mrb);
}

// --- event objects -----------------------------------------------------------
// A Ruby event object holds (serial, cell). It may be kept in a global and
// used later; the serial no longer being live is detected before the cell is
// ever dereferenced, and raises Dovecot::StaleEventError.
struct EventRef {
    uint64_t serial;
    EventCell *cell;
};

mrb_value wrap_event(mrb_state *mrb, struct RClass *klass, const mrb_data_type *type,
                     EventCell *cell);
// Defines `outer::name` as an event class: typed data, no `new` (only the
// bridge makes event objects).
struct RClass *define_event_class(mrb_state *mrb, struct RClass *outer, const char *name);
// Returns the live cell or raises (never returns null).
EventCell *live_cell(mrb_state *mrb, mrb_value self, const mrb_data_type *type);
// Records a verdict unless an earlier one was given (first verdict wins).
void decide(EventCell *cell, core::Verdict::Kind kind, mrb_value text, const char *code);

// --- conversions --------------------------------------------------------------
inline mrb_value to_ruby(mrb_state *mrb, std::string_view s)
{
    gc_stress_point(mrb);
    return mrb_str_new(mrb, s.data(), static_cast<mrb_int>(s.size()));
}
mrb_value fields_to_hash(mrb_state *mrb, const core::Fields &fields);
const char *field_value(const core::Fields &fields, std::string_view name);

// --- bindings: one Ruby class per file, each with its init function ---------
void init_dovecot_module(mrb_state *mrb);   // bind_dovecot.cpp
// Dovecot::Session of an event, for every event object's `session`.
mrb_value make_session(mrb_state *mrb, EventCell *cell);   // bind_session.cpp
// State (state.cpp has the store access they share):
void init_ip_class(mrb_state *mrb);         // bind_ip.cpp
void init_ratelimit_class(mrb_state *mrb);  // bind_ratelimit.cpp
void init_counter_class(mrb_state *mrb);    // bind_counter.cpp
void init_distinct_class(mrb_state *mrb);   // bind_distinct.cpp
void init_list_class(mrb_state *mrb);       // bind_list.cpp
// A Dovecot::IP for an address or CIDR text; the text itself as a String
// when it does not parse (so an odd value from Dovecot is never lost).
mrb_value make_ip_or_string(mrb_state *mrb, std::string_view text);
void init_command_classes(mrb_state *mrb);  // bind_command.cpp (Library::Commands)
void init_audit(mrb_state *mrb);            // bind_audit.cpp
void init_auth_classes(mrb_state *mrb);     // bind_auth.cpp: Dovecot::Auth, Dovecot::AuthResult

// --- standard library -----------------------------------------------------------
// gems.cpp: all extension gems (Dovecot.require_gems); true when this call loaded them.
bool load_all_extensions(mrb_state *mrb);
// Loads the extension gems when compiled code names one of their methods or
// constants (gems.cpp); called before a script's top level runs.
// `script`: false for the API's own compiled Ruby (mrblib/), whose method
// names (Dovecot::List#match) must not load Regexp.
void load_extensions_for(mrb_state *mrb, const struct mrb_irep *irep, bool script = true);
void define_extension_stubs(mrb_state *mrb);   // Kernel#method_missing for gem_stubs, at VM start
void load_api_bytecode(mrb_state *mrb);     // the compiled mrblib/
// bind_json.cpp: the JSON module (Library::Json), loaded when compiled code
// names JSON or to_json (called with the gem scan, load_extensions_for).
void init_json_module(mrb_state *mrb);
void load_json_if_named(mrb_state *mrb, const struct mrb_irep *irep);
// bind_regexp.cpp: Regexp and MatchData (Library::Regexp, with mrblib/regexp.rb),
// loaded when compiled code names Regexp, MatchData or a matching method
// (a regexp literal compiles to Regexp.compile).
void init_regexp_classes(mrb_state *mrb);
void load_regexp_if_named(mrb_state *mrb, const struct mrb_irep *irep);
// Puts String#start_with? back to the Regexp-aware one after the extension
// gems (mruby-string-ext) defined theirs; nothing when Regexp is not loaded.
void redefine_regexp_string_methods(mrb_state *mrb);

// Parts of the API a VM loads on first use (mrblib.cpp), to keep start-up
// short: their C++ classes and compiled Ruby. Scripts trigger them by naming
// a constant (Dovecot.const_missing); the bridge, before making an object.
enum class Library : unsigned { IP, State, Auth, Commands, Policy, Audit, Json, Regexp, Count };
// True when this call loaded it (it may raise, like any Ruby code).
bool ensure_library(mrb_state *mrb, Library library);

// --- event bindings -----------------------------------------------------------
// How one hook of the core table (DMR_HOOKS, core/events.hpp) looks in Ruby:
// one descriptor per hook, defined in the binding file of its class as
// `const EventBinding binding_<Hook>` (bind_session.cpp has binding_SessionStart
// and binding_SessionEnd). event_table.cpp collects them by hook; a hook
// without one fails to link ("undefined reference to binding_<Hook>").
struct EventBinding {
    // Where the registration method lives: nullptr for Dovecot itself, else
    // the module under Dovecot ("IMAP"), which defines it when it is created
    // (define_event_registrations).
    const char *module;
    const char *method;                         // "on_session_start", "before_command"
    Library library;                            // loaded before the object is made; Count: none
    void (*init)(mrb_state *);                  // defines the class at VM start; null: the library does
    mrb_value (*make)(mrb_state *, EventCell *);   // the object the handlers receive
};
#define DMR_DECLARE_BINDING(id, name, refuses, payload) extern const EventBinding binding_##id;
DMR_HOOKS(DMR_DECLARE_BINDING)
#undef DMR_DECLARE_BINDING

const EventBinding &event_binding(core::Hook hook);   // event_table.cpp
// At VM start (init_dovecot_module): every binding's init, once each, and the
// registration methods that live in Dovecot itself.
void init_event_bindings(mrb_state *mrb);
// Defines on `module` the registration methods of the bindings whose
// `module` is `module_name` (Dovecot::IMAP.before_command ...).
void define_event_registrations(mrb_state *mrb, struct RClass *module, const char *module_name);

// The event's payload of type P; raises (a bridge bug, never a crash) when
// this hook carries another kind.
template <class P>
const P &payload_of(mrb_state *mrb, EventCell *cell)
{
    const P *payload = cell->event->payload<P>();
    if (payload == nullptr)
        mrb_raisef(mrb, E_RUNTIME_ERROR, "no such data in a %s event",
                   core::hook_name(cell->event->hook));
    return *payload;
}
// The session of a mail event; raises for an event without one.
const core::SessionInfo &session_of_event(mrb_state *mrb, EventCell *cell);   // event_table.cpp

// --- errors -------------------------------------------------------------------
// How describing an exception went (errors.cpp). Its `message` is Ruby code
// of the script: the caller bounds it like a handler (run_guarded, vm.cpp).
enum class DescribeFailure {
    None,
    Raised,        // message raised: the description names what it raised
    Timeout,       // the watchdog stopped it: "message unavailable: timed out"
    MemoryLimit,   // the allocator refused it (mruby_memory_limit)
};
// Describes an exception (message, class, file, line, backtrace). When the
// exception's own code fails, the message falls back to what the VM knows
// without running Ruby (the class name) and `failure` says why.
core::ScriptError describe_exception(mrb_state *mrb, mrb_value exc, core::ScriptError::Kind kind,
                                     DescribeFailure *failure = nullptr);

} // namespace dmr::mruby
