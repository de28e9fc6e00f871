// Plain values describing Dovecot events, built once by the adapter at the
// edge. Core and bridge never see a Dovecot structure. The hook table
// (DMR_HOOKS, at the end) names every event, whether it can refuse, and the
// payload it carries; docs/architecture.md "How to add an event".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dmr::core {

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
    // The login process trusts the connection: it comes from
    // login_trusted_networks or from the host itself (remote = local
    // address). Dovecot 2.3 tells only for plain-text connections (the
    // request's "secured" without "=tls"); over TLS this stays false.
    bool trusted = false;
    // The connection's own address when a trusted proxy forwarded the
    // client's (IMAP ID x-originating-ip, XCLIENT): remote_ip is then the
    // client's. "" when Dovecot did not send one.
    std::string real_remote_ip;
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
    std::string shadowed;      // what on_auth decided that shadow mode did not apply
                               // (AuthOutput::shadowed); "" when nothing was shadowed
};

// What the auth handlers asked for besides the verdict. Written by the
// runtime during the call; cleared by the dispatcher when the call failed, so
// a handler that raised half-way never applies half of its fields.
struct AuthOutput {
    uint32_t delay_ms = 0;     // the longest delay any handler asked for
    Fields fields;             // set(name, value) in call order; names already valid
    bool returned_true = false;   // a handler returned exactly `true`
    // Shadow mode: the decision the dispatcher did not apply ("reject",
    // "tempfail", or "delay" for a tarpit alone); "" when none was shadowed.
    std::string shadowed;

    void clear() { *this = AuthOutput{}; }
};


// --- payloads -------------------------------------------------------------------
// What an event carries besides its session, one struct per kind. Members
// are references: an event cannot be made without its data, so no reader
// ever meets a missing one. They are valid during the call only.
struct SessionPayload {        // session_start, session_end
    const SessionStats *stats = nullptr;   // session_end: Dovecot's counters; null when none
};
struct MailboxPayload {
    const MailboxInfo &mailbox;
};
struct CommandPayload {        // IMAP and POP3, before and after
    const CommandInfo &command;
};
struct MessagePayload {
    const MessageInfo &message;
};
struct AuthPayload {           // the auth hooks that answer: policy stage and authoritative lookups
    const AuthRequestInfo &request;
    AuthOutput &output;
};
struct AuthResultPayload {     // observe only: nothing to answer
    const AuthRequestInfo &request;
};

// --- the hook table -------------------------------------------------------------
// One row per hook a script can register for: its identifier, its name (in
// logs and in Ruby's Dovecot.on_<name>), whether it can refuse, its payload.
// Observe-only hooks ignore mruby_on_error: their failures are logged and
// the event continues. The bridge needs one binding per row
// (src/mruby/internal.hpp, EventBinding): a row without one does not link.
#define DMR_HOOKS(X)                                                                              \
    X(SessionStart, "session_start", true, SessionPayload)                                        \
    X(SessionEnd, "session_end", false, SessionPayload)                                           \
    X(MailboxOpen, "mailbox_open", true, MailboxPayload)                                          \
    /* once per IMAP command, before it reads its arguments / after its tagged reply */          \
    X(ImapCommandBefore, "imap_before_command", true, CommandPayload)                            \
    X(ImapCommandAfter, "imap_after_command", false, CommandPayload)                             \
    /* once per POP3 command line / after its status line */                                      \
    X(Pop3CommandBefore, "pop3_before_command", true, CommandPayload)                            \
    X(Pop3CommandAfter, "pop3_after_command", false, CommandPayload)                             \
    /* auth process, before the password is checked (policy stage) */                            \
    X(Auth, "auth", true, AuthPayload)                                                            \
    /* auth process, after every attempt */                                                       \
    X(AuthResult, "auth_result", false, AuthResultPayload)                                        \
    /* authoritative passdb: returns the password (auth-lua parity) / verifies a plaintext one */ \
    X(PassdbLookup, "passdb_lookup", true, AuthPayload)                                           \
    X(PasswordVerify, "password_verify", true, AuthPayload)                                       \
    /* authoritative userdb: returns userdb fields */                                             \
    X(UserdbLookup, "userdb_lookup", true, AuthPayload)                                           \
    /* a client read a message's content (IMAP body fetch, POP3 RETR/TOP) */                      \
    X(MessageRead, "message_read", false, MessagePayload)

// Values index per-hook tables (handler lists, bindings).
enum class Hook : unsigned {
#define DMR_HOOK_ENUM(id, name, refuses, payload) id,
    DMR_HOOKS(DMR_HOOK_ENUM)
#undef DMR_HOOK_ENUM
    Count
};

