// Plain values describing Dovecot events, built once by the adapter at the
// edge. Core and bridge never see a Dovecot structure.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dmr::core {

// Every hook a script can register for. Values index per-hook tables.
enum class Hook : unsigned {
    SessionStart,
    SessionEnd,
    MailboxOpen,
    ImapCommandBefore,   // once per IMAP command, before it reads its arguments
    ImapCommandAfter,    // once per IMAP command, after its tagged reply
    Pop3CommandBefore,   // once per POP3 command line
    Pop3CommandAfter,    // after the POP3 command's status line
    Auth,                // auth process, before the password is checked (policy stage)
    AuthResult,          // auth process, after every attempt; observe only
    PassdbLookup,        // authoritative passdb: returns the password (auth-lua parity)
    PasswordVerify,      // authoritative passdb: verifies a plaintext password
    UserdbLookup,        // authoritative userdb: returns userdb fields
    MessageRead,         // a client read a message's content (IMAP body fetch, POP3 RETR/TOP); observe only
    Count
};

const char *hook_name(Hook hook);

// Whether the hook can refuse something. Observe-only hooks ignore
// mruby_on_error: their failures are logged and the event continues.
bool hook_can_refuse(Hook hook);

struct Event;
// A client can always leave: IMAP LOGOUT and POP3 QUIT (before_command) are
// never refused, whatever the script or mruby_on_error says. Their handlers
// still run and see them; the Dispatcher ignores a refusal (one rule, for
// every protocol adapter).
bool always_allowed(const Event &event);

using Fields = std::vector<std::pair<std::string, std::string>>;

// Looks up a plugin setting for the session (userdb fields override plugin {}).
class SettingSource {
public:
    virtual ~SettingSource() = default;
    // Returns nullptr when unset.
    virtual const char *setting(const char *name) const = 0;
};

struct SessionInfo {
    std::string user;
    std::string service;     // "imap", "pop3", "lmtp" ...
    std::string remote_ip;   // "" when unknown (e.g. doveadm)
    std::string local_ip;
    uint16_t remote_port = 0;
    uint16_t local_port = 0;
    std::string session_id;
    bool secured = false;
    Fields userdb_fields;    // as Dovecot returned them, order kept
    const SettingSource *settings = nullptr;
};

// Counters Dovecot keeps for a session, reported at session end.
struct SessionStats {
    Fields counters;         // name -> decimal value, e.g. {"fetch_body", "3"}

    void add(const char *name, uint64_t value)
    {
        counters.emplace_back(name, std::to_string(value));
    }
};

struct MailboxInfo {
    std::string name;        // vname, e.g. "INBOX" or "Archive/2024"
    bool readonly = false;
};

// One IMAP or POP3 command. Every string is safe for a log line (no CR/LF,
// valid UTF-8): the adapter sanitizes at the edge.
struct CommandInfo {
    std::string name;        // upper case: "UID FETCH", "RETR"
    std::string tag;         // IMAP only
    std::string args;        // human-readable, literals shown as {size}
    std::string reply;       // after: "OK" / "NO" / "BAD" or "+OK" / "-ERR"
    std::string reply_text;  // after: the rest of the status line
    uint64_t duration_us = 0;
};

// A message whose content a client read: once per message per command
// (IMAP FETCH BODY[...]/BINARY[...]/RFC822[.TEXT], POP3 RETR/TOP); header-only
// fetches are not reads. Strings are safe for a log line (sanitized at the edge).
struct MessageInfo {
    std::string mailbox;        // vname, e.g. "INBOX"
    uint32_t uid = 0;
    std::string message_id;     // the first Message-ID header, trimmed; "" when none
    bool has_message_id = false;
};

// One authentication request as the auth process sees it (passdb or userdb
// lookup, or the end of an attempt). Strings as Dovecot has them.
struct AuthRequestInfo {
    std::string user;          // "alice@example.com"
    std::string service;       // "imap", "pop3", "smtp" ...
    std::string remote_ip;     // "" when unknown
    std::string local_ip;
    uint16_t remote_port = 0;
    uint16_t local_port = 0;
    std::string mechanism;     // "PLAIN", "LOGIN" ...; "" for userdb lookups
    bool secured = false;      // TLS, or a connection Dovecot trusts as secured
    std::string client_id;
    std::string session_id;
    Fields passdb_fields;      // extra fields set by earlier passdbs, order kept
    Fields userdb_fields;      // userdb fields so far
    std::string password;      // PasswordVerify only: the plaintext password
    // AuthResult only:
    bool success = false;
    std::string reason;        // why it failed ("password mismatch" ...); "" on success
    bool internal_failure = false;   // failed for an internal error (reason "internal failure"):
                                     // not the client's fault, so policies do not count it
};

// What the auth handlers asked for besides the verdict. Written by the
// runtime during the call; cleared by the dispatcher when the call failed, so
// a handler that raised half-way never applies half of its fields.
struct AuthOutput {
    uint32_t delay_ms = 0;     // the longest delay any handler asked for
    Fields fields;             // set(name, value) in call order; names already valid
    bool returned_true = false;   // a handler returned exactly `true`

    void clear() { *this = AuthOutput{}; }
};

// One event as handed to a runtime. Pointers are valid during the call only.
struct Event {
    Hook hook;
    const SessionInfo *session = nullptr;
    const SessionStats *stats = nullptr;
    const MailboxInfo *mailbox = nullptr;
    const CommandInfo *command = nullptr;
    const AuthRequestInfo *auth = nullptr;
    AuthOutput *auth_output = nullptr;   // Auth, PassdbLookup, PasswordVerify, UserdbLookup
    const MessageInfo *message = nullptr;   // MessageRead
};

} // namespace dmr::core
