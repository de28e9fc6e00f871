// A failure of a policy script, described once by the bridge so it can be
// logged once, with file, line and backtrace, by whoever applies the policy.
#pragma once

#include <string>
#include <vector>

namespace dmr::core {

struct ScriptError {
    enum class Kind {
        Load,        // the script file is missing or unreadable
        Compile,     // syntax error
        Exception,   // a Ruby exception escaped a handler or the script body
        MemoryLimit, // mruby_memory_limit exhausted
        Timeout,     // mruby_timeout exceeded
        Disabled,    // the runtime was disabled by an earlier failure
    };

    Kind kind = Kind::Exception;
    std::string message;        // "undefined method 'foo' (NoMethodError)"
    std::string file;           // may be empty when unknown
    int line = 0;
    std::vector<std::string> backtrace;

    // "policy.rb:12: undefined method 'foo' (NoMethodError)" plus backtrace
    // lines; never contains CR/LF from the message itself.
    std::string describe() const;
};

const char *script_error_kind_name(ScriptError::Kind kind);

} // namespace dmr::core
