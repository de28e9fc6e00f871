#include "store/redis_store.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/clock.hpp"
#include "core/iplist.hpp"
#include "store/kv.hpp"
#include "store/redis_sentinel.hpp"
#include "store/sha1.hpp"

namespace dmr::store {
namespace {

// One script for every decision. KEYS[1]: the record. ARGV[1]: operation,
// ARGV[2]: now in microseconds ('' = the server's TIME), then the operation's
// arguments. The algorithms are those of core/ratelimit.hpp, line for line.
// Counters and list entries are stored as "EXPIRES:TTL REST" (REST: value or
// reason; "EXPIRES REST" from before TTL was kept still reads); Redis' own
// expiry (relative, so independent of the client clock) only garbage-collects,
// the decision always checks EXPIRES against now. Clock steps: a stored time
// beyond what its limit allows (TAT > now + tau, EXPIRES > now + TTL) was
// written while the clock was ahead; it is read clamped and stored so.
const char kScript[] = R"lua(
local key, op = KEYS[1], ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x) return string.format('%d', x) end
-- Redis' own expiry only collects garbage: one second late, so that a record
-- never vanishes before its EXPIRES (the next call may come in the next
-- millisecond, or with a client clock slightly behind the server's).
local function ms(us) local m = math.ceil(us / 1000) if m < 1 then m = 1 end return m + 1000 end
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local function alive(e) return e == 0 or now < e end
local function split(s)
  local e, t, rest = string.match(s, '^(%d+):(%d+) (.*)$')
  if e then return tonumber(e), rest, tonumber(t) end
  e, rest = string.match(s, '^(%d+) (.*)$')
  return tonumber(e), rest, 0
end
local function clamp(e, t)
  if e ~= 0 and t > 0 and e - now > t then return now + t, true end
  return e, false
end
local function join(e, t, rest) return int(e) .. ':' .. int(t) .. ' ' .. rest end

if op == 'rate' then
  local T, tau, burst, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local tat = tonumber(redis.call('GET', key)) or now
  local clamped = false
  if tat - now > tau then tat, clamped = now + tau, true end
  if tat < now then tat = now end
  local never = cost > burst
  local new = tat
  if not never then new = tat + T * cost end
  if never or new - tau > now then
    if clamped then redis.call('SET', key, int(tat), 'PX', ms(tat - now)) end
    local retry = -1
    if not never then retry = new - tau - now end
    return {0, math.max(0, fdiv(tau - (tat - now), T)), retry, tat - now}
  end
  if ARGV[7] == '1' and new > now then
    redis.call('SET', key, int(new), 'PX', ms(new - now))
  elseif clamped then
    redis.call('SET', key, int(tat), 'PX', ms(tat - now))
  end
  return {1, math.max(0, fdiv(tau - (new - now), T)), 0, new - now}
elseif op == 'incr' then
  local by, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
  local value, expires = 0, now + ttl
  local s = redis.call('GET', key)
  if s then
    local e, v = split(s)
    if e then e = clamp(e, ttl) end
    if e and alive(e) then expires, value = e, tonumber(v) end
  end
  value = value + by
  redis.call('SET', key, join(expires, ttl, int(value)), 'PX', ms(expires - now))
  return value
elseif op == 'get' then
  local s = redis.call('GET', key)
  if s then
    local e, v, t = split(s)
    if e then
      local c, clamped = clamp(e, t)
      if clamped then redis.call('SET', key, join(c, t, v), 'PX', ms(c - now)) end
      if alive(c) then return tonumber(v) end
    end
  end
  return 0
elseif op == 'ladd' then
  local field, ttl, reason = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local expires = 0
  if ttl > 0 then expires = now + ttl end
  local pttl = redis.call('PTTL', key)
  redis.call('HSET', key, field, join(expires, ttl, reason))
  -- the hash lives as long as its longest-lived entry
  if expires == 0 then
    redis.call('PERSIST', key)
  elseif pttl == -2 or (pttl >= 0 and pttl < ms(ttl)) then
    redis.call('PEXPIRE', key, ms(ttl))
  end
  -- reclaim a few expired entries of a long-lived list
  local scan = redis.call('HSCAN', key, int(now % 4294967296), 'COUNT', 16)
  local fields = scan[2]
  for i = 1, #fields, 2 do
    local e = split(fields[i + 1])
    if e and not alive(e) then redis.call('HDEL', key, fields[i]) end
  end
  return 1
elseif op == 'lrem' then
  local s = redis.call('HGET', key, ARGV[3])
  if not s then return 0 end
  redis.call('HDEL', key, ARGV[3])
  local e = split(s)
  if e and alive(e) then return 1 end
  return 0
elseif op == 'lmatch' then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  local values = redis.call('HMGET', key, unpack(fields))
  for i = 1, #fields do
    local s = values[i]
    if s then
      local e, reason, t = split(s)
      if e then
        local c, clamped = clamp(e, t)
        if clamped then redis.call('HSET', key, fields[i], join(c, t, reason)) end
        if alive(c) then return {fields[i], int(c), reason} end
      end
    end
  end
  return false
elseif op == 'lall' then
  local all = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #all, 2 do
    local e, reason, t = split(all[i + 1])
    local clamped = false
    if e then e, clamped = clamp(e, t) end
    if e and alive(e) then
      if clamped then redis.call('HSET', key, all[i], join(e, t, reason)) end
      out[#out + 1] = all[i]; out[#out + 1] = int(e); out[#out + 1] = reason
    else
      redis.call('HDEL', key, all[i])
    end
  end
  return out
elseif op == 'dadd' or op == 'dcount' then
  -- KEY ':' bucket: one HyperLogLog per bucket of `window` microseconds (the
  -- bucket keys share KEY's hash tag); the count is the union of the current
  -- and the previous bucket (multi-key PFCOUNT), as core/store.hpp says.
  local window = tonumber(ARGV[3])
  local bucket = fdiv(now, window)
  local current, previous = key .. ':' .. int(bucket), key .. ':' .. int(bucket - 1)
  if op == 'dadd' and redis.call('PFADD', current, ARGV[4]) == 1 then
    redis.call('PEXPIRE', current, ms((bucket + 2) * window - now))
  end
  return redis.call('PFCOUNT', current, previous)
end
return redis.error_reply('unknown operation ' .. tostring(op))
)lua";

constexpr int64_t kFirstBackoffUs = 100'000;
constexpr int64_t kMaxBackoffUs = 2'000'000;

int64_t steady_us()
{
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct timeval to_timeval(int ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

// hiredis writes with write(): a peer that went away raises SIGPIPE, which
// would kill a process that does not ignore it. Block it for the duration of
// a command and swallow one raised meanwhile.
class SigpipeGuard {
public:
    SigpipeGuard()
    {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeGuard()
    {
        if (!was_pending_) {
            sigset_t pending;
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                struct timespec zero = {0, 0};
                sigtimedwait(&pipe_, nullptr, &zero);
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }

private:
    sigset_t pipe_, old_;
    bool was_pending_ = false;
};

bool starts_with(std::string_view text, std::string_view prefix)
{
    return text.substr(0, prefix.size()) == prefix;
}

// One place that turns a Redis error reply into a Status.
Status error_reply_status(std::string_view message)
{
    if (Status cluster = detail::cluster_redirect_status(message); !cluster.ok())
        return cluster;
    Status::Code code = Status::Code::Internal;
    for (std::string_view busy : {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN",
                                  "CLUSTERDOWN", "NOAUTH"}) {
        if (starts_with(message, busy))
            code = Status::Code::Unavailable;
    }
    if (starts_with(message, "OOM"))
        code = Status::Code::Full;
    return Status::error(code, "redis: " + std::string(message));
}

Status unexpected(const char *what)
{
    return Status::error(Status::Code::Internal, std::string("redis: unexpected reply to ") + what);
}

bool integer_at(const redisReply *reply, size_t i, int64_t &out)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements <= i ||
        reply->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    out = reply->element[i]->integer;
    return true;
}

std::string_view string_of(const redisReply *reply)
{
    return std::string_view(reply->str, reply->len);
}

// The script formats every number itself; anything else reads as 0, never throws.
int64_t parse_i64(std::string_view text)
{
    int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return 0;
        value = value * 10 + (c - '0');
    }
    return value;
}

} // namespace

void RedisStore::ReplyDeleter::operator()(redisReply *reply) const { freeReplyObject(reply); }

std::string_view RedisStore::script_text() { return kScript; }

const std::string &RedisStore::script_sha()
{
    static const std::string sha = detail::sha1_hex(kScript);
    return sha;
}

RedisStore::RedisStore(RedisOptions options, const core::Clock &clock)
    : options_(std::move(options)), clock_(clock)
{
}

RedisStore::~RedisStore() { disconnect(); }

void RedisStore::disconnect()
{
    if (context_ != nullptr)
        redisFree(context_);
    context_ = nullptr;
    for (redisContext *spare : spare_)
        redisFree(spare);
    spare_.clear();
}

std::string RedisTarget::where() const
{
    return unix_path.empty() ? host + ":" + std::to_string(port) : unix_path;
}

namespace {

// The time left until `deadline_us` as a timeout of at most `cap_ms`, at least 1 ms.
struct timeval remaining_tv(int64_t deadline_us, int cap_ms)
{
    int64_t left_ms = (deadline_us - steady_us()) / 1000;
    return to_timeval(static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(left_ms, cap_ms))));
}

// One command on a connection being set up; nullptr on an I/O error (then
// context->errstr says what).
redisReply *setup_command(redisContext *context, std::vector<std::string_view> args)
{
    SigpipeGuard guard;
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return static_cast<redisReply *>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
}

} // namespace

Status RedisStore::connect()
{
    const int64_t now = steady_us();
    if (now < retry_at_us_)
        return last_error_;

    std::string error;
    if (options_.sentinels.empty()) {
        // Each step keeps its own timeout, as it always had.
        error = open(RedisTarget{options_.host, options_.port, options_.unix_path}, 0);
    } else {
        // Discovery is bounded: one round through the sentinels, within
        // twice what one connection may take (ask a sentinel, then the master).
        const int64_t deadline_us =
            now + int64_t{options_.connect_timeout_ms + options_.timeout_ms} * 2000;
        // A further connection while the last one works (the auth process's
        // pool): straight to the master it found, ROLE checked; the
        // sentinels are asked when that fails or after any failure.
        error = "-";
        if (!master_where_.empty() && last_error_.ok())
            error = open(master_, deadline_us);
        if (!error.empty())
            error = open_via_sentinels(deadline_us);
    }
    if (!error.empty()) {
        disconnect();
        backoff_us_ = backoff_us_ == 0 ? kFirstBackoffUs : std::min(backoff_us_ * 2, kMaxBackoffUs);
        retry_at_us_ = now + backoff_us_;
        last_error_ = Status::error(Status::Code::Unavailable,
                                    (options_.sentinels.empty() ? "redis: " : "redis-sentinel: ") +
                                        error);
        return last_error_;
    }
    backoff_us_ = 0;
    retry_at_us_ = 0;
    last_error_ = Status();
    context_pid_ = getpid();
    return Status();
}

std::string RedisStore::open(const RedisTarget &target, int64_t deadline_us)
{
    disconnect();
    const std::string where = target.where();
    const bool sentinel_mode = !options_.sentinels.empty();
    // Plain mode keeps its fixed timeouts; in Sentinel mode the round's deadline caps them.
    const struct timeval connect_tv = sentinel_mode
                                          ? remaining_tv(deadline_us, options_.connect_timeout_ms)
                                          : to_timeval(options_.connect_timeout_ms);
    context_ = target.unix_path.empty()
                   ? redisConnectWithTimeout(target.host.c_str(), target.port, connect_tv)
                   : redisConnectUnixWithTimeout(target.unix_path.c_str(), connect_tv);
    if (context_ == nullptr)
        return "cannot connect to " + where + ": out of memory";
    if (context_->err != 0)
        return "cannot connect to " + where + ": " + context_->errstr;
    const struct timeval setup_tv = sentinel_mode ? remaining_tv(deadline_us, options_.timeout_ms)
                                                  : to_timeval(options_.timeout_ms);
    if (redisSetTimeout(context_, setup_tv) != REDIS_OK)
        return "cannot set the command timeout for " + where;

    // "" or the error; `check` looks at a reply that is not an error.
    auto setup = [&](std::vector<std::string_view> args,
                     std::string (*check)(const redisReply *) = nullptr) -> std::string {
        Reply reply(setup_command(context_, std::move(args)));
        if (!reply)
            return context_->errstr;
        if (reply->type == REDIS_REPLY_ERROR)
            return std::string(string_of(reply.get()));
        return check != nullptr ? check(reply.get()) : std::string();
    };
    if (!options_.password.empty()) {
        if (std::string error = setup({"AUTH", options_.password}); !error.empty())
            return "AUTH on " + where + ": " + error;
    }
    if (options_.db != 0) {
        const std::string db = std::to_string(options_.db);
        if (std::string error = setup({"SELECT", db}); !error.empty())
            return "SELECT " + db + " on " + where + ": " + error;
    }
    if (sentinel_mode) {
        // Never write to a replica: the sentinels' view may be stale.
        if (std::string error = setup({"ROLE"}, detail::role_not_master); !error.empty())
            return where + " is not the master (" + error + ")";
        if (redisSetTimeout(context_, to_timeval(options_.timeout_ms)) != REDIS_OK)
            return "cannot set the command timeout for " + where;
    }
    return std::string();
}

std::string RedisStore::lost_prefix() const
{
    if (options_.sentinels.empty())
        return "redis: ";
    return "redis-sentinel: master " + options_.master_name + " at " + master_where_ + ": ";
}

std::string RedisStore::open_via_sentinels(int64_t deadline_us)
{
    const size_t count = options_.sentinels.size();
    std::string errors;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && steady_us() >= deadline_us) {
            errors += "; out of time after " + std::to_string(i) + " of " + std::to_string(count) +
                      " sentinels";
            break;
        }
        const size_t index = (next_sentinel_ + i) % count;
        const RedisOptions::Address &sentinel = options_.sentinels[index];
        const std::string where = sentinel.host + ":" + std::to_string(sentinel.port);
        if (!errors.empty())
            errors += "; ";
        RedisTarget master;
        std::string error;
        {
            redisContext *context = redisConnectWithTimeout(
                sentinel.host.c_str(), sentinel.port,
                remaining_tv(deadline_us, options_.connect_timeout_ms));
            if (context == nullptr || context->err != 0) {
                error = "cannot connect: " +
                        std::string(context != nullptr ? context->errstr : "out of memory");
            } else if (redisSetTimeout(context, remaining_tv(deadline_us, options_.timeout_ms)) !=
                       REDIS_OK) {
                error = "cannot set a timeout";
            } else {
                auto ask = [&](std::vector<std::string_view> args) {
                    return Reply(setup_command(context, std::move(args)));
                };
                if (!options_.sentinel_password.empty()) {
                    Reply reply = ask({"AUTH", options_.sentinel_password});
                    if (!reply)
                        error = context->errstr;
                    else if (reply->type == REDIS_REPLY_ERROR)
                        error = "AUTH: " + std::string(string_of(reply.get()));
                }
                if (error.empty()) {
                    Reply reply = ask({"SENTINEL", "get-master-addr-by-name", options_.master_name});
                    error = !reply ? std::string(context->errstr)
                                   : detail::sentinel_master_address(reply.get(),
                                                                     options_.master_name, master);
                }
            }
            if (context != nullptr)
                redisFree(context);
        }
        if (!error.empty()) {
            errors += "sentinel " + where + ": " + error;
            continue;
        }
        error = open(master, deadline_us);
        if (!error.empty()) {
            errors += "sentinel " + where + " names " + master.where() + ": " + error;
            continue;
        }
        next_sentinel_ = index;
        const std::string found = master.where();
        if (found != master_where_ && options_.logger != nullptr) {
            const std::string line = "redis-sentinel: master " + options_.master_name;
            if (master_where_.empty()) {
                // Every new process finds it: a debug line.
                options_.logger->log(core::LogLevel::Debug, line + " is at " + found);
            } else if (auto held_back = move_log_.admit(steady_us())) {
                std::string moved = line + " moved to " + found + " (was " + master_where_ + ")";
                if (*held_back > 0)
                    moved += " (" + std::to_string(*held_back) + " more moves since the last report)";
                options_.logger->log(core::LogLevel::Warning, moved);
            }
        }
        master_where_ = found;
        master_ = master;
        return std::string();
    }
    return "no master reachable for " + options_.master_name + " (" + errors + ")";
}

