#include "core/audit.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "core/text.hpp"

namespace dmr::core {
namespace {

constexpr std::string_view kStandardFields[] = {"ts", "kind", "host", "service", "session",
                                                "user", "remote_ip", "local_ip", "origin",
                                                "truncated"};
constexpr std::string_view kTruncatedMarker = ",\"truncated\":true";
// Room kept free at the end of every record: the marker, '}' and '\n'.
constexpr size_t kTailBytes = kTruncatedMarker.size() + 2;
// Room nested values keep for the brackets they still have to close.
constexpr size_t kCloseBytes = 16;
constexpr size_t kMaxAuditNameBytes = 1024;
constexpr int64_t kReopenIntervalUs = 1'000'000;

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

// The longest prefix of `text` whose JSON string (as append_json_string
// writes it, quotes included) takes at most max_bytes; never inside a UTF-8
// sequence. No byte escapes to more than six, which gives the fast path.
size_t json_cut(std::string_view text, size_t max_bytes)
{
    if (max_bytes < 2)
        return 0;
    size_t budget = max_bytes - 2;
    if (text.size() <= budget / 6)
        return text.size();
    size_t used = 0;
    size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        size_t len = 1;
        size_t out;
        if (c >= 0x20 && c < 0x80) {
            out = c == '"' || c == '\\' ? 2 : 1;
        } else if (c < 0x20) {
            out = c == '\n' || c == '\r' || c == '\t' ? 2 : 6;
        } else {
            len = utf8_sequence_length(text, i);
            out = len;
            if (len == 0) {   // written as U+FFFD
                len = 1;
                out = 3;
            }
        }
        if (used + out > budget)
            break;
        used += out;
        i += len;
    }
    return i;
}

std::string errno_text(int error) { return std::strerror(error); }

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

void AuditRecord::begin(const AuditContext &context, std::string_view kind, int64_t epoch_us,
                        std::string_view origin)
{
    line_.clear();
    flat_.clear();
    truncated_ = false;
    nested_open_ = false;
    size_t kind_cut = json_cut(kind, kMaxAuditStandardBytes);
    if (kind_cut < kind.size())
        truncated_ = true;
    kind_.assign(kind.data(), kind_cut);
    writer_.reset();
    writer_.begin_object();
    time_.assign(1, '"');
    append_iso8601_us(time_, epoch_us);
    time_ += '"';
    writer_.key("ts");
    writer_.raw(time_);
    writer_.key("kind");
    writer_.string(kind_);
    const std::pair<std::string_view, const std::string *> standard[] = {
        {"host", &context.host},           {"service", &context.service},
        {"session", &context.session},     {"user", &context.user},
        {"remote_ip", &context.remote_ip}, {"local_ip", &context.local_ip}};
    for (const auto &[name, value] : standard) {
        writer_.key(name);
        if (value->empty()) {
            writer_.null();
        } else {
            size_t cut = json_cut(*value, kMaxAuditStandardBytes);
            if (cut < value->size())
                truncated_ = true;
            writer_.string(std::string_view(*value).substr(0, cut));
        }
    }
    if (!origin.empty()) {
        writer_.key("origin");
        writer_.string(origin);
    }
}

int64_t AuditRecord::room() const
{
    return static_cast<int64_t>(kMaxAuditRecordBytes - kTailBytes - kCloseBytes) -
           static_cast<int64_t>(line_.size());
}

size_t AuditRecord::room_left() const
{
    int64_t left = room();
    return left > 0 ? static_cast<size_t>(left) : 0;
}

void AuditRecord::key(std::string_view name)
{
    close_nested();
    field_mark_ = writer_.mark();
    std::string_view shown = name;
    if (is_standard_field(name)) {
        scratch_.assign("x_");
        scratch_.append(name.data(), name.size());
        shown = scratch_;
    }
    // A name may take at most half of what is left (and never all of it):
    // the value needs room too.
    size_t cut = json_cut(shown, std::min(kMaxAuditNameBytes, room_left() / 2));
    if (cut < shown.size())
        truncated_ = true;
    writer_.key(shown.substr(0, cut));
}

bool AuditRecord::keep_field()
{
    if (room() >= 0)
        return true;
    writer_.rewind(field_mark_);
    truncated_ = true;
    return false;
}

void AuditRecord::field(std::string_view name, std::string_view value)
{
    key(name);
    size_t cut = json_cut(value, room_left());
    if (cut < value.size())
        truncated_ = true;
    writer_.string(value.substr(0, cut));
    if (keep_field())
        flat_.emplace_back(std::string(name), std::string(value.substr(0, cut)));
}

void AuditRecord::field_int(std::string_view name, int64_t value)
{
    key(name);
    writer_.integer(value);
    if (keep_field())
        flat_.emplace_back(std::string(name), std::to_string(value));
}

void AuditRecord::field_number(std::string_view name, double value)
{
    key(name);
    size_t start = line_.size();
    writer_.number(value);
    if (keep_field())
        flat_.emplace_back(std::string(name), line_.substr(start));
}

void AuditRecord::field_bool(std::string_view name, bool value)
{
    key(name);
    writer_.boolean(value);
    if (keep_field())
        flat_.emplace_back(std::string(name), value ? "true" : "false");
}

void AuditRecord::field_null(std::string_view name)
{
    key(name);
    writer_.null();
    keep_field();
}

void AuditRecord::nested_key(std::string_view name)
{
    key(name);
    nested_open_ = true;
}

void AuditRecord::nested_string(std::string_view value)
{
    size_t cut = json_cut(value, std::max<size_t>(room_left(), 2));
    if (cut < value.size())
        truncated_ = true;
    writer_.string(value.substr(0, cut));
}

void AuditRecord::nested_object_key(std::string_view name)
{
    size_t cut = json_cut(name, std::min(kMaxAuditNameBytes, std::max<size_t>(room_left() / 2, 2)));
    if (cut < name.size())
        truncated_ = true;
    writer_.key(name.substr(0, cut));
}

bool AuditRecord::more()
{
    // Margin for one element that is not cut (a number, an empty string).
    if (room() > 32)
        return true;
    truncated_ = true;
    return false;
}

void AuditRecord::close_nested()
{
    if (!nested_open_)
        return;
    nested_open_ = false;
    // The brackets a nested value closes after more() said no fit in
    // kCloseBytes; anything beyond that takes the whole value back.
    if (line_.size() + kTailBytes > kMaxAuditRecordBytes) {
        writer_.rewind(field_mark_);
        truncated_ = true;
    }
}

void AuditRecord::finish()
{
    close_nested();
    if (truncated_)
        line_ += kTruncatedMarker;
    writer_.end_object();
    line_ += '\n';
}

PartialRecord erase_partial_record(int fd, int64_t start, int64_t end)
{
    struct stat st;
    if (::fstat(fd, &st) < 0)
        return PartialRecord::Failed;
    if (st.st_size <= start)
        return PartialRecord::Gone;   // someone truncated the file (copytruncate)
    if (st.st_size <= end)
        return ::ftruncate(fd, start) == 0 ? PartialRecord::Truncated : PartialRecord::Failed;
    // Other records follow. pwrite(2) on an O_APPEND descriptor appends on
    // Linux, so the bytes are overwritten through a second descriptor of the
    // same file (not the path: it may name another file by now).
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    int blank_fd = ::open(proc.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (blank_fd < 0)
        return PartialRecord::Failed;
    struct stat blank_st;
    bool ok = ::fstat(blank_fd, &blank_st) == 0 && blank_st.st_dev == st.st_dev &&
              blank_st.st_ino == st.st_ino;
    if (ok) {
        std::string spaces(static_cast<size_t>(end - start), ' ');
        ssize_t written;
        do {
            written = ::pwrite(blank_fd, spaces.data(), spaces.size(), start);
        } while (written < 0 && errno == EINTR);
        ok = written == static_cast<ssize_t>(spaces.size());
    }
    ::close(blank_fd);
    return ok ? PartialRecord::Blanked : PartialRecord::Failed;
}

std::shared_ptr<AuditFile> AuditFile::shared(const std::string &path)
{
    const Clock &clock = MonotonicClock::instance();
    static std::map<std::string, std::weak_ptr<AuditFile>> files;
    for (auto it = files.begin(); it != files.end();) {
        if (it->second.expired())
            it = files.erase(it);
        else
            ++it;
    }
    std::weak_ptr<AuditFile> &slot = files[path];
    std::shared_ptr<AuditFile> file = slot.lock();
    if (file == nullptr) {
        file = std::make_shared<AuditFile>(path, clock);
        slot = file;
    }
    return file;
}

AuditFile::~AuditFile()
{
    if (fd_ >= 0)
        ::close(fd_);
}

namespace {

// A setgid directory is one a group shares (the README's
// /var/log/dovecot-mruby, root:dovecot-mruby 2770): the mail processes of
// every mail uid and auth write the same file there, so a file this process
// creates must be group-writable whatever the process umask (Dovecot's is
// often 0077), as the store's files are. Elsewhere: 0640 less the umask.
bool in_shared_directory(const std::string &path)
{
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st;
    return ::stat(dir.c_str(), &st) == 0 && (st.st_mode & S_ISGID) != 0;
}

} // namespace

bool AuditFile::open_file()
{
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    bool created = false;
    if (fd < 0 && errno == ENOENT) {
        fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0 && errno == EEXIST)   // another process created it just now
            fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
        else
            created = fd >= 0;
    }
    if (fd < 0)
        return false;
    if (created && in_shared_directory(path_))
        (void)::fchmod(fd, 0660);
    struct stat st;
    if (::fstat(fd, &st) < 0) {
        int error = errno;
        ::close(fd);
        errno = error;
        return false;
    }
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = fd;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    newline_first_ = false;
    return true;
}

void AuditFile::check_path(int64_t now, Logger &logger)
{
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
        return;
    // Rotated (renamed, replaced) or deleted: the path is the file now.
    if (open_file()) {
        logger.log(LogLevel::Debug, "mruby: audit: " + path_ + " was rotated or removed: reopened");
        return;
    }
    int error = errno;
    // Records go on into the old file while it has a name (a rotated file
    // is kept); an unlinked one would lose them.
    if (::fstat(fd_, &st) < 0 || st.st_nlink == 0) {
        ::close(fd_);
        fd_ = -1;
        next_open_us_ = now;   // append() tries again and reports
        return;
    }
    report(now, logger, LogLevel::Error,
           "mruby: audit: open(" + path_ + ") failed: " + errno_text(error) +
               " (records go on into the file that had that name)");
}

bool AuditFile::write_whole(std::string_view line, WriteFailure &failure)
{
    std::string with_newline;
    if (newline_first_) {
        with_newline.reserve(line.size() + 1);
        with_newline += '\n';
        with_newline.append(line.data(), line.size());
        line = with_newline;
    }
    auto write_some = [this](std::string_view data) {
        ssize_t n;
        do {
            n = ::write(fd_, data.data(), data.size());
        } while (n < 0 && errno == EINTR);
        return n;
    };
    ssize_t first = write_some(line);
    if (first == static_cast<ssize_t>(line.size())) {
        newline_first_ = false;
        return true;
    }
    if (first < 0) {
        failure.error = errno;
        return false;
    }
    // A short write (the file system filled up, a file size limit). The
    // descriptor's offset is the end of what was just appended. Writing the
    // rest tells why (ENOSPC, EFBIG, EDQUOT) or, if space came back, may
    // complete the record in place.
    int64_t first_end = ::lseek(fd_, 0, SEEK_CUR);
    int64_t first_start = first_end - first;
    std::string_view rest = line.substr(static_cast<size_t>(first));
    ssize_t second = write_some(rest);
    failure.error = second < 0 ? errno : 0;
    failure.partial_bytes = static_cast<size_t>(first);
    bool unremoved = false;
    if (second > 0) {
        int64_t second_end = ::lseek(fd_, 0, SEEK_CUR);
        if (second == static_cast<ssize_t>(rest.size()) && second_end == first_end + second) {
            newline_first_ = false;
            return true;   // nothing came between the two parts: the record is whole
        }
        failure.partial_bytes += static_cast<size_t>(second);
        unremoved = second_end < 0 ||
                    erase_partial_record(fd_, second_end - second, second_end) == PartialRecord::Failed;
    }
    failure.erased = first_end < 0 ? PartialRecord::Failed
                                   : erase_partial_record(fd_, first_start, first_end);
    if (unremoved)
        failure.erased = PartialRecord::Failed;
    newline_first_ = failure.erased == PartialRecord::Failed;
    return false;
}

void AuditFile::report(int64_t now, Logger &logger, LogLevel level, const std::string &message)
{
    if (report_throttle_.admit(now))
        logger.log(level, message);
}

bool AuditFile::fail(int64_t now, Logger &logger, const std::string &message)
{
    not_written_++;
    if (!message.empty() && report_throttle_.due(now)) {
        report(now, logger, LogLevel::Error,
               message + "; " + std::to_string(not_written_) +
                   (not_written_ == 1 ? " record" : " records") + " not written");
        episode_reported_ = true;
    }
    return false;
}

bool AuditFile::append(std::string_view line, Logger &logger)
{
    int64_t now = steady_.now_us();
    if (fd_ >= 0 && now >= next_check_us_) {
        next_check_us_ = now + kReopenIntervalUs;
        check_path(now, logger);
    }
    if (fd_ < 0) {
        if (have_opened_ && now < next_open_us_)
            return fail(now, logger, "");   // retried at most once a second
        have_opened_ = true;
        next_open_us_ = now + kReopenIntervalUs;
        if (!open_file())
            return fail(now, logger, "mruby: audit: open(" + path_ + ") failed: " + errno_text(errno));
        next_check_us_ = now + kReopenIntervalUs;
    }
    WriteFailure failure;
    if (!write_whole(line, failure)) {
        std::string why = failure.error != 0 ? errno_text(failure.error) : "short write";
        if (failure.partial_bytes > 0) {
            why += " (" + std::to_string(failure.partial_bytes) + " of " +
                   std::to_string(line.size()) + " bytes were written, then ";
            switch (failure.erased) {
            case PartialRecord::Truncated:
            case PartialRecord::Gone:
                why += "removed)";
                break;
            case PartialRecord::Blanked:
                why += "overwritten with spaces)";
                break;
            case PartialRecord::Failed:
                why += "could not be removed: the next record starts on a new line)";
                break;
            }
        }
        return fail(now, logger, "mruby: audit: write(" + path_ + ") failed: " + why);
    }
    // Back to normal after a failure that was logged: say so once, with the
    // count (failures that were not logged are counted into the next line).
    if (episode_reported_) {
        logger.log(LogLevel::Info, "mruby: audit: " + path_ + ": writing again, " +
                                       std::to_string(not_written_) +
                                       (not_written_ == 1 ? " record" : " records") +
                                       " not written");
        not_written_ = 0;
        episode_reported_ = false;
    }
    return true;
}

bool SyslogAuditSink::write(const AuditRecord &record)
{
    const std::string &line = record.line();
    int length = static_cast<int>(line.size()) - 1;   // without '\n'
    ::syslog(facility_ | LOG_INFO, "%.*s", length, line.c_str());
    return true;   // syslog(3) reports nothing
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
    record_.begin(context_, kind, clock_.now_us(), origin_);
    return record_;
}

bool Auditor::commit()
{
    record_.finish();
    bool stored = true;
    for (auto &sink : sinks_)
        stored = sink->write(record_) && stored;
    return stored;
}

} // namespace dmr::core
