/* The plugin's settings on Dovecot 2.4: declared with the settings API, so
   doveconf knows, checks and prints them and userdb fields of the same names
   override them per user (docs/configuration.md, "Dovecot 2.4").
   Plain C (Dovecot's settings macros are C designated initializers): compiled
   into the plugins and into libmruby_settings.so, the module doveconf loads
   from <moduledir>/settings. */
#ifndef DMR_MRUBY_SETTINGS_H
#define DMR_MRUBY_SETTINGS_H

#include "lib.h"
#include "array.h"
#include "settings-parser.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mruby_settings {
	pool_t pool;
	const char *mruby_script;
	const char *mruby_on_error;
	unsigned int mruby_timeout;          /* milliseconds */
	uoff_t mruby_memory_limit;           /* bytes */
	const char *mruby_services;
	const char *mruby_script_cache;
	const char *mruby_store;
	const char *mruby_store_password;
	const char *mruby_store_password_file;
	const char *mruby_audit;
	const char *mruby_audit_syslog_facility;
	bool mruby_shadow;
	const char *mruby_user_script;       /* expanded in PluginSettings::for_user */
	unsigned int mruby_user_timeout;     /* milliseconds */
	uoff_t mruby_user_memory_limit;      /* bytes */
	const char *mruby_user_on_error;
	/* A script's own settings (Dovecot::Session#setting): key, value, ... */
	ARRAY_TYPE(const_string) mruby_settings;
};

extern const struct setting_parser_info mruby_setting_parser_info;

#ifdef __cplusplus
}
#endif

#endif
