#include "store/redis_sentinel.hpp"

#include <hiredis/hiredis.h>

namespace dmr::store::detail {
namespace {

bool starts_with(std::string_view text, std::string_view prefix)
{
    return text.substr(0, prefix.size()) == prefix;
}

bool is_text(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS;
}

std::string_view text_of(const redisReply *reply) { return std::string_view(reply->str, reply->len); }

} // namespace

std::string sentinel_master_address(const redisReply *reply, std::string_view master_name,
                                    RedisTarget &out)
{
    if (reply->type == REDIS_REPLY_NIL)
        return "no master named " + std::string(master_name);
    if (reply->type == REDIS_REPLY_ERROR)
        return std::string(text_of(reply));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || !is_text(reply->element[0]) ||
        !is_text(reply->element[1]))
        return "unexpected reply to SENTINEL get-master-addr-by-name";
    std::string_view host = text_of(reply->element[0]);
    std::string_view port = text_of(reply->element[1]);
    long number = 0;
    for (char c : port) {
        if (c < '0' || c > '9' || number > 65535) {
            number = -1;
            break;
        }
        number = number * 10 + (c - '0');
    }
    if (host.empty() || port.empty() || number <= 0 || number > 65535)
        return "bad master address '" + std::string(host) + ":" + std::string(port) + "'";
    out.host = std::string(host);
    out.port = static_cast<int>(number);
    out.unix_path.clear();
    return std::string();
}

std::string role_not_master(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        return "ROLE: " + std::string(text_of(reply));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 || !is_text(reply->element[0]))
        return "unexpected reply to ROLE";
    std::string_view role = text_of(reply->element[0]);
    if (role == "master")
        return std::string();
    return "role " + std::string(role);
}

Status cluster_redirect_status(std::string_view message)
{
    if (!starts_with(message, "MOVED ") && !starts_with(message, "ASK "))
        return Status();
    return Status::error(Status::Code::Internal,
                         "redis: " + std::string(message) +
                             ": the server is a Redis Cluster node, and Redis Cluster is not "
                             "supported (use one master, Sentinel, or a cluster proxy)");
}

bool is_readonly_error(std::string_view message) { return starts_with(message, "READONLY"); }

} // namespace dmr::store::detail
