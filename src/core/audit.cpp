#include "core/audit.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

namespace dmr::core {
namespace {

constexpr std::string_view kStandardFields[] = {"ts", "kind", "host", "service", "session",
                                                "user", "remote_ip", "local_ip"};

bool is_standard_field(std::string_view name)
{
    for (std::string_view standard : kStandardFields) {
        if (name == standard)
            return true;
    }
    return false;
}

void append_digits(std::string &out, int64_t value, int width)
{
    char buffer[20];
    for (int i = width - 1; i >= 0; i--) {
        buffer[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
    out.append(buffer, static_cast<size_t>(width));
}

void write_standard(JsonWriter &writer, std::string_view name, const std::string &value)
{
    writer.key(name);
    if (value.empty())
        writer.null();
    else
        writer.string(value);
}

} // namespace

void append_iso8601_us(std::string &out, int64_t epoch_us)
{
    int64_t seconds = epoch_us / kMicrosPerSecond;
    int64_t micros = epoch_us % kMicrosPerSecond;
    if (micros < 0) {
        micros += kMicrosPerSecond;
        seconds--;
    }
    int64_t days = seconds / 86400;
    int64_t rest = seconds % 86400;
    if (rest < 0) {
        rest += 86400;
        days--;
    }
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t year = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    if (month <= 2)
        year++;
    append_digits(out, year, 4);
    out += '-';
    append_digits(out, month, 2);
    out += '-';
    append_digits(out, day, 2);
    out += 'T';
    append_digits(out, rest / 3600, 2);
    out += ':';
    append_digits(out, rest / 60 % 60, 2);
    out += ':';
    append_digits(out, rest % 60, 2);
    out += '.';
    append_digits(out, micros, 6);
    out += 'Z';
}

void AuditRecord::begin(const AuditContext &context, std::string_view kind, int64_t epoch_us)
{
    line_.clear();
    flat_.clear();
    kind_.assign(kind.data(), kind.size());
    writer_.reset();
    writer_.begin_object();
    time_.assign(1, '"');
    append_iso8601_us(time_, epoch_us);
    time_ += '"';
    writer_.key("ts");
    writer_.raw(time_);
    writer_.key("kind");
    writer_.string(kind);
    write_standard(writer_, "host", context.host);
    write_standard(writer_, "service", context.service);
    write_standard(writer_, "session", context.session);
    write_standard(writer_, "user", context.user);
    write_standard(writer_, "remote_ip", context.remote_ip);
    write_standard(writer_, "local_ip", context.local_ip);
}

void AuditRecord::key(std::string_view name)
{
    if (is_standard_field(name)) {
        scratch_.assign("x_");
        scratch_.append(name.data(), name.size());
        writer_.key(scratch_);
    } else {
        writer_.key(name);
    }
}

void AuditRecord::field(std::string_view name, std::string_view value)
{
    key(name);
    writer_.string(value);
    flat_.emplace_back(std::string(name), std::string(value));
}

void AuditRecord::field_int(std::string_view name, int64_t value)
{
    key(name);
    writer_.integer(value);
    flat_.emplace_back(std::string(name), std::to_string(value));
}

void AuditRecord::field_number(std::string_view name, double value)
{
    key(name);
    size_t start = line_.size();
    writer_.number(value);
    flat_.emplace_back(std::string(name), line_.substr(start));
}

void AuditRecord::field_bool(std::string_view name, bool value)
{
    key(name);
    writer_.boolean(value);
    flat_.emplace_back(std::string(name), value ? "true" : "false");
}

void AuditRecord::field_null(std::string_view name)
{
    key(name);
    writer_.null();
}

void AuditRecord::nested_key(std::string_view name) { key(name); }

void AuditRecord::finish()
{
    writer_.end_object();
    line_ += '\n';
}

FileAuditSink::~FileAuditSink()
{
    if (fd_ >= 0)
        ::close(fd_);
}

void FileAuditSink::write(const AuditRecord &record)
{
    if (fd_ < 0) {
        if (failed_)
            return;
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd_ < 0) {
            failed_ = true;
            logger_.log(LogLevel::Error, "mruby: audit: open(" + path_ +
                                             ") failed: " + std::strerror(errno));
            return;
        }
    }
    const std::string &line = record.line();
    // One write per record: with O_APPEND the kernel places it whole at the end.
    ssize_t written;
    do {
        written = ::write(fd_, line.data(), line.size());
    } while (written < 0 && errno == EINTR);
    if (written == static_cast<ssize_t>(line.size()))
        return;
    if (!failed_) {
        failed_ = true;
        logger_.log(LogLevel::Error,
                    "mruby: audit: write(" + path_ + ") failed: " +
                        (written < 0 ? std::string(std::strerror(errno))
                                     : "short write of " + std::to_string(written) + " bytes"));
    }
}

void SyslogAuditSink::write(const AuditRecord &record)
{
    const std::string &line = record.line();
    int length = static_cast<int>(line.size()) - 1;   // without '\n'
    ::syslog(facility_ | LOG_INFO, "%.*s", length, line.c_str());
}

AuditSettings AuditSettings::parse(std::string_view sinks, std::string_view facility,
                                   std::vector<std::string> &errors)
{
    AuditSettings settings;
    settings.syslog_facility = LOG_MAIL;
    size_t i = 0;
    while (i < sinks.size()) {
        while (i < sinks.size() && (sinks[i] == ' ' || sinks[i] == '\t' || sinks[i] == ','))
            i++;
        size_t start = i;
        while (i < sinks.size() && sinks[i] != ' ' && sinks[i] != '\t' && sinks[i] != ',')
            i++;
        std::string_view word = sinks.substr(start, i - start);
        if (word.empty())
            continue;
        if (word == "syslog")
            settings.syslog = true;
        else if (word == "event")
            settings.event = true;
        else if (word.substr(0, 5) == "file:" && word.size() > 5 && word[5] == '/')
            settings.file = std::string(word.substr(5));
        else
            errors.push_back("mruby_audit: unknown sink '" + std::string(word) +
                             "' (expected file:/absolute/path, syslog or event)");
    }
    if (!facility.empty()) {
        static const struct { const char *name; int value; } facilities[] = {
            {"mail", LOG_MAIL}, {"user", LOG_USER}, {"daemon", LOG_DAEMON},
            {"auth", LOG_AUTH}, {"authpriv", LOG_AUTHPRIV},
            {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
            {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
            {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
        };
        bool found = false;
        for (const auto &f : facilities) {
            if (facility == f.name) {
                settings.syslog_facility = f.value;
                found = true;
            }
        }
        if (!found)
            errors.push_back("mruby_audit_syslog_facility: unknown facility '" +
                             std::string(facility) + "', using mail");
    }
    return settings;
}

AuditRecord &Auditor::begin(std::string_view kind)
{
    record_.begin(context_, kind, clock_.now_us());
    return record_;
}

void Auditor::commit()
{
    record_.finish();
    for (auto &sink : sinks_)
        sink->write(record_);
}

} // namespace dmr::core
