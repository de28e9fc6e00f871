// What differs between the mruby releases we build against: 3.1 (Debian 12)
// and 3.3 (Debian 13). Only this file tests the version; the rest of the
// bridge uses the one API it exposes.
//
// 3.2 moved the functions that "only the library calls" out of the public
// headers into <mruby/internal.h>; libmruby.a still defines them, and two of
// them are ours to call: mrb_exc_backtrace (an exception's recorded
// backtrace, errors.cpp) and mrb_dump_irep (the compiled script kept as the
// last good version, vm.cpp). In 3.1 they are declared by <mruby/error.h> and
// <mruby/dump.h>.
#pragma once

#include <mruby.h>
#include <mruby/version.h>
#include <mruby/array.h>
#include <mruby/class.h>
#include <mruby/dump.h>
#include <mruby/error.h>

#if MRUBY_RELEASE_NO >= 30200
// internal.h, unlike the public headers, has no MRB_BEGIN_DECL.
extern "C" {
#include <mruby/internal.h>
}
#endif
