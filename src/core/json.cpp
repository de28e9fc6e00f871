#include "core/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dmr::core {
namespace {

// Length of the valid UTF-8 sequence at s[i] (2..4), or 0 if it is invalid.
size_t utf8_multibyte_length(std::string_view s, size_t i)
{
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    size_t len;
    unsigned cp;
    unsigned min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (i + len > s.size())
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((byte(i + k) & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

} // namespace

void append_json_string(std::string &out, std::string_view text)
{
    static const char hex[] = "0123456789abcdef";
    out += '"';
    size_t run = 0;   // start of the pending run of bytes copied as they are
    size_t i = 0;
    auto flush = [&](size_t end) {
        if (end > run)
            out.append(text.data() + run, end - run);
    };
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_multibyte_length(text, i);
            if (len != 0) {
                i += len;
                continue;
            }
            flush(i);
            out += "\xEF\xBF\xBD";   // U+FFFD for a byte that is not UTF-8
            run = ++i;
            continue;
        }
        flush(i);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
        run = ++i;
    }
    flush(i);
    out += '"';
}

void JsonWriter::value_prefix()
{
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (depth_ > 0 && depth_ <= kMaxDepth) {
        if (!first_[depth_ - 1])
            out_ += ',';
        first_[depth_ - 1] = false;
    }
}

void JsonWriter::key(std::string_view name)
{
    value_prefix();
    append_json_string(out_, name);
    out_ += ':';
    after_key_ = true;
}

void JsonWriter::integer(int64_t value)
{
    value_prefix();
    char buffer[24];
    int n = std::snprintf(buffer, sizeof(buffer), "%lld", static_cast<long long>(value));
    out_.append(buffer, static_cast<size_t>(n));
}

void JsonWriter::number(double value)
{
    value_prefix();
    if (!std::isfinite(value)) {
        out_ += "null";
        return;
    }
    // The shortest of 15 or 17 digits that reads back as the same double.
    char buffer[32];
    int n = std::snprintf(buffer, sizeof(buffer), "%.15g", value);
    if (std::strtod(buffer, nullptr) != value)
        n = std::snprintf(buffer, sizeof(buffer), "%.17g", value);
    out_.append(buffer, static_cast<size_t>(n));
}

} // namespace dmr::core
