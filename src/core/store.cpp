#include "core/store.hpp"

namespace dmr::core {

const char *status_code_name(Status::Code code)
{
    switch (code) {
    case Status::Code::Ok: return "ok";
    case Status::Code::Unavailable: return "unavailable";
    case Status::Code::Full: return "full";
    case Status::Code::Invalid: return "invalid";
    case Status::Code::Internal: return "internal";
    }
    return "?";
}

} // namespace dmr::core
