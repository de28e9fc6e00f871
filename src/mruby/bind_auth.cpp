// Dovecot::Auth (on_auth and the authoritative passdb/userdb handlers) and
// Dovecot::AuthResult (on_auth_result): one authentication request.
#include "mruby/internal.hpp"

#include <cmath>

#include "core/auth.hpp"
#include "core/text.hpp"

namespace dmr::mruby {
namespace {

// Both classes share one data type: the accessors work on either.
const mrb_data_type auth_type = {"Dovecot::Auth", mrb_free};

EventCell *cell_of(mrb_state *mrb, mrb_value self) { return live_cell(mrb, self, &auth_type); }

// The request, from either payload kind (AuthPayload, AuthResultPayload).
const core::AuthRequestInfo &info_of(mrb_state *mrb, mrb_value self)
{
    EventCell *cell = cell_of(mrb, self);
    if (const auto *result = cell->event->payload<core::AuthResultPayload>())
        return result->request;
    return payload_of<core::AuthPayload>(mrb, cell).request;
}

mrb_value string_or_nil(mrb_state *mrb, const std::string &s)
{
    return s.empty() ? mrb_nil_value() : to_ruby(mrb, s);
}

mrb_value auth_user(mrb_state *mrb, mrb_value self) { return to_ruby(mrb, info_of(mrb, self).user); }
mrb_value auth_username(mrb_state *mrb, mrb_value self)
{
    const std::string &user = info_of(mrb, self).user;
    return to_ruby(mrb, std::string_view(user).substr(0, user.rfind('@')));
}
mrb_value auth_domain(mrb_state *mrb, mrb_value self)
{
    const std::string &user = info_of(mrb, self).user;
    size_t at = user.rfind('@');
    return at == std::string::npos ? mrb_nil_value()
                                   : to_ruby(mrb, std::string_view(user).substr(at + 1));
}
mrb_value auth_service(mrb_state *mrb, mrb_value self)
{
    return to_ruby(mrb, info_of(mrb, self).service);
}
mrb_value auth_remote_ip(mrb_state *mrb, mrb_value self)
{
    const std::string &ip = info_of(mrb, self).remote_ip;
    return ip.empty() ? mrb_nil_value() : make_ip_or_string(mrb, ip);   // a Dovecot::IP
}
mrb_value auth_local_ip(mrb_state *mrb, mrb_value self)
{
    const std::string &ip = info_of(mrb, self).local_ip;
    return ip.empty() ? mrb_nil_value() : make_ip_or_string(mrb, ip);   // a Dovecot::IP
}
mrb_value auth_remote_port(mrb_state *mrb, mrb_value self)
{
    return mrb_fixnum_value(info_of(mrb, self).remote_port);
}
mrb_value auth_local_port(mrb_state *mrb, mrb_value self)
{
    return mrb_fixnum_value(info_of(mrb, self).local_port);
}
mrb_value auth_mechanism(mrb_state *mrb, mrb_value self)
{
    return string_or_nil(mrb, info_of(mrb, self).mechanism);
}
mrb_value auth_secured(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(info_of(mrb, self).secured);
}
mrb_value auth_trusted(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(info_of(mrb, self).trusted);
}
mrb_value auth_real_remote_ip(mrb_state *mrb, mrb_value self)
{
    const std::string &ip = info_of(mrb, self).real_remote_ip;
    return ip.empty() ? mrb_nil_value() : make_ip_or_string(mrb, ip);   // a Dovecot::IP
}
mrb_value auth_client_id(mrb_state *mrb, mrb_value self)
{
    return string_or_nil(mrb, info_of(mrb, self).client_id);
}
mrb_value auth_session_id(mrb_state *mrb, mrb_value self)
{
    return string_or_nil(mrb, info_of(mrb, self).session_id);
}
// auth["name"]: a field an earlier passdb set (or, in a userdb lookup, a userdb field).
mrb_value auth_field(mrb_state *mrb, mrb_value self)
{
    mrb_value name;
    mrb_get_args(mrb, "S", &name);
    std::string_view key(RSTRING_PTR(name), static_cast<size_t>(RSTRING_LEN(name)));
    const core::AuthRequestInfo &info = info_of(mrb, self);
    const char *value = field_value(info.passdb_fields, key);
    if (value == nullptr)
        value = field_value(info.userdb_fields, key);
    return value == nullptr ? mrb_nil_value() : mrb_str_new_cstr(mrb, value);
}
mrb_value auth_fields(mrb_state *mrb, mrb_value self)
{
    return fields_to_hash(mrb, info_of(mrb, self).passdb_fields);
}
mrb_value auth_userdb_fields(mrb_state *mrb, mrb_value self)
{
    return fields_to_hash(mrb, info_of(mrb, self).userdb_fields);
}
mrb_value auth_password(mrb_state *mrb, mrb_value self)
{
    EventCell *cell = cell_of(mrb, self);
    if (cell->event->hook != core::Hook::PasswordVerify)
        mrb_raise(mrb, E_RUNTIME_ERROR, "the password is only given to on_password_verify");
    return to_ruby(mrb, payload_of<core::AuthPayload>(mrb, cell).request.password);
}

core::AuthOutput &output_of(mrb_state *mrb, EventCell *cell, const char *what)
{
    core::AuthOutput *output = cell->event->auth_output();
    if (output == nullptr)
        mrb_raisef(mrb, E_RUNTIME_ERROR, "%s is not possible in on_%s", what,
                   core::hook_name(cell->event->hook));
    return *output;
}

mrb_value auth_reject(mrb_state *mrb, mrb_value self)
{
    mrb_value text = mrb_str_new_lit(mrb, "Authentication failed");
    mrb_get_args(mrb, "|S", &text);
    EventCell *cell = cell_of(mrb, self);
    output_of(mrb, cell, "reject");
    decide(cell, core::Verdict::Kind::Reject, text, nullptr);
    return mrb_nil_value();
}
mrb_value auth_tempfail(mrb_state *mrb, mrb_value self)
{
    mrb_value text = mrb_str_new_lit(mrb, "Temporary failure");
    mrb_get_args(mrb, "|S", &text);
    EventCell *cell = cell_of(mrb, self);
    output_of(mrb, cell, "tempfail");
    decide(cell, core::Verdict::Kind::Tempfail, text, nullptr);
    return mrb_nil_value();
}
mrb_value auth_delay(mrb_state *mrb, mrb_value self)
{
    mrb_float seconds;
    mrb_get_args(mrb, "f", &seconds);
    EventCell *cell = cell_of(mrb, self);
    if (cell->event->hook != core::Hook::Auth)
        mrb_raise(mrb, E_RUNTIME_ERROR, "delay is only possible in on_auth");
    if (!std::isfinite(seconds) || seconds < 0)
        mrb_raise(mrb, E_ARGUMENT_ERROR, "delay needs a non-negative number of seconds");
    double ms = std::ceil(seconds * 1000.0);
    uint32_t capped = ms > core::kMaxAuthDelayMs ? core::kMaxAuthDelayMs
                                                 : static_cast<uint32_t>(ms);
    core::AuthOutput &out = output_of(mrb, cell, "delay");
    if (capped > out.delay_ms)
        out.delay_ms = capped;
    return mrb_nil_value();
}

// set(name, value), C++ half: takes only C data and calls nothing that can
// raise, so its strings are always destroyed. `value` is null when the value
// was of a class a field cannot take (`class_name`).
void set_field(Vm::Impl &vm, EventCell *cell, core::AuthOutput &out, std::string_view name,
               const char *value, size_t value_len, const char *class_name)
{
    std::string key(name);
    auto warn = [&vm](const std::string &why) {
        if (vm.options.logger != nullptr)
            vm.options.logger->log(core::LogLevel::Warning, "mruby: " + why);
    };
    if (!core::valid_auth_field_name(key) || key.find('\0') != std::string::npos) {
        warn("ignoring field with an invalid name '" + core::sanitize_for_log(key) + "'");
        return;
    }
    if (key == "password" && cell->event->hook != core::Hook::PassdbLookup) {
        warn("ignoring field 'password': only on_passdb_lookup returns a password");
        return;
    }
    if (value == nullptr) {
        warn("ignoring field '" + key + "': value of class " + class_name +
             " (expected a String)");
        return;
    }
    std::string text(value, value_len);
    if (text.find('\0') != std::string::npos) {
        warn("ignoring field '" + key + "': value contains a NUL byte");
        return;
    }
    out.fields.emplace_back(std::move(key), std::move(text));
}

// Field values stay strings: "01234" is never turned into a number. Other
// values are converted the way auth-lua does (true "yes", false "no", nil "").
// Everything that can raise (to_s of a number allocates) happens here, on C
// data only; the C++ strings are made by set_field.
mrb_value auth_set(mrb_state *mrb, mrb_value self)
{
    mrb_value name, value;
    mrb_get_args(mrb, "So", &name, &value);
    EventCell *cell = cell_of(mrb, self);
    core::AuthOutput &out = output_of(mrb, cell, "set");
    const char *text = nullptr;
    size_t text_len = 0;
    const char *class_name = nullptr;
    if (mrb_string_p(value)) {
        text = RSTRING_PTR(value);
        text_len = static_cast<size_t>(RSTRING_LEN(value));
    } else if (mrb_nil_p(value)) {
        text = "";
    } else if (mrb_true_p(value)) {
        text = "yes";
        text_len = 3;
    } else if (mrb_false_p(value)) {
        text = "no";
        text_len = 2;
    } else if (mrb_integer_p(value) || mrb_float_p(value)) {
        value = mrb_obj_as_string(mrb, value);   // in the arena until we return
        text = RSTRING_PTR(value);
        text_len = static_cast<size_t>(RSTRING_LEN(value));
    } else {
        class_name = mrb_obj_classname(mrb, value);
    }
    set_field(vm_impl(mrb), cell, out,
              std::string_view(RSTRING_PTR(name), static_cast<size_t>(RSTRING_LEN(name))), text,
              text_len, class_name);
    return mrb_nil_value();
}

mrb_value result_success(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(info_of(mrb, self).success);
}
mrb_value result_reason(mrb_state *mrb, mrb_value self)
{
    return string_or_nil(mrb, info_of(mrb, self).reason);
}
// Shadow mode: what on_auth decided but was not applied ("reject",
// "tempfail", "delay"), or nil.
mrb_value result_shadowed(mrb_state *mrb, mrb_value self)
{
    return string_or_nil(mrb, info_of(mrb, self).shadowed);
}
// Failed for an internal error (a passdb backend down ...): not a
// wrong password, so nothing a brute-force count should see.
mrb_value result_internal_failure(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(info_of(mrb, self).internal_failure);
}

void define_request_readers(mrb_state *mrb, struct RClass *c)
{
    mrb_define_method(mrb, c, "user", auth_user, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "username", auth_username, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "domain", auth_domain, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "service", auth_service, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "remote_ip", auth_remote_ip, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "local_ip", auth_local_ip, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "remote_port", auth_remote_port, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "local_port", auth_local_port, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "mechanism", auth_mechanism, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "secured?", auth_secured, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "trusted?", auth_trusted, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "real_remote_ip", auth_real_remote_ip, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "client_id", auth_client_id, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "session_id", auth_session_id, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "[]", auth_field, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "fields", auth_fields, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "userdb_fields", auth_userdb_fields, MRB_ARGS_NONE());
}

mrb_value make_auth(mrb_state *mrb, EventCell *cell)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = cell->event->hook == core::Hook::AuthResult ? vm.auth_result_class
                                                                   : vm.auth_class;
    return wrap_event(mrb, c, &auth_type, cell);
}

} // namespace

