#include "mruby/internal.hpp"
#include "mruby/vm.hpp"

#include <mruby/compile.h>
#include <mruby/dump.h>
#include "mruby/compat.hpp"
#include <mruby/irep.h>
#include <mruby/error.h>
#include <mruby/proc.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mruby/watchdog.hpp"

namespace dmr::mruby {
namespace {

// Arguments of a protected body. Plain data owned by the caller's frame: a
// longjmp out of the body skips no destructor.
struct LoadJob {
    const char *source;
    size_t length;
    const char *filename;
    // Filled on a syntax error:
    bool syntax_error;
    int error_line;
    char error_message[256];
    // Compiled source only, when asked (want_dump): the bytecode it compiled
    // to (mrb_dump_irep, freed by the caller with mrb_free).
    bool want_dump;
    uint8_t *dump;
    size_t dump_size;
};

// Precompiled scripts (`mrbc -g -o policy.mrb policy.rb`) start with this.
bool is_bytecode(const char *data, size_t length)
{
    return length >= 4 && std::memcmp(data, "RITE", 4) == 0;
}

mrb_value load_bytecode_body(mrb_state *mrb, void *arg)
{
    auto *job = static_cast<LoadJob *>(arg);
    int arena = mrb_gc_arena_save(mrb);
    mrb_irep *irep = mrb_read_irep_buf(mrb, job->source, job->length);
    if (irep == nullptr)
        mrb_raise(mrb, E_SCRIPT_ERROR,
                  "not bytecode of this mruby (3.1): recompile it with this host's mrbc");
    struct RProc *proc = mrb_proc_new(mrb, irep);
    proc->c = nullptr;
    mrb_irep_decref(mrb, irep);
    load_extensions_for(mrb, proc->body.irep);
    mrb_top_run(mrb, proc, mrb_top_self(mrb), 0);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
    mrb_gc_arena_restore(mrb, arena);
    return mrb_nil_value();
}

mrb_value load_body(mrb_state *mrb, void *arg)
{
    auto *job = static_cast<LoadJob *>(arg);
    if (is_bytecode(job->source, job->length))
        return load_bytecode_body(mrb, arg);
    int arena = mrb_gc_arena_save(mrb);
    mrbc_context *cxt = mrbc_context_new(mrb);
    mrbc_filename(mrb, cxt, job->filename);
    cxt->capture_errors = TRUE;
    cxt->lineno = 1;
    struct mrb_parser_state *parser = mrb_parse_nstring(mrb, job->source,
                                                        static_cast<size_t>(job->length), cxt);
    if (parser == nullptr) {
        mrbc_context_free(mrb, cxt);
        mrb_raise(mrb, E_RUNTIME_ERROR, "cannot allocate the parser");
    }
    if (parser->nerr > 0) {
        job->syntax_error = true;
        job->error_line = parser->error_buffer[0].lineno;
        std::snprintf(job->error_message, sizeof(job->error_message), "%s",
                      parser->error_buffer[0].message ? parser->error_buffer[0].message
                                                      : "syntax error");
        mrb_parser_free(parser);
        mrbc_context_free(mrb, cxt);
        return mrb_nil_value();
    }
    struct RProc *proc = mrb_generate_code(mrb, parser);
    mrb_parser_free(parser);
    mrbc_context_free(mrb, cxt);
    if (proc == nullptr)
        mrb_raise(mrb, E_SCRIPT_ERROR, "code generation failed");
    // Before the top level runs: what the last good version is made of (the
    // caller keeps it only if the top level succeeds). With the debug info,
    // so that backtraces of the kept version name file and line.
    if (job->want_dump &&
        mrb_dump_irep(mrb, proc->body.irep, MRB_DUMP_DEBUG_INFO, &job->dump, &job->dump_size) !=
            MRB_DUMP_OK)
        mrb_raise(mrb, E_SCRIPT_ERROR, "cannot dump the compiled script");
    // The script body runs at top level like a normal Ruby file.
    load_extensions_for(mrb, proc->body.irep);
    mrb_top_run(mrb, proc, mrb_top_self(mrb), 0);
    if (mrb->exc != nullptr)
        mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
    mrb_gc_arena_restore(mrb, arena);
    return mrb_nil_value();
}

// The object the handlers receive, as the hook's binding makes it (after
// loading the part of the API it needs).
mrb_value make_event_object(mrb_state *mrb, EventCell *cell)
{
    const EventBinding &binding = event_binding(cell->event->hook);
    if (binding.library != Library::Count)
        ensure_library(mrb, binding.library);
    return binding.make(mrb, cell);
}

mrb_value dispatch_body(mrb_state *mrb, void *arg)
{
    auto *cell = static_cast<EventCell *>(arg);
    Vm::Impl &vm = vm_impl(mrb);
    int outer = mrb_gc_arena_save(mrb);
    mrb_value list = mrb_ary_entry(vm.handler_lists, static_cast<mrb_int>(cell->event->hook));
    mrb_value object = make_event_object(mrb, cell);   // protected by the arena below
    core::AuthOutput *auth_output = cell->event->auth_output();   // plain pointer: longjmp-safe
    int arena = mrb_gc_arena_save(mrb);
    for (mrb_int i = 0; i < RARRAY_LEN(list); i++) {
        gc_stress_point(mrb);
        mrb_value returned = mrb_yield(mrb, mrb_ary_entry(list, i), object);
        if (mrb->exc != nullptr)
            mrb_exc_raise(mrb, mrb_obj_value(mrb->exc));
        // Authoritative auth handlers answer by returning exactly `true`.
        if (mrb_true_p(returned) && auth_output != nullptr)
            auth_output->returned_true = true;
        mrb_gc_arena_restore(mrb, arena);
        if (cell->verdict.decided())
            break;
    }
    mrb_gc_arena_restore(mrb, outer);
    return mrb_nil_value();
}

} // namespace

Vm::Vm(const VmOptions &options) : impl_(std::make_unique<Impl>(options)) {}

Vm::~Vm()
{
    if (impl_->mrb != nullptr)
        mrb_close(impl_->mrb);
    // impl_->allocator then frees whatever mrb_close did not.
}

uint64_t Vm::memory_used() const { return impl_->allocator.used(); }

void Vm::refuse_allocations_after(int64_t n) { impl_->allocator.refuse_after(n); }

std::unique_ptr<Vm> Vm::create(const VmOptions &options, core::ScriptError &error)
{
    std::unique_ptr<Vm> vm(new Vm(options));
    Impl &impl = *vm->impl_;
    impl.mrb = mrb_open_core(Allocator::allocf, &impl.allocator);
    if (impl.mrb == nullptr) {
        error.kind = core::ScriptError::Kind::MemoryLimit;
        error.message = "cannot start the mruby VM (mruby_memory_limit too small?)";
        return nullptr;
    }
    mrb_state *mrb = impl.mrb;
    mrb->ud = &impl;
    // MRB_USE_DEBUG_HOOK makes OP_DEBUG call this unconditionally; mrbc
    // never emits it, but a crafted bytecode file could.
    mrb->debug_op_hook = [](mrb_state *, const struct mrb_irep *, const mrb_code *, mrb_value *) {};

    // Core extensions, our classes and the compiled mrblib/. Nothing here
    // may fail with a sane limit; if it does, the VM is unusable.
    struct Init {
        static mrb_value body(mrb_state *mrb, void *)
        {
            init_dovecot_module(mrb);   // and the event classes (init_event_bindings)
            init_audit(mrb);
            // IP/RateLimit/Counter/List, Auth, IMAP/POP3 commands, Policy and
            // Audit load on first use: ensure_library() (mrblib.cpp).
            load_api_bytecode(mrb);
            return mrb_nil_value();
        }
    };
    mrb_bool failed = FALSE;
    mrb_value exc = mrb_protect_error(mrb, Init::body, nullptr, &failed);
    if (failed) {
        error = describe_exception(mrb, exc, core::ScriptError::Kind::Exception);
        error.message = "cannot initialise the Ruby API: " + error.message;
        return nullptr;
    }

    impl.allocator.set_enforcing(true);
    return vm;
}

namespace {

// The time a failed call's exception gets to describe itself: a quarter of
// the timeout (at least 1 ms), whatever the call itself used.
uint32_t describe_budget_ms(uint32_t timeout_ms) { return timeout_ms >= 4 ? timeout_ms / 4 : 1; }

// Runs `body` protected, bounded by the watchdog and the memory limit, and
// turns any failure into a ScriptError. The call is named `what` + `what2`
// ("mailbox_open" " handler"); nothing is formatted unless it fails.
std::optional<core::ScriptError> run_guarded(Vm::Impl &impl, const char *what, const char *what2,
                                             mrb_protect_error_func *body, void *arg)
{
    mrb_state *mrb = impl.mrb;
    mrb_bool failed = FALSE;
    mrb_value exc;
    impl.allocator.clear_hits();
    {
        WatchdogScope watchdog(impl.options.timeout_ms, what, what2, mrb,
                               impl.options.hard_stage);
        exc = mrb_protect_error(mrb, body, arg, &failed);
    }
    if (!failed)
        return std::nullopt;

    core::ScriptError::Kind kind = core::ScriptError::Kind::Exception;
    // Past the deadline every allocation and every instruction raises: a
    // call that failed then was stopped by the watchdog.
    if (impl.allocator.deadline_hit() || Watchdog::soft_expired())
        kind = core::ScriptError::Kind::Timeout;
    else if (impl.allocator.limit_hit())
        kind = core::ScriptError::Kind::MemoryLimit;
    // Describing the exception runs its own Ruby code (message, to_s): under
    // the memory limit and a watchdog of its own, like a handler. If that
    // overruns, the description falls back to the class name and the call
    // counts as a timeout (or memory-limit) failure: the VM is disabled.
    impl.allocator.clear_hits();
    DescribeFailure failure = DescribeFailure::None;
    core::ScriptError error;
    {
        std::string label = std::string(what) + what2;
        WatchdogScope watchdog(describe_budget_ms(impl.options.timeout_ms), label.c_str(),
                               " (describing its exception)", mrb, impl.options.hard_stage);
        error = describe_exception(mrb, exc, kind, &failure);
    }
    impl.allocator.clear_hits();
    if (kind == core::ScriptError::Kind::Exception && failure == DescribeFailure::Timeout)
        error.kind = core::ScriptError::Kind::Timeout;
    else if (kind == core::ScriptError::Kind::Exception && failure == DescribeFailure::MemoryLimit)
        error.kind = core::ScriptError::Kind::MemoryLimit;
    else if (kind == core::ScriptError::Kind::Timeout)
        error.message = std::string(what) + what2 + " exceeded " + impl.options.limit_settings +
                        "timeout=" + std::to_string(impl.options.timeout_ms) + "ms";
    else if (kind == core::ScriptError::Kind::MemoryLimit)
        error.message = std::string(what) + what2 + " exceeded " + impl.options.limit_settings +
                        "memory_limit=" + std::to_string(impl.allocator.limit()) + " bytes";
    return error;
}

} // namespace

std::optional<core::ScriptError> Vm::load_source(std::string_view source, const std::string &name)
{
    return load(source, name, nullptr);
}

std::optional<core::ScriptError> Vm::load_bytecode(std::string_view bytecode,
                                                   const std::string &name)
{
    if (!is_bytecode(bytecode.data(), bytecode.size()))
        return core::ScriptError{core::ScriptError::Kind::Load, "not mruby bytecode", name, 0, {}};
    return load(bytecode, name, nullptr);
}

std::optional<core::ScriptError> Vm::load(std::string_view source, const std::string &name,
                                          std::string *bytecode)
{
    if (disabled_)
        return core::ScriptError{core::ScriptError::Kind::Disabled, "VM disabled", name, 0, {}};
    LoadJob job{};
    job.source = source.data();
    job.length = source.size();
    job.filename = name.c_str();
    job.want_dump = bytecode != nullptr && !is_bytecode(source.data(), source.size());
    auto error = run_guarded(*impl_, "script ", name.c_str(), load_body, &job);
    if (job.dump != nullptr) {
        if (!error && !job.syntax_error)
            bytecode->assign(reinterpret_cast<const char *>(job.dump), job.dump_size);
        mrb_free(impl_->mrb, job.dump);
    } else if (bytecode != nullptr && !error && !job.syntax_error) {
        bytecode->assign(source.data(), source.size());   // precompiled: kept as it is
    }
    if (error) {
        if (error->kind != core::ScriptError::Kind::Exception)
            disabled_ = true;
        if (error->file.empty())
            error->file = name;
        return error;
    }
    if (job.syntax_error) {
        core::ScriptError e;
        e.kind = core::ScriptError::Kind::Compile;
        e.file = name;
        e.line = job.error_line;
        e.message = job.error_message;
        return e;
    }
    return std::nullopt;
}

std::optional<core::ScriptError> Vm::load_file(const std::string &path, std::string *bytecode)
{
    core::ScriptError error;
    error.kind = core::ScriptError::Kind::Load;
    error.file = path;
    // A user's own script (mruby_user_script) is hostile input: O_NONBLOCK so
    // that a FIFO cannot hang the open, a regular file only (not a FIFO,
    // /dev/zero or a socket), and no more than the VM could hold.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        error.message = std::string("cannot open script: ") + std::strerror(errno);
        return error;
    }
    struct stat st;
    if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        error.message = "cannot open script: not a regular file";
        return error;
    }
    const uint64_t limit = impl_->allocator.limit();
    std::string source;
    char buffer[16384];
    ssize_t n;
    int read_errno = 0;
    while ((n = ::read(fd, buffer, sizeof(buffer))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            read_errno = errno;
            break;
        }
        if (source.size() + static_cast<size_t>(n) > limit) {
            ::close(fd);
            error.message = std::string("cannot read script: larger than ") +
                            impl_->options.limit_settings + "memory_limit (" +
                            std::to_string(static_cast<uint64_t>(st.st_size)) + " > " +
                            std::to_string(limit) + " bytes)";
            return error;
        }
        source.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    if (read_errno != 0) {
        error.message = std::string("cannot read script: ") + std::strerror(read_errno);
        return error;
    }
    return load(source, path, bytecode);
}

