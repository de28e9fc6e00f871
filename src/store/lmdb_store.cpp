#include "store/lmdb_store.hpp"

#include <fcntl.h>
#include <grp.h>
#include <lmdb.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <map>
#include <mutex>

#include "store/kv.hpp"

namespace dmr::store {
namespace detail {
namespace {

// Every write visits this many records every kSweepEvery writes on average:
// 2 visits per write, so expired records are reclaimed faster than any
// workload can create them and the file stays within twice its live size.
constexpr unsigned kSweepEvery = 8;
constexpr size_t kSweepVisits = 16;
// A full sweep deletes in batches so one transaction never grows too large.
constexpr size_t kFullSweepBatch = 10000;
constexpr int64_t kReopenDelayUs = 1'000'000;
// How often a process checks that DIR/data.mdb is still the file it has open.
constexpr int64_t kReplacedCheckUs = 1'000'000;
constexpr unsigned kMaxReaders = 1024;
// lock.mdb holds a header and one 64-byte slot per reader (LMDB sizes it
// (maxreaders - 1) * 64 + its header: 65,664 bytes for 1024 readers on
// x86-64). Its blocks are allocated for real up to this size before LMDB maps
// it: a reader slot in a hole of a full filesystem would raise SIGBUS.
constexpr off_t kLockFileBytes = 128 * 1024;

// Bumped in every forked child: an environment must not be used across fork().
std::atomic<unsigned> fork_generation{0};

void count_fork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

int64_t steady_us()
{
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

Status lmdb_error(const char *what, int rc)
{
    Status::Code code = Status::Code::Internal;
    switch (rc) {
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        code = Status::Code::Full;
        break;
    case MDB_BAD_VALSIZE:
        code = Status::Code::Invalid;
        break;
    case ENOSPC:   // the filesystem is full (pwrite failed: no MDB_WRITEMAP, no SIGBUS)
    case EDQUOT:
        code = Status::Code::Full;
        break;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
    case MDB_PANIC:
    case EACCES:
    case ENOENT:
    case EAGAIN:
    case ENOMEM:
    case EIO:
        code = Status::Code::Unavailable;
        break;
    default:
        break;
    }
    return Status::error(code, std::string("lmdb: ") + what + ": " + mdb_strerror(rc));
}

MDB_val to_val(std::string_view bytes)
{
    return MDB_val{bytes.size(), const_cast<char *>(bytes.data())};
}

std::string_view from_val(const MDB_val &val)
{
    return std::string_view(static_cast<const char *>(val.mv_data), val.mv_size);
}

// Allocates lock.mdb's blocks before LMDB maps it (creating the file when
// needed); the size stays LMDB's to decide (FALLOC_FL_KEEP_SIZE).
// A filesystem without fallocate is left as it is.
Status allocate_lock_file(const std::string &dir, unsigned mode)
{
    const std::string path = dir + "/lock.mdb";
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0)
        return Status();   // mdb_env_open reports it
    int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, kLockFileBytes);
    int error = errno;
    close(fd);
    if (rc != 0 && (error == ENOSPC || error == EDQUOT))
        return lmdb_error(("cannot allocate " + path).c_str(), error);
    return Status();
}

// The group the shipped configuration gives the auth process and the mail
// users (conf.d: service auth { extra_groups }, mail_access_groups).
constexpr const char *kStoreGroup = "dovecot-mruby";

// What an operator runs to give DIR the layout every process can share.
std::string store_dir_remedy(const std::string &dir)
{
    return std::string("; this process runs as uid ") + std::to_string(geteuid()) + " gid " +
           std::to_string(getegid()) + ": as root run `groupadd -f --system " + kStoreGroup +
           " && install -d -o root -g " + kStoreGroup + " -m 2770 " + dir +
           "` (an existing directory: `chgrp -R " + kStoreGroup + " " + dir + " && chmod 2770 " +
           dir + "`) and give auth and the mail users that group (conf.d/auth-mruby.conf.ext, "
           "conf.d/90-mruby.conf; docs/operations.md)";
}

// Creates a missing DIR (not its parents) as the shared layout: group
// dovecot-mruby when that group exists, setgid, mode 2770. Only a process
// allowed to write the parent can (root; /var/lib/dovecot is root's):
// otherwise the error says what to run.
Status create_missing_dir(const std::string &dir)
{
    struct stat st;
    if (stat(dir.c_str(), &st) == 0 || errno != ENOENT)
        return Status();   // there (or unreachable): mdb_env_open reports it
    if (mkdir(dir.c_str(), 0770) != 0) {
        const int error = errno;
        if (error == EEXIST || error == ENOENT)
            return Status();   // raced with another process / no parent: reported below
        return Status::error(Status::Code::Unavailable,
                             "lmdb: cannot create " + dir + ": " + strerror(error) +
                                 store_dir_remedy(dir));
    }
    struct group grp;
    struct group *found = nullptr;
    char buf[4096];
    gid_t gid = static_cast<gid_t>(-1);
    if (getgrnam_r(kStoreGroup, &grp, buf, sizeof(buf), &found) == 0 && found != nullptr)
        gid = found->gr_gid;
    if ((gid != static_cast<gid_t>(-1) && chown(dir.c_str(), static_cast<uid_t>(-1), gid) != 0) ||
        chmod(dir.c_str(), 02770) != 0) {
        const int error = errno;
        return Status::error(Status::Code::Unavailable,
                             "lmdb: created " + dir + " but cannot give it group " + kStoreGroup +
                                 " and mode 2770: " + strerror(error) + store_dir_remedy(dir));
    }
    return Status();
}

} // namespace

// One open environment per directory per process (LMDB forbids opening the
// same file twice in one process: closing either would drop the other's locks).
class LmdbEnv {
public:
    static Result<std::shared_ptr<LmdbEnv>> get(const LmdbOptions &options);

