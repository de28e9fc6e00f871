// Helpers for the store tests: a temporary directory, a real redis-server on
// a free loopback port, a recording logger.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/logger.hpp"
#include "store/store.hpp"

namespace dmr::store::test {

// core::open_store() on the process's registry, with every linked backend
// registered first (store/backends.hpp): these test programs are their own
// composition root.
std::unique_ptr<Store> open_store(std::string_view spec, std::string &error,
                                  const StoreOptions &options = {});

// A fresh directory under the test temp dir, removed with its contents.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

// A redis-server child process: --save '' --appendonly no, loopback only,
// killed when this object goes away (or when the test process dies).
class RedisServer {
public:
    static constexpr const char *kBinary = "/usr/bin/redis-server";
    static bool installed();

    RedisServer() = default;
    ~RedisServer();
    RedisServer(const RedisServer &) = delete;
    RedisServer &operator=(const RedisServer &) = delete;

    // Starts on `port` (0: a free one) and waits until it answers PING.
    bool start(std::string &error, int port = 0);
    void kill();                 // SIGKILL, like a crash
    void pause();                // SIGSTOP: connections hang, like an overloaded server
    void resume();               // SIGCONT
    bool running() const { return pid_ > 0; }

    int port() const { return port_; }
    const std::string &unix_socket() const { return socket_; }
    // "redis://127.0.0.1:PORT/DB?clock=client&prefix=PREFIX"
    std::string spec(const std::string &prefix, int db = 0) const;

private:
    pid_t pid_ = -1;
    int port_ = 0;
    std::string socket_;
    TempDir dir_;
};

int free_loopback_port();

class RecordingLogger final : public core::Logger {
public:
    void log(core::LogLevel level, std::string_view message) override
    {
        lines.push_back({level, std::string(message)});
    }
    struct Line {
        core::LogLevel level;
        std::string text;
    };
    std::vector<Line> lines;
};

} // namespace dmr::store::test

#include <cstdint>
#include <functional>

namespace dmr::store::test {

// Forks `count` children running `body(index)`; each child's return value is
// sent back through a pipe. Returns the values in index order, or an empty
// vector if a child died. Children leave with _exit(): no test teardown runs.
std::vector<int64_t> run_children(int count, const std::function<int64_t(int index)> &body);

} // namespace dmr::store::test
