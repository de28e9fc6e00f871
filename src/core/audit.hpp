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
#include "core/log_throttle.hpp"
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

// One record is at most this many bytes, its '\n' included: longer values
// are cut (at a UTF-8 boundary), values that no longer fit are left out, and
// the record then ends with "truncated":true. A record stays valid JSON.
constexpr size_t kMaxAuditRecordBytes = 64 * 1024;
// Each standard field and the kind are cut to this many bytes (as JSON).
constexpr size_t kMaxAuditStandardBytes = 1024;

// One record being built. Reused between records: begin() resets it.
class AuditRecord {
public:
    // `origin` non-empty ("user": a user's script, mruby_user_script) is
    // written as "origin":"user" after the standard fields. "origin" is a
    // standard name either way: no script can write it itself.
    void begin(const AuditContext &context, std::string_view kind, int64_t epoch_us,
               std::string_view origin = {});

    // Caller's fields. A name that is a standard field (or "truncated") is
    // written as "x_<name>" so a record never has two keys with one name.
    void field(std::string_view name, std::string_view value);
    void field_int(std::string_view name, int64_t value);
    void field_number(std::string_view name, double value);
    void field_bool(std::string_view name, bool value);
    void field_null(std::string_view name);
    // For nested values: writes the key; the caller then writes one value
    // (object, array or scalar) through writer(), with its strings and object
    // keys through nested_string()/nested_object_key() (cut to the room
    // left), asking more() before each element of an array or object. A
    // nested value that still ends up too large is left out as a whole.
    void nested_key(std::string_view name);
    JsonWriter &writer() { return writer_; }
    void nested_string(std::string_view value);
    void nested_object_key(std::string_view name);
    // Whether another element fits; false (and the record marked truncated)
    // once the cap is reached: the caller closes what it has open and stops.
    bool more();

    // Closes the object; line() is then the complete record with its '\n'.
    void finish();
    const std::string &line() const { return line_; }
    const std::string &kind() const { return kind_; }
    bool truncated() const { return truncated_; }
    // Top-level scalar fields as text, for sinks that want fields (Dovecot events).
    const Fields &flat_fields() const { return flat_; }

private:
    void key(std::string_view name);
    void close_nested();
    // Bytes still free for values before the cap (negative: over).
    int64_t room() const;
    size_t room_left() const;
    // Takes back a top-level field whose value went past the cap.
    bool keep_field();

    std::string line_;
    std::string kind_;
    JsonWriter writer_{line_};
    Fields flat_;
    std::string scratch_;
    std::string time_;
    JsonWriter::Mark field_mark_{};
    bool nested_open_ = false;
    bool truncated_ = false;
};

class AuditSink {
public:
    virtual ~AuditSink() = default;
    // False when the record was not stored (the caller tells the script).
    virtual bool write(const AuditRecord &record) = 0;
};

// What to do with the bytes [start, end) of a record that was written only in
// part: truncate the file to `start` when they are its end, overwrite them
// with spaces when other records follow (the line then still parses), nothing
// when the file is already shorter than `start`. Exposed for tests.
enum class PartialRecord { Truncated, Blanked, Gone, Failed };
PartialRecord erase_partial_record(int fd, int64_t start, int64_t end);

// The audit file of one path in this process, shared by the sessions that
// write to it.
// - Each record is appended with one write(2) on an O_APPEND descriptor, so
//   the records of concurrent sessions (processes) never interleave.
// - At most once a second (on the `steady` clock: only durations matter) the
//   path is compared with the open file (device, inode); after a rotation
//   (rename + create) or a deletion the path is opened again, created when
//   missing (mode 0640 less the umask; 0660 whatever the umask in a setgid
//   directory, which a group shares). While the new file cannot be opened,
//   records go on into the old one if it still has a name.
// - A record is whole or absent: after a short write (a full file system) the
//   part that was written is removed (truncated when it is still the end of
//   the file, overwritten with spaces when another writer appended after it),
//   and append() returns false.
// - A failed open is retried at most once a second; failures are logged at
//   most once a minute (path, errno text, records not written), and the
//   return to normal once, with the number of records that were not written.
class AuditFile {
public:
    AuditFile(std::string path, const Clock &steady) : path_(std::move(path)), steady_(steady) {}
    ~AuditFile();
    AuditFile(const AuditFile &) = delete;
    AuditFile &operator=(const AuditFile &) = delete;

    bool append(std::string_view line, Logger &logger);
    const std::string &path() const { return path_; }

    // The process's file for `path` on the monotonic clock: sessions with the
    // same path share one descriptor, one rotation check, one error report.
    static std::shared_ptr<AuditFile> shared(const std::string &path);

private:
    bool open_file();
    void check_path(int64_t now, Logger &logger);
    struct WriteFailure {
        int error = 0;              // errno; 0: a short write without one
        size_t partial_bytes = 0;   // written before the failure, then erased
        PartialRecord erased = PartialRecord::Gone;
    };
    // Writes `line` whole or not at all.
    bool write_whole(std::string_view line, WriteFailure &failure);
    // Counts a record not written; logs `message` (unless empty) at most once a minute.
    bool fail(int64_t now, Logger &logger, const std::string &message);
    void report(int64_t now, Logger &logger, LogLevel level, const std::string &message);

    std::string path_;
    const Clock &steady_;
    int fd_ = -1;
    uint64_t dev_ = 0;
    uint64_t ino_ = 0;
    bool newline_first_ = false;       // a partial record could not be removed
    bool have_opened_ = false;
    int64_t next_open_us_ = 0;         // open retries: once a second
    int64_t next_check_us_ = 0;        // path checks: once a second
    LogThrottle report_throttle_;      // error lines: once a minute
    uint64_t not_written_ = 0;         // records lost since the last "writing again"
    bool episode_reported_ = false;    // an error was logged since then
};

// Writes records to the file named by `mruby_audit` (see AuditFile).
class FileAuditSink final : public AuditSink {
public:
    // Shares the process's AuditFile for `path`.
    FileAuditSink(const std::string &path, Logger &logger)
        : file_(AuditFile::shared(path)), logger_(logger) {}
    // A private AuditFile on the given clock (tests).
    FileAuditSink(const std::string &path, Logger &logger, const Clock &steady)
        : file_(std::make_shared<AuditFile>(path, steady)), logger_(logger) {}
    bool write(const AuditRecord &record) override { return file_->append(record.line(), logger_); }

private:
    std::shared_ptr<AuditFile> file_;
    Logger &logger_;
};

// syslog(3) at level info with the configured facility (the line without '\n').
class SyslogAuditSink final : public AuditSink {
public:
    explicit SyslogAuditSink(int facility) : facility_(facility) {}
    bool write(const AuditRecord &record) override;

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
    // The auth process audits many requests with one Auditor: the standard
    // fields of the request being served are set before each event.
    void set_context(AuditContext context) { context_ = std::move(context); }
    // Every record of this Auditor says "origin":`origin` (AuditRecord::begin).
    void set_origin(std::string origin) { origin_ = std::move(origin); }

    // Starts a record; add fields to it, then commit(): true when every sink
    // took the record, false when one could not store it (a full disk).
    AuditRecord &begin(std::string_view kind);
    bool commit();

private:
    AuditContext context_;
    std::string origin_;
    const Clock &clock_;
    std::vector<std::unique_ptr<AuditSink>> sinks_;
    AuditRecord record_;
};

} // namespace dmr::core