namespace {

// At most this many idle connections are kept (beyond one, they exist only
// where handlers wait at the same time: the auth process's VM pool,
// AuthScript::kMaxVms).
constexpr size_t kMaxSpareConnections = 64;

// Commands go out and replies come in without blocking in a system call:
// the socket is non-blocking and the store's IoWaiter waits for it (poll(),
// or the auth process's ioloop while the handler's coroutine is suspended).
void make_non_blocking(redisContext *c)
{
    if ((c->flags & REDIS_BLOCK) == 0)
        return;
    int flags = fcntl(c->fd, F_GETFL);
    if (flags >= 0)
        fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    c->flags &= ~REDIS_BLOCK;
}

// Sends one command and reads its reply by `deadline_us` (MonotonicClock).
// Empty: `reply` is set. Otherwise why the connection is unusable.
std::string exchange(redisContext *c, core::IoWaiter *waiter, int64_t deadline_us,
                     const std::vector<std::string_view> &args, void *&reply)
{
    std::vector<const char *> argv(args.size());
    std::vector<size_t> lengths(args.size());
    for (size_t i = 0; i < args.size(); i++) {
        argv[i] = args[i].data();
        lengths[i] = args[i].size();
    }
    make_non_blocking(c);
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()) !=
        REDIS_OK)
        return c->errstr;
    auto wait = [&](core::IoEvent event) -> std::string {
        core::WaitResult r = waiter != nullptr ? waiter->wait(c->fd, event, deadline_us)
                                               : core::poll_wait(c->fd, event, deadline_us);
        if (r == core::WaitResult::TimedOut)
            return "Resource temporarily unavailable";   // what a blocking hiredis said
        if (r == core::WaitResult::Failed)
            return "I/O error";
        return std::string();
    };
    int done = 0;
    for (;;) {
        int written;
        {
            SigpipeGuard guard;   // not across a wait: other code runs meanwhile
            written = redisBufferWrite(c, &done);
        }
        if (written != REDIS_OK)
            return c->errstr;
        if (done)
            break;
        if (std::string error = wait(core::IoEvent::Writable); !error.empty())
            return error;
    }
    for (;;) {
        reply = nullptr;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return c->errstr;
        if (reply != nullptr)
            return std::string();
        if (std::string error = wait(core::IoEvent::Readable); !error.empty())
            return error;
        if (redisBufferRead(c) != REDIS_OK)
            return c->errstr;
    }
}

} // namespace

