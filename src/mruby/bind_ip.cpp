// Dovecot::IP: an IPv4 or IPv6 address, or a network (CIDR), as a value.
// Wraps core::IpNetwork (a host address is a full-length network). The Ruby
// half (inspect, to_str, parse-or-nil helpers) is in mrblib/state.rb.
#include "mruby/internal.hpp"

#include <cstring>
#include <new>

#include "core/ip.hpp"
#include "mruby/state.hpp"

namespace dmr::mruby {
namespace {

static_assert(std::is_trivially_copyable<core::IpNetwork>::value &&
                  std::is_trivially_destructible<core::IpNetwork>::value,
              "an IpNetwork lives in mruby-allocated memory freed with mrb_free");

const mrb_data_type ip_type = {"Dovecot::IP", mrb_free};

const core::IpNetwork &network_of(mrb_state *mrb, mrb_value self)
{
    auto *network = static_cast<core::IpNetwork *>(mrb_data_get_ptr(mrb, self, &ip_type));
    if (network == nullptr)
        mrb_raise(mrb, E_RUNTIME_ERROR, "uninitialized Dovecot::IP");
    return *network;
}

bool parse_network(std::string_view text, core::IpNetwork &out)
{
    auto parsed = core::IpNetwork::parse(text);
    if (!parsed)
        return false;
    out = *parsed;
    return true;
}

// A new Dovecot::IP holding `network`.
mrb_value wrap_network(mrb_state *mrb, const core::IpNetwork &network)
{
    gc_stress_point(mrb);
    struct RData *data = mrb_data_object_alloc(mrb, vm_impl(mrb).ip_class, nullptr, &ip_type);
    void *memory = mrb_malloc(mrb, sizeof(core::IpNetwork));   // may raise: data is still empty
    data->data = new (memory) core::IpNetwork(network);
    return mrb_obj_value(data);
}

// `value` as a network: a Dovecot::IP, or a String that parses. False otherwise.
bool network_from(mrb_state *mrb, mrb_value value, core::IpNetwork &out)
{
    if (mrb_obj_is_kind_of(mrb, value, vm_impl(mrb).ip_class)) {
        out = network_of(mrb, value);
        return true;
    }
    if (mrb_string_p(value))
        return parse_network(string_view_of(value), out);
    return false;
}

mrb_value ip_initialize(mrb_state *mrb, mrb_value self)
{
    mrb_value text;
    mrb_get_args(mrb, "o", &text);
    core::IpNetwork network(core::IpAddress(), 0);
    if (!network_from(mrb, text, network)) {
        text = mrb_obj_as_string(mrb, text);
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "invalid IP address or network: %v", text);
    }
    void *memory = DATA_PTR(self);
    if (memory == nullptr)
        memory = mrb_malloc(mrb, sizeof(core::IpNetwork));
    DATA_PTR(self) = new (memory) core::IpNetwork(network);
    DATA_TYPE(self) = &ip_type;
    return self;
}

mrb_value ip_parse(mrb_state *mrb, mrb_value)
{
    mrb_value text;
    mrb_get_args(mrb, "o", &text);
    core::IpNetwork network(core::IpAddress(), 0);
    if (!network_from(mrb, text, network))
        return mrb_nil_value();
    return wrap_network(mrb, network);
}

// The text form into a plain buffer; the std::string is gone when this returns.
void network_text(const core::IpNetwork &network, char *out, size_t size)
{
    std::string s = network.is_host() ? network.address().to_string() : network.to_string();
    std::snprintf(out, size, "%s", s.c_str());
}

mrb_value ip_to_s(mrb_state *mrb, mrb_value self);

// "#<Dovecot::IP 192.0.2.1>"
mrb_value ip_inspect(mrb_state *mrb, mrb_value self)
{
    mrb_value text = mrb_str_new_lit(mrb, "#<Dovecot::IP ");
    mrb_str_cat_str(mrb, text, ip_to_s(mrb, self));
    mrb_str_cat_lit(mrb, text, ">");
    return text;
}

mrb_value ip_to_s(mrb_state *mrb, mrb_value self)
{
    char text[64];   // the longest: a full IPv6 address with "/128"
    network_text(network_of(mrb, self), text, sizeof(text));
    return mrb_str_new_cstr(mrb, text);
}

mrb_value ip_address(mrb_state *mrb, mrb_value self)
{
    const core::IpNetwork &network = network_of(mrb, self);
    return wrap_network(mrb, core::IpNetwork(network.address(), network.address().bits()));
}

mrb_value ip_prefix(mrb_state *mrb, mrb_value self)
{
    mrb_int bits;
    mrb_get_args(mrb, "i", &bits);
    const core::IpNetwork &network = network_of(mrb, self);
    if (bits < 0 || bits > network.address().bits())
        mrb_raisef(mrb, E_ARGUMENT_ERROR, "prefix length must be 0..%d for an %s address",
                   network.address().bits(), network.is_v4() ? "IPv4" : "IPv6");
    // A network is never widened past what it is: prefix(n) of a /24 with n > 24 is the /24.
    int prefix = std::min(static_cast<int>(bits), network.prefix());
    return wrap_network(mrb, core::IpNetwork(network.address(), prefix));
}

mrb_value ip_prefix_length(mrb_state *mrb, mrb_value self)
{
    return mrb_fixnum_value(network_of(mrb, self).prefix());
}

mrb_value ip_include(mrb_state *mrb, mrb_value self)
{
    mrb_value other;
    mrb_get_args(mrb, "o", &other);
    core::IpNetwork network(core::IpAddress(), 0);
    if (!network_from(mrb, other, network))
        return mrb_false_value();
    return mrb_bool_value(network_of(mrb, self).contains(network));
}

mrb_value ip_v4(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(network_of(mrb, self).is_v4());
}

mrb_value ip_v6(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(!network_of(mrb, self).is_v4());
}

mrb_value ip_host(mrb_state *mrb, mrb_value self)
{
    return mrb_bool_value(network_of(mrb, self).is_host());
}

// == accepts a String too, so code written when remote_ip was a String
// (`s.remote_ip == "192.0.2.1"`) keeps working.
mrb_value ip_equal(mrb_state *mrb, mrb_value self)
{
    mrb_value other;
    mrb_get_args(mrb, "o", &other);
    core::IpNetwork network(core::IpAddress(), 0);
    if (!network_from(mrb, other, network))
        return mrb_false_value();
    return mrb_bool_value(network_of(mrb, self) == network);
}

// eql? (Hash keys) only between IPs, like 1.eql?(1.0) is false.
mrb_value ip_eql(mrb_state *mrb, mrb_value self)
{
    mrb_value other;
    mrb_get_args(mrb, "o", &other);
    if (!mrb_obj_is_kind_of(mrb, other, vm_impl(mrb).ip_class))
        return mrb_false_value();
    return mrb_bool_value(network_of(mrb, self) == network_of(mrb, other));
}

mrb_value ip_hash(mrb_state *mrb, mrb_value self)
{
    const core::IpNetwork &network = network_of(mrb, self);
    uint64_t h = 1469598103934665603ull;   // FNV-1a over family, prefix and bytes
    auto mix = [&h](uint8_t byte) { h = (h ^ byte) * 1099511628211ull; };
    mix(network.is_v4() ? 4 : 6);
    mix(static_cast<uint8_t>(network.prefix()));
    for (uint8_t byte : network.address().bytes())
        mix(byte);
    return mrb_int_value(mrb, static_cast<mrb_int>(h >> 2));
}

} // namespace

