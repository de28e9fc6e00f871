#include "core/json.hpp"

#include "core/text.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dmr::core {
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
            size_t len = utf8_sequence_length(text, i);
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