redisContext *RedisStore::take_connection(Status &status)
{
    if (context_pid_ != 0 && context_pid_ != getpid()) {
        // Forked since connecting: the sockets are the parent's conversation.
        disconnect();
        context_pid_ = 0;
    }
    if (context_ == nullptr && !spare_.empty()) {
        context_ = spare_.back();
        spare_.pop_back();
    }
    if (context_ == nullptr) {
        if (Status s = connect(); !s.ok()) {
            status = s;
            return nullptr;
        }
    }
    redisContext *taken = context_;
    context_ = nullptr;
    return taken;
}

void RedisStore::give_back(redisContext *context)
{
    if (context_ == nullptr)
        context_ = context;
    else if (spare_.size() < kMaxSpareConnections)
        spare_.push_back(context);
    else
        redisFree(context);
}

Result<RedisStore::Reply> RedisStore::command(const std::vector<std::string_view> &args)
{
    Status status;
    redisContext *c = take_connection(status);
    if (c == nullptr)
        return status;
    // A connection of its own for the whole exchange: another handler may run
    // (and send commands) while this one waits for its reply.
    void *raw = nullptr;
    const int64_t deadline_us =
        core::MonotonicClock::instance().now_us() + int64_t{options_.timeout_ms} * 1000;
    std::string message = exchange(c, options_.waiter, deadline_us, args, raw);
    Reply reply(static_cast<redisReply *>(raw));
    if (!message.empty() || !reply) {
        // Timeout, reset, EOF: the connection is unusable. Reconnect later
        // (an idle one to a server that went away fails on its own next use).
        redisFree(c);
        const int64_t now = steady_us();
        backoff_us_ = kFirstBackoffUs;
        retry_at_us_ = now + backoff_us_;
        last_error_ = Status::error(Status::Code::Unavailable,
                                    lost_prefix() + (message.empty() ? "I/O error" : message));
        return last_error_;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!options_.sentinels.empty() && detail::is_readonly_error(string_of(reply.get()))) {
            redisFree(c);   // to a server that is a replica now
            return after_readonly(args, string_of(reply.get()));
        }
        give_back(c);
        return error_reply_status(string_of(reply.get()));
    }
    give_back(c);
    return Result<Reply>(std::move(reply));
}