// The classes come with Library::Auth (init_auth_classes), on first use; the
// registration methods live in Dovecot itself.
const EventBinding binding_Auth = {nullptr, "on_auth", Library::Auth, nullptr, make_auth};
const EventBinding binding_AuthResult = {nullptr, "on_auth_result", Library::Auth, nullptr,
                                         make_auth};
const EventBinding binding_PassdbLookup = {nullptr, "on_passdb_lookup", Library::Auth, nullptr,
                                           make_auth};
const EventBinding binding_PasswordVerify = {nullptr, "on_password_verify", Library::Auth,
                                             nullptr, make_auth};
const EventBinding binding_UserdbLookup = {nullptr, "on_userdb_lookup", Library::Auth, nullptr,
                                           make_auth};

void init_auth_classes(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = define_event_class(mrb, vm.dovecot_module, "Auth");
    define_request_readers(mrb, c);
    mrb_define_method(mrb, c, "password", auth_password, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "reject", auth_reject, MRB_ARGS_OPT(1));
    mrb_define_method(mrb, c, "tempfail", auth_tempfail, MRB_ARGS_OPT(1));
    mrb_define_method(mrb, c, "delay", auth_delay, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "set", auth_set, MRB_ARGS_REQ(2));
    vm.auth_class = c;

    struct RClass *r = define_event_class(mrb, vm.dovecot_module, "AuthResult");
    define_request_readers(mrb, r);
    mrb_define_method(mrb, r, "success?", result_success, MRB_ARGS_NONE());
    mrb_define_method(mrb, r, "reason", result_reason, MRB_ARGS_NONE());
    mrb_define_method(mrb, r, "internal_failure?", result_internal_failure, MRB_ARGS_NONE());
    mrb_define_method(mrb, r, "shadowed", result_shadowed, MRB_ARGS_NONE());
    vm.auth_result_class = r;
}

} // namespace dmr::mruby
