#include "shared_redis.hpp"

#include <memory>

namespace dmr::store::test {

RedisServer *shared_redis(std::string &why)
{
    static std::string error;
    static std::unique_ptr<RedisServer> server = [] {
        auto s = std::make_unique<RedisServer>();
        if (!s->start(error))
            s.reset();
        return s;
    }();
    why = error;
    return server.get();
}

std::string unique_prefix()
{
    static int next = 0;
    return "t" + std::to_string(++next) + ":";
}

} // namespace dmr::store::test