Result<RedisStore::Reply> RedisStore::after_readonly(const std::vector<std::string_view> &args,
                                                     std::string_view message)
{
    // The master became a replica: ask the sentinels now and send the command
    // (which was not executed) once more, to the master they name.
    Status readonly = error_reply_status(message);
    disconnect();
    if (rediscovering_)
        return readonly;
    backoff_us_ = 0;
    retry_at_us_ = 0;
    if (Status s = connect(); !s.ok())
        return s;
    rediscovering_ = true;
    Result<Reply> result = command(args);
    rediscovering_ = false;
    return result;
}

Result<RedisStore::Reply> RedisStore::run_script(std::string_view op, const std::string &key,
                                                 const std::vector<std::string> &args)
{
    const std::string now = now_arg();
    std::vector<std::string_view> argv = {"EVALSHA", script_sha(), "1", key, op, now};
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = command(argv);
    if (!result.ok() && starts_with(result.status.message(), "redis: NOSCRIPT")) {
        // First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
        argv[0] = "EVAL";
        argv[1] = kScript;
        result = command(argv);
    }
    return result;
}

std::string RedisStore::now_arg() const
{
    return options_.server_clock ? std::string() : std::to_string(clock_.now_us());
}

std::string RedisStore::key(char kind, std::string_view name) const
{
    std::string out = options_.prefix;
    out += kind;
    out += ":{";
    out += detail::bounded_key(name);
    out += '}';
    return out;
}

