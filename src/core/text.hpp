// Text helpers for anything that reaches a log line or a protocol reply.
#pragma once

#include <string>
#include <string_view>

namespace dmr::core {

// Length (1..4) of the valid UTF-8 sequence starting at text[i], or 0 when the
// bytes there are not valid UTF-8 (overlong forms and surrogates included).
size_t utf8_sequence_length(std::string_view text, size_t i);

// Control characters (CR, LF, NUL, ...) become "\xNN" escapes and invalid UTF-8
// bytes become "\xNN" too, so a hostile value can never split or corrupt a
// log line. At most `max_bytes` of output, then "...".
std::string sanitize_for_log(std::string_view text, size_t max_bytes = 4096);

// For a command's arguments as scripts see them (cmd.args): as
// sanitize_for_log, but a backslash stays one backslash, as the client sent
// it: `STORE 1 +FLAGS (\Flagged)` gives "1 +FLAGS (\\Flagged)" in Ruby
// source (one backslash in the string). Control bytes and invalid UTF-8
// still become "\xNN" text, as in the log.
std::string sanitize_command_args(std::string_view text, size_t max_bytes);

// For IMAP/POP3 reply text: control characters become spaces, at most 200 bytes.
std::string sanitize_reply_text(std::string_view text);

} // namespace dmr::core
