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
};

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
