// LMDB under contention: N processes deciding GCRA hits on shared keys in
// one environment, as imap/pop3/auth processes do on one host.
// Target (issue 5): 8 processes >= 400,000 decisions/s in total.
//   build/bench/store/lmdb_contention [--processes 8] [--seconds 3] [--keys 64] [--dir DIR]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "store/lmdb_store.hpp"

namespace {

struct Options {
    int processes = 8;
    double seconds = 3;
    int keys = 64;
    std::string dir;
};

struct ChildReport {
    int64_t decisions = 0;
    int64_t allowed = 0;
    int64_t errors = 0;
};

bool parse(int argc, char **argv, Options &options)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string name = argv[i];
        const char *value = argv[i + 1];
        if (name == "--processes")
            options.processes = std::atoi(value);
        else if (name == "--seconds")
            options.seconds = std::atof(value);
        else if (name == "--keys")
            options.keys = std::atoi(value);
        else if (name == "--dir")
            options.dir = value;
        else
            return false;
    }
    return argc % 2 == 1 && options.processes > 0 && options.seconds > 0 && options.keys > 0;
}

ChildReport run_child(const Options &options, int index, int start_fd)
{
    char go;
    if (read(start_fd, &go, 1) < 0)   // returns 0 when the parent closes the pipe: start
        return {};
    dmr::store::LmdbOptions lmdb;
    lmdb.dir = options.dir;
    dmr::store::LmdbStore store(lmdb);
    // A burst the run never exhausts: every decision is allowed, so every
    // one writes (the worst case; a refused decision commits nothing).
    const auto rate = *dmr::core::GcraRate::make(100, 1'000'000, 1'000'000);
    std::vector<std::string> keys;
    for (int k = 0; k < options.keys; k++)
        keys.push_back("imap-commands:user" + std::to_string(k));
    ChildReport report;
    const auto end = std::chrono::steady_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(options.seconds * 1e6));
    uint64_t i = static_cast<uint64_t>(index) * 7919;
    while (true) {
        for (int batch = 0; batch < 256; batch++) {
            auto d = store.rate_hit(keys[i++ % keys.size()], rate, 1);
            report.decisions++;
            if (!d.ok())
                report.errors++;
            else if (d.value.allowed)
                report.allowed++;
        }
        if (std::chrono::steady_clock::now() >= end)
            break;
    }
    return report;
}

} // namespace

int main(int argc, char **argv)
{
    Options options;
    if (!parse(argc, argv, options)) {
        std::fprintf(stderr,
                     "usage: %s [--processes N] [--seconds S] [--keys K] [--dir DIR]\n", argv[0]);
        return 2;
    }
    std::string made_dir;
    if (options.dir.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "dmr-contention-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) {
            std::perror("mkdtemp");
            return 1;
        }
        options.dir = made_dir = pattern;
    }

    int start_pipe[2];
    if (pipe(start_pipe) != 0)
        return 1;
    std::vector<pid_t> pids;
    std::vector<int> result_fds;
    for (int p = 0; p < options.processes; p++) {
        int result_pipe[2];
        if (pipe(result_pipe) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(start_pipe[1]);
            close(result_pipe[0]);
            ChildReport report = run_child(options, p, start_pipe[0]);
            ssize_t ignored = write(result_pipe[1], &report, sizeof report);
            (void)ignored;
            _exit(0);
        }
        close(result_pipe[1]);
        pids.push_back(pid);
        result_fds.push_back(result_pipe[0]);
    }
    const auto started = std::chrono::steady_clock::now();
    close(start_pipe[1]);   // go
    close(start_pipe[0]);

    ChildReport total;
    for (size_t p = 0; p < pids.size(); p++) {
        ChildReport report;
        if (read(result_fds[p], &report, sizeof report) == sizeof report) {
            total.decisions += report.decisions;
            total.allowed += report.allowed;
            total.errors += report.errors;
        }
        close(result_fds[p]);
        waitpid(pids[p], nullptr, 0);
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("processes=%d keys=%d seconds=%.2f decisions=%lld allowed=%lld errors=%lld\n",
                options.processes, options.keys, elapsed, static_cast<long long>(total.decisions),
                static_cast<long long>(total.allowed), static_cast<long long>(total.errors));
    std::printf("decisions/s total: %.0f\n", total.decisions / elapsed);

    if (!made_dir.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(made_dir, ignored);
    }
    return total.errors == 0 ? 0 : 1;
}
