// The answer a policy gives to one event. Scripts produce it; the Dovecot
// adapter alone maps it onto the protocol (NO [NOPERM], -ERR, passdb results).
#pragma once

#include <string>

namespace dmr::core {

struct Verdict {
    enum class Kind {
        Continue,   // no decision: Dovecot proceeds as without the plugin
        Reject,     // permanent refusal (deny / reject)
        Tempfail,   // temporary refusal: the client may retry later
        Disconnect, // end the whole session (IMAP BYE)
    };

    Kind kind = Kind::Continue;
    std::string text;   // shown to the client
    std::string code;   // optional response code, e.g. "LIMIT" for IMAP

    static Verdict proceed() { return {}; }
    static Verdict reject(std::string text, std::string code = {})
    {
        return {Kind::Reject, std::move(text), std::move(code)};
    }
    static Verdict tempfail(std::string text) { return {Kind::Tempfail, std::move(text), {}}; }

    bool decided() const { return kind != Kind::Continue; }
};

} // namespace dmr::core
