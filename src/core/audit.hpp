// Audit records: one JSON object per line with the standard fields (ts, kind,
// host, service, session, user, remote_ip, local_ip) followed by the caller's,
// handed to every configured sink. Formatting is plain C++ (unit-tested and
// benchmarked); the Dovecot event sink lives in the adapter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/events.hpp"
#include "core/json.hpp"
#include "core/logger.hpp"

namespace dmr::core {

// The standard fields of every record of one session.
struct AuditContext {
    std::string host;
    std::string service;
    std::string session;
    std::string user;
    std::string remote_ip;   // "" is written as null
    std::string local_ip;
};

// "2024-05-01T12:34:56.123456Z" for microseconds since the epoch (UTC).
void append_iso8601_us(std::string &out, int64_t epoch_us);

// One record being built. Reused between records: begin() resets it.
class AuditRecord {
public:
    void begin(const AuditContext &context, std::string_view kind, int64_t epoch_us);

    // Caller's fields. A name that is a standard field is written as
    // "x_<name>" so a record never has two keys with one name.
    void field(std::string_view name, std::string_view value);
    void field_int(std::string_view name, int64_t value);
    void field_number(std::string_view name, double value);
    void field_bool(std::string_view name, bool value);
    void field_null(std::string_view name);
    // For nested values: writes the key; the caller then writes one value
    // (object, array or scalar) through writer().
    void nested_key(std::string_view name);
    JsonWriter &writer() { return writer_; }

    // Closes the object; line() is then the complete record with its '\n'.
    void finish();
    const std::string &line() const { return line_; }
    const std::string &kind() const { return kind_; }
    // Top-level scalar fields as text, for sinks that want fields (Dovecot events).
    const Fields &flat_fields() const { return flat_; }

private:
    void key(std::string_view name);

    std::string line_;
    std::string kind_;
    JsonWriter writer_{line_};
    Fields flat_;
    std::string scratch_;
    std::string time_;
};

class AuditSink {
public:
    virtual ~AuditSink() = default;
    virtual void write(const AuditRecord &record) = 0;
};

// Appends each record with one write(2) on an O_APPEND descriptor, so the
// records of concurrent sessions (processes) never interleave. The file is
// opened on the first record and kept open for the session.
class FileAuditSink final : public AuditSink {
public:
    FileAuditSink(std::string path, Logger &logger) : path_(std::move(path)), logger_(logger) {}
    ~FileAuditSink() override;
    FileAuditSink(const FileAuditSink &) = delete;
    FileAuditSink &operator=(const FileAuditSink &) = delete;
    void write(const AuditRecord &record) override;

private:
    std::string path_;
    Logger &logger_;
    int fd_ = -1;
    bool failed_ = false;   // an error was logged: later ones stay quiet
};

// syslog(3) at level info with the configured facility (the line without '\n').
class SyslogAuditSink final : public AuditSink {
public:
    explicit SyslogAuditSink(int facility) : facility_(facility) {}
    void write(const AuditRecord &record) override;

private:
    int facility_;
};

// What `mruby_audit` selects: "file:/path", "syslog", "event", any of them
// separated by spaces. `mruby_audit_syslog_facility`: mail (default), user,
// daemon, auth, local0..local7.
struct AuditSettings {
    std::string file;
    bool syslog = false;
    int syslog_facility = 0;   // set by parse (LOG_MAIL unless configured)
    bool event = false;

    bool any() const { return !file.empty() || syslog || event; }
    static AuditSettings parse(std::string_view sinks, std::string_view facility,
                               std::vector<std::string> &errors);
};

// The audit state of one session: its standard fields, its sinks, one record
// buffer. Not thread-safe (one per session, as everything else).
class Auditor {
public:
    Auditor(AuditContext context, const Clock &clock) : context_(std::move(context)), clock_(clock) {}

    void add_sink(std::unique_ptr<AuditSink> sink) { sinks_.push_back(std::move(sink)); }
    bool active() const { return !sinks_.empty(); }

    // Starts a record; add fields to it, then commit().
    AuditRecord &begin(std::string_view kind);
    void commit();

private:
    AuditContext context_;
    const Clock &clock_;
    std::vector<std::unique_ptr<AuditSink>> sinks_;
    AuditRecord record_;
};

} // namespace dmr::core
