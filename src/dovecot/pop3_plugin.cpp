// lib95_pop3_mruby_plugin.so: POP3 command events. Dovecot 2.3 has no POP3
// command hook, so the client's streams are wrapped:
//  - a tap ostream (from the client-created hook) passes every byte through
//    and catches the status line written after each command, which is when
//    after_command runs;
//  - a gate istream hands pop3 one command line at a time, after all earlier
//    lines were consumed (so replies stay in order under pipelining), and
//    runs before_command on it; a refused line never reaches pop3 and is
//    answered "-ERR text" here. It goes on top of client->input at the
//    tap's first cork: pop3's main.c puts the commands the client pipelined
//    behind its login (forwarded by pop3-login) in front of the input
//    (client_add_input(): a concat istream) after the client-created hook,
//    then corks the output before anything reads them, and only then adds
//    the input io (client_create_finish()). A gate under that concat would
//    let those commands pass unseen.
#include <algorithm>
#include <ctime>

#include "core/text.hpp"
#include "dovecot/pop3_headers.hpp"
#include "dovecot/session_port.hpp"

namespace dmr::dovecot {
namespace {

constexpr size_t kMaxArgs = 1000;
constexpr size_t kMaxReply = 512;

struct pop3_gate;

struct gate_istream {
    struct istream_private istream;
    pop3_gate *gate;
};

struct tap_ostream {
    struct ostream_private ostream;
    pop3_gate *gate;
    void (*parent_cork)(struct ostream_private *stream, bool set);   // Dovecot's default
};

// Per client; allocated from the client's pool.
struct pop3_gate {
    union pop3_module_context module_ctx;
    struct client *client;
    SessionPort *port;
    struct istream *input;        // the gate: what pop3 reads; null until installed, and once destroying
    struct istream *parent;       // below the gate: the client's input as pop3 made it
    bool destroying;
    struct ostream *raw_output;   // below the tap: our own -ERR answers
    bool awaiting_reply;          // a command line went to pop3, its status line not seen
    const char *refusal;          // a refused session: the -ERR line's text, else null
    struct timeout *to_refuse;
    uint64_t start_us;
    string_t *name;
    string_t *args;
    string_t *reply;
};

MODULE_CONTEXT_DEFINE_INIT(mruby_pop3_module, &pop3_module_register);

struct module *plugin_module;
pop3_client_created_func_t *next_client_created;

uint64_t monotonic_us()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

std::string_view view(string_t *str)
{
    return std::string_view(reinterpret_cast<const char *>(str_data(str)), str_len(str));
}

void run_after(pop3_gate *gate, std::string_view status_line)
{
    gate->awaiting_reply = false;
    no_throw(gate->client->user->event, "POP3 command", [&] {
        if (!gate->port->wants(core::Hook::Pop3CommandAfter))
            return;
        core::CommandInfo info;
        info.name = std::string(view(gate->name));
        info.args = std::string(view(gate->args));
        size_t space = status_line.find(' ');
        info.reply = core::sanitize_for_log(status_line.substr(0, space), 16);
        if (space != std::string_view::npos)
            info.reply_text = core::sanitize_for_log(status_line.substr(space + 1), kMaxReply);
        info.duration_us = monotonic_us() - gate->start_us;
        auto event = core::Event::make<core::Hook::Pop3CommandAfter>(info);
        gate->port->dispatch(event);
    });
}

// Splits a command line (without its LF) into the name and arguments pop3
// itself will see: pop3 drops the CR before the LF, reads the line as a C
// string (so it ends at a NUL byte), splits it at the first space, upper-cases
// the name and skips the spaces before the arguments. Both are then made safe
// for a log line.
void parse_line(pop3_gate *gate, const unsigned char *data, size_t len)
{
    if (len > 0 && data[len - 1] == '\r')
        len--;
    const void *nul = memchr(data, '\0', len);
    if (nul != nullptr)
        len = static_cast<size_t>(static_cast<const unsigned char *>(nul) - data);
    std::string_view line(reinterpret_cast<const char *>(data), len);
    size_t space = line.find(' ');
    std::string raw_name(line.substr(0, std::min<size_t>(space, 256)));
    for (char &c : raw_name) {
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
    }
    std::string name = core::sanitize_for_log(raw_name, 64);
    std::string args;
    if (space != std::string_view::npos) {
        std::string_view rest = line.substr(space + 1);
        rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
        args = core::sanitize_command_args(rest, kMaxArgs);
    }
    str_truncate(gate->name, 0);
    str_append_data(gate->name, name.data(), name.size());
    str_truncate(gate->args, 0);
    str_append_data(gate->args, args.data(), args.size());
}

core::Verdict run_before(pop3_gate *gate)
{
    core::Verdict verdict;
    bool ok = no_throw(gate->client->user->event, "POP3 command", [&] {
        if (!gate->port->wants(core::Hook::Pop3CommandBefore))
            return;
        core::CommandInfo info;
        info.name = std::string(view(gate->name));
        info.args = std::string(view(gate->args));
        auto event = core::Event::make<core::Hook::Pop3CommandBefore>(info);
        verdict = gate->port->dispatch(event);
    });
    if (!ok)
        verdict = core::Verdict::tempfail("Internal error");
    return verdict;
}

bool parent_has_line(pop3_gate *gate)
{
    size_t size;
    const unsigned char *data = i_stream_get_data(gate->parent, &size);
    return size > 0 && memchr(data, '\n', size) != nullptr;
}

// Answers pop3's read as its own stream does when its buffer is full without
// a line end: -2, which Dovecot accepts only with the bytes in this stream's
// buffer (else it panics: "assertion failed: (_stream->skip != _stream->pos)").
// pop3 then answers "-ERR Input line too long." and ends the session.
ssize_t line_too_long(struct istream_private *stream, const unsigned char *data, size_t size)
{
    size_t avail = 0;
    (void)i_stream_try_alloc(stream, std::max<size_t>(size, 1), &avail);
    size_t n = std::min(size, avail);
    if (n == 0) {
        // Nothing to show (cannot happen: the parent -2s only when full).
        stream->istream.stream_errno = ENOBUFS;
        return -1;
    }
    memcpy(stream->w_buffer, data, n);
    stream->pos = n;
    i_stream_skip(stream->parent, n);
    return -2;
}

// pop3 reads its input as a plain fd istream (2048 bytes): i_stream_read()
// once per input event, then i_stream_next_line() until it has no complete
// line or a command goes on asynchronously (RETR, LIST, ... with a full
// output), whose remaining lines it takes from its buffer in client_output().
// It answers -2 (buffer full, no line end) with "-ERR Input line too long."
// and -1 by ending the session.
//
// The gate keeps that contract with the parent (the real fd istream, same
// size) as pop3's buffer: it reads the parent at most once per call and only
// when the parent holds no complete line, exactly when and as often as pop3
// would read its own stream, so -2, -1 and 0 come at the same moments. Of the
// complete lines it hands pop3 one at a time, after before_command allowed
// it; refused lines are answered here. Lines left in the parent are handed
// on by making pop3's input io pending (see wake_for_next_line()).
ssize_t gate_read(struct istream_private *stream)
{
    auto *gstream = reinterpret_cast<gate_istream *>(stream);
    pop3_gate *gate = gstream->gate;
    if (stream->skip < stream->pos)
        return 0;   // pop3 has not taken the line it has yet (its output closed)
    stream->skip = stream->pos = 0;
    if (gate->refusal != nullptr) {
        // A refused session: no command line reaches pop3.
        stream->istream.eof = TRUE;
        return -1;
    }

    bool read_once = false;
    for (;;) {
        size_t size;
        const unsigned char *data = i_stream_get_data(stream->parent, &size);
        const void *lf = memchr(data, '\n', size);
        if (lf == nullptr) {
            if (read_once)
                return 0;   // lines refused, no more complete ones: wait for input
            read_once = true;
            ssize_t ret = i_stream_read(stream->parent);
            if (ret > 0)
                continue;
            if (ret == -2) {
                // The parent is full without a line end.
                data = i_stream_get_data(stream->parent, &size);
                return line_too_long(stream, data, size);
            }
            if (ret == -1) {
                stream->istream.stream_errno = stream->parent->stream_errno;
                stream->istream.eof = TRUE;
            }
            return ret;   // 0: wait for more input; -1: closed or failed
        }
        size_t len = static_cast<size_t>(static_cast<const unsigned char *>(lf) - data) + 1;
        gate->start_us = monotonic_us();
        parse_line(gate, data, len - 1);
        core::Verdict verdict = run_before(gate);
        if (!verdict.decided()) {
            // The parent held the line, and this buffer is as large.
            size_t avail;
            if (!i_stream_try_alloc(stream, len, &avail) || avail < len)
                return line_too_long(stream, data, size);
            memcpy(stream->w_buffer, data, len);
            stream->pos = len;
            i_stream_skip(stream->parent, len);
            gate->awaiting_reply = true;
            str_truncate(gate->reply, 0);
            if (parent_has_line(gate))
                i_stream_set_input_pending(&stream->istream, TRUE);
            return static_cast<ssize_t>(len);
        }
        i_stream_skip(stream->parent, len);
        std::string line = "-ERR " + (verdict.code.empty() ? "" : "[" + verdict.code + "] ") +
                           verdict.text;
        o_stream_nsend_str(gate->raw_output, (line + "\r\n").c_str());
        run_after(gate, line);
        if (verdict.kind == core::Verdict::Kind::Disconnect) {
            (void)o_stream_flush(gate->raw_output);
            stream->istream.eof = TRUE;
            return -1;
        }
    }
}

// pop3 takes the lines a finished asynchronous command left behind from its
// buffer in client_output() (i_stream_next_line(), no read). Here they are
// still in the parent, and the input event the gate asked for may have been
// spent while the command ran (client_input() then only removes its io). So
// on every flush of the client's output, which is where client_output()
// starts, pop3 is asked to read again if it has taken its line and another
// waits: the request is kept while its io is removed and fires once pop3 adds
// it back, i.e. when the command is done.
void wake_for_next_line(pop3_gate *gate)
{
    if (gate->input == nullptr)
        return;   // the client is being destroyed: its input may be gone
    const struct istream_private *gstream = gate->input->real_stream;
    if (gstream->skip == gstream->pos && parent_has_line(gate))
        i_stream_set_input_pending(gate->input, TRUE);
}

ssize_t tap_sendv(struct ostream_private *stream, const struct const_iovec *iov,
                  unsigned int iov_count)
{
    auto *tstream = reinterpret_cast<tap_ostream *>(stream);
    pop3_gate *gate = tstream->gate;
    if (gate->refusal != nullptr) {
        // A refused session: the client got its -ERR; what pop3 says after
        // it (its "+OK Logged in.") never reaches the client.
        size_t total = 0;
        for (unsigned int i = 0; i < iov_count; i++)
            total += iov[i].iov_len;
        stream->ostream.offset += total;
        return static_cast<ssize_t>(total);
    }
    ssize_t ret = o_stream_sendv(stream->parent, iov, iov_count);
    if (ret < 0) {
        o_stream_copy_error_from_parent(stream);
        return -1;
    }
    size_t left = static_cast<size_t>(ret);
    for (unsigned int i = 0; i < iov_count && left > 0 && gate->awaiting_reply; i++) {
        size_t n = std::min(left, iov[i].iov_len);
        left -= n;
        auto *data = static_cast<const unsigned char *>(iov[i].iov_base);
        const void *lf = memchr(data, '\n', n);
        size_t take = lf == nullptr ? n : static_cast<size_t>(static_cast<const unsigned char *>(lf) - data);
        if (str_len(gate->reply) < kMaxReply)
            str_append_data(gate->reply, data, std::min(take, kMaxReply - str_len(gate->reply)));
        if (lf != nullptr) {
            std::string_view reply = view(gate->reply);
            if (!reply.empty() && reply.back() == '\r')
                reply.remove_suffix(1);
            std::string status(reply);
            run_after(gate, status);
        }
    }
    stream->ostream.offset += ret;
    return ret;
}

void install_gate(pop3_gate *gate)
{
    struct client *client = gate->client;
    auto *gstream = i_new(struct gate_istream, 1);
    gstream->gate = gate;
    gstream->istream.read = gate_read;
    // As large as the buffer pop3 would read into: its fd istream (2048), or
    // the concat istream over it.
    gstream->istream.max_buffer_size = i_stream_get_max_buffer_size(client->input);
    gstream->istream.istream.readable_fd = FALSE;
    gstream->istream.istream.blocking = client->input->blocking;
    struct istream *input = i_stream_create(&gstream->istream, client->input,
                                            i_stream_get_fd(client->input),
                                            static_cast<enum istream_create_flag>(0));
    gate->parent = client->input;   // referenced by the gate from here on
    i_stream_unref(&client->input);
    client->input = input;
    gate->input = input;
}

void tap_cork(struct ostream_private *stream, bool set)
{
    auto *tstream = reinterpret_cast<tap_ostream *>(stream);
    pop3_gate *gate = tstream->gate;
    if (set && gate->input == nullptr && !gate->destroying)
        install_gate(gate);
    tstream->parent_cork(stream, set);
}

int tap_flush(struct ostream_private *stream)
{
    wake_for_next_line(reinterpret_cast<tap_ostream *>(stream)->gate);
    return o_stream_flush_parent(stream);
}

void client_destroy(struct client *client, const char *reason)
{
    auto *gate = module_context_require<pop3_gate>(client, mruby_pop3_module);
    timeout_remove(&gate->to_refuse);
    if (gate->refusal != nullptr) {
        gate->input = nullptr;
        gate->destroying = true;
        gate->module_ctx.super.destroy(client, reason);
        return;
    }
    // pop3 frees its input before its output, whose last flush reaches the tap.
    gate->input = nullptr;
    gate->destroying = true;
    if (gate->awaiting_reply)
        run_after(gate, "");   // disconnected before the command answered
    no_throw(client->user->event, "session counters", [&] {
        core::SessionStats stats;
        stats.add("retr", client->retr_count);
        stats.add("retr_bytes", client->retr_bytes);
        stats.add("top", client->top_count);
        stats.add("top_bytes", client->top_bytes);
        stats.add("deleted", client->deleted_count);
        stats.add("deleted_bytes", client->deleted_size);
        stats.add("messages", client->messages_count);
        stats.add("bytes_in", i_stream_get_absolute_offset(client->input));
        stats.add("bytes_out", client->output->offset);
        gate->port->set_session_stats(std::move(stats));
    });
    gate->module_ctx.super.destroy(client, reason);
}

// Closes a refused session's connection once pop3 is done starting it
// (main.c goes on with the client after the client-created hook, so it
// cannot be disconnected there).
void close_refused(struct client *client)
{
    auto *gate = module_context_require<pop3_gate>(client, mruby_pop3_module);
    timeout_remove(&gate->to_refuse);
    client_disconnect(client, "session refused by mruby policy");
}

// A session its session start refused: the client gets "-ERR [AUTH] text"
// ([SYS/TEMP] for a temporary refusal, RFC 3206) as the answer to its PASS
// or AUTH, in place of pop3's "+OK Logged in."; from here on the tap drops
// pop3's output and the gate hands it no command.
void refuse(pop3_gate *gate, const core::Verdict &verdict)
{
    const char *code = verdict.kind == core::Verdict::Kind::Tempfail ? "SYS/TEMP" : "AUTH";
    gate->refusal = p_strdup_printf(gate->client->pool, "[%s] %s", code, verdict.text.c_str());
    o_stream_nsend_str(gate->raw_output, t_strdup_printf("-ERR %s\r\n", gate->refusal));
    (void)o_stream_flush(gate->raw_output);
    gate->port->refusal_sent();
    gate->to_refuse = timeout_add_short(0, close_refused, gate->client);
}

void client_created(struct client **clientp)
{
    struct client *client = *clientp;
    SessionPort *port = nullptr;
    if (client->user != nullptr && mail_user_is_plugin_loaded(client->user, plugin_module))
        port = dmr_mruby_session_port(client->user);
    if (port != nullptr) {
        auto *gate = p_new(client->pool, struct pop3_gate, 1);
        gate->client = client;
        gate->port = port;
        gate->name = str_new(client->pool, 16);
        gate->args = str_new(client->pool, 64);
        gate->reply = str_new(client->pool, 64);
        gate->module_ctx.super = client->v;
        client->v.destroy = client_destroy;
        MODULE_CONTEXT_SET(client, mruby_pop3_module, gate);

        gate->raw_output = client->output;
        auto *tstream = i_new(struct tap_ostream, 1);
        tstream->gate = gate;
        tstream->ostream.sendv = tap_sendv;
        tstream->ostream.flush = tap_flush;
        client->output = o_stream_create(&tstream->ostream, gate->raw_output,
                                         o_stream_get_fd(gate->raw_output));
        tstream->parent_cork = tstream->ostream.cork;   // o_stream_create() filled it in
        tstream->ostream.cork = tap_cork;
        // The tap holds a reference to raw_output; the client now owns the tap.
        o_stream_unref(&gate->raw_output);
        gate->raw_output = tstream->ostream.parent;
        if (port->refusal() != nullptr)
            refuse(gate, *port->refusal());
    }
    if (next_client_created != nullptr)
        next_client_created(clientp);
}

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT const char *pop3_mruby_plugin_version;   // declared first: C linkage, exported
const char *pop3_mruby_plugin_version = DOVECOT_ABI_VERSION;
DMR_EXPORT const char *pop3_mruby_plugin_dependencies[];   // declared first: C linkage, exported
const char *pop3_mruby_plugin_dependencies[] = {"mruby", nullptr};
DMR_EXPORT const char pop3_mruby_plugin_binary_dependency[] = "pop3";

DMR_EXPORT void pop3_mruby_plugin_init(struct module *module)
{
    dmr::dovecot::plugin_module = module;
    dmr_mruby_protocol_plugin(module, "pop3", true);
    dmr::dovecot::next_client_created = pop3_client_created_hook_set(dmr::dovecot::client_created);
}

DMR_EXPORT void pop3_mruby_plugin_deinit(void)
{
    dmr_mruby_protocol_plugin(dmr::dovecot::plugin_module, "pop3", false);
    pop3_client_created_hook_set(dmr::dovecot::next_client_created);
}