    ~LmdbEnv()
    {
        // In a forked child the handle belongs to the parent: closing it here
        // would clear the parent's reader slots. Leak it instead.
        if (generation_ == fork_generation.load(std::memory_order_relaxed))
            mdb_env_close(env_);
    }

    // Usable in this process: not inherited across fork(), not given up.
    bool current() const
    {
        return generation_ == fork_generation.load(std::memory_order_relaxed) &&
               !stale_.load(std::memory_order_relaxed);
    }
    MDB_env *env() const { return env_; }
    MDB_dbi dbi() const { return dbi_; }
    const std::string &data_path() const { return data_path_; }

    // Whether DIR/data.mdb is still the file this environment has open (the
    // directory may have been deleted and recreated: LMDB would go on using
    // the unlinked file, unseen by every process that opens it anew).
    bool still_at_path() const
    {
        struct stat st;
        return stat(data_path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
    }
    // Given up (replaced directory, MDB_PANIC): the next get() opens anew.
    void mark_stale() { stale_.store(true, std::memory_order_relaxed); }

private:
    LmdbEnv(MDB_env *env, MDB_dbi dbi, unsigned generation, std::string data_path, dev_t dev,
            ino_t ino)
        : env_(env), dbi_(dbi), generation_(generation), data_path_(std::move(data_path)),
          dev_(dev), ino_(ino)
    {
    }
    static Result<std::shared_ptr<LmdbEnv>> open(const LmdbOptions &options);

    MDB_env *env_;
    MDB_dbi dbi_;
    unsigned generation_;
    std::string data_path_;
    dev_t dev_;
    ino_t ino_;
    std::atomic<bool> stale_{false};
};

Result<std::shared_ptr<LmdbEnv>> LmdbEnv::get(const LmdbOptions &options)
{
    static std::once_flag atfork_once;
    std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, count_fork); });

    static std::mutex registry_mutex;
    static std::map<std::string, std::weak_ptr<LmdbEnv>> registry;

    char *real = realpath(options.dir.c_str(), nullptr);
    std::string path = real != nullptr ? real : options.dir;
    free(real);

    std::lock_guard<std::mutex> lock(registry_mutex);
    // A directory missing at its first use in this process is created; one
    // deleted under a process that had it open is not (issue 8: the store
    // fails until the operator puts it back).
    if (registry.find(path) == registry.end()) {
        if (Status created = create_missing_dir(options.dir); !created.ok())
            return created;
    }
    auto &slot = registry[path];
    if (auto env = slot.lock(); env && env->current())
        return env;
    auto opened = open(options);
    if (opened.ok())
        slot = opened.value;
    return opened;
}

