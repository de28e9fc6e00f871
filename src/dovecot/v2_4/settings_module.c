/* libmruby_settings.so, installed in <moduledir>/settings: the config
   process and doveconf load every module there and read its
   <name>_set_infos, so that they know the mruby_* settings (Pigeonhole ships
   libpigeonhole_settings.so the same way). Data only. */
#include "lib.h"
#include "mruby_settings.h"

extern const struct setting_parser_info *mruby_settings_set_infos[];
__attribute__((visibility("default")))
const struct setting_parser_info *mruby_settings_set_infos[] = {
	&mruby_setting_parser_info,
	NULL
};

/* module_dir_load() refuses a module built for another Dovecot. */
extern const char *mruby_settings_version;
__attribute__((visibility("default")))
const char *mruby_settings_version = DOVECOT_ABI_VERSION;