Result<core::GcraDecision> RedisStore::rate(std::string_view key, const core::GcraRate &rate,
                                            int64_t cost, bool record)
{
    if (Status s = detail::check_cost(cost); !s.ok())
        return s;
    auto reply = run_script("rate", this->key('r', key),
                            {std::to_string(rate.emission_us), std::to_string(rate.tolerance_us),
                             std::to_string(rate.burst), std::to_string(cost), record ? "1" : "0"});
    if (!reply.ok())
        return reply.status;
    core::GcraDecision d;
    int64_t allowed = 0;
    if (!integer_at(reply.value.get(), 0, allowed) ||
        !integer_at(reply.value.get(), 1, d.remaining) ||
        !integer_at(reply.value.get(), 2, d.retry_after_us) ||
        !integer_at(reply.value.get(), 3, d.reset_after_us))
        return unexpected("rate");
    d.allowed = allowed == 1;
    return d;
}

Result<core::GcraDecision> RedisStore::rate_hit(std::string_view key, const core::GcraRate &rate,
                                                int64_t cost)
{
    return this->rate(key, rate, cost, true);
}

Result<core::GcraDecision> RedisStore::rate_peek(std::string_view key, const core::GcraRate &rate,
                                                 int64_t cost)
{
    return this->rate(key, rate, cost, false);
}

