// Every binding method under an allocator that starts refusing memory after
// N more allocations, for N = 0, 1, 2 ... until the call gets through: the
// refusal raises NoMemoryError (a longjmp) at each allocation point in turn,
// as the soft timeout does. No C++ object with a destructor may be alive in
// a frame that longjmp skips: this binary counts live C++ heap blocks
// (global operator new/delete are replaced below) and asserts that none is
// left once the VM and everything around it are gone.
//
// Coverage is mechanical too: CoversEveryMethod lists the methods of every
// Dovecot class with a C++ binding and fails for one that has no case here.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "core/audit.hpp"
#include "core/clock.hpp"
#include "core/events.hpp"
#include "fakes.hpp"
#include "mruby/vm.hpp"
#include "core/store_registry.hpp"
#include "store/memory_store.hpp"

// --- counting C++ heap ----------------------------------------------------------
namespace {
std::atomic<long> g_live_blocks{0};

void *counted_alloc(std::size_t size)
{
    void *p = std::malloc(size == 0 ? 1 : size);
    if (p == nullptr)
        throw std::bad_alloc();
    g_live_blocks.fetch_add(1, std::memory_order_relaxed);
    return p;
}

void counted_free(void *p) noexcept
{
    if (p == nullptr)
        return;
    g_live_blocks.fetch_sub(1, std::memory_order_relaxed);
    std::free(p);
}
} // namespace

