// Dovecot's auth-process headers, for the passdb/userdb driver only (the
// sibling of dovecot.hpp, which it includes for the shared helpers). Compiled
// against the installed headers of the Dovecot we run with: Debian 12's
// 2.3.19.1+dfsg1-2.1+deb12u7 moved `mechanisms`/`username_filter` from
// struct passdb_module (2.3.19.1 tag) to struct auth_passdb, so the upstream
// tag's headers do not match the binary; the installed ones do.
#pragma once

#include "dovecot/dovecot.hpp"

extern "C" {
#include "auth-common.h"
#include "auth.h"
#include "auth-cache.h"
#include "auth-fields.h"
#include "auth-request.h"
#include "passdb.h"
#include "userdb.h"
#include "password-scheme.h"
#include "event-filter.h"
#include "lib-event-private.h"
}
