#include "core/script_error.hpp"

#include "core/text.hpp"

namespace dmr::core {

const char *script_error_kind_name(ScriptError::Kind kind)
{
    switch (kind) {
    case ScriptError::Kind::Load: return "load error";
    case ScriptError::Kind::Compile: return "syntax error";
    case ScriptError::Kind::Exception: return "exception";
    case ScriptError::Kind::MemoryLimit: return "memory limit exceeded";
    case ScriptError::Kind::Timeout: return "timeout";
    case ScriptError::Kind::Disabled: return "disabled";
    }
    return "?";
}

std::string ScriptError::describe() const
{
    std::string out;
    if (!file.empty()) {
        out += file;
        if (line > 0)
            out += ":" + std::to_string(line);
        out += ": ";
    }
    out += script_error_kind_name(kind);
    out += ": ";
    out += sanitize_for_log(message);
    if (!backtrace.empty()) {
        out += " [backtrace: ";
        for (size_t i = 0; i < backtrace.size(); i++) {
            if (i > 0)
                out += " <- ";
            out += sanitize_for_log(backtrace[i]);
        }
        out += "]";
    }
    return out;
}

} // namespace dmr::core
