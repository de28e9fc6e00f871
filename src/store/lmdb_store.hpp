// LMDB store: the default for one host. One environment (DIR/data.mdb and
// DIR/lock.mdb) shared by every Dovecot process on the host, whatever its uid.
//
// Operators: create DIR once, owned by a group that the auth, imap, pop3 (and
// any other mail) uids belong to, setgid so new files inherit that group:
//     install -d -o root -g dovecot-mruby -m 2770 /var/lib/dovecot/mruby
// The files are created with mode 0660 (option `mode`) whatever the process
// umask; a process that cannot open them gets errors (and the fail mode).
//
// Durability: every decision is one write transaction (read-modify-write, so
// concurrent processes never lose an update). A process that dies at any point,
// even holding the write lock, leaves a consistent database (LMDB commits are
// atomic and its lock is a robust mutex). By default commits are not fsync'ed
// (sync=no): an OS crash or power loss can lose the last seconds of updates
// and, as LMDB documents for MDB_NOSYNC, may damage the file; remove DIR's
// files after such a crash, or set sync=yes (an fsync per decision: slow).
//
// Space: expired records are reclaimed without any daemon: every write visits
// a few records from a cursor shared through the database and deletes expired
// ones; when the map is full anyway, a write sweeps all expired records and
// retries once, then fails with Status::Code::Full. Size the map (map_size,
// default 64M: about 500,000 rate keys) for the live keys you expect.
// A full filesystem is also Status::Code::Full, never a signal: no
// MDB_WRITEMAP, and lock.mdb's blocks allocated for real (README.md).
//
// Replaced directory: at most once a second the store checks that
// DIR/data.mdb is still the file it has open, and reopens (logging a warning
// to options.logger) when it is not.
#pragma once

#include <memory>
#include <string>

#include "core/logger.hpp"
#include "store/store.hpp"

namespace dmr::store {

namespace detail {
class LmdbEnv;
}

struct LmdbOptions {
    static constexpr size_t kDefaultMapSize = 64u << 20;

    std::string dir;
    size_t map_size = kDefaultMapSize;
    unsigned mode = 0660;
    bool sync = false;
    // Where the store says it reopened a replaced directory (nullptr: nowhere).
    core::Logger *logger = nullptr;
};

class LmdbStore final : public Store {
public:
    explicit LmdbStore(LmdbOptions options,
                       const core::Clock &clock = core::SystemClock::instance());
    ~LmdbStore() override;

    const char *backend() const override { return "lmdb"; }
    Result<core::GcraDecision> rate_hit(std::string_view key, const core::GcraRate &rate,
                                        int64_t cost) override;
    Result<core::GcraDecision> rate_peek(std::string_view key, const core::GcraRate &rate,
                                         int64_t cost) override;
    Status rate_reset(std::string_view key) override;
    Result<int64_t> counter_incr(std::string_view key, int64_t by, int64_t ttl_us) override;
    Result<int64_t> counter_get(std::string_view key) override;
    Status counter_reset(std::string_view key) override;
    Status list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                    std::string_view reason) override;
    Result<bool> list_remove(std::string_view list, std::string_view entry) override;
    Result<std::optional<ListEntry>> list_match(std::string_view list,
                                                std::string_view value) override;
    Result<std::vector<ListEntry>> list_entries(std::string_view list) override;
    Result<int64_t> distinct_add(std::string_view key, std::string_view member,
                                 int64_t window_us) override;
    Result<int64_t> distinct_count(std::string_view key, int64_t window_us) override;

    // Records in the database, expired ones included.
    Result<size_t> record_count();
    // Deletes every expired record now; returns how many.
    Result<size_t> sweep_all();

    const LmdbOptions &options() const { return options_; }

private:
    Result<std::shared_ptr<detail::LmdbEnv>> env();
    template <class Fn> auto write(Fn &&fn);
    template <class Fn> auto read(Fn &&fn);

    LmdbOptions options_;
    const core::Clock &clock_;
    std::shared_ptr<detail::LmdbEnv> env_;
    int64_t open_failed_at_us_ = 0;   // steady clock; limits re-open attempts
    int64_t checked_at_us_ = 0;       // steady clock; last check for a replaced data.mdb
    Status open_error_;
};

} // namespace dmr::store
