// lib10_doveadm_mruby_plugin.so: the `doveadm mruby ...` commands
// (docs/operations.md, "Admin commands"). doveadm loads every plugin in its
// module directory (modules/doveadm) at start; this one only registers its
// commands there. Each command is a ver2 command, so it also works over
// doveadm's HTTP API ("mrubyListShow", ...) and prints through doveadm's
// formatter (-f table|tab|flow|json|pager).
//
// The commands open the store named by the setting mruby_store (default
// lmdb:/var/lib/dovecot/mruby; 2.3: in plugin {}, 2.4: a top-level setting)
// through core::process_store, as the mail plugin and the auth driver do,
// and do their work in core::admin.
#include "dovecot/doveadm_headers.hpp"
#include "dovecot/plugin_settings.hpp"

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/admin.hpp"
#include "core/settings.hpp"
#include "core/store_registry.hpp"
#include "mruby/vm.hpp"
#include "store/backends.hpp"

namespace dmr::dovecot {
namespace {

// The mruby_* settings this command sees, or nothing after logging why
// (exit code set). 2.3: doveadm's plugin {} block; 2.4: the typed settings
// through the command's settings event (its filters, then the global ones).
std::optional<core::RuntimeSettings> read_settings(struct doveadm_cmd_context *cctx)
{
#if DMR_DOVECOT_VERSION >= 204
    PluginSettings plugin = PluginSettings::for_event(cctx->set_event);
    if (!plugin.error().empty()) {
        // Not the defaults: an admin command must not work on a store the
        // configuration does not name.
        i_error("mruby: settings: %s", plugin.error().c_str());
        doveadm_exit_code = EX_CONFIG;
        return std::nullopt;
    }
#else
    (void)cctx;
    PluginSettings plugin = PluginSettings::from_plugin_env(
        [](const char *name) { return doveadm_plugin_getenv(name); });
#endif
    std::vector<std::string> errors;
    core::RuntimeSettings settings = core::RuntimeSettings::from(plugin.lookup(), errors);
    for (const std::string &error : errors)
        i_warning("mruby: %s", error.c_str());
    return settings;
}

int exit_code_for(const core::Status &status)
{
    return status.code() == core::Status::Code::Invalid ? EX_USAGE : EX_TEMPFAIL;
}

void fail(const core::Status &status, const char *what)
{
    i_error("mruby: %s: %s", what, status.message().c_str());
    doveadm_exit_code = exit_code_for(status);
}

// The process's store (mruby_store), or nullptr after logging why.
core::Store *open_store(struct doveadm_cmd_context *cctx)
{
    std::optional<core::RuntimeSettings> settings = read_settings(cctx);
    if (!settings)
        return nullptr;
    std::string error;
    core::Store *store = core::process_store(*settings, &process_logger()).get(error);
    if (store == nullptr) {
        i_error("mruby: store %s: %s", settings->store.c_str(), error.c_str());
        doveadm_exit_code = EX_TEMPFAIL;
    }
    return store;
}

const char *param_str(struct doveadm_cmd_context *cctx, const char *name)
{
    const char *value = nullptr;
    if (!doveadm_cmd_param_str(cctx, name, &value))
        return nullptr;
    return value;
}

// Required positional parameters: usage error (with the command's help) if missing.
bool require(struct doveadm_cmd_context *cctx, std::initializer_list<const char *> names)
{
    for (const char *name : names) {
        const char *value = param_str(cctx, name);
        if (value == nullptr || value[0] == '\0') {
            i_error("mruby: missing <%s>", name);
            doveadm_exit_code = EX_USAGE;
            return false;
        }
    }
    return true;
}

// The store a command works on, once its required parameters are there:
// nullptr after a usage error or a store that cannot be opened (logged,
// exit code set).
core::Store *store_for(struct doveadm_cmd_context *cctx,
                       std::initializer_list<const char *> required)
{
    return require(cctx, required) ? open_store(cctx) : nullptr;
}

void print_text(const std::string &text) { doveadm_print(text.c_str()); }

// --- list ----------------------------------------------------------------

void cmd_list_show(struct doveadm_cmd_context *cctx)
{
    const char *list = param_str(cctx, "list");
    core::Store *store = store_for(cctx, {"list"});
    if (store == nullptr)
        return;
    core::Result<std::vector<core::ListEntry>> entries = core::admin::list_show(*store, list);
    if (!entries.ok())
        return fail(entries.status, "list show");
    doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
    doveadm_print_header("value", "Value", DOVEADM_PRINT_HEADER_FLAG_EXPAND);
    doveadm_print_header("reason", "Reason", DOVEADM_PRINT_HEADER_FLAG_EXPAND);
    doveadm_print_header("expires_at", "Expires at (Unix)", (enum doveadm_print_header_flags)0);
    doveadm_print_header("expires", "Expires", (enum doveadm_print_header_flags)0);
    for (const core::ListEntry &entry : entries.value) {
        print_text(entry.entry);
        print_text(entry.reason);
        if (entry.expires_at_us == 0) {
            doveadm_print("");
            doveadm_print("never");
        } else {
            time_t seconds = static_cast<time_t>(entry.expires_at_us / 1'000'000);
            doveadm_print_num(static_cast<uintmax_t>(seconds));
            doveadm_print(unixdate2str(seconds));
        }
    }
}

void cmd_list_add(struct doveadm_cmd_context *cctx)
{
    if (!require(cctx, {"list", "entry"}))
        return;
    int64_t ttl = 0;
    if (doveadm_cmd_param_int64(cctx, "ttl", &ttl) && ttl < 0) {
        i_error("mruby: ttl must not be negative");
        doveadm_exit_code = EX_USAGE;
        return;
    }
    const char *reason = param_str(cctx, "reason");
    core::Store *store = open_store(cctx);
    if (store == nullptr)
        return;
    core::Status status = core::admin::list_add(*store, param_str(cctx, "list"),
                                                param_str(cctx, "entry"), ttl,
                                                reason == nullptr ? "" : reason);
    if (!status.ok())
        fail(status, "list add");
}

void cmd_list_remove(struct doveadm_cmd_context *cctx)
{
    const char *list = param_str(cctx, "list");
    const char *entry = param_str(cctx, "entry");
    core::Store *store = store_for(cctx, {"list", "entry"});
    if (store == nullptr)
        return;
    core::Result<bool> removed = core::admin::list_remove(*store, list, entry);
    if (!removed.ok())
        return fail(removed.status, "list remove");
    if (!removed.value) {
        i_error("mruby: list %s has no entry %s", list, entry);
        doveadm_exit_code = DOVEADM_EX_NOTFOUND;
    }
}

// --- ratelimit -----------------------------------------------------------

void cmd_ratelimit_show(struct doveadm_cmd_context *cctx)
{
    if (!require(cctx, {"name", "key"}))
        return;
    const char *name = param_str(cctx, "name");
    const char *key = param_str(cctx, "key");
    int64_t limit = 0, period = 0, burst = 0;
    bool has_limit = doveadm_cmd_param_int64(cctx, "limit", &limit);
    bool has_period = doveadm_cmd_param_int64(cctx, "period", &period);
    bool has_burst = doveadm_cmd_param_int64(cctx, "burst", &burst);
    std::optional<core::GcraRate> rate;
    if (has_limit || has_period || has_burst) {
        std::string why = "-l <limit> and -p <period> go together";
        if (has_limit && has_period && period > 0 && period <= core::kMaxSpanUs / 1'000'000)
            rate = core::GcraRate::make(limit, period * 1'000'000, has_burst ? burst : limit, &why);
        else if (has_limit && has_period)
            why = "period must be 1 to " + std::to_string(core::kMaxSpanUs / 1'000'000) +
                  " seconds";
        if (!rate) {
            i_error("mruby: invalid rate: %s", why.c_str());
            doveadm_exit_code = EX_USAGE;
            return;
        }
    }
    core::Store *store = open_store(cctx);
    if (store == nullptr)
        return;
    core::Result<core::admin::RateShow> show = core::admin::rate_show(*store, name, key, rate);
    if (!show.ok())
        return fail(show.status, "ratelimit show");
    doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
    doveadm_print_header_simple("name");
    doveadm_print_header_simple("key");
    doveadm_print_header_simple("idle_after");
    if (rate) {
        doveadm_print_header_simple("allowed");
        doveadm_print_header_simple("remaining");
        doveadm_print_header_simple("retry_after");
        doveadm_print_header_simple("reset_after");
    }
    doveadm_print(name);
    doveadm_print(key);
    print_text(core::admin::seconds_text(show.value.idle_after_us));
    if (rate) {
        const core::GcraDecision &peek = *show.value.peek;
        doveadm_print(peek.allowed ? "yes" : "no");
        doveadm_print_num(static_cast<uintmax_t>(peek.remaining));
        doveadm_print(peek.retry_after_us == core::kRetryNever
                          ? "never"
                          : core::admin::seconds_text(peek.retry_after_us).c_str());
        print_text(core::admin::seconds_text(peek.reset_after_us));
    }
}

void cmd_ratelimit_reset(struct doveadm_cmd_context *cctx)
{
    const char *name = param_str(cctx, "name");
    const char *key = param_str(cctx, "key");
    core::Store *store = store_for(cctx, {"name", "key"});
    if (store == nullptr)
        return;
    core::Status status = core::admin::rate_reset(*store, name, key);
    if (!status.ok())
        fail(status, "ratelimit reset");
}

// --- counter -------------------------------------------------------------

void cmd_counter_show(struct doveadm_cmd_context *cctx)
{
    const char *key = param_str(cctx, "key");
    core::Store *store = store_for(cctx, {"key"});
    if (store == nullptr)
        return;
    core::Result<int64_t> value = core::admin::counter_show(*store, key);
    if (!value.ok())
        return fail(value.status, "counter show");
    doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
    doveadm_print_header_simple("key");
    doveadm_print_header_simple("value");
    doveadm_print(key);
    print_text(std::to_string(value.value));
}

void cmd_counter_reset(struct doveadm_cmd_context *cctx)
{
    const char *key = param_str(cctx, "key");
    core::Store *store = store_for(cctx, {"key"});
    if (store == nullptr)
        return;
    core::Status status = core::admin::counter_reset(*store, key);
    if (!status.ok())
        fail(status, "counter reset");
}

// --- check ---------------------------------------------------------------

void cmd_check(struct doveadm_cmd_context *cctx)
{
    if (!require(cctx, {"script"}))
        return;
    const char *path = param_str(cctx, "script");
    std::optional<core::RuntimeSettings> settings = read_settings(cctx);
    if (!settings)
        return;
    // The full API over a private in-memory store: a script's top level
    // that touches state never writes the live one.
    core::StoreHandle store("memory");
    mruby::VmOptions options = mruby::VmOptions::for_policy(*settings, process_logger());
    options.store = &store;
    mruby::VmBuilder builder(options);
    core::admin::CheckReport report = core::admin::check_script(builder, path);
    if (report.error) {
        // file:line: message, as a compiler says it (editors and CI parse it).
        i_error("%s", report.error->describe().c_str());
        doveadm_exit_code = EX_DATAERR;
        return;
    }
    doveadm_print_init(DOVEADM_PRINT_TYPE_FLOW);
    doveadm_print_header_simple("script");
    doveadm_print_header_simple("handlers");
    doveadm_print(path);
    std::string hooks;
    for (const std::string &hook : report.hooks)
        hooks += (hooks.empty() ? "" : " ") + hook;
    print_text(hooks);
}

// --- dry-run -------------------------------------------------------------

void cmd_dry_run(struct doveadm_cmd_context *cctx)
{
    if (!require(cctx, {"script", "event"}))
        return;
    const char *path = param_str(cctx, "script");
    std::vector<std::string> fields;
    // -j FILE: the fields as a JSON object; the command line's come after
    // it, so they win.
    const char *json_path = nullptr;
    if (doveadm_cmd_param_str(cctx, "json", &json_path)) {
        std::string error;
        std::optional<std::vector<std::string>> from_file =
            core::admin::fields_from_json_file(json_path, error);
        if (!from_file) {
            i_error("mruby: -j %s: %s", json_path, error.c_str());
            doveadm_exit_code = EX_USAGE;
            return;
        }
        fields = std::move(*from_file);
    }
    const char *const *values = nullptr;
    if (doveadm_cmd_param_array(cctx, "field", &values)) {
        for (; *values != nullptr; values++)
            fields.emplace_back(*values);
    }
    std::string error;
    std::optional<core::admin::SampleEvent> sample =
        core::admin::sample_event(param_str(cctx, "event"), fields, error);
    if (!sample) {
        i_error("mruby: %s", error.c_str());
        doveadm_exit_code = EX_USAGE;
        return;
    }
    bool live = false;
    (void)doveadm_cmd_param_bool(cctx, "live", &live);
    std::optional<core::RuntimeSettings> read = read_settings(cctx);
    if (!read)
        return;
    const core::RuntimeSettings &settings = *read;
    // A private in-memory store unless -L: the sample never writes live state.
    core::StoreHandle memory("memory");
    mruby::VmOptions options = mruby::VmOptions::for_policy(settings, process_logger());
    options.store = live ? &core::process_store(settings, &process_logger()) : &memory;
    mruby::VmBuilder builder(options);
    core::admin::DryRun run = core::admin::dry_run(builder, path, process_logger(),
                                                   settings.on_error, *sample);
    doveadm_print_init(DOVEADM_PRINT_TYPE_FLOW);
    doveadm_print_header_simple("event");
    doveadm_print_header_simple("handled");
    doveadm_print_header_simple("verdict");
    doveadm_print_header_simple("code");
    doveadm_print_header_simple("text");
    doveadm_print_header_simple("delay");
    doveadm_print_header_simple("fields");
    doveadm_print(core::hook_name(sample->hook));
    doveadm_print(run.handled ? "yes" : "no");
    doveadm_print(core::admin::verdict_kind_name(run.verdict.kind));
    print_text(run.verdict.code);
    print_text(run.verdict.text);
    print_text(core::admin::seconds_text(int64_t{run.auth_output.delay_ms} * 1000));
    std::string set;
    for (const auto &[name, value] : run.auth_output.fields)
        set += (set.empty() ? "" : " ") + name + "=" + value;
    print_text(set);
    if (run.errors > 0)
        doveadm_exit_code = EX_DATAERR;   // the script failed: logged above
}

// --- registration --------------------------------------------------------

struct doveadm_cmd_param param(char short_opt, const char *name, doveadm_cmd_param_t type,
                               bool positional)
{
    struct doveadm_cmd_param p;
    std::memset(&p, 0, sizeof(p));
    p.short_opt = short_opt;
    p.name = name;
    p.type = type;
    p.flags = positional ? CMD_PARAM_FLAG_POSITIONAL : CMD_PARAM_FLAG_NONE;
#if DMR_DOVECOT_VERSION >= 204
    p.key = name;   // 2.4's DOVEADM_CMD_PARAM sets it too (read by key-value parameters only)
#endif
    return p;
}

struct doveadm_cmd_param end_param() { return param('\0', nullptr, CMD_PARAM_BOOL, false); }

// Parameter tables; Dovecot keeps pointers to them for the process's life.
struct doveadm_cmd_param list_show_params[2], list_add_params[5], list_remove_params[3],
    ratelimit_show_params[6], ratelimit_reset_params[3], counter_params[2], check_params[2], dry_run_params[6];

struct doveadm_cmd_ver2 commands[9];

struct doveadm_cmd_ver2 command(doveadm_command_ver2_t *fn, const char *name, const char *usage,
                                const struct doveadm_cmd_param *params)
{
    struct doveadm_cmd_ver2 cmd;
    std::memset(&cmd, 0, sizeof(cmd));
    cmd.cmd = fn;
    cmd.name = name;
    cmd.usage = usage;
    cmd.parameters = params;
    return cmd;
}

void register_commands()
{
    const doveadm_cmd_param_t STR = CMD_PARAM_STR, INT = CMD_PARAM_INT64;
    auto fill = [](struct doveadm_cmd_param *out, std::initializer_list<struct doveadm_cmd_param> in) {
        size_t i = 0;
        for (const auto &p : in)
            out[i++] = p;
        out[i] = end_param();
    };
    fill(list_show_params, {param('\0', "list", STR, true)});
    fill(list_add_params, {param('t', "ttl", INT, false), param('r', "reason", STR, false),
                           param('\0', "list", STR, true), param('\0', "entry", STR, true)});
    fill(list_remove_params, {param('\0', "list", STR, true), param('\0', "entry", STR, true)});
    fill(ratelimit_show_params, {param('l', "limit", INT, false), param('p', "period", INT, false),
                                 param('b', "burst", INT, false), param('\0', "name", STR, true),
                                 param('\0', "key", STR, true)});
    fill(ratelimit_reset_params, {param('\0', "name", STR, true), param('\0', "key", STR, true)});
    fill(counter_params, {param('\0', "key", STR, true)});
    fill(check_params, {param('\0', "script", STR, true)});
    fill(dry_run_params, {param('L', "live", CMD_PARAM_BOOL, false),
                          param('j', "json", STR, false),
                          param('\0', "script", STR, true), param('\0', "event", STR, true),
                          param('\0', "field", CMD_PARAM_ARRAY, true)});

    size_t n = 0;
    commands[n++] = command(cmd_list_show, "mruby list show", "<list>", list_show_params);
    commands[n++] = command(cmd_list_add, "mruby list add",
                            "[-t <ttl secs>] [-r <reason>] <list> <entry>", list_add_params);
    commands[n++] = command(cmd_list_remove, "mruby list remove", "<list> <entry>",
                            list_remove_params);
    commands[n++] = command(cmd_ratelimit_show, "mruby ratelimit show",
                            "[-l <limit> -p <period secs> [-b <burst>]] <name> <key>",
                            ratelimit_show_params);
    commands[n++] = command(cmd_ratelimit_reset, "mruby ratelimit reset", "<name> <key>",
                            ratelimit_reset_params);
    commands[n++] = command(cmd_counter_show, "mruby counter show", "<key>", counter_params);
    commands[n++] = command(cmd_counter_reset, "mruby counter reset", "<key>", counter_params);
    commands[n++] = command(cmd_check, "mruby check", "<script>", check_params);
    commands[n++] = command(cmd_dry_run, "mruby dry-run",
                            "[-L] [-j <fields.json>] <script> <event> [<field>=<value> ...]",
                            dry_run_params);
    for (size_t i = 0; i < n; i++)
        doveadm_cmd_register_ver2(&commands[i]);
}

} // namespace
} // namespace dmr::dovecot

DMR_EXPORT const char *doveadm_mruby_plugin_version;   // declared first: C linkage, exported
const char *doveadm_mruby_plugin_version = DOVECOT_ABI_VERSION;

DMR_EXPORT void doveadm_mruby_plugin_init(struct module *module)
{
    (void)module;
    dmr::store::register_backends_on_demand(dmr::core::store_registry());
    dmr::dovecot::register_commands();
}

DMR_EXPORT void doveadm_mruby_plugin_deinit(void) {}
