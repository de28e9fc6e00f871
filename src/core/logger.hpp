// Where core and bridge write log lines. The Dovecot adapter implements it on
// top of the session's (or auth request's) event, so Dovecot's prefix applies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dmr::core {

enum class LogLevel { Debug, Info, Warning, Error };

// A named event with fields (Dovecot: a passthrough event with set_name), so
// that metric {} blocks and event exporters can count and export it.
struct LogEvent {
    std::string name;                                          // "mruby_script_fallback"
    std::vector<std::pair<std::string, std::string>> strings;
    std::vector<std::pair<std::string, int64_t>> numbers;
};

class Logger {
public:
    virtual ~Logger() = default;
    virtual void log(LogLevel level, std::string_view message) = 0;
    // The line is also the named event `event`; loggers without events log the line only.
    virtual void log_event(LogLevel level, std::string_view message, const LogEvent &event)
    {
        (void)event;
        log(level, message);
    }
    // Only the named event, for metrics: Dovecot sends it at debug level
    // (metric {} filters and log_debug see it, the log stays quiet);
    // loggers without events ignore it.
    virtual void emit(std::string_view message, const LogEvent &event)
    {
        (void)message;
        (void)event;
    }
};

} // namespace dmr::core
