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

void EventLogger::log_event(core::LogLevel level, std::string_view message,
                            const core::LogEvent &log_event)
{
    struct event_passthrough *e = event_create_passthrough(event_)->set_name(
        log_event.name.c_str());
    for (const auto &[key, value] : log_event.strings)
        e->add_str(key.c_str(), value.c_str());
    for (const auto &[key, value] : log_event.numbers)
        e->add_int(key.c_str(), value);
    EventLogger(e->event()).log(level, message);
}

namespace {

class ProcessLogger final : public core::Logger {
public:
    void log(core::LogLevel level, std::string_view message) override
    {
        int len = static_cast<int>(message.size());
        switch (level) {
        case core::LogLevel::Debug:
            i_debug("%.*s", len, message.data());
            break;
        case core::LogLevel::Info:
            i_info("%.*s", len, message.data());
            break;
        case core::LogLevel::Warning:
            i_warning("%.*s", len, message.data());
            break;
        case core::LogLevel::Error:
            i_error("%.*s", len, message.data());
            break;
        }
    }
};

} // namespace

core::Logger &process_logger()
{
    static ProcessLogger logger;   // trivially destructible state: safe at exit
    return logger;
}

} // namespace dmr::dovecot