Result<std::shared_ptr<LmdbEnv>> LmdbEnv::open(const LmdbOptions &options)
{
    MDB_env *env = nullptr;
    int rc = mdb_env_create(&env);
    if (rc != 0)
        return lmdb_error("mdb_env_create", rc);
    struct Closer {
        MDB_env *&env;
        ~Closer() { if (env != nullptr) mdb_env_close(env); }
    } closer{env};

    if ((rc = mdb_env_set_mapsize(env, options.map_size)) != 0)
        return lmdb_error("mdb_env_set_mapsize", rc);
    if ((rc = mdb_env_set_maxreaders(env, kMaxReaders)) != 0)
        return lmdb_error("mdb_env_set_maxreaders", rc);

    // NOTLS: a read transaction holds a reader slot only while it runs, so
    // thousands of short-lived mail processes never exhaust the reader table.
    // No MDB_WRITEMAP: with it, data.mdb is a sparse file as large as the map
    // and a commit writes pages into its holes through the map; on a full
    // filesystem that raises SIGBUS and kills the process (issue 8). Without
    // it, commits are pwrite() calls that fail with ENOSPC: a store failure.
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (!options.sync)
        flags |= MDB_NOSYNC;

    // Files are shared between uids through their group: create them
    // group-writable whatever the process umask (Dovecot's is often 0077).
    mode_t old_umask = umask(0007);
    Status allocated = allocate_lock_file(options.dir, options.mode);
    if (allocated.ok())
        rc = mdb_env_open(env, options.dir.c_str(), flags, static_cast<mdb_mode_t>(options.mode));
    umask(old_umask);
    if (!allocated.ok())
        return allocated;
    if (rc != 0) {
        Status failed = lmdb_error(("cannot open " + options.dir).c_str(), rc);
        if (rc == EACCES || rc == ENOENT || rc == EPERM)
            failed = Status::error(failed.code(), failed.message() + store_dir_remedy(options.dir));
        return failed;
    }

    // The file this environment reads, to notice when the path names another.
    mdb_filehandle_t fd = -1;
    struct stat st;
    if ((rc = mdb_env_get_fd(env, &fd)) != 0)
        return lmdb_error("mdb_env_get_fd", rc);
    if (fstat(fd, &st) != 0)
        return lmdb_error("fstat data.mdb", errno);

    int dead = 0;
    mdb_reader_check(env, &dead);   // free slots left by crashed processes

    MDB_txn *txn = nullptr;
    if ((rc = mdb_txn_begin(env, nullptr, 0, &txn)) != 0)
        return lmdb_error("mdb_txn_begin", rc);
    MDB_dbi dbi;
    rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0)
        return lmdb_error("mdb_dbi_open", rc);

    auto opened = std::shared_ptr<LmdbEnv>(
        new LmdbEnv(env, dbi, fork_generation.load(std::memory_order_relaxed),
                    options.dir + "/data.mdb", st.st_dev, st.st_ino));
    env = nullptr;   // owned now
    return opened;
}

namespace {

// One LMDB transaction; aborted unless committed (RAII).
class LmdbTxn final : public KvTxn {
public:
    LmdbTxn(LmdbEnv &env) : env_(env) {}
    ~LmdbTxn() override { abort(); }
    LmdbTxn(const LmdbTxn &) = delete;
    LmdbTxn &operator=(const LmdbTxn &) = delete;

    Status begin(bool write)
    {
        int rc = mdb_txn_begin(env_.env(), nullptr, write ? 0 : MDB_RDONLY, &txn_);
        if (rc == MDB_MAP_RESIZED) {
            // Another process grew the map: adopt its size and try again.
            mdb_env_set_mapsize(env_.env(), 0);
            rc = mdb_txn_begin(env_.env(), nullptr, write ? 0 : MDB_RDONLY, &txn_);
        } else if (rc == MDB_READERS_FULL) {
            int dead = 0;
            mdb_reader_check(env_.env(), &dead);
            rc = mdb_txn_begin(env_.env(), nullptr, write ? 0 : MDB_RDONLY, &txn_);
        }
        if (rc != 0) {
            txn_ = nullptr;
            if (rc == MDB_PANIC)
                env_.mark_stale();   // LMDB gave the environment up: reopen it
            return lmdb_error("mdb_txn_begin", rc);
        }
        writable_ = write;
        repair_needed_ = false;
        return Status();
    }

    Status commit()
    {
        int rc = mdb_txn_commit(txn_);
        txn_ = nullptr;
        if (rc == MDB_PANIC)
            env_.mark_stale();
        // LMDB reports a write cut short by a full filesystem as EIO: say what it is.
        if (rc == EIO && filesystem_full())
            rc = ENOSPC;
        return rc == 0 ? Status() : lmdb_error("mdb_txn_commit", rc);
    }

    void abort()
    {
        if (txn_ != nullptr)
            mdb_txn_abort(txn_);
        txn_ = nullptr;
    }

    Status get(std::string_view key, std::optional<std::string_view> &value) override
    {
        MDB_val k = to_val(key), v;
        int rc = mdb_get(txn_, env_.dbi(), &k, &v);
        if (rc == MDB_NOTFOUND) {
            value.reset();
            return Status();
        }
        if (rc != 0)
            return lmdb_error("mdb_get", rc);
        value = from_val(v);
        return Status();
    }

