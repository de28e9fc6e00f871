// Dovecot's pop3 process headers, for lib95_pop3_mruby_plugin.so only.
#pragma once

#include "dovecot/dovecot.hpp"

extern "C" {
#include "istream-private.h"
#include "ostream-private.h"
#include "pop3-common.h"
#include "pop3-client.h"
}