Status RedisStore::rate_reset(std::string_view key)
{
    const std::string physical = this->key('r', key);
    return command({"DEL", physical}).status;
}

Result<int64_t> RedisStore::counter_incr(std::string_view key, int64_t by, int64_t ttl_us)
{
    if (Status s = detail::check_ttl(ttl_us, false); !s.ok())
        return s;
    auto reply = run_script("incr", this->key('c', key), {std::to_string(by), std::to_string(ttl_us)});
    if (!reply.ok())
        return reply.status;
    if (reply.value->type != REDIS_REPLY_INTEGER)
        return unexpected("incr");
    return int64_t{reply.value->integer};
}

Result<int64_t> RedisStore::counter_get(std::string_view key)
{
    auto reply = run_script("get", this->key('c', key), {});
    if (!reply.ok())
        return reply.status;
    if (reply.value->type != REDIS_REPLY_INTEGER)
        return unexpected("get");
    return int64_t{reply.value->integer};
}

Status RedisStore::counter_reset(std::string_view key)
{
    const std::string physical = this->key('c', key);
    return command({"DEL", physical}).status;
}

Status RedisStore::list_add(std::string_view list, std::string_view entry, int64_t ttl_us,
                            std::string_view reason)
{
    if (Status s = detail::check_list_name(list); !s.ok())
        return s;
    if (Status s = detail::check_ttl(ttl_us, true); !s.ok())
        return s;
    auto reply = run_script("ladd", key('l', list),
                            {detail::bounded_key(core::list_key(entry).key), std::to_string(ttl_us),
                             std::string(reason)});
    return reply.status;
}