    Status put(std::string_view key, std::string_view value) override
    {
        MDB_val k = to_val(key), v = to_val(value);
        int rc = mdb_put(txn_, env_.dbi(), &k, &v, 0);
        return rc == 0 ? Status() : lmdb_error("mdb_put", rc);
    }

    Status del(std::string_view key) override
    {
        MDB_val k = to_val(key);
        int rc = mdb_del(txn_, env_.dbi(), &k, nullptr);
        return rc == 0 || rc == MDB_NOTFOUND ? Status() : lmdb_error("mdb_del", rc);
    }

    Status scan(std::string_view from, const Visitor &visit) override
    {
        MDB_cursor *cursor = nullptr;
        int rc = mdb_cursor_open(txn_, env_.dbi(), &cursor);
        if (rc != 0)
            return lmdb_error("mdb_cursor_open", rc);
        MDB_val k = to_val(from), v;
        rc = from.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
                          : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && visit(from_val(k), from_val(v)))
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
        mdb_cursor_close(cursor);
        return rc == 0 || rc == MDB_NOTFOUND ? Status() : lmdb_error("mdb_cursor_get", rc);
    }

private:
    // Less room left than a commit of a few pages needs.
    bool filesystem_full() const
    {
        struct statvfs fs;
        return statvfs(env_.data_path().c_str(), &fs) == 0 &&
               static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < kFullBelowBytes;
    }
    static constexpr uint64_t kFullBelowBytes = 1u << 20;

    LmdbEnv &env_;
    MDB_txn *txn_ = nullptr;
};

const Status &status_of(const Status &status) { return status; }
template <class T>
const Status &status_of(const Result<T> &result)
{
    return result.status;
}

} // namespace
} // namespace detail

using detail::LmdbEnv;
using detail::LmdbTxn;

LmdbStore::LmdbStore(LmdbOptions options, const core::Clock &clock)
    : options_(std::move(options)), clock_(clock)
{
}

LmdbStore::~LmdbStore() = default;

Result<std::shared_ptr<LmdbEnv>> LmdbStore::env()
{
    const int64_t now = detail::steady_us();
    if (env_ && env_->current()) {
        // The hot path: a clock read. At most once a second, one stat().
        if (now - checked_at_us_ < detail::kReplacedCheckUs)
            return env_;
        checked_at_us_ = now;
        if (env_->still_at_path())
            return env_;
        env_->mark_stale();
        if (options_.logger != nullptr)
            options_.logger->log(core::LogLevel::Warning,
                                 "mruby: lmdb store " + options_.dir +
                                     ": data.mdb was removed or replaced since it was opened; "
                                     "reopening (the old file's state is no longer used)");
    }
    env_.reset();
    // A missing or unreadable directory is retried at most once a second, so
    // a misconfigured host does not pay an open() per event.
    if (!open_error_.ok() && now - open_failed_at_us_ < detail::kReopenDelayUs)
        return open_error_;
    auto opened = LmdbEnv::get(options_);
    if (!opened.ok()) {
        open_error_ = opened.status;
        open_failed_at_us_ = now;
        return opened.status;
    }
    open_error_ = Status();
    env_ = opened.value;
    checked_at_us_ = now;
    return env_;
}

template <class Fn>
auto LmdbStore::write(Fn &&fn)
{
    using R = decltype(fn(std::declval<LmdbTxn &>(), int64_t{}));
    auto env = this->env();
    if (!env.ok())
        return R(env.status);
    const int64_t now = clock_.now_us();
    for (int attempt = 0;; attempt++) {
        LmdbTxn txn(*env.value);
        if (Status s = txn.begin(true); !s.ok())
            return R(s);
        // Reclaim a few expired records first: if that fails (a full map), the
        // decision still gets its own clean attempt below.
        if (attempt == 0 && detail::sweep_due(detail::kSweepEvery)) {
            if (!detail::kv_sweep(txn, now, detail::kSweepVisits).ok()) {
                txn.abort();
                if (Status s = txn.begin(true); !s.ok())
                    return R(s);
            }
        }
        R result = fn(txn, now);
        Status status = detail::status_of(result);
        if (status.ok())
            status = txn.commit();
        if (status.ok())
            return result;
        txn.abort();
        if (status.code() != Status::Code::Full || attempt > 0)
            return R(status);
        // The map is full: reclaim everything expired, then try once more.
        (void)sweep_all();
    }
}

