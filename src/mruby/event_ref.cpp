// Event objects: Ruby handles to an event that stop working when it ends.
#include "mruby/internal.hpp"

#include "core/text.hpp"

namespace dmr::mruby {

mrb_value wrap_event(mrb_state *mrb, struct RClass *klass, const mrb_data_type *type,
                     EventCell *cell)
{
    gc_stress_point(mrb);
    struct RData *data = mrb_data_object_alloc(mrb, klass, nullptr, type);
    gc_stress_point(mrb);
    auto *ref = static_cast<EventRef *>(mrb_malloc(mrb, sizeof(EventRef)));
    ref->serial = cell->serial;
    ref->cell = cell;
    data->data = ref;
    return mrb_obj_value(data);
}

struct RClass *define_event_class(mrb_state *mrb, struct RClass *outer, const char *name)
{
    struct RClass *c = mrb_define_class_under(mrb, outer, name, mrb->object_class);
    MRB_SET_INSTANCE_TT(c, MRB_TT_DATA);
    mrb_undef_class_method(mrb, c, "new");
    return c;
}

EventCell *live_cell(mrb_state *mrb, mrb_value self, const mrb_data_type *type)
{
    auto *ref = static_cast<EventRef *>(mrb_data_get_ptr(mrb, self, type));
    Vm::Impl &vm = vm_impl(mrb);
    if (ref != nullptr) {
        for (EventCell *cell : vm.live) {
            if (cell->serial == ref->serial && cell == ref->cell)
                return cell;
        }
    }
    mrb_raisef(mrb, vm.stale_event_error,
               "%s used outside of its event (event objects are valid only while their "
               "handler runs)",
               mrb_obj_classname(mrb, self));
    return nullptr;   // not reached
}

void decide(EventCell *cell, core::Verdict::Kind kind, mrb_value text, const char *code)
{
    if (cell->verdict.decided())
        return;   // the first verdict wins
    cell->verdict.kind = kind;
    cell->verdict.text = core::sanitize_reply_text(
        std::string_view(RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text))));
    cell->verdict.code = code == nullptr ? "" : code;
}

mrb_value fields_to_hash(mrb_state *mrb, const core::Fields &fields)
{
    mrb_value hash = mrb_hash_new_capa(mrb, static_cast<mrb_int>(fields.size()));
    for (const auto &[key, value] : fields) {
        mrb_value k = to_ruby(mrb, key);
        mrb_hash_set(mrb, hash, k, to_ruby(mrb, value));
    }
    return hash;
}

const char *field_value(const core::Fields &fields, std::string_view name)
{
    for (const auto &[key, value] : fields) {
        if (key == name)
            return value.c_str();
    }
    return nullptr;
}

} // namespace dmr::mruby
