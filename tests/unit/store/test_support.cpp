#include "test_support.hpp"

#include "store/backends.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace dmr::store::test {

std::unique_ptr<Store> open_store(std::string_view spec, std::string &error,
                                  const StoreOptions &options)
{
    register_backends(core::store_registry());   // rows are replaced, not added twice
    return core::open_store(spec, error, options);
}

TempDir::TempDir()
{
    std::string pattern = ::testing::TempDir() + "dmr-store-XXXXXX";
    char *made = mkdtemp(pattern.data());
    path_ = made != nullptr ? made : "";
}

TempDir::~TempDir()
{
    std::error_code ignored;
    if (!path_.empty())
        std::filesystem::remove_all(path_, ignored);
}

bool RedisServer::installed() { return access(kBinary, X_OK) == 0; }

int free_loopback_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

RedisServer::~RedisServer() { kill(); }

bool RedisServer::start(std::string &error, int port)
{
    if (!installed()) {
        error = std::string(kBinary) + " is not installed";
        return false;
    }
    port_ = port != 0 ? port : free_loopback_port();
    socket_ = dir_.path() + "/redis.sock";
    const std::string port_text = std::to_string(port_);
    pid_ = fork();
    if (pid_ < 0) {
        error = "fork failed";
        return false;
    }
    if (pid_ == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   // never outlive a crashed test
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execl(kBinary, "redis-server", "--port", port_text.c_str(), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--dir", dir_.path().c_str(), "--unixsocket",
              socket_.c_str(), "--unixsocketperm", "700", "--databases", "16", nullptr);
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        struct timeval tv = {0, 100'000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        if (c != nullptr && c->err == 0) {
            auto *reply = static_cast<redisReply *>(redisCommand(c, "PING"));
            bool up = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
            if (reply != nullptr)
                freeReplyObject(reply);
            redisFree(c);
            if (up)
                return true;
        } else if (c != nullptr) {
            redisFree(c);
        }
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            error = "redis-server exited at start (port " + port_text + " taken?)";
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    error = "redis-server did not answer PING within 10 s";
    return false;
}

void RedisServer::kill()
{
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

void RedisServer::pause()
{
    if (pid_ > 0)
        ::kill(pid_, SIGSTOP);
}

void RedisServer::resume()
{
    if (pid_ > 0)
        ::kill(pid_, SIGCONT);
}

std::string RedisServer::spec(const std::string &prefix, int db) const
{
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db) +
           "?clock=client&prefix=" + prefix;
}

} // namespace dmr::store::test

namespace dmr::store::test {

std::vector<int64_t> run_children(int count, const std::function<int64_t(int index)> &body)
{
    std::vector<pid_t> pids;
    std::vector<int> fds;
    for (int i = 0; i < count; i++) {
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0)
            return {};
        pid_t pid = fork();
        if (pid == 0) {
            close(pipe_fds[0]);
            int64_t value = body(i);
            ssize_t ignored = write(pipe_fds[1], &value, sizeof value);
            (void)ignored;
            _exit(0);
        }
        close(pipe_fds[1]);
        pids.push_back(pid);
        fds.push_back(pipe_fds[0]);
    }
    std::vector<int64_t> values;
    bool complete = true;
    for (int i = 0; i < count; i++) {
        int64_t value = 0;
        if (read(fds[i], &value, sizeof value) != sizeof value)
            complete = false;
        close(fds[i]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            complete = false;
        values.push_back(value);
    }
    if (!complete)
        values.clear();
    return values;
}

} // namespace dmr::store::test
