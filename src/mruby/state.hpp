// What the state classes (bind_ratelimit.cpp, bind_counter.cpp, bind_list.cpp)
// share: access to the process's store and one way to turn a store failure
// into a Ruby Dovecot::StoreError or a logged fallback.
//
// mruby raises with longjmp, which skips C++ destructors. So every binding
// reads its arguments first, then calls a helper function that does the C++
// work (strings, Results) and reports into a plain StateCall, and raises only
// after that helper has returned.
#pragma once

#include "mruby/internal.hpp"

#include <cstdio>
#include <type_traits>

namespace dmr::mruby {

// The result of one state operation as a binding sees it: plain data.
struct StateCall {
    bool failed = false;
    char message[320] = {0};   // "Dovecot::Counter.incr: lmdb: unavailable: ..."
};

// Lives in binding frames that raise (raise_state_error).
static_assert(std::is_trivially_destructible<StateCall>::value,
              "a longjmp out of a binding must skip no destructor");

// The store. When none is configured or its spec is malformed: a store whose
// every call fails as `unavailable` with that reason, so callers handle one
// kind of failure (and RateLimit applies its fail mode). Never raises.
core::Store &state_store(Vm::Impl &vm);

// Records a failed store call in `call`; with `log`, also reports it to the
// VM's FailureLog (first failure at once, then at most one line a minute).
void state_failed(Vm::Impl &vm, StateCall &call, const char *what, const core::Status &status,
                  bool log);

// The VM's FailureLog (created on first use).
core::FailureLog &state_failures(Vm::Impl &vm);

// The return convention of every Counter and List primitive (documented at
// the top of mrblib/state.rb): the last argument says whether the caller gave
// a fallback; a failure then returns this value, Dovecot::Store::FAILED (a
// frozen object nothing else is equal to), and raises Dovecot::StoreError
// otherwise. Call it only from a binding frame that may raise.
mrb_value store_failed_value(mrb_state *mrb);

// Defines Dovecot::Store and its FAILED marker (before mrblib/state.rb).
void init_store_module(mrb_state *mrb);

// Raises Dovecot::StoreError with the call's message. Call it only from a
// binding frame that holds no C++ object with a destructor.
[[noreturn]] void raise_state_error(mrb_state *mrb, const StateCall &call);

// Seconds (Integer or Float, > 0) to microseconds; raises ArgumentError.
int64_t seconds_to_us(mrb_state *mrb, mrb_value seconds, const char *what);

// A Ruby string's bytes.
inline std::string_view string_view_of(mrb_value s)
{
    return std::string_view(RSTRING_PTR(s), static_cast<size_t>(RSTRING_LEN(s)));
}

} // namespace dmr::mruby
