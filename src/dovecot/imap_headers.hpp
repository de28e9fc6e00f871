// Dovecot's imap process headers, for lib95_imap_mruby_plugin.so only.
#pragma once

#include "dovecot/dovecot.hpp"

extern "C" {
#include "istream.h"
#include "ostream.h"
#include "imap-common.h"
#include "imap-client.h"
#include "imap-commands.h"
}