template <class Fn>
auto LmdbStore::read(Fn &&fn)
{
    using R = decltype(fn(std::declval<LmdbTxn &>(), int64_t{}));
    auto env = this->env();
    if (!env.ok())
        return R(env.status);
    LmdbTxn txn(*env.value);
    if (Status s = txn.begin(false); !s.ok())
        return R(s);
    R result = fn(txn, clock_.now_us());
    if (!txn.repair_needed())
        return result;
    // A stored time was clamped (the clock stepped back): store the clamped
    // record too, or it would be clamped again on every read and never end.
    txn.abort();
    R repaired = write(fn);
    return detail::status_of(repaired).ok() ? repaired : result;
}

Result<size_t> LmdbStore::sweep_all()
{
    auto env = this->env();
    if (!env.ok())
        return env.status;
    const int64_t now = clock_.now_us();
    size_t total = 0;
    std::string from;
    // Batches of kFullSweepBatch visits, each its own transaction.
    for (;;) {
        LmdbTxn txn(*env.value);
        if (Status s = txn.begin(true); !s.ok())
            return s;
        std::vector<std::string> expired;
        std::string last;
        size_t visits = 0;
        Status s = txn.scan(from, [&](std::string_view key, std::string_view value) {
            if (!key.empty() && key[0] == '\0')
                return true;
            int64_t expires = 0;
            if (value.size() >= 8)
                std::memcpy(&expires, value.data(), 8);
            if (value.size() < 8 || !core::alive_at(expires, now))
                expired.emplace_back(key);
            last.assign(key);
            return ++visits < detail::kFullSweepBatch;
        });
        if (!s.ok())
            return s;
        for (const std::string &key : expired) {
            if (Status d = txn.del(key); !d.ok())
                return d;
        }
        if (Status c = txn.commit(); !c.ok())
            return c;
        total += expired.size();
        if (visits < detail::kFullSweepBatch)
            return total;
        from = last + '\0';
    }
}

Result<size_t> LmdbStore::record_count()
{
    return read([&](LmdbTxn &txn, int64_t) -> Result<size_t> {
        size_t count = 0;
        Status s = txn.scan("", [&](std::string_view key, std::string_view) {
            if (key.empty() || key[0] != '\0')
                count++;
            return true;
        });
        if (!s.ok())
            return s;
        return count;
    });
}

Result<core::GcraDecision> LmdbStore::rate_hit(std::string_view key, const core::GcraRate &rate,
                                               int64_t cost)
{
    return write([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_rate(txn, key, now, rate, cost, true);
    });
}

Result<core::GcraDecision> LmdbStore::rate_peek(std::string_view key, const core::GcraRate &rate,
                                                int64_t cost)
{
    return read([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_rate(txn, key, now, rate, cost, false);
    });
}

Status LmdbStore::rate_reset(std::string_view key)
{
    return write([&](LmdbTxn &txn, int64_t) {
        return detail::kv_delete(txn, detail::rate_key(key));
    });
}

Result<int64_t> LmdbStore::counter_incr(std::string_view key, int64_t by, int64_t ttl_us)
{
    return write([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_counter_incr(txn, key, now, by, ttl_us);
    });
}

Result<int64_t> LmdbStore::counter_get(std::string_view key)
{
    return read([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_counter_get(txn, key, now);
    });
}

Status LmdbStore::counter_reset(std::string_view key)
{
    return write([&](LmdbTxn &txn, int64_t) {
        return detail::kv_delete(txn, detail::counter_key(key));
    });
}

Status LmdbStore::list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                           std::string_view reason)
{
    return write([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_list_add(txn, list, entry, now, ttl_us, reason);
    });
}

Result<bool> LmdbStore::list_remove(std::string_view list, std::string_view entry)
{
    return write([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_list_remove(txn, list, entry, now);
    });
}

Result<std::optional<ListEntry>> LmdbStore::list_match(std::string_view list,
                                                       std::string_view value)
{
    return read([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_list_match(txn, list, value, now);
    });
}

Result<std::vector<ListEntry>> LmdbStore::list_entries(std::string_view list)
{
    return read([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_list_entries(txn, list, now);
    });
}

Result<int64_t> LmdbStore::distinct_add(std::string_view key, std::string_view member,
                                  int64_t window_us)
{
    return write([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_distinct_add(txn, key, member, now, window_us);
    });
}

Result<int64_t> LmdbStore::distinct_count(std::string_view key, int64_t window_us)
{
    return read([&](LmdbTxn &txn, int64_t now) {
        return detail::kv_distinct_count(txn, key, now, window_us);
    });
}

} // namespace dmr::store
