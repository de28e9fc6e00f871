// The URL forms of the LMDB and Redis backends (store/spec.hpp).
#include "store/spec.hpp"

#include <cstdlib>

#include "core/settings.hpp"

namespace dmr::store {
namespace {

// "a=1&b=2" -> calls apply(name, value) for each; false stops with an error.
template <class Apply>
bool parse_query(std::string_view query, std::string &error, Apply &&apply)
{
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (pair.empty())
            continue;
        size_t eq = pair.find('=');
        std::string_view name = pair.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
        if (!apply(name, value)) {
            if (error.empty())
                error = "bad store option '" + std::string(pair) + "'";
            return false;
        }
    }
    return true;
}

bool parse_int(std::string_view text, int base, long max, long &out)
{
    std::string copy(text);
    char *end = nullptr;
    long value = std::strtol(copy.c_str(), &end, base);
    if (copy.empty() || *end != '\0' || value < 0 || value > max)
        return false;
    out = value;
    return true;
}

bool parse_bool(std::string_view text, bool &out)
{
    if (text == "yes" || text == "1" || text == "true") {
        out = true;
        return true;
    }
    if (text == "no" || text == "0" || text == "false") {
        out = false;
        return true;
    }
    return false;
}

} // namespace

bool parse_lmdb_spec(std::string_view rest, LmdbOptions &options, std::string &error)
{
    size_t q = rest.find('?');
    options.dir = std::string(rest.substr(0, q));
    if (options.dir.empty()) {
        error = "lmdb store needs a directory: lmdb:/var/lib/dovecot/mruby";
        return false;
    }
    std::string_view query = q == std::string_view::npos ? "" : rest.substr(q + 1);
    bool ok = parse_query(query, error, [&](std::string_view name, std::string_view value) {
        long number = 0;
        if (name == "map_size") {
            auto bytes = core::parse_size_bytes(value);
            if (!bytes || *bytes < (1u << 20)) {
                error = "lmdb map_size must be at least 1M";
                return false;
            }
            options.map_size = *bytes;
            return true;
        }
        if (name == "mode" && parse_int(value, 8, 0777, number)) {
            options.mode = static_cast<unsigned>(number);
            return true;
        }
        if (name == "sync")
            return parse_bool(value, options.sync);
        return false;
    });
    return ok;
}

namespace {

// The options every Redis form accepts after '?'.
bool apply_redis_option(RedisOptions &options, std::string_view name, std::string_view value,
                        std::string &error)
{
    long number = 0;
    if (name == "db" && parse_int(value, 10, 1 << 20, number)) {
        options.db = static_cast<int>(number);
        return true;
    }
    if (name == "password") {
        options.password = std::string(value);
        return true;
    }
    if (name == "timeout" || name == "connect_timeout") {
        auto ms = core::parse_duration_ms(value);
        if (!ms || *ms == 0 || *ms > 10000) {
            error = "redis " + std::string(name) + " must be between 1ms and 10s";
            return false;
        }
        (name == "timeout" ? options.timeout_ms : options.connect_timeout_ms) = static_cast<int>(*ms);
        return true;
    }
    if (name == "clock" && (value == "server" || value == "client")) {
        options.server_clock = value == "server";
        return true;
    }
    if (name == "prefix") {
        options.prefix = std::string(value);
        return true;
    }
    return false;
}

} // namespace

bool parse_redis_spec(std::string_view rest, RedisOptions &options, std::string &error)
{
    size_t q = rest.find('?');
    std::string_view query = q == std::string_view::npos ? "" : rest.substr(q + 1);
    std::string_view authority = rest.substr(0, q);
    std::string_view path;
    if (size_t slash = authority.find('/'); slash != std::string_view::npos) {
        path = authority.substr(slash + 1);
        authority = authority.substr(0, slash);
    }
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);   // [user]:password
        size_t colon = userinfo.find(':');
        options.password = std::string(colon == std::string_view::npos ? userinfo
                                                                       : userinfo.substr(colon + 1));
        authority = authority.substr(at + 1);
    }
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {   // [::1]:6379
        size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            error = "bad redis address";
            return false;
        }
        options.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                error = "bad redis address";
                return false;
            }
            port = after.substr(1);
        }
    } else {
        size_t colon = authority.find(':');
        options.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos)
            port = authority.substr(colon + 1);
    }
    long number = 0;
    if (options.host.empty()) {
        error = "redis store needs a host: redis://127.0.0.1:6379/0";
        return false;
    }
    if (!port.empty()) {
        if (!parse_int(port, 10, 65535, number) || number == 0) {
            error = "bad redis port '" + std::string(port) + "'";
            return false;
        }
        options.port = static_cast<int>(number);
    }
    if (!path.empty()) {
        if (!parse_int(path, 10, 1 << 20, number)) {
            error = "bad redis database '" + std::string(path) + "'";
            return false;
        }
        options.db = static_cast<int>(number);
    }
    return parse_query(query, error, [&](std::string_view name, std::string_view value) {
        return apply_redis_option(options, name, value, error);
    });
}

