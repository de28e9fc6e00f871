// A JSON reader for scripts (JSON.parse, src/mruby/bind_json.cpp): parses a
// text with nlohmann-json's SAX interface into a flat list of tokens, so that
// the bridge can build Ruby values from plain data after this C++ code has
// returned (mruby raises with longjmp; see docs/architecture.md). Limits: a
// maximum input size, a maximum nesting depth, and a stop check called while
// parsing (the watchdog's deadline).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dmr::core {

struct JsonToken {
    enum class Kind : uint8_t {
        Null, False, True, Integer, Float, String, Key, BeginObject, EndObject, BeginArray, EndArray,
    };
    Kind kind;
    uint32_t length;   // String/Key: bytes in JsonParse::strings
    union {
        int64_t integer;   // Integer
        double number;     // Float
        size_t offset;     // String/Key: where in JsonParse::strings
    };
};

struct JsonParseLimits {
    size_t max_bytes = 1u << 20;
    int max_depth = 100;
    bool (*should_stop)() = nullptr;   // polled while parsing; true ends it (Error::Stopped)
};

struct JsonParse {
    enum class Error { None, Syntax, TooDeep, TooLarge, Stopped, NoMemory };
    Error error = Error::None;
    std::string message;   // for an error: what and where (1-based byte position)
    size_t position = 0;   // for Syntax: the byte offset (1-based) where it failed
    std::vector<JsonToken> tokens;
    std::string strings;   // the decoded (UTF-8) strings and keys, back to back
};

// Integers beyond int64_t become Floats (as nlohmann reads them: a
// non-negative integer up to 2^64-1 as unsigned, larger ones as double).
// Strings are valid UTF-8 (the reader rejects ill-formed bytes and lone
// surrogate escapes).
JsonParse parse_json(std::string_view text, const JsonParseLimits &limits);

} // namespace dmr::core
