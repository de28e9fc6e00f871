#include "core/text.hpp"

namespace dmr::core {

size_t utf8_sequence_length(std::string_view s, size_t i)
{
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
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

namespace {

std::string sanitize(std::string_view text, size_t max_bytes, bool double_backslash)
{
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() < max_bytes ? text.size() : max_bytes);
    for (size_t i = 0; i < text.size();) {
        if (out.size() >= max_bytes) {
            out += "...";
            break;
        }
        // Printable ASCII runs (the common case) are copied in one piece.
        size_t room = max_bytes - out.size();
        size_t end = i;
        while (end < text.size() && end - i < room) {
            unsigned char b = static_cast<unsigned char>(text[end]);
            if (b < 0x20 || b >= 0x7F || (b == '\\' && double_backslash))
                break;
            end++;
        }
        if (end > i) {
            out.append(text.data() + i, end - i);
            i = end;
            continue;
        }
        unsigned char c = static_cast<unsigned char>(text[i]);
        size_t len = utf8_sequence_length(text, i);
        if (len == 1 && c >= 0x20 && c != 0x7F && (c != '\\' || !double_backslash)) {
            out += static_cast<char>(c);
        } else if (len == 1 && c == '\\') {
            out += "\\\\";
        } else if (len > 1) {
            out.append(text.substr(i, len));
            i += len;
            continue;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
        i++;
    }
    return out;
}

} // namespace

std::string sanitize_for_log(std::string_view text, size_t max_bytes)
{
    return sanitize(text, max_bytes, true);
}

std::string sanitize_command_args(std::string_view text, size_t max_bytes)
{
    return sanitize(text, max_bytes, false);
}

std::string sanitize_reply_text(std::string_view text)
{
    std::string out;
    for (char ch : text) {
        if (out.size() >= 200)
            break;
        unsigned char c = static_cast<unsigned char>(ch);
        out += (c < 0x20 || c == 0x7F) ? ' ' : ch;
    }
    return out;
}

} // namespace dmr::core
