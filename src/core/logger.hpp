// Where core and bridge write log lines. The Dovecot adapter implements it on
// top of the session's (or auth request's) event, so Dovecot's prefix applies.
#pragma once

#include <string_view>

namespace dmr::core {

enum class LogLevel { Debug, Info, Warning, Error };

class Logger {
public:
    virtual ~Logger() = default;
    virtual void log(LogLevel level, std::string_view message) = 0;
};

} // namespace dmr::core
