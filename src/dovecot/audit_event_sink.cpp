// The "event" audit sink: a named Dovecot event per record, so metric {}
// and event_exporter can count and export audit records.
#include "dovecot/audit_event_sink.hpp"

namespace dmr::dovecot {

bool EventAuditSink::write(const core::AuditRecord &record)
{
    struct event_passthrough *e = event_create_passthrough(event_)
                                      ->set_name("mruby_audit")
                                      ->add_str("kind", record.kind().c_str());
    for (const auto &[key, value] : record.flat_fields())
        e->add_str(t_strdup_printf("audit_%s", key.c_str()), value.c_str());
    const std::string &line = record.line();
    // Debug level: the log stays quiet unless asked (log_debug=event=mruby_audit);
    // stats and exporters still receive the event when a filter wants it.
    e_debug(e->event(), "audit: %.*s", static_cast<int>(line.size()) - 1, line.c_str());
    return true;
}

} // namespace dmr::dovecot
