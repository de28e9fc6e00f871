#include "core/script_cache.hpp"
#include "core/hash.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace dmr::core {
namespace {

constexpr const char *kMagic = "dovecot-mruby script cache 1\n";
constexpr size_t kMaxCacheFile = 64u << 20;   // a script's bytecode is KiBs

std::string hex64(uint64_t v)
{
    char buffer[17];
    std::snprintf(buffer, sizeof(buffer), "%016llx", static_cast<unsigned long long>(v));
    return buffer;
}

std::string errno_text(const char *what, const std::string &path, int err)
{
    return std::string(what) + "(" + path + "): " + std::strerror(err);
}

// The whole file, or nullopt with errno set (ENOENT: missing).
std::optional<std::string> read_file(const std::string &path, std::string &why)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        why = errno_text("open", path, err);
        errno = err;
        return std::nullopt;
    }
    std::string data;
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            why = errno_text("read", path, err);
            ::close(fd);
            errno = err;
            return std::nullopt;
        }
        if (n == 0)
            break;
        data.append(buffer, static_cast<size_t>(n));
        if (data.size() > kMaxCacheFile) {
            why = "larger than " + std::to_string(kMaxCacheFile) + " bytes";
            ::close(fd);
            errno = EFBIG;
            return std::nullopt;
        }
    }
    ::close(fd);
    return data;
}

// Reads "key value\n" at `pos`; false when the line is not that key.
bool header_line(std::string_view data, size_t &pos, std::string_view key, std::string &value)
{
    size_t end = data.find('\n', pos);
    if (end == std::string_view::npos)
        return false;
    std::string_view line = data.substr(pos, end - pos);
    if (line.size() <= key.size() || line.substr(0, key.size()) != key ||
        line[key.size()] != ' ')
        return false;
    value = std::string(line.substr(key.size() + 1));
    pos = end + 1;
    return true;
}

bool parse_int(const std::string &text, int64_t &out)
{
    if (text.empty() || text.size() > 18)
        return false;
    int64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

bool write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENOSPC;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// Creates the cache directory itself (not its parents) the way the store
// directory is laid out: mode 2770, so files keep the shared group.
bool ensure_dir(const std::string &dir, std::string &why)
{
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return true;
        why = dir + " is not a directory";
        return false;
    }
    if (::mkdir(dir.c_str(), 02770) < 0 && errno != EEXIST) {
        why = errno_text("mkdir", dir, errno);
        return false;
    }
    // mkdir applies the umask; the group must be able to write.
    (void)::chmod(dir.c_str(), 02770);
    return true;
}

} // namespace

std::string absolute_script_path(const std::string &path)
{
    if (!path.empty() && path[0] == '/')
        return path;
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr)
        return path;
    return std::string(cwd) + "/" + path;
}