VmOptions VmOptions::for_policy(const core::ScriptSettings &settings, core::Logger &logger)
{
    VmOptions options;
    options.memory_limit = settings.memory_limit;
    options.timeout_ms = settings.timeout_ms;
    options.logger = &logger;
    options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
    return options;
}

std::unique_ptr<core::ScriptRuntime> VmBuilder::from_file(const std::string &path,
                                                          std::string *bytecode,
                                                          core::ScriptError &error)
{
    std::unique_ptr<Vm> vm = Vm::create(options_, error);
    if (vm == nullptr)
        return nullptr;
    if (auto failed = vm->load_file(path, bytecode)) {
        error = std::move(*failed);
        return nullptr;
    }
    return vm;
}

std::unique_ptr<core::ScriptRuntime> VmBuilder::from_bytecode(std::string_view bytecode,
                                                              const std::string &path,
                                                              core::ScriptError &error)
{
    std::unique_ptr<Vm> vm = Vm::create(options_, error);
    if (vm == nullptr)
        return nullptr;
    if (auto failed = vm->load_bytecode(bytecode, path)) {
        error = std::move(*failed);
        return nullptr;
    }
    return vm;
}

bool Vm::handles(core::Hook hook) const
{
    if (disabled_)
        return true;   // run() reports that it cannot decide
    mrb_value list = mrb_ary_entry(impl_->handler_lists, static_cast<mrb_int>(hook));
    return mrb_array_p(list) && RARRAY_LEN(list) > 0;
}

core::HookResult Vm::run(const core::Event &event)
{
    core::HookResult result;
    if (disabled_) {
        result.error = core::ScriptError{core::ScriptError::Kind::Disabled,
                                         "disabled after an earlier failure", {}, 0, {}};
        return result;
    }
    EventCell cell;
    cell.event = &event;
    cell.serial = impl_->next_serial++;
    impl_->live.push_back(&cell);
    auto error = run_guarded(*impl_, core::hook_name(event.hook), " handler", dispatch_body, &cell);
    impl_->live.pop_back();
    if (error) {
        if (error->kind == core::ScriptError::Kind::Timeout ||
            error->kind == core::ScriptError::Kind::MemoryLimit)
            disabled_ = true;
        result.error = std::move(error);
    } else {
        result.verdict = std::move(cell.verdict);
    }
    return result;
}

} // namespace dmr::mruby