bool parse_redis_sentinel_spec(std::string_view rest, RedisOptions &options, std::string &error)
{
    const char *usage = "redis-sentinel://HOST:PORT,HOST:PORT/MASTERNAME";
    size_t q = rest.find('?');
    std::string_view query = q == std::string_view::npos ? "" : rest.substr(q + 1);
    std::string_view authority = rest.substr(0, q);
    size_t slash = authority.find('/');
    if (slash == std::string_view::npos || slash + 1 == authority.size()) {
        error = std::string("redis-sentinel store needs a master name: ") + usage;
        return false;
    }
    std::string_view name = authority.substr(slash + 1);
    authority = authority.substr(0, slash);
    if (name.find_first_of(" /:@") != std::string_view::npos) {
        error = "bad redis-sentinel master name '" + std::string(name) + "'";
        return false;
    }
    options.master_name = std::string(name);
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);   // [user]:password of the master
        size_t colon = userinfo.find(':');
        options.password = std::string(colon == std::string_view::npos ? userinfo
                                                                       : userinfo.substr(colon + 1));
        authority = authority.substr(at + 1);
    }
    while (true) {
        size_t comma = authority.find(',');
        std::string_view one = authority.substr(0, comma);
        RedisOptions::Address address;
        std::string_view port;
        if (!one.empty() && one.front() == '[') {   // [::1]:26379
            size_t close = one.find(']');
            if (close == std::string_view::npos ||
                (close + 1 < one.size() && one[close + 1] != ':')) {
                error = "bad redis-sentinel address '" + std::string(one) + "'";
                return false;
            }
            address.host = std::string(one.substr(1, close - 1));
            if (close + 1 < one.size())
                port = one.substr(close + 2);
        } else {
            size_t colon = one.find(':');
            address.host = std::string(one.substr(0, colon));
            if (colon != std::string_view::npos)
                port = one.substr(colon + 1);
        }
        if (address.host.empty()) {
            error = std::string("redis-sentinel store needs sentinel addresses: ") + usage;
            return false;
        }
        long number = 0;
        if (!port.empty()) {   // else Sentinel's default port, 26379
            if (!parse_int(port, 10, 65535, number) || number == 0) {
                error = "bad redis-sentinel port '" + std::string(port) + "'";
                return false;
            }
            address.port = static_cast<int>(number);
        }
        options.sentinels.push_back(std::move(address));
        if (comma == std::string_view::npos)
            break;
        authority = authority.substr(comma + 1);
    }
    return parse_query(query, error, [&](std::string_view name, std::string_view value) {
        if (name == "sentinel_password") {
            options.sentinel_password = std::string(value);
            return true;
        }
        return apply_redis_option(options, name, value, error);
    });
}

bool parse_redis_unix_spec(std::string_view rest, RedisOptions &options, std::string &error)
{
    size_t q = rest.find('?');
    options.unix_path = std::string(rest.substr(0, q));
    if (options.unix_path.empty() || options.unix_path.front() != '/') {
        error = "redis unix socket needs an absolute path: redis+unix:///run/redis/redis.sock?db=0";
        return false;
    }
    std::string_view query = q == std::string_view::npos ? "" : rest.substr(q + 1);
    return parse_query(query, error, [&](std::string_view name, std::string_view value) {
        return apply_redis_option(options, name, value, error);
    });
}

bool merge_redis_password(RedisOptions &options, const std::string &separate, std::string &error)
{
    if (separate.empty())
        return true;
    if (!options.password.empty()) {
        error = "the redis URL has a password and mruby_store_password (or its file) gives "
                "one too: keep only the separate setting";
        return false;
    }
    options.password = separate;
    return true;
}

} // namespace dmr::store
