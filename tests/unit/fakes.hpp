// Test doubles shared by the unit tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/events.hpp"
#include "core/logger.hpp"

namespace dmr::testing {

class RecordingLogger final : public core::Logger {
public:
    void log(core::LogLevel level, std::string_view message) override
    {
        lines.emplace_back(level, std::string(message));
    }
    // All messages joined by newlines, for substring assertions.
    std::string text() const
    {
        std::string out;
        for (const auto &line : lines)
            out += line.second + "\n";
        return out;
    }
    size_t count(core::LogLevel level) const
    {
        size_t n = 0;
        for (const auto &line : lines)
            n += line.first == level;
        return n;
    }
    std::vector<std::pair<core::LogLevel, std::string>> lines;

    // Named events, logged with a line (log_event) or only emitted (emit).
    void log_event(core::LogLevel level, std::string_view message,
                   const core::LogEvent &event) override
    {
        log(level, message);
        events.push_back({event, true});
    }
    void emit(std::string_view, const core::LogEvent &event) override
    {
        events.push_back({event, false});
    }
    struct Recorded {
        core::LogEvent event;
        bool logged;   // with a log line of its own
    };
    std::vector<Recorded> events;
    // The events named `name`.
    std::vector<core::LogEvent> named(const std::string &name) const
    {
        std::vector<core::LogEvent> out;
        for (const Recorded &r : events)
            if (r.event.name == name)
                out.push_back(r.event);
        return out;
    }
};

// A string field of a LogEvent; "" when absent.
inline std::string field_of(const core::LogEvent &event, const std::string &key)
{
    for (const auto &[k, v] : event.strings)
        if (k == key)
            return v;
    return "";
}

class MapSettings final : public core::SettingSource {
public:
    const char *setting(const char *name) const override
    {
        for (const auto &[key, value] : values)
            if (key == name)
                return value.c_str();
        return nullptr;
    }
    std::vector<std::pair<std::string, std::string>> values;
};

} // namespace dmr::testing
