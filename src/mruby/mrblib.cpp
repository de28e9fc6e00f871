// Loads the bytecode that mrbc compiled from mrblib/*.rb at build time.
#include "mruby/internal.hpp"
#include <mruby/irep.h>


extern "C" const uint8_t dmr_mrblib_irep[];

namespace dmr::mruby {

void load_api_bytecode(mrb_state *mrb)
{
    mrb_load_irep(mrb, dmr_mrblib_irep);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
}

} // namespace dmr::mruby