std::string utc_time_text(int64_t unix_seconds)
{
    time_t t = static_cast<time_t>(unix_seconds);
    struct tm tm {};
    gmtime_r(&t, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

std::string ScriptCache::directory_for(std::string_view setting, std::string_view store_spec,
                                       std::vector<std::string> &errors)
{
    if (setting == "no")
        return "";
    if (!setting.empty()) {
        if (setting.front() == '/')
            return std::string(setting);
        errors.push_back("mruby_script_cache: '" + std::string(setting) +
                         "' is not an absolute path (or no); using the default");
    }
    if (store_spec.substr(0, 5) == "lmdb:") {
        std::string_view dir = store_spec.substr(5);
        dir = dir.substr(0, dir.find('?'));
        while (dir.size() > 1 && dir.back() == '/')
            dir.remove_suffix(1);
        if (!dir.empty() && dir.front() == '/')
            return std::string(dir) + "/scripts";
    }
    return kDefaultDir;
}

ScriptCache::ScriptCache(std::string dir, Logger &logger, const Clock &clock)
    : dir_(std::move(dir)), logger_(logger), clock_(clock)
{
}

std::string ScriptCache::file_for(const std::string &script) const
{
    if (dir_.empty())
        return "";
    std::string path = absolute_script_path(script);
    // Readable name, unique key: "policy.rb-<hash of the absolute path>.cache".
    std::string base = path.substr(path.rfind('/') + 1);
    std::string name;
    for (char c : base.substr(0, 64)) {
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        name += plain ? c : '_';
    }
    return dir_ + "/" + name + "-" + hex64(fnv1a64(path)) + ".cache";
}

ScriptCache::ReadResult ScriptCache::read(const std::string &script, Entry &entry,
                                          std::string &why) const
{
    std::string file = file_for(script);
    if (file.empty())
        return ReadResult::Missing;
    std::optional<std::string> data = read_file(file, why);
    if (!data)
        return errno == ENOENT ? ReadResult::Missing : ReadResult::Invalid;
    std::string_view d(*data);
    size_t pos = std::strlen(kMagic);
    if (d.substr(0, pos) != kMagic) {
        why = "not a script cache file (bad header)";
        return ReadResult::Invalid;
    }
    std::string path, saved, size, checksum;
    if (!header_line(d, pos, "script", path) || !header_line(d, pos, "saved", saved) ||
        !header_line(d, pos, "size", size) || !header_line(d, pos, "checksum", checksum) ||
        d.substr(pos, 1) != "\n") {
        why = "truncated or damaged header";
        return ReadResult::Invalid;
    }
    pos++;
    if (path != absolute_script_path(script)) {
        why = "it belongs to " + path;
        return ReadResult::Invalid;
    }
    int64_t saved_at = 0, length = 0;
    if (!parse_int(saved, saved_at) || !parse_int(size, length)) {
        why = "damaged header";
        return ReadResult::Invalid;
    }
    std::string_view payload = d.substr(pos);
    if (payload.size() != static_cast<uint64_t>(length)) {
        why = "truncated: " + std::to_string(payload.size()) + " of " + size + " bytes";
        return ReadResult::Invalid;
    }
    if (hex64(fnv1a64(payload)) != checksum) {
        why = "checksum mismatch (damaged)";
        return ReadResult::Invalid;
    }
    entry.bytecode = std::string(payload);
    entry.saved_at = saved_at;
    return ReadResult::Ok;
}

bool ScriptCache::save(const std::string &script, std::string_view bytecode,
                       std::string &why) const
{
    why.clear();
    std::string file = file_for(script);
    if (file.empty())
        return false;
    std::string path = absolute_script_path(script);
    if (path.find('\n') != std::string::npos) {
        why = "the script's path contains a newline";
        return false;
    }
    Entry kept;
    std::string ignored;
    if (read(script, kept, ignored) == ReadResult::Ok && kept.bytecode == bytecode)
        return false;
    if (!ensure_dir(dir_, why))
        return false;

    std::string data = kMagic;
    data += "script " + path + "\n";
    data += "saved " + std::to_string(clock_.now_us() / kMicrosPerSecond) + "\n";
    data += "size " + std::to_string(bytecode.size()) + "\n";
    data += "checksum " + hex64(fnv1a64(bytecode)) + "\n\n";
    data.append(bytecode.data(), bytecode.size());

    // Concurrent sessions write their own temp file; rename() makes one of
    // them the cache file at once, so a reader never sees half a file.
    static std::atomic<unsigned> serial{0};
    std::string tmp = file + ".tmp." + std::to_string(::getpid()) + "." +
                      std::to_string(serial.fetch_add(1));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (fd < 0) {
        why = errno_text("open", tmp, errno);
        return false;
    }
    // Readable and writable by the group every process shares, whatever the
    // umask; the directory's group if this process may set it (no setgid).
    (void)::fchmod(fd, 0660);
    struct stat st;
    if (::stat(dir_.c_str(), &st) == 0)
        (void)!::fchown(fd, static_cast<uid_t>(-1), st.st_gid);
    bool ok = write_all(fd, data);
    if (!ok)
        why = errno_text("write", tmp, errno);
    if (ok && ::fdatasync(fd) < 0) {
        why = errno_text("fdatasync", tmp, errno);
        ok = false;
    }
    if (::close(fd) < 0 && ok) {
        why = errno_text("close", tmp, errno);
        ok = false;
    }
    if (ok && ::rename(tmp.c_str(), file.c_str()) < 0) {
        why = errno_text("rename", file, errno);
        ok = false;
    }
    if (!ok)
        (void)::unlink(tmp.c_str());
    return ok;
}

ScriptLoad ScriptCache::load(const std::string &script, ScriptBuilder &builder, bool keep)
{
    ScriptLoad out;
    std::string bytecode;
    ScriptError error;
    const bool save_it = keep && !dir_.empty();
    out.runtime = builder.from_file(script, save_it ? &bytecode : nullptr, error);
    if (out.runtime != nullptr) {
        if (!save_it)
            return out;
        std::string why;
        if (save(script, bytecode, why))
            logger_.log(LogLevel::Info, "mruby: saved " + script +
                                            " as the last good version (" + file_for(script) +
                                            ")");
        else if (!why.empty())
            logger_.log(LogLevel::Warning,
                        "mruby: cannot keep the last good version of " + script + ": " + why +
                            " (mruby_script_cache): after a broken edit, new processes "
                            "follow mruby_on_error");
        return out;
    }
    out.error = error;
    if (dir_.empty())
        return out;

    Entry entry;
    std::string why;
    std::string file = file_for(script);
    switch (read(script, entry, why)) {
    case ReadResult::Missing:
        return out;
    case ReadResult::Invalid:
        logger_.log(LogLevel::Warning, "mruby: ignoring the script cache file " + file + ": " +
                                           why);
        return out;
    case ReadResult::Ok:
        break;
    }
    ScriptError fallback_error;
    std::unique_ptr<ScriptRuntime> runtime = builder.from_bytecode(entry.bytecode, script,
                                                                   fallback_error);
    if (runtime == nullptr) {
        logger_.log(LogLevel::Warning, "mruby: ignoring the script cache file " + file +
                                           ": it does not load: " + fallback_error.describe());
        return out;
    }
    out.runtime = std::move(runtime);
    out.fallback = ScriptLoad::Fallback{file, entry.saved_at};

    std::string when = utc_time_text(entry.saved_at);
    LogEvent event;
    event.name = "mruby_script_fallback";
    event.strings = {{"script", script},
                     {"error", error.describe()},
                     {"error_kind", script_error_kind_name(error.kind)},
                     {"error_file", error.file},
                     {"cache_file", file},
                     {"last_good", when}};
    event.numbers = {{"error_line", error.line}, {"last_good_unix", entry.saved_at}};
    logger_.log_event(LogLevel::Error,
                      "mruby: " + error.describe() + "; enforcing the last good version from " +
                          when + " (" + file + ") until the file is fixed",
                      event);
    return out;
}

} // namespace dmr::core