constexpr size_t kHookCount = static_cast<size_t>(Hook::Count);

namespace detail {
struct HookRow {
    const char *name;
    bool can_refuse;
};
inline constexpr HookRow hook_rows[] = {
#define DMR_HOOK_ROW(id, name, refuses, payload) {name, refuses},
    DMR_HOOKS(DMR_HOOK_ROW)
#undef DMR_HOOK_ROW
};
} // namespace detail

inline const char *hook_name(Hook hook)
{
    return hook < Hook::Count ? detail::hook_rows[static_cast<size_t>(hook)].name : "?";
}

// Whether the hook can refuse something.
inline bool hook_can_refuse(Hook hook)
{
    return hook < Hook::Count && detail::hook_rows[static_cast<size_t>(hook)].can_refuse;
}

// The payload type of a hook: PayloadOf<Hook::MailboxOpen> is MailboxPayload.
template <Hook H>
struct HookPayload;
#define DMR_HOOK_PAYLOAD(id, name, refuses, payload)                                             \
    template <>                                                                                  \
    struct HookPayload<Hook::id> {                                                               \
        using type = payload;                                                                    \
    };
DMR_HOOKS(DMR_HOOK_PAYLOAD)
#undef DMR_HOOK_PAYLOAD
template <Hook H>
using PayloadOf = typename HookPayload<H>::type;

// --- the event ------------------------------------------------------------------
// One event as handed to a runtime: its hook and the payload of that hook,
// made together by make<H>() so they cannot disagree. The payload variant
// has one alternative per hook (index = hook), so a reader asks for a
// payload type and gets it or null, never a wrong or missing member.
class Event {
    template <size_t... I>
    static std::variant<PayloadOf<static_cast<Hook>(I)>...> variant_of(std::index_sequence<I...>);

public:
    using Payload = decltype(variant_of(std::make_index_sequence<kHookCount>()));

    // Event::make<Hook::MailboxOpen>(mailbox): the payload's members in order.
    template <Hook H, class... Args>
    static Event make(Args &&...args)
    {
        return Event(H, Payload(std::in_place_index<static_cast<size_t>(H)>,
                                PayloadOf<H>{std::forward<Args>(args)...}));
    }

    // For a hook chosen at run time among those carrying a P (tests, a
    // caller serving several hooks): throws std::invalid_argument when
    // `hook` carries another payload.
    template <class P, class... Args>
    static Event make_any(Hook hook, Args &&...args)
    {
        std::optional<Event> made;
        make_any_of<P>(made, hook, std::make_index_sequence<kHookCount>(), args...);
        if (!made)
            throw std::invalid_argument(std::string("no such payload for hook ") +
                                        hook_name(hook));
        return std::move(*made);
    }

    // The payload when this hook carries a P (SessionPayload for both session
    // hooks ...), else null.
    template <class P>
    const P *payload() const
    {
        return payload_if<P>(std::make_index_sequence<kHookCount>());
    }

    // The auth hooks that answer (AuthPayload): where their answer goes.
    AuthOutput *auth_output() const
    {
        const AuthPayload *auth = payload<AuthPayload>();
        return auth == nullptr ? nullptr : &auth->output;
    }

    const Hook hook;
    // Mail events (all but the auth hooks): the session, filled in by the
    // session port before a runtime sees the event (MailSession::dispatch).
    const SessionInfo *session = nullptr;

private:
    Event(Hook h, Payload payload) : hook(h), payload_(std::move(payload)) {}

    template <class P, size_t I, class... Args>
    static bool make_if(std::optional<Event> &made, Args &...args)
    {
        if constexpr (std::is_same_v<P, PayloadOf<static_cast<Hook>(I)>>) {
            made.emplace(make<static_cast<Hook>(I)>(args...));
            return true;
        } else {
            return false;
        }
    }

    template <class P, size_t... I, class... Args>
    static void make_any_of(std::optional<Event> &made, Hook hook, std::index_sequence<I...>,
                            Args &...args)
    {
        (void)((static_cast<size_t>(hook) == I && make_if<P, I>(made, args...)) || ...);
    }

    template <class P, size_t I>
    const P *alternative() const
    {
        if constexpr (std::is_same_v<P, PayloadOf<static_cast<Hook>(I)>>)
            return std::get_if<I>(&payload_);
        else
            return nullptr;
    }

    template <class P, size_t... I>
    const P *payload_if(std::index_sequence<I...>) const
    {
        const P *found = nullptr;
        ((found = found != nullptr ? found : alternative<P, I>()), ...);
        return found;
    }

    Payload payload_;
};

} // namespace dmr::core