void *operator new(std::size_t size) { return counted_alloc(size); }
void *operator new[](std::size_t size) { return counted_alloc(size); }
void *operator new(std::size_t size, const std::nothrow_t &) noexcept
{
    try {
        return counted_alloc(size);
    } catch (...) {
        return nullptr;
    }
}
void *operator new[](std::size_t size, const std::nothrow_t &) noexcept
{
    try {
        return counted_alloc(size);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void *p) noexcept { counted_free(p); }
void operator delete[](void *p) noexcept { counted_free(p); }
void operator delete(void *p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void *p, std::size_t) noexcept { counted_free(p); }

using namespace dmr;

namespace {

// Which event a case's handler runs in.
enum class On { SessionStart, MailboxOpen, MessageRead, ImapBefore, ImapAfter, Pop3Before, Auth,
                AuthResult, PasswordVerify, UserdbLookup };

struct Case {
    const char *method;   // "Dovecot::Session#user", "Dovecot::IP.parse"
    On on;
    const char *code;     // the handler's body; `e` is the event object
    const char *prelude = "";   // top-level code before the handler
};

// The names are long on purpose: std::string keeps short strings inline, and
// only a heap block can show a skipped destructor.
const Case kCases[] = {
    // Dovecot, Dovecot::Log
    {"Dovecot.log", On::SessionStart, "Dovecot.log"},
    {"Dovecot::Log.debug", On::SessionStart, "Dovecot.log.debug('a log line long enough for the heap ' * 2)"},
    {"Dovecot::Log.info", On::SessionStart, "Dovecot.log.info(1234567890123)"},
    {"Dovecot::Log.warning", On::SessionStart, "Dovecot.log.warning(:a_symbol_long_enough_for_the_heap)"},
    {"Dovecot::Log.error", On::SessionStart, "Dovecot.log.error(['an array', 'of things'] * 4)"},
    {"Dovecot.audit", On::SessionStart,
     "Dovecot.audit(:a_kind_long_enough_for_the_heap, user_name_long_enough: e.user, "
     "count: 1234567890123, nested: { 'k' * 20 => [1, 2.5, nil, true, :sym_long_enough_for_heap] }, "
     "ip: e.remote_ip, flt: 1.5, nothing: nil, yes: true)"},
    {"Dovecot.on_session_start", On::SessionStart, "Dovecot.on_session_start { |x| }"},
    {"Dovecot.on_session_end", On::SessionStart, "Dovecot.on_session_end { |x| }"},
    {"Dovecot.on_mailbox_open", On::SessionStart, "Dovecot.on_mailbox_open { |x| }"},
    {"Dovecot.on_message_read", On::SessionStart, "Dovecot.on_message_read { |x| }"},
    {"Dovecot.on_auth", On::SessionStart, "Dovecot.on_auth { |x| }"},
    {"Dovecot.on_auth_result", On::SessionStart, "Dovecot.on_auth_result { |x| }"},
    {"Dovecot.on_passdb_lookup", On::SessionStart, "Dovecot.on_passdb_lookup { |x| }"},
    {"Dovecot.on_password_verify", On::SessionStart, "Dovecot.on_password_verify { |x| }"},
    {"Dovecot.on_userdb_lookup", On::SessionStart, "Dovecot.on_userdb_lookup { |x| }"},
    {"Dovecot.require_gems", On::SessionStart, "Dovecot.require_gems"},
    {"Dovecot.__load_extensions", On::SessionStart, "Dovecot.__load_extensions"},
    {"Dovecot.__load_library", On::SessionStart, "Dovecot.__load_library(:Policy)"},
    {"Dovecot.const_missing", On::SessionStart, "Dovecot::Audit"},
    // Dovecot::Session
    {"Dovecot::Session#user", On::SessionStart, "e.user"},
    {"Dovecot::Session#service", On::SessionStart, "e.service"},
    {"Dovecot::Session#remote_ip", On::SessionStart, "e.remote_ip"},
    {"Dovecot::Session#local_ip", On::SessionStart, "e.local_ip"},
    {"Dovecot::Session#remote_port", On::SessionStart, "e.remote_port"},
    {"Dovecot::Session#local_port", On::SessionStart, "e.local_port"},
    {"Dovecot::Session#session_id", On::SessionStart, "e.session_id"},
    {"Dovecot::Session#secured?", On::SessionStart, "e.secured?"},
    {"Dovecot::Session#[]", On::SessionStart, "e['quota_rule_long_enough_for_heap']"},
    {"Dovecot::Session#fields", On::SessionStart, "e.fields"},
    {"Dovecot::Session#setting", On::SessionStart, "e.setting('mruby_greeting_long_enough_for_heap')"},
    {"Dovecot::Session#stats", On::SessionStart, "e.stats"},
    {"Dovecot::Session#deny", On::SessionStart, "e.deny('a reason long enough for the heap')"},
    {"Dovecot::Session#inspect", On::SessionStart, "e.inspect"},
    // Dovecot::Mailbox
    {"Dovecot::Mailbox#name", On::MailboxOpen, "e.name"},
    {"Dovecot::Mailbox#readonly?", On::MailboxOpen, "e.readonly?"},
    {"Dovecot::Mailbox#session", On::MailboxOpen, "e.session.user"},
    {"Dovecot::Mailbox#deny", On::MailboxOpen, "e.deny('a reason long enough for the heap')"},
    {"Dovecot::Mailbox#inspect", On::MailboxOpen, "e.inspect"},
    // Dovecot::Message
    {"Dovecot::Message#mailbox", On::MessageRead, "e.mailbox"},
    {"Dovecot::Message#uid", On::MessageRead, "e.uid"},
    {"Dovecot::Message#message_id", On::MessageRead, "e.message_id"},
    {"Dovecot::Message#session", On::MessageRead, "e.session.user"},
    // Dovecot::IMAP, Dovecot::POP3 and their Command
    {"Dovecot::IMAP.before_command", On::SessionStart, "Dovecot::IMAP.before_command { |c| }"},
    {"Dovecot::IMAP.after_command", On::SessionStart, "Dovecot::IMAP.after_command { |c| }"},
    {"Dovecot::POP3.before_command", On::SessionStart, "Dovecot::POP3.before_command { |c| }"},
    {"Dovecot::POP3.after_command", On::SessionStart, "Dovecot::POP3.after_command { |c| }"},
    {"Dovecot::IMAP::Command#name", On::ImapAfter, "e.name"},
    {"Dovecot::IMAP::Command#tag", On::ImapAfter, "e.tag"},
    {"Dovecot::IMAP::Command#args", On::ImapAfter, "e.args"},
    {"Dovecot::IMAP::Command#protocol", On::ImapAfter, "e.protocol"},
    {"Dovecot::IMAP::Command#reply", On::ImapAfter, "e.reply"},
    {"Dovecot::IMAP::Command#reply_text", On::ImapAfter, "e.reply_text"},
    {"Dovecot::IMAP::Command#duration", On::ImapAfter, "e.duration"},
    {"Dovecot::IMAP::Command#session", On::ImapAfter, "e.session.user"},
    {"Dovecot::IMAP::Command#reject", On::ImapBefore,
     "e.reject('refused for a reason long enough', code: :overquota_long_code_name)"},
    {"Dovecot::IMAP::Command#disconnect", On::ImapBefore, "e.disconnect('bye for a reason long enough')"},
    {"Dovecot::POP3::Command#name", On::Pop3Before, "e.name"},
    {"Dovecot::POP3::Command#tag", On::Pop3Before, "e.tag"},
    {"Dovecot::POP3::Command#args", On::Pop3Before, "e.args"},
    {"Dovecot::POP3::Command#protocol", On::Pop3Before, "e.protocol"},
    {"Dovecot::POP3::Command#reply", On::Pop3Before, "e.reply"},
    {"Dovecot::POP3::Command#reply_text", On::Pop3Before, "e.reply_text"},
    {"Dovecot::POP3::Command#duration", On::Pop3Before, "e.duration"},
    {"Dovecot::POP3::Command#session", On::Pop3Before, "e.session.user"},
    {"Dovecot::POP3::Command#reject", On::Pop3Before, "e.reject('refused for a reason long enough', code: 123456789)"},
    {"Dovecot::POP3::Command#disconnect", On::Pop3Before, "e.disconnect"},
    // Dovecot::Auth, Dovecot::AuthResult
    {"Dovecot::Auth#user", On::Auth, "e.user"},
    {"Dovecot::Auth#username", On::Auth, "e.username"},
    {"Dovecot::Auth#domain", On::Auth, "e.domain"},
    {"Dovecot::Auth#service", On::Auth, "e.service"},
    {"Dovecot::Auth#remote_ip", On::Auth, "e.remote_ip"},
    {"Dovecot::Auth#local_ip", On::Auth, "e.local_ip"},
    {"Dovecot::Auth#remote_port", On::Auth, "e.remote_port"},
    {"Dovecot::Auth#local_port", On::Auth, "e.local_port"},
    {"Dovecot::Auth#mechanism", On::Auth, "e.mechanism"},
    {"Dovecot::Auth#secured?", On::Auth, "e.secured?"},
    {"Dovecot::Auth#trusted?", On::Auth, "e.trusted?"},
    {"Dovecot::Auth#real_remote_ip", On::Auth, "e.real_remote_ip"},
    {"Dovecot::Auth#client_id", On::Auth, "e.client_id"},
    {"Dovecot::Auth#session_id", On::Auth, "e.session_id"},
    {"Dovecot::Auth#[]", On::Auth, "e['passdb_field_long_enough_for_heap']"},
    {"Dovecot::Auth#fields", On::Auth, "e.fields"},
    {"Dovecot::Auth#userdb_fields", On::UserdbLookup, "e.userdb_fields"},
    {"Dovecot::Auth#password", On::PasswordVerify, "e.password"},
    {"Dovecot::Auth#reject", On::Auth, "e.reject('a reason long enough for the heap')"},
    {"Dovecot::Auth#tempfail", On::Auth, "e.tempfail('a reason long enough for the heap')"},
    {"Dovecot::Auth#delay", On::Auth, "e.delay(1.5)"},
    {"Dovecot::Auth#set", On::Auth,
     "e.set('a_field_name_long_enough_for_heap', -1.2345678901234567e-300); "
     "e.set('another_field_name_long_enough', 1234567890123); "
     "e.set('a_string_field_long_enough_heap', 'a value long enough for the heap'); "
     "e.set('a_boolean_field_long_enough_hp', true); "
     "e.set('invalid name long enough for the heap', 'x'); "
     // The class name of a value set refuses: mruby allocates when it first
     // copies a long nested class name, so the refused run uses a class the
     // warm-up run did not.
     "$set_runs = ($set_runs || 0) + 1; "
     "e.set('an_object_field_long_enough_hp', $set_runs == 1 ? Site::AFirstClassWithALongNameForTheHeap.new "
     ": Site::ASecondClassWithALongNameForTheHeap.new)",
     "module Site; class AFirstClassWithALongNameForTheHeap; end; "
     "class ASecondClassWithALongNameForTheHeap; end; end\n"},
    {"Dovecot::AuthResult#user", On::AuthResult, "e.user"},
    {"Dovecot::AuthResult#username", On::AuthResult, "e.username"},
    {"Dovecot::AuthResult#domain", On::AuthResult, "e.domain"},
    {"Dovecot::AuthResult#service", On::AuthResult, "e.service"},
    {"Dovecot::AuthResult#remote_ip", On::AuthResult, "e.remote_ip"},
    {"Dovecot::AuthResult#local_ip", On::AuthResult, "e.local_ip"},
    {"Dovecot::AuthResult#remote_port", On::AuthResult, "e.remote_port"},
    {"Dovecot::AuthResult#local_port", On::AuthResult, "e.local_port"},
    {"Dovecot::AuthResult#mechanism", On::AuthResult, "e.mechanism"},
    {"Dovecot::AuthResult#secured?", On::AuthResult, "e.secured?"},
    {"Dovecot::AuthResult#trusted?", On::AuthResult, "e.trusted?"},
    {"Dovecot::AuthResult#real_remote_ip", On::AuthResult, "e.real_remote_ip"},
    {"Dovecot::AuthResult#client_id", On::AuthResult, "e.client_id"},
    {"Dovecot::AuthResult#session_id", On::AuthResult, "e.session_id"},
    {"Dovecot::AuthResult#[]", On::AuthResult, "e['passdb_field_long_enough_for_heap']"},
    {"Dovecot::AuthResult#fields", On::AuthResult, "e.fields"},
    {"Dovecot::AuthResult#userdb_fields", On::AuthResult, "e.userdb_fields"},
    {"Dovecot::AuthResult#success?", On::AuthResult, "e.success?"},
    {"Dovecot::AuthResult#reason", On::AuthResult, "e.reason"},
    {"Dovecot::AuthResult#internal_failure?", On::AuthResult, "e.internal_failure?"},
    {"Dovecot::AuthResult#shadowed", On::AuthResult, "e.shadowed"},
    // JSON (a top-level module, loaded because these scripts name it)
    {"JSON.parse", On::SessionStart,
     "JSON.parse('{\"a key long enough for the heap\": [1, 2.5, \"a string long enough for "
     "the heap\", null, true, {\"nested key long enough for heap\": false}]}'); "
     "JSON.parse('{\"a key long enough for the heap\": [\"\\u00e9\\ud834\\udd1e\"]}', "
     "symbolize_names: true); "
     "begin; JSON.parse('[\"a string long enough for the heap\", tru]'); rescue JSON::ParserError; end; "
     "begin; JSON.parse('[' * 101); rescue JSON::NestingError; end"},
    {"JSON.generate", On::SessionStart,
     "JSON.generate({'a key long enough for the heap' => [1, 2.5, :a_symbol_long_enough_for_heap, "
     "nil, true, 'a string long enough for the heap', Object.new]}); "
     "begin; JSON.generate([0.0 / 0.0]); rescue JSON::GeneratorError; end"},
    {"JSON.pretty_generate", On::SessionStart,
     "JSON.pretty_generate({'a key long enough for the heap' => [1, {'b' => 'a string long enough'}]})"},
    {"Object#to_json", On::SessionStart,
     "[{'a key long enough for the heap' => 'a value long enough for the heap'}].to_json"},
    // Regexp (a top-level class, loaded because these scripts name it)
    {"Regexp#initialize", On::SessionStart,
     "Regexp.new('(?<a_group_name_long_enough>a+)b{2,}' * 8, 'imx'); "
     "begin; Regexp.new('(a long enough pattern for the heap'); rescue RegexpError; end"},
    {"Regexp#initialize_copy", On::SessionStart, "/(?<name_long_enough_for_heap>x)/.dup"},
    {"Regexp#source", On::SessionStart, "/a long enough pattern for the heap/.source"},
    {"Regexp#options", On::SessionStart, "/a/imx.options"},
    {"Regexp#__search", On::SessionStart,
     "/(a)(b)?(?<c>c)/ =~ ('x' * 40 + 'ac'); 'a long enough string for the heap'.scan(/\\w+/)"},
    {"Regexp#__names", On::SessionStart,
     "/(?<a_name_long_enough_for_the_heap>a)(?<b_name_long_enough_for_the_heap>b)/.names"},
    {"Regexp.escape", On::SessionStart, "Regexp.escape('a long enough string. for the heap?*')"},
    {"Regexp.quote", On::SessionStart, "Regexp.quote('a long enough string. for the heap?*')"},
    {"Regexp.union", On::SessionStart, "Regexp.union('a long enough string.', /for the heap/i)"},
    {"Regexp.__set_last_match", On::SessionStart,
     "'a long enough string for the heap' =~ /(long) (enough)/; [$1, $2, $~]"},
    {"Regexp.compile", On::SessionStart,
     "Regexp.compile('a long enough pattern for the heap', 'i'); Regexp.compile(/x/)"},
    {"Regexp.last_match", On::SessionStart,
     "'a long enough string for the heap' =~ /(long)/; [Regexp.last_match, Regexp.last_match(1)]"},
    {"Regexp#__string", On::SessionStart,
     "/a/.__string(:a_symbol_long_enough_for_the_heap); begin; /a/.__string(1); rescue TypeError; end"},
    {"Regexp#__match", On::SessionStart,
     "/(long)/.__match('a long enough string for the heap', -20)"},
    {"Regexp#__match_at", On::SessionStart,
     "/long/.__match_at('a long enough string for the heap', 2)"},
    {"Regexp#match", On::SessionStart,
     "/(long)/.match('a long enough string for the heap') { |m| m[1] }; /x/.match(nil)"},
    {"Regexp#match?", On::SessionStart,
     "/(long)/.match?('a long enough string for the heap', 3)"},
    {"Regexp#=~", On::SessionStart,
     "/(long)/ =~ 'a long enough string for the heap'"},
    {"Regexp#===", On::SessionStart,
     "/(long)/ === 'a long enough string for the heap'; /x/ === 1"},
    {"Regexp#==", On::SessionStart,
     "/a long enough pattern/i == Regexp.new('a long enough pattern', 'i')"},
    {"Regexp#eql?", On::SessionStart,
     "/a long enough pattern/i.eql?(/a long enough pattern/)"},
    {"Regexp#hash", On::SessionStart,
     "{/a long enough pattern for the heap/ => 1}"},
    {"Regexp#casefold?", On::SessionStart,
     "/a long enough pattern/i.casefold?"},
    {"Regexp#__flags", On::SessionStart,
     "/a long enough pattern/imx.__flags"},
    {"Regexp#__named_groups", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.__named_groups"},
    {"Regexp#names", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.names"},
    {"Regexp#named_captures", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.named_captures"},
    {"Regexp#to_s", On::SessionStart,
     "/a long enough (pattern) for the heap/mi.to_s"},
    {"Regexp#inspect", On::SessionStart,
     "Regexp.new('a long enough / pattern for the heap', 'x').inspect"},
    {"MatchData.__new", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap')"},
    {"MatchData#__init", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap')"},
    {"MatchData#__offsets", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').__offsets"},
    {"MatchData#regexp", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').regexp"},
    {"MatchData#string", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').string"},
    {"MatchData#size", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').size"},
    {"MatchData#length", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').length"},
    {"MatchData#__index", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').__index(:second_word_long_enough)"},
    {"MatchData#[]", On::SessionStart,
     "m = /(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap'); [m[0], m['first_word_long_enough'], m[:second_word_long_enough], m[0, 2], m[-1]]"},
    {"MatchData#begin", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').begin(:second_word_long_enough)"},
    {"MatchData#end", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').end('first_word_long_enough')"},
    {"MatchData#offset", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').offset(2)"},
    {"MatchData#to_a", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').to_a"},
    {"MatchData#captures", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').captures"},
    {"MatchData#names", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').names"},
    {"MatchData#named_captures", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').named_captures"},
    {"MatchData#pre_match", On::SessionStart,
     "/enough/.match('a long enough string for the heap').pre_match"},
    {"MatchData#post_match", On::SessionStart,
     "/enough/.match('a long enough string for the heap').post_match"},
    {"MatchData#to_s", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').to_s"},
    {"MatchData#==", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap') == /(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap')"},
    {"MatchData#inspect", On::SessionStart,
     "/(?<first_word_long_enough>\\w+) (?<second_word_long_enough>\\w+)/.match('a long enough string for the heap').inspect"},
    {"String#start_with?", On::SessionStart,
     "'a long enough string for the heap'.start_with?('x', /a lo+ng/)"},
    {"String#gsub with a Regexp", On::SessionStart,
     "'a long enough string for the heap'.gsub(/(?<w>\\w+)/) { |w| w.upcase }.split(/\\s+/); "
     "'a long enough string'.sub(/(long)/, '<\\\\1>').index(/str/)"},
    // Dovecot::IP
    {"Dovecot::IP#initialize", On::SessionStart, "Dovecot::IP.new('2001:db8:1234:5678:9abc:def0:1234:5678')"},
    {"Dovecot::IP.parse", On::SessionStart, "Dovecot::IP.parse('2001:db8::/32'); Dovecot::IP.parse(1234567890123)"},
    {"Dovecot::IP#to_s", On::SessionStart, "Dovecot::IP.new('2001:db8:1234:5678:9abc:def0:1234:5678').to_s"},
    {"Dovecot::IP#inspect", On::SessionStart, "Dovecot::IP.new('2001:db8:1234:5678:9abc:def0:1234:5678').inspect"},
    {"Dovecot::IP#address", On::SessionStart, "Dovecot::IP.new('2001:db8::/32').address"},
    {"Dovecot::IP#prefix", On::SessionStart, "Dovecot::IP.new('2001:db8::1').prefix(48)"},
    {"Dovecot::IP#prefix_length", On::SessionStart, "Dovecot::IP.new('2001:db8::1').prefix_length"},
    {"Dovecot::IP#include?", On::SessionStart, "Dovecot::IP.new('2001:db8::/32').include?('2001:db8::1')"},
    {"Dovecot::IP#ipv4?", On::SessionStart, "e.remote_ip.ipv4?"},
    {"Dovecot::IP#ipv6?", On::SessionStart, "e.remote_ip.ipv6?"},
    {"Dovecot::IP#host?", On::SessionStart, "e.remote_ip.host?"},
    {"Dovecot::IP#==", On::SessionStart, "e.remote_ip == '192.0.2.10'"},
    {"Dovecot::IP#eql?", On::SessionStart, "e.remote_ip.eql?(e.local_ip)"},
    {"Dovecot::IP#hash", On::SessionStart, "e.remote_ip.hash"},
    // Dovecot::RateLimit
    {"Dovecot::RateLimit#initialize", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60)"},
    {"Dovecot::RateLimit#__configure", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60, burst: 3, fail: :closed)"},
    {"Dovecot::RateLimit#__decide", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60)"
     ".__decide('a key long enough for the heap', 1, true)"},
    {"Dovecot::RateLimit#hit", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).hit(e.remote_ip)"},
    {"Dovecot::RateLimit#peek", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek(e.user, cost: 2)"},
    {"Dovecot::RateLimit#reset", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).reset(e.remote_ip)"},
    {"Dovecot::RateLimit#inspect", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).inspect"},
    {"Dovecot::RateLimit#name", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).name"},
    {"Dovecot::RateLimit#limit", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).limit"},
    {"Dovecot::RateLimit#period", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).period"},
    {"Dovecot::RateLimit#burst", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).burst"},
    {"Dovecot::RateLimit#fail", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).fail"},
    {"Dovecot::RateLimit::Decision#remaining", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').remaining"},
    {"Dovecot::RateLimit::Decision#retry_after", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').retry_after"},
    {"Dovecot::RateLimit::Decision#reset_after", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').reset_after"},
    {"Dovecot::RateLimit::Decision#initialize", On::SessionStart,
     "Dovecot::RateLimit::Decision.new(true, 4, 0.0, 12.0, false)"},
    {"Dovecot::RateLimit::Decision#allowed?", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').allowed?"},
    {"Dovecot::RateLimit::Decision#limited?", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').limited?"},
    {"Dovecot::RateLimit::Decision#store_failed?", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').store_failed?"},
    {"Dovecot::RateLimit::Decision#inspect", On::SessionStart,
     "Dovecot::RateLimit.new('a_limit_name_long_enough_for_heap', limit: 5, period: 60).peek('k').inspect"},
    // Dovecot::Counter
    {"Dovecot::Counter.incr", On::SessionStart,
     "Dovecot::Counter.incr('a counter key long enough for heap', by: 2, ttl: 60)"},
    {"Dovecot::Counter.get", On::SessionStart,
     "Dovecot::Counter.get('a counter key long enough for heap'); Dovecot::Counter.get('a counter key long enough for heap', fallback: 0)"},
    {"Dovecot::Counter.reset", On::SessionStart,
     "Dovecot::Counter.reset('a counter key long enough for heap')"},
    {"Dovecot::Counter.__incr", On::SessionStart,
     "Dovecot::Counter.__incr('a counter key long enough for heap', 1, 60, false)"},
    {"Dovecot::Counter.__get", On::SessionStart,
     "Dovecot::Counter.__get('a counter key long enough for heap', true)"},
    {"Dovecot::Counter.__reset", On::SessionStart,
     "Dovecot::Counter.__reset('a counter key long enough for heap', false)"},
    // Dovecot::Distinct
    {"Dovecot::Distinct#initialize", On::SessionStart,
     "Dovecot::Distinct.new('a distinct name long enough for heap', window: 60)"},
    {"Dovecot::Distinct#add", On::SessionStart,
     "d = Dovecot::Distinct.new('a distinct name long enough for heap', window: 60); d.add('a member long enough for the heap'); d.add(e.remote_ip, fallback: nil)"},
    {"Dovecot::Distinct#count", On::SessionStart,
     "Dovecot::Distinct.new('a distinct name long enough for heap', window: 60).count(fallback: 0)"},
    {"Dovecot::Distinct#name", On::SessionStart,
     "Dovecot::Distinct.new('a distinct name long enough for heap', window: 60).name"},
    {"Dovecot::Distinct#window", On::SessionStart,
     "Dovecot::Distinct.new('a distinct name long enough for heap', window: 60).window"},
    {"Dovecot::Distinct#inspect", On::SessionStart,
     "Dovecot::Distinct.new('a distinct name long enough for heap', window: 60).inspect"},
    {"Dovecot::Distinct.__add", On::SessionStart,
     "Dovecot::Distinct.__add('a distinct name long enough for heap', 'a member long enough for the heap', 60, false)"},
    {"Dovecot::Distinct.__count", On::SessionStart,
     "Dovecot::Distinct.__count('a distinct name long enough for heap', 60.5, true)"},
    // Dovecot::List
    {"Dovecot::List#initialize", On::SessionStart, "Dovecot::List.new('a list name long enough for heap')"},
    {"Dovecot::List#add", On::SessionStart,
     "Dovecot::List.new('a list name long enough for heap').add('2001:db8::/32', ttl: 60, reason: 'a reason long enough for heap')"},
    {"Dovecot::List#__add", On::SessionStart,
     "Dovecot::List.new('a list name long enough for heap').__add('an entry long enough for the heap', nil, '', false)"},
    {"Dovecot::List#remove", On::SessionStart,
     "Dovecot::List.new('a list name long enough for heap').remove('an entry long enough for the heap')"},
    {"Dovecot::List#__remove", On::SessionStart,
     "Dovecot::List.new('a list name long enough for heap').__remove('an entry long enough for the heap', true)"},
    {"Dovecot::List#match", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('192.0.2.0/24', reason: 'a reason long enough for heap'); l.match(e.remote_ip)"},
    {"Dovecot::List#__match", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap'); l.__match('an entry long enough for the heap', false)"},
    {"Dovecot::List#include?", On::SessionStart,
     "Dovecot::List.new('a list name long enough for heap').include?(e.remote_ip)"},
    {"Dovecot::List#entries", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap', ttl: 60, reason: 'a reason long enough'); l.add('2001:db8::/32'); l.entries"},
    {"Dovecot::List#__entries", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap'); l.__entries(false)"},
    {"Dovecot::List#inspect", On::SessionStart, "Dovecot::List.new('a list name long enough for heap').inspect"},
    {"Dovecot::List#name", On::SessionStart, "Dovecot::List.new('a list name long enough for heap').name"},
    {"Dovecot::List::Entry#value", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap'); l.entries.first.value"},
    {"Dovecot::List::Entry#reason", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap', reason: 'a reason long enough for the heap'); l.entries.first.reason"},
    {"Dovecot::List::Entry#expires_at", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap', ttl: 60); l.entries.first.expires_at"},
    {"Dovecot::List::Entry#initialize", On::SessionStart,
     "Dovecot::List::Entry.new('an entry long enough for the heap', 'a reason', nil)"},
    {"Dovecot::List::Entry#to_s", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap'); l.entries.first.to_s"},
    {"Dovecot::List::Entry#inspect", On::SessionStart,
     "l = Dovecot::List.new('a list name long enough for heap'); l.add('an entry long enough for the heap'); l.entries.first.inspect"},
};

const char *handler_registration(On on)
{
    switch (on) {
    case On::SessionStart: return "Dovecot.on_session_start";
    case On::MailboxOpen: return "Dovecot.on_mailbox_open";
    case On::MessageRead: return "Dovecot.on_message_read";
    case On::ImapBefore: return "Dovecot::IMAP.before_command";
    case On::ImapAfter: return "Dovecot::IMAP.after_command";
    case On::Pop3Before: return "Dovecot::POP3.before_command";
    case On::Auth: return "Dovecot.on_auth";
    case On::AuthResult: return "Dovecot.on_auth_result";
    case On::PasswordVerify: return "Dovecot.on_password_verify";
    case On::UserdbLookup: return "Dovecot.on_userdb_lookup";
    }
    return "";
}

core::Hook hook_of(On on)
{
    switch (on) {
    case On::SessionStart: return core::Hook::SessionStart;
    case On::MailboxOpen: return core::Hook::MailboxOpen;
    case On::MessageRead: return core::Hook::MessageRead;
    case On::ImapBefore: return core::Hook::ImapCommandBefore;
    case On::ImapAfter: return core::Hook::ImapCommandAfter;
    case On::Pop3Before: return core::Hook::Pop3CommandBefore;
    case On::Auth: return core::Hook::Auth;
    case On::AuthResult: return core::Hook::AuthResult;
    case On::PasswordVerify: return core::Hook::PasswordVerify;
    case On::UserdbLookup: return core::Hook::UserdbLookup;
    }
    return core::Hook::SessionStart;
}

class NullSink final : public core::AuditSink {
public:
    bool write(const core::AuditRecord &) override { return true; }
};

// Everything one run needs, created and destroyed inside the counted scope.
struct World {
    World()
    {
        settings.values = {{"mruby_greeting_long_enough_for_heap", "a greeting long enough for the heap"}};
        session.user = "alice.with.a.long.name@example.com";
        session.service = "imap";
        session.remote_ip = "192.0.2.10";
        session.local_ip = "2001:db8::1";
        session.session_id = "a session id long enough for heap";
        session.userdb_fields = {{"quota_rule_long_enough_for_heap", "*:storage=1G long enough"}};
        session.settings = &settings;
        stats.add("fetch_body_long_enough_for_the_heap", 3);
        mailbox.name = "Archive/2024/a mailbox name long enough";
        command.name = "UID FETCH LONG ENOUGH FOR HEAP";
        command.tag = "a tag long enough for the heap";
        command.args = "1:* (FLAGS) arguments long enough for the heap";
        command.reply = "OK";
        command.reply_text = "Fetch completed, a text long enough";
        command.duration_us = 1500;
        message.mailbox = "INBOX/a mailbox name long enough";
        message.uid = 7;
        message.message_id = "<a-message-id-long-enough@example.com>";
        message.has_message_id = true;
        auth.user = "alice.with.a.long.name@example.com";
        auth.service = "imap";
        auth.remote_ip = "192.0.2.10";
        auth.local_ip = "2001:db8::1";
        auth.real_remote_ip = "2001:db8::2";
        auth.mechanism = "PLAIN";
        auth.session_id = "a session id long enough for heap";
        auth.client_id = "a client id long enough for the heap";
        auth.passdb_fields = {{"passdb_field_long_enough_for_heap", "a value long enough for heap"}};
        auth.userdb_fields = {{"userdb_field_long_enough_for_heap", "a value long enough for heap"}};
        auth.password = "a password long enough for the heap";
        auth.reason = "a reason long enough for the heap";
        memory = std::make_unique<store::MemoryStore>(clock);
        handle = std::make_unique<core::StoreHandle>(*memory);
        core::AuditContext context;
        context.host = "a host name long enough for the heap";
        context.user = session.user;
        auditor = std::make_unique<core::Auditor>(context, clock);
        auditor->add_sink(std::make_unique<NullSink>());
    }

    std::unique_ptr<mruby::Vm> vm(const std::string &source)
    {
        mruby::VmOptions options;
        options.logger = &logger;
        options.store = handle.get();
        options.auditor = auditor.get();
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        // Not about time: generous, so that GC stress or valgrind never turn
        // a refusal into a timeout.
        options.timeout_ms = 10000;
        core::ScriptError error;
        auto vm = mruby::Vm::create(options, error);
        EXPECT_NE(vm, nullptr) << error.describe();
        if (vm == nullptr)
            return vm;
        auto load_error = vm->load_source(source, "policy.rb");
        EXPECT_FALSE(load_error) << load_error->describe();
        return vm;
    }

    core::HookResult run(mruby::Vm &vm, On on)
    {
        output = core::AuthOutput{};
        core::Event event = event_of(on);
        event.session = &session;
        return vm.run(event);
    }

    core::Event event_of(On on)
    {
        core::Hook hook = hook_of(on);
        switch (on) {
        case On::SessionStart: return core::Event::make<core::Hook::SessionStart>(&stats);
        case On::MailboxOpen: return core::Event::make<core::Hook::MailboxOpen>(mailbox);
        case On::MessageRead: return core::Event::make<core::Hook::MessageRead>(message);
        case On::ImapBefore:
        case On::ImapAfter:
        case On::Pop3Before: return core::Event::make_any<core::CommandPayload>(hook, command);
        case On::AuthResult: return core::Event::make<core::Hook::AuthResult>(auth);
        case On::Auth:
        case On::PasswordVerify:
        case On::UserdbLookup: break;
        }
        return core::Event::make_any<core::AuthPayload>(hook, auth, output);
    }

    core::ManualClock clock{1'700'000'000'000'000};
    dmr::testing::RecordingLogger logger;
    dmr::testing::MapSettings settings;
    core::SessionInfo session;
    core::SessionStats stats;
    core::MailboxInfo mailbox;
    core::CommandInfo command;
    core::MessageInfo message;
    core::AuthRequestInfo auth;
    core::AuthOutput output;
    std::unique_ptr<core::Store> memory;
    std::unique_ptr<core::StoreHandle> handle;
    std::unique_ptr<core::Auditor> auditor;
};

std::string script_for(const Case &c)
{
    return std::string(c.prelude) + handler_registration(c.on) + " do |e|\n  " + c.code +
           "\n  nil\nend\n";
}

// One run with the allocator refusing after `n` more allocations (negative:
// never). True when the call got through; else `failure` (a plain buffer,
// so that it holds no heap block while they are counted) says why.
bool run_refusing_after(const Case &c, long n, char (&failure)[512])
{
    World world;
    auto vm = world.vm(script_for(c));
    if (vm == nullptr)
        return true;
    // Warm up: libraries and extensions load on first use.
    auto warm = world.run(*vm, c.on);
    if (warm.error) {
        ADD_FAILURE() << c.method << ": " << warm.error->describe();
        return true;
    }
    vm->refuse_allocations_after(n);
    auto result = world.run(*vm, c.on);
    if (result.error)
        std::snprintf(failure, sizeof(failure), "%s", result.error->describe().c_str());
    return !result.error;
}

} // namespace

// Valgrind replaces operator new/delete in the shared libraries, so the
// counts above no longer see every block; it checks leaks itself.
static bool under_valgrind()
{
    const char *preload = std::getenv("LD_PRELOAD");
    return preload != nullptr && std::strstr(preload, "vgpreload") != nullptr;
}

TEST(BridgeBindings, NoCppObjectLeaksWhenAnyAllocationIsRefused)
{
    const bool count_blocks = !under_valgrind();
    // Static state of the libraries (locale, the store's first use ...)
    // settles in one full run before counting starts.
    {
        char ignored[512];
        for (const Case &c : kCases)
            run_refusing_after(c, -1, ignored);
    }
    for (const Case &c : kCases) {
        SCOPED_TRACE(c.method);
        long n = 0;
        for (;; n++) {
            ASSERT_LT(n, 5000) << "the call never got through";
            long before = g_live_blocks.load();
            char failure[512] = "";
            bool through = run_refusing_after(c, n, failure);
            long leaked = count_blocks ? g_live_blocks.load() - before : 0;
            ASSERT_EQ(leaked, 0) << c.method << " refused after " << n
                                 << " allocations leaked " << leaked
                                 << " C++ heap blocks; the call failed with: " << failure;
            if (through)
                break;
        }
        // Every case reaches its binding at all: a refusal stopped at least one run.
        EXPECT_GT(n, 0) << c.method;
    }
}

TEST(BridgeBindings, CoversEveryMethod)
{
    std::set<std::string> covered;
    for (const Case &c : kCases)
        covered.insert(c.method);

    World world;
    auto vm = world.vm(R"(
        Dovecot.on_session_start do |e|
          classes = [Dovecot::Session, Dovecot::Mailbox, Dovecot::Message, Dovecot::IMAP::Command,
                     Dovecot::POP3::Command, Dovecot::Auth, Dovecot::AuthResult, Dovecot::IP,
                     Dovecot::RateLimit, Dovecot::RateLimit::Decision, Dovecot::List,
                     Dovecot::List::Entry, Dovecot::Distinct, Regexp, MatchData]
          modules = [Dovecot, Dovecot::Log, Dovecot::IMAP, Dovecot::POP3, Dovecot::Counter,
                     Dovecot::IP, Dovecot::Distinct, JSON, Regexp, MatchData]
          names = []
          classes.each do |c|
            c.instance_methods(false).each { |m| names << "#{c}##{m}" }
          end
          modules.each { |m| m.singleton_methods.each { |s| names << "#{m}.#{s}" } }
          names.each { |n| Dovecot.log.info(n) }
        end
    )");
    ASSERT_NE(vm, nullptr);
    auto result = world.run(*vm, On::SessionStart);
    ASSERT_FALSE(result.error) << result.error->describe();
    size_t count = 0;
    for (const auto &line : world.logger.lines) {
        count++;
        EXPECT_TRUE(covered.count(line.second)) << line.second << " has no case in kCases";
    }
    EXPECT_GT(count, 100u);
}
