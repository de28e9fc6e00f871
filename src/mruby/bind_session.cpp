// Dovecot::Session: the mail session an event belongs to; the object of
// Dovecot.on_session_start and Dovecot.on_session_end.
#include "mruby/internal.hpp"

namespace dmr::mruby {
namespace {

const mrb_data_type session_type = {"Dovecot::Session", mrb_free};

const core::SessionInfo &session_of(mrb_state *mrb, mrb_value self)
{
    return session_of_event(mrb, live_cell(mrb, self, &session_type));
}

mrb_value session_user(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, session_of(mrb, self).user);
}
mrb_value session_service(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, session_of(mrb, self).service);
}
mrb_value session_remote_ip(mrb_state *mrb, mrb_value self)
{
    const std::string &ip = session_of(mrb, self).remote_ip;
    return ip.empty() ? mrb_nil_value() : make_ip_or_string(mrb, ip);
}
mrb_value session_local_ip(mrb_state *mrb, mrb_value self)
{
    const std::string &ip = session_of(mrb, self).local_ip;
    return ip.empty() ? mrb_nil_value() : make_ip_or_string(mrb, ip);
}
mrb_value session_remote_port(mrb_state *mrb, mrb_value self)
{
    return mrb_fixnum_value(session_of(mrb, self).remote_port);
}
mrb_value session_local_port(mrb_state *mrb, mrb_value self)
{
    return mrb_fixnum_value(session_of(mrb, self).local_port);
}
mrb_value session_id(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, session_of(mrb, self).session_id);
}
mrb_value session_secured(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(session_of(mrb, self).secured);
}
// Userdb fields a script never sees: the login's auth_token (with it and the
// session id anyone can log in as the user through the master process) and
// any password (a passdb/userdb that passes one along, proxy passwords, ...).
bool secret_field(std::string_view name)
{
    if (name == "auth_token" || name == "pass")
        return true;
    constexpr std::string_view kPassword = "password";
    for (size_t i = 0; i + kPassword.size() <= name.size(); i++) {
        size_t j = 0;
        while (j < kPassword.size() &&
               (name[i + j] | 0x20) == kPassword[j])   // ASCII case-insensitive
            j++;
        if (j == kPassword.size())
            return true;
    }
    return false;
}

mrb_value session_field(mrb_state *mrb, mrb_value self)
{
    mrb_value name;
    mrb_get_args(mrb, "S", &name);
    std::string_view key(RSTRING_PTR(name), static_cast<size_t>(RSTRING_LEN(name)));
    if (secret_field(key))
        return mrb_nil_value();
    const char *value = field_value(session_of(mrb, self).userdb_fields, key);
    return value == nullptr ? mrb_nil_value() : mrb_str_new_cstr(mrb, value);
}
mrb_value session_fields(mrb_state *mrb, mrb_value self)
{
    // No C++ object with a destructor is alive across the raising calls.
    const core::Fields &fields = session_of(mrb, self).userdb_fields;
    mrb_value hash = mrb_hash_new_capa(mrb, static_cast<mrb_int>(fields.size()));
    for (const auto &[key, value] : fields) {
        if (secret_field(key))
            continue;
        mrb_hash_set(mrb, hash, to_ruby(mrb, key), to_ruby(mrb, value));
    }
    return hash;
}
mrb_value session_setting(mrb_state *mrb, mrb_value self)
{
    const char *name;
    mrb_get_args(mrb, "z", &name);
    const core::SessionInfo &session = session_of(mrb, self);
    const char *value = session.settings == nullptr ? nullptr : session.settings->setting(name);
    return value == nullptr ? mrb_nil_value() : mrb_str_new_cstr(mrb, value);
}
mrb_value session_stats(mrb_state *mrb, mrb_value self)
{
    EventCell *cell = live_cell(mrb, self, &session_type);
    mrb_value hash = mrb_hash_new(mrb);
    // Only session_end has counters; a session reached from another event has none.
    const core::SessionPayload *payload = cell->event->payload<core::SessionPayload>();
    if (payload != nullptr && payload->stats != nullptr) {
        for (const auto &[key, value] : payload->stats->counters)
            mrb_hash_set(mrb, hash, to_ruby(mrb, key),
                         mrb_int_value(mrb, static_cast<mrb_int>(std::strtoll(value.c_str(),
                                                                             nullptr, 10))));
    }
    return hash;
}
mrb_value session_deny(mrb_state *mrb, mrb_value self)
{
    mrb_value reason = mrb_str_new_lit(mrb, "Access denied");
    mrb_get_args(mrb, "|S", &reason);
    EventCell *cell = live_cell(mrb, self, &session_type);
    if (cell->event->hook != core::Hook::SessionStart)
        mrb_raise(mrb, E_RUNTIME_ERROR, "deny is only possible in on_session_start");
    decide(cell, core::Verdict::Kind::Reject, reason, nullptr);
    return mrb_nil_value();
}

} // namespace

mrb_value make_session(mrb_state *mrb, EventCell *cell)
{
    return wrap_event(mrb, vm_impl(mrb).session_class, &session_type, cell);
}

namespace {

void init_session_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = define_event_class(mrb, vm.dovecot_module, "Session");
    vm.session_class = c;
    mrb_define_method(mrb, c, "user", session_user, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "service", session_service, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "remote_ip", session_remote_ip, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "local_ip", session_local_ip, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "remote_port", session_remote_port, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "local_port", session_local_port, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "session_id", session_id, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "secured?", session_secured, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "[]", session_field, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "fields", session_fields, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "setting", session_setting, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "stats", session_stats, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "deny", session_deny, MRB_ARGS_OPT(1));
}

} // namespace

const EventBinding binding_SessionStart = {nullptr, "on_session_start", Library::Count,
                                           init_session_class, make_session};
const EventBinding binding_SessionEnd = {nullptr, "on_session_end", Library::Count,
                                         init_session_class, make_session};

} // namespace dmr::mruby
