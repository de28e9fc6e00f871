// Dovecot's doveadm headers, for lib10_doveadm_mruby_plugin.so only.
#pragma once

#include "dovecot/dovecot.hpp"

extern "C" {
#include "doveadm.h"
#include "doveadm-cmd.h"
#include "doveadm-print.h"
#include "doveadm-util.h"
}
