// The bridge's side of the hook table: each hook's binding (the descriptor
// its bind_*.cpp file defines), found by hook; the registration methods
// (Dovecot.on_session_start ...), one generic function per hook.
#include "mruby/internal.hpp"

#include <array>
#include <cstring>
#include <utility>

namespace dmr::mruby {
namespace {

// Index = hook. Every entry names a binding_<Hook> defined elsewhere, so a
// row of DMR_HOOKS without its binding is an undefined reference at link time.
const EventBinding *const bindings[] = {
#define DMR_BINDING_ENTRY(id, name, refuses, payload) &binding_##id,
    DMR_HOOKS(DMR_BINDING_ENTRY)
#undef DMR_BINDING_ENTRY
};
static_assert(sizeof(bindings) / sizeof(bindings[0]) == core::kHookCount, "one binding per hook");

// Dovecot.on_<name> { |event| ... } for hook H: appends the block to H's list.
template <core::Hook H>
mrb_value register_handler(mrb_state *mrb, mrb_value)
{
    mrb_value block = mrb_nil_value();
    mrb_get_args(mrb, "&", &block);
    if (mrb_nil_p(block)) {
        const EventBinding &binding = *bindings[static_cast<size_t>(H)];
        if (binding.module == nullptr)
            mrb_raisef(mrb, E_ARGUMENT_ERROR, "Dovecot.%s needs a block", binding.method);
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "%s needs a block", core::hook_name(H));
    }
    gc_stress_point(mrb);
    mrb_value list = mrb_ary_entry(vm_impl(mrb).handler_lists, static_cast<mrb_int>(H));
    mrb_ary_push(mrb, list, block);
    return block;
}

template <size_t... I>
constexpr auto registration_functions(std::index_sequence<I...>)
{
    return std::array<mrb_func_t, sizeof...(I)>{register_handler<static_cast<core::Hook>(I)>...};
}
constexpr auto registrations = registration_functions(std::make_index_sequence<core::kHookCount>());

bool same_module(const char *a, const char *b)
{
    if (a == nullptr || b == nullptr)
        return a == b;
    return std::strcmp(a, b) == 0;
}

} // namespace

const EventBinding &event_binding(core::Hook hook) { return *bindings[static_cast<size_t>(hook)]; }

void define_event_registrations(mrb_state *mrb, struct RClass *module, const char *module_name)
{
    for (size_t i = 0; i < core::kHookCount; i++) {
        if (same_module(bindings[i]->module, module_name))
            mrb_define_module_function(mrb, module, bindings[i]->method, registrations[i],
                                       MRB_ARGS_BLOCK());
    }
}

void init_event_bindings(mrb_state *mrb)
{
    for (size_t i = 0; i < core::kHookCount; i++) {
        void (*init)(mrb_state *) = bindings[i]->init;
        bool done = init == nullptr;
        for (size_t j = 0; j < i && !done; j++)
            done = bindings[j]->init == init;   // a class shared by several hooks
        if (!done)
            init(mrb);
    }
    define_event_registrations(mrb, vm_impl(mrb).dovecot_module, nullptr);
}

const core::SessionInfo &session_of_event(mrb_state *mrb, EventCell *cell)
{
    const core::SessionInfo *session = cell->event->session;
    if (session == nullptr)
        mrb_raisef(mrb, E_RUNTIME_ERROR, "a %s event has no session",
                   core::hook_name(cell->event->hook));
    return *session;
}

} // namespace dmr::mruby
