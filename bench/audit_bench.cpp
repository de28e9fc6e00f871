// One audit record: format (standard fields + a typical command's fields)
// and hand it to a sink. Target: <= 5 us. The sink here discards, so the
// number is formatting plus the sink call; FileSink adds one write(2).
#include <benchmark/benchmark.h>

#include <string>

#include "core/audit.hpp"

namespace {

using namespace dmr::core;

class NullSink final : public AuditSink {
public:
    bool write(const AuditRecord &record) override
    {
        benchmark::DoNotOptimize(record.line().data());
        return true;
    }
};

AuditContext context()
{
    return {"mx1.example.com", "imap", "7dWNzi1hxrF/AAAB", "alice@example.com", "192.0.2.10",
            "198.51.100.1"};
}

void BM_AuditRecordCommand(benchmark::State &state)
{
    Auditor auditor(context(), SystemClock::instance());
    auditor.add_sink(std::make_unique<NullSink>());
    for (auto _ : state) {
        AuditRecord &r = auditor.begin("imap.command");
        r.field("command", "UID FETCH");
        r.field("tag", "A0042");
        r.field("args", "1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)])");
        r.field("reply", "OK");
        r.field("reply_text", "Fetch completed (0.001 + 0.000 secs).");
        r.field_number("duration_ms", 1.234);
        auditor.commit();
    }
}
BENCHMARK(BM_AuditRecordCommand);

void BM_AuditRecordHostile(benchmark::State &state)
{
    Auditor auditor(context(), SystemClock::instance());
    auditor.add_sink(std::make_unique<NullSink>());
    std::string hostile;
    for (int i = 0; i < 1000; i++)
        hostile += static_cast<char>(i * 37);
    for (auto _ : state) {
        AuditRecord &r = auditor.begin("imap.command");
        r.field("args", hostile);
        auditor.commit();
    }
}
BENCHMARK(BM_AuditRecordHostile);

} // namespace

BENCHMARK_MAIN();
