// The URL parsers of the LMDB and Redis rows (store/backends.cpp): the part of
// the spec after the scheme into the backend's options; false with `error`
// for a malformed spec. Options after '?' are joined with '&' (README.md).
#pragma once

#include <string>
#include <string_view>

#include "store/lmdb_store.hpp"
#include "store/redis_store.hpp"

namespace dmr::store {

// "DIR[?map_size=64M&mode=0660&sync=no]" (after "lmdb:")
bool parse_lmdb_spec(std::string_view rest, LmdbOptions &options, std::string &error);
// "[:PASSWORD@]HOST[:PORT][/DB][?timeout=50ms&connect_timeout=50ms&clock=server&prefix=dmr:]"
// (after "redis://")
bool parse_redis_spec(std::string_view rest, RedisOptions &options, std::string &error);
// "[:PASSWORD@]HOST[:PORT],HOST[:PORT].../MASTERNAME[?sentinel_password=...&db=N&...]"
// (after "redis-sentinel://"): the sentinels (port 26379 when left out) and
// the name they monitor the master by; PASSWORD and password= are the
// master's, sentinel_password= the sentinels' own.
bool parse_redis_sentinel_spec(std::string_view rest, RedisOptions &options, std::string &error);
// "/PATH[?db=N&password=...&timeout=...]" (after "redis+unix://" or "unix://")
bool parse_redis_unix_spec(std::string_view rest, RedisOptions &options, std::string &error);

// Puts the password of mruby_store_password / store_password= (`separate`,
// "" when unset) into `options` parsed from the URL: false with `error` when
// the URL has a password too (one of the two would be ignored).
bool merge_redis_password(RedisOptions &options, const std::string &separate, std::string &error);

} // namespace dmr::store
