// What a compiled script names, for choosing what to load before its top
// level runs (gems.cpp: the extension gems; bind_json.cpp: JSON). One walk
// over an irep and the ireps nested in it (methods, blocks, classes): its
// symbols (calls, constants, :symbol literals) and its string literals
// (names passed as Strings: send("center", 9), const_get("JSON")).
#pragma once

#include <mruby.h>
#include <mruby/irep.h>

#include <cstdint>
#include <string_view>

namespace dmr::mruby {

// True when `names_symbol(sym)` or `names_string(text)` holds for any
// symbol or string literal of `irep` or the code nested in it.
template <typename SymbolTest, typename StringTest>
bool irep_names(const mrb_irep *irep, const SymbolTest &names_symbol,
                const StringTest &names_string)
{
    for (uint16_t i = 0; i < irep->slen; i++) {
        if (names_symbol(irep->syms[i]))
            return true;
    }
    for (uint16_t i = 0; i < irep->plen; i++) {
        const mrb_pool_value &v = irep->pool[i];
        if ((v.tt & IREP_TT_NFLAG) != 0)
            continue;   // a number
        if (names_string(std::string_view(v.u.str, static_cast<size_t>(v.tt >> 2))))
            return true;
    }
    for (uint16_t i = 0; i < irep->rlen; i++) {
        if (irep->reps[i] != nullptr && irep_names(irep->reps[i], names_symbol, names_string))
            return true;
    }
    return false;
}

} // namespace dmr::mruby
