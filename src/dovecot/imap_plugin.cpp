// lib95_imap_mruby_plugin.so: IMAP command events. Policy runs once per
// command (the first execution; continuations of FETCH, IDLE, APPEND are
// skipped), before the command reads its arguments. A refused command is
// answered by reject_command(), which consumes the rest of the command line
// itself, literals included, so the connection stays in sync.
#include <algorithm>
#include <ctime>

#include "core/text.hpp"
#include "dovecot/imap_headers.hpp"
#include "dovecot/session_port.hpp"

namespace dmr::dovecot {
namespace {

constexpr size_t kArgsPreview = 1000;   // bytes of a refused command's line kept for the log

struct mruby_command {
    union imap_module_context module_ctx;
    SessionPort *port;
    uint64_t start_us;
    core::Verdict::Kind verdict;
    const char *reply_line;   // "NO [CODE] text" or the BYE text
    uoff_t literal_left;      // bytes of a non-synchronizing literal still to skip
    string_t *line;           // preview of the refused command's arguments
    const char *name;         // upper case, sanitized: built once for both events
    const char *tag;          // sanitized
    bool reported;            // after_command ran
};

struct mruby_client {
    union imap_module_context module_ctx;
    SessionPort *port;        // looked up once per client, not per command
    const char *refusal;      // a refused session: the BYE text, else null
    struct timeout *to_refuse;
};

MODULE_CONTEXT_DEFINE_INIT(mruby_command_module, &imap_module_register);
MODULE_CONTEXT_DEFINE_INIT(mruby_client_module, &imap_module_register);

struct module *plugin_module;
imap_client_created_func_t *next_client_created;

uint64_t monotonic_us()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

SessionPort *port_of(struct client *client)
{
    if (client->user == nullptr || !mail_user_is_plugin_loaded(client->user, plugin_module))
        return nullptr;
    return dmr_mruby_session_port(client->user);
}

std::string upper(const char *name)
{
    std::string out(name == nullptr ? "" : name);
    for (char &c : out) {
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
    }
    return core::sanitize_for_log(out, 64);
}

// If the line segment data[0..len) (without its LF) ends in a literal marker
// "{N}", "{N+}" or "{N-}", returns true with the size and whether it is
// non-synchronizing. A quoted string cannot contain CR/LF, so such a marker
// right before the line end is always a literal.
bool literal_at_end(const unsigned char *data, size_t len, uoff_t *size_r, bool *nonsync_r)
{
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (len < 3 || data[len - 1] != '}')
        return false;
    size_t i = len - 1;
    *nonsync_r = data[i - 1] == '+' || data[i - 1] == '-';
    if (*nonsync_r)
        i--;
    size_t digits_end = i;
    while (i > 0 && data[i - 1] >= '0' && data[i - 1] <= '9')
        i--;
    if (i == 0 || i == digits_end || data[i - 1] != '{' || digits_end - i > 19)
        return false;
    uoff_t size = 0;
    for (size_t k = i; k < digits_end; k++)
        size = size * 10 + (data[k] - '0');
    *size_r = size;
    return true;
}

void keep_preview(mruby_command *ctx, const unsigned char *data, size_t len)
{
    size_t used = str_len(ctx->line);
    if (used < kArgsPreview)
        str_append_data(ctx->line, data, std::min(len, kArgsPreview - used));
}

bool finish_refused(struct client_command_context *cmd, mruby_command *ctx)
{
    cmd->client->input_skip_line = FALSE;   // the line is consumed already
    if (ctx->verdict == core::Verdict::Kind::Disconnect) {
        client_disconnect_with_error(cmd->client, ctx->reply_line);
        return TRUE;
    }
    client_send_tagline(cmd, ctx->reply_line);
    return TRUE;
}

// Replaces a refused command's function: reads and discards the rest of its
// line. A non-synchronizing literal is skipped as it streams in (any size, no
// buffering); at a synchronizing literal the client waits for "+", so the
// tagged NO ends the command there (RFC 3501 7.5).
bool reject_command(struct client_command_context *cmd)
{
    auto *ctx = module_context_require<mruby_command>(cmd, mruby_command_module);
    struct client *client = cmd->client;
    if (cmd->cancel)
        return TRUE;
    for (;;) {
        size_t size;
        const unsigned char *data = i_stream_get_data(client->input, &size);
        if (ctx->literal_left > 0) {
            size_t n = static_cast<size_t>(std::min<uoff_t>(size, ctx->literal_left));
            i_stream_skip(client->input, n);
            ctx->literal_left -= n;
            if (ctx->literal_left > 0)
                return FALSE;   // more literal data to come
            continue;
        }
        const unsigned char *lf = static_cast<const unsigned char *>(memchr(data, '\n', size));
        if (lf == nullptr) {
            // No line end yet: keep only a tail long enough for "{N+}\r".
            if (size > 64) {
                keep_preview(ctx, data, size - 32);
                i_stream_skip(client->input, size - 32);
            }
            if (client->input->closed)
                cmd->state = CLIENT_COMMAND_STATE_DONE;
            return FALSE;
        }
        size_t len = static_cast<size_t>(lf - data);
        uoff_t literal_size = 0;
        bool nonsync = false;
        bool literal = literal_at_end(data, len, &literal_size, &nonsync);
        keep_preview(ctx, data, len > 0 && data[len - 1] == '\r' ? len - 1 : len);
        i_stream_skip(client->input, len + 1);
        if (!literal || !nonsync)
            return finish_refused(cmd, ctx);
        ctx->literal_left = literal_size;
    }
}

// The command's name and tag as the events show them, built on first use and
// kept in the command's pool for its other event.
const char *command_name(struct client_command_context *cmd, mruby_command *ctx)
{
    if (ctx->name == nullptr)
        ctx->name = p_strdup(cmd->pool, upper(cmd->name).c_str());
    return ctx->name;
}

const char *command_tag(struct client_command_context *cmd, mruby_command *ctx)
{
    if (ctx->tag == nullptr)
        ctx->tag = p_strdup(cmd->pool,
                            core::sanitize_for_log(cmd->tag == nullptr ? "" : cmd->tag, 256).c_str());
    return ctx->tag;
}

// The BYE text of a session its session start refused: "[CODE] text"
// (UNAVAILABLE for a temporary refusal, RFC 5530).
const char *refusal_text(pool_t pool, const core::Verdict &verdict)
{
    const char *code = verdict.kind == core::Verdict::Kind::Tempfail ? "UNAVAILABLE"
                       : verdict.code.empty()                        ? nullptr
                                                                     : verdict.code.c_str();
    return code == nullptr ? p_strdup(pool, verdict.text.c_str())
                           : p_strdup_printf(pool, "[%s] %s", code, verdict.text.c_str());
}

// A refused session's first command (pipelined behind LOGIN, or a client
// created without this plugin's hook) gets the BYE instead of running.
void refuse_command(struct client_command_context *cmd, SessionPort *port, const char *text)
{
    auto *ctx = p_new(cmd->pool, struct mruby_command, 1);
    ctx->port = port;
    ctx->start_us = monotonic_us();
    ctx->reported = true;   // the session never started: no command events
    ctx->verdict = core::Verdict::Kind::Disconnect;
    ctx->reply_line = text;
    ctx->line = str_new(cmd->pool, 128);
    MODULE_CONTEXT_SET(cmd, mruby_command_module, ctx);
    cmd->func = reject_command;
    port->refusal_sent();
}

void command_pre(struct client_command_context *cmd)
{
    if (module_context<mruby_command>(cmd, mruby_command_module) != nullptr)
        return;   // a continuation of a command already seen
    auto *client_ctx = module_context<mruby_client>(cmd->client, mruby_client_module);
    SessionPort *port = client_ctx == nullptr ? nullptr : client_ctx->port;
    if (client_ctx == nullptr) {
        // No client context: our client-created hook did not run for this
        // client. A session refused at its start must still not run a command.
        port = port_of(cmd->client);
        if (port != nullptr && port->refusal() != nullptr) {
            refuse_command(cmd, port, refusal_text(cmd->pool, *port->refusal()));
            return;
        }
        port = nullptr;
    }
    if (port == nullptr)
        return;
    if (client_ctx->refusal != nullptr) {
        refuse_command(cmd, port, client_ctx->refusal);
        return;
    }
    auto *ctx = p_new(cmd->pool, struct mruby_command, 1);
    ctx->port = port;
    ctx->start_us = monotonic_us();
    MODULE_CONTEXT_SET(cmd, mruby_command_module, ctx);

    core::Verdict verdict;
    bool ok = no_throw(cmd->event, "IMAP command", [&] {
        if (!port->wants(core::Hook::ImapCommandBefore))
            return;
        core::CommandInfo info;
        info.name = command_name(cmd, ctx);
        info.tag = command_tag(cmd, ctx);
        auto event = core::Event::make<core::Hook::ImapCommandBefore>(info);
        verdict = port->dispatch(event);
    });
    if (!ok)
        verdict = core::Verdict::tempfail("Internal error");
    if (!verdict.decided())
        return;

    ctx->verdict = verdict.kind;
    ctx->line = str_new(cmd->pool, 128);
    if (verdict.kind == core::Verdict::Kind::Disconnect) {
        ctx->reply_line = p_strdup(cmd->pool, verdict.text.c_str());
    } else {
        std::string code = verdict.kind == core::Verdict::Kind::Tempfail ? "UNAVAILABLE"
                                                                         : verdict.code;
        ctx->reply_line = code.empty()
            ? p_strdup_printf(cmd->pool, "NO %s", verdict.text.c_str())
            : p_strdup_printf(cmd->pool, "NO [%s] %s", code.c_str(), verdict.text.c_str());
    }
    cmd->func = reject_command;
}

// Runs after_command once, when the command's outcome is known.
void report_after(struct client_command_context *cmd, mruby_command *ctx, bool disconnected)
{
    ctx->reported = true;
    no_throw(cmd->event, "IMAP command", [&] {
        if (!ctx->port->wants(core::Hook::ImapCommandAfter))
            return;
        core::CommandInfo info;
        info.name = command_name(cmd, ctx);
        info.tag = command_tag(cmd, ctx);
        if (cmd->human_args != nullptr)
            info.args = core::sanitize_command_args(cmd->human_args, kArgsPreview);
        else if (ctx->line != nullptr)
            info.args = core::sanitize_command_args(
                std::string_view(reinterpret_cast<const char *>(str_data(ctx->line)),
                                 str_len(ctx->line)),
                kArgsPreview);
        if (disconnected) {
            info.reply = "BYE";
            info.reply_text = core::sanitize_for_log(ctx->reply_line);
        } else {
            std::string_view reply(cmd->tagline_reply == nullptr ? "" : cmd->tagline_reply);
            size_t space = reply.find(' ');
            info.reply = core::sanitize_for_log(reply.substr(0, space), 16);
            if (space != std::string_view::npos)
                info.reply_text = core::sanitize_for_log(reply.substr(space + 1), kArgsPreview);
        }
        info.duration_us = monotonic_us() - ctx->start_us;
        auto event = core::Event::make<core::Hook::ImapCommandAfter>(info);
        ctx->port->dispatch(event);
    });
}

// Most commands end here; some send their tagged reply later, after a
// mailbox sync, outside command_exec() (so outside the post hook).
void send_tagline(struct client_command_context *cmd, const char *data)
{
    auto *client_ctx = module_context_require<mruby_client>(cmd->client, mruby_client_module);
    client_ctx->module_ctx.super.send_tagline(cmd, data);
    auto *ctx = module_context<mruby_command>(cmd, mruby_command_module);
    if (ctx != nullptr && !ctx->reported)
        report_after(cmd, ctx, false);
}

void command_post(struct client_command_context *cmd)
{
    auto *ctx = module_context<mruby_command>(cmd, mruby_command_module);
    if (ctx == nullptr || ctx->reported)
        return;
    // A policy disconnect sends no tagged reply.
    if (ctx->verdict == core::Verdict::Kind::Disconnect && cmd->client->disconnected)
        report_after(cmd, ctx, true);
}

void client_destroy(struct client *client, const char *reason)
{
    auto *ctx = module_context_require<mruby_client>(client, mruby_client_module);
    timeout_remove(&ctx->to_refuse);
    SessionPort *port = ctx->port;
    if (port != nullptr && ctx->refusal == nullptr) {
        no_throw(client->event, "session counters", [&] {
            // 2.4 keeps the logout counters in a struct of their own.
#if DMR_DOVECOT_VERSION >= 204
            const struct imap_logout_stats &counts = client->logout_stats;
#else
            const struct client &counts = *client;
#endif
            core::SessionStats stats;
            stats.add("fetch_hdr", counts.fetch_hdr_count);
            stats.add("fetch_hdr_bytes", counts.fetch_hdr_bytes);
            stats.add("fetch_body", counts.fetch_body_count);
            stats.add("fetch_body_bytes", counts.fetch_body_bytes);
            stats.add("deleted", counts.deleted_count);
            stats.add("expunged", counts.expunged_count);
            stats.add("trashed", counts.trashed_count);
            stats.add("autoexpunged", counts.autoexpunged_count);
            stats.add("appended", counts.append_count);
            stats.add("bytes_in", i_stream_get_absolute_offset(client->input));
            stats.add("bytes_out", client->output->offset);
            port->set_session_stats(std::move(stats));
        });
    }
    ctx->module_ctx.super.destroy(client, reason);
}

// A refused session with nothing pipelined behind its LOGIN: the BYE goes
// out right after the login's tagged OK (main.c sends that OK after the
// client-created hook and handles the pipelined commands before this
// timeout runs, so nothing can be disconnected in the hook itself).
void send_refusal(struct client *client)
{
    auto *ctx = module_context_require<mruby_client>(client, mruby_client_module);
    timeout_remove(&ctx->to_refuse);
    ctx->port->refusal_sent();
    if (!client->disconnected)
        client_disconnect_with_error(client, ctx->refusal);
}

void client_created(struct client **clientp)
{
    struct client *client = *clientp;
    SessionPort *port = port_of(client);
    if (port != nullptr) {
        auto *ctx = p_new(client->pool, struct mruby_client, 1);
        ctx->port = port;
        ctx->module_ctx.super = client->v;
        client->v.destroy = client_destroy;
        client->v.send_tagline = send_tagline;
        MODULE_CONTEXT_SET(client, mruby_client_module, ctx);
        if (port->refusal() != nullptr) {
            // Plain C from here: the text is built in the client's pool.
            ctx->refusal = refusal_text(client->pool, *port->refusal());
            ctx->to_refuse = timeout_add_short(0, send_refusal, client);
        }
    }
    if (next_client_created != nullptr)
        next_client_created(clientp);
}

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT const char *imap_mruby_plugin_version;   // declared first: C linkage, exported
const char *imap_mruby_plugin_version = DOVECOT_ABI_VERSION;
DMR_EXPORT const char *imap_mruby_plugin_dependencies[];   // declared first: C linkage, exported
const char *imap_mruby_plugin_dependencies[] = {"mruby", nullptr};
DMR_EXPORT const char imap_mruby_plugin_binary_dependency[] = "imap";

DMR_EXPORT void imap_mruby_plugin_init(struct module *module)
{
    dmr::dovecot::plugin_module = module;
    dmr_mruby_protocol_plugin(module, "imap", true);
    command_hook_register(dmr::dovecot::command_pre, dmr::dovecot::command_post);
    dmr::dovecot::next_client_created = imap_client_created_hook_set(dmr::dovecot::client_created);
}

DMR_EXPORT void imap_mruby_plugin_deinit(void)
{
    dmr_mruby_protocol_plugin(dmr::dovecot::plugin_module, "imap", false);
    command_hook_unregister(dmr::dovecot::command_pre, dmr::dovecot::command_post);
    imap_client_created_hook_set(dmr::dovecot::next_client_created);
}
