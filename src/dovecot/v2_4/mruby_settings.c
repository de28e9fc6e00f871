/* See mruby_settings.h. The defaults are core::ScriptSettings' (an
   adapter test compares them). */
#include "lib.h"
#include "array.h"
#include "settings-parser.h"
#include "mruby_settings.h"

#undef DEF
#define DEF(type, name) \
	SETTING_DEFINE_STRUCT_##type(#name, name, struct mruby_settings)

static const struct setting_define mruby_setting_defines[] = {
	DEF(STR, mruby_script),
	DEF(ENUM, mruby_on_error),
	DEF(TIME_MSECS, mruby_timeout),
	DEF(SIZE, mruby_memory_limit),
	DEF(STR, mruby_services),
	DEF(STR, mruby_script_cache),
	DEF(STR, mruby_store),
	DEF(STR, mruby_store_password),
	DEF(STR, mruby_store_password_file),
	DEF(STR, mruby_audit),
	DEF(STR, mruby_audit_syslog_facility),
	DEF(BOOL, mruby_shadow),
	/* Expanded per mail user by the plugin (%{user}, %{home}): not by
	   settings_get(), which the auth process calls without a user. */
	DEF(STR_NOVARS, mruby_user_script),
	DEF(TIME_MSECS, mruby_user_timeout),
	DEF(SIZE, mruby_user_memory_limit),
	DEF(ENUM, mruby_user_on_error),
	{ .type = SET_STRLIST, .key = "mruby_settings",
	  .offset = offsetof(struct mruby_settings, mruby_settings) },
	SETTING_DEFINE_LIST_END
};

static const struct mruby_settings mruby_default_settings = {
	.mruby_script = "",
	.mruby_on_error = "tempfail:allow:reject",
	.mruby_timeout = 200,
	.mruby_memory_limit = 32 * 1024 * 1024,
	.mruby_services = "imap pop3",
	.mruby_script_cache = "",
	.mruby_store = "lmdb:/var/lib/dovecot/mruby",
	.mruby_store_password = "",
	.mruby_store_password_file = "",
	.mruby_audit = "",
	.mruby_audit_syslog_facility = "",
	.mruby_shadow = FALSE,
	.mruby_user_script = "",
	.mruby_user_timeout = 50,
	.mruby_user_memory_limit = 8 * 1024 * 1024,
	.mruby_user_on_error = "allow:tempfail:reject",
	.mruby_settings = ARRAY_INIT,
};

const struct setting_parser_info mruby_setting_parser_info = {
	.name = "mruby",
	.defines = mruby_setting_defines,
	.defaults = &mruby_default_settings,
	.struct_size = sizeof(struct mruby_settings),
	.pool_offset1 = 1 + offsetof(struct mruby_settings, pool),
};