mrb_value make_ip_or_string(mrb_state *mrb, std::string_view text)
{
    ensure_library(mrb, Library::IP);
    core::IpNetwork network(core::IpAddress(), 0);
    if (parse_network(text, network))
        return wrap_network(mrb, network);
    return to_ruby(mrb, text);
}

void init_ip_class(mrb_state *mrb)
{
    Vm::Impl &vm = vm_impl(mrb);
    struct RClass *c = mrb_define_class_under(mrb, vm.dovecot_module, "IP", mrb->object_class);
    MRB_SET_INSTANCE_TT(c, MRB_TT_DATA);
    vm.ip_class = c;
    mrb_define_method(mrb, c, "initialize", ip_initialize, MRB_ARGS_REQ(1));
    mrb_define_class_method(mrb, c, "parse", ip_parse, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "to_s", ip_to_s, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "inspect", ip_inspect, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "address", ip_address, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "prefix", ip_prefix, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "prefix_length", ip_prefix_length, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "include?", ip_include, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "ipv4?", ip_v4, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "ipv6?", ip_v6, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "host?", ip_host, MRB_ARGS_NONE());
    mrb_define_method(mrb, c, "==", ip_equal, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "eql?", ip_eql, MRB_ARGS_REQ(1));
    mrb_define_method(mrb, c, "hash", ip_hash, MRB_ARGS_NONE());
}

} // namespace dmr::mruby
