#pragma once

#include "core/audit.hpp"
#include "dovecot/dovecot.hpp"

namespace dmr::dovecot {

// Emits event "mruby_audit" (fields: kind, audit_<name> for each top-level
// scalar field) as a child of the session's event.
class EventAuditSink final : public core::AuditSink {
public:
    explicit EventAuditSink(struct event *event) : event_(event) {}
    bool write(const core::AuditRecord &record) override;

private:
    struct event *event_;
};

} // namespace dmr::dovecot
