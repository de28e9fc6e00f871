#include "dovecot/dovecot.hpp"

namespace dmr::dovecot {

void EventLogger::log(core::LogLevel level, std::string_view message)
{
    int len = static_cast<int>(message.size());
    switch (level) {
    case core::LogLevel::Debug:
        e_debug(event_, "%.*s", len, message.data());
        break;
    case core::LogLevel::Info:
        e_info(event_, "%.*s", len, message.data());
        break;
    case core::LogLevel::Warning:
        e_warning(event_, "%.*s", len, message.data());
        break;
    case core::LogLevel::Error:
        e_error(event_, "%.*s", len, message.data());
        break;
    }
}

} // namespace dmr::dovecot