Result<bool> RedisStore::list_remove(std::string_view list, std::string_view entry)
{
    if (Status s = detail::check_list_name(list); !s.ok())
        return s;
    auto reply = run_script("lrem", key('l', list), {detail::bounded_key(core::list_key(entry).key)});
    if (!reply.ok())
        return reply.status;
    if (reply.value->type != REDIS_REPLY_INTEGER)
        return unexpected("lrem");
    return reply.value->integer == 1;
}

Result<std::optional<ListEntry>> RedisStore::list_match(std::string_view list,
                                                        std::string_view value)
{
    if (Status s = detail::check_list_name(list); !s.ok())
        return s;
    // Every prefix length is probed: one HMGET in the script, no extra round trip.
    std::vector<std::string> fields = core::list_lookup_keys(value, core::PrefixLengths::all());
    for (std::string &field : fields)
        field = detail::bounded_key(field);
    auto reply = run_script("lmatch", key('l', list), fields);
    if (!reply.ok())
        return reply.status;
    const redisReply *r = reply.value.get();
    if (r->type == REDIS_REPLY_NIL)
        return std::optional<ListEntry>();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return unexpected("lmatch");
    return std::optional<ListEntry>(ListEntry{core::list_entry_text(string_of(r->element[0])),
                                              std::string(string_of(r->element[2])),
                                              parse_i64(string_of(r->element[1]))});
}

Result<std::vector<ListEntry>> RedisStore::list_entries(std::string_view list)
{
    if (Status s = detail::check_list_name(list); !s.ok())
        return s;
    auto reply = run_script("lall", key('l', list), {});
    if (!reply.ok())
        return reply.status;
    const redisReply *r = reply.value.get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0)
        return unexpected("lall");
    std::vector<ListEntry> entries;
    for (size_t i = 0; i < r->elements; i += 3) {
        for (size_t j = i; j < i + 3; j++) {
            if (r->element[j]->type != REDIS_REPLY_STRING)
                return unexpected("lall");
        }
        entries.push_back(ListEntry{core::list_entry_text(string_of(r->element[i])),
                                    std::string(string_of(r->element[i + 2])),
                                    parse_i64(string_of(r->element[i + 1]))});
    }
    return entries;
}

Result<int64_t> RedisStore::distinct_run(std::string_view op, std::string_view key,
                                         std::string_view member, int64_t window_us)
{
    if (Status s = detail::check_ttl(window_us, false); !s.ok())
        return s;
    // KEYS[1] names the (key, window) pair; the script appends the bucket.
    std::vector<std::string> args = {std::to_string(window_us)};
    if (op == "dadd")
        args.emplace_back(member);
    auto reply = run_script(op, this->key('d', key) + ':' + std::to_string(window_us), args);
    if (!reply.ok())
        return reply.status;
    if (reply.value->type != REDIS_REPLY_INTEGER)
        return unexpected("distinct");
    return int64_t{reply.value->integer};
}

Result<int64_t> RedisStore::distinct_add(std::string_view key, std::string_view member,
                                         int64_t window_us)
{
    return distinct_run("dadd", key, member, window_us);
}

Result<int64_t> RedisStore::distinct_count(std::string_view key, int64_t window_us)
{
    return distinct_run("dcount", key, {}, window_us);
}

} // namespace dmr::store
