#include <gtest/gtest.h>

#include <map>

#include "core/settings.hpp"

using namespace dmr::core;

TEST(ParseDuration, AcceptsUnitsAndPlainMilliseconds)
{
    EXPECT_EQ(parse_duration_ms("200ms"), 200u);
    EXPECT_EQ(parse_duration_ms("2s"), 2000u);
    EXPECT_EQ(parse_duration_ms("1.5s"), 1500u);
    EXPECT_EQ(parse_duration_ms("1m"), 60000u);
    EXPECT_EQ(parse_duration_ms("250"), 250u);
    EXPECT_EQ(parse_duration_ms(" 10 ms "), 10u);
}

TEST(ParseDuration, RejectsGarbageZeroAndHuge)
{
    EXPECT_FALSE(parse_duration_ms(""));
    EXPECT_FALSE(parse_duration_ms("fast"));
    EXPECT_FALSE(parse_duration_ms("10 parsecs"));
    EXPECT_FALSE(parse_duration_ms("0"));
    EXPECT_FALSE(parse_duration_ms("-5s"));
    EXPECT_FALSE(parse_duration_ms("2h"));
    EXPECT_FALSE(parse_duration_ms("1.2.3s"));
}

TEST(ParseSize, AcceptsBinaryUnits)
{
    EXPECT_EQ(parse_size_bytes("32M"), 32u << 20);
    EXPECT_EQ(parse_size_bytes("512k"), 512u << 10);
    EXPECT_EQ(parse_size_bytes("1G"), 1ull << 30);
    EXPECT_EQ(parse_size_bytes("64MB"), 64u << 20);
    EXPECT_EQ(parse_size_bytes("4096"), 4096u);
    EXPECT_FALSE(parse_size_bytes("lots"));
    EXPECT_FALSE(parse_size_bytes("3T"));
}

TEST(OnError, ParsesTheThreeChoicesCaseInsensitively)
{
    EXPECT_EQ(parse_on_error("allow"), OnError::Allow);
    EXPECT_EQ(parse_on_error("TempFail"), OnError::Tempfail);
    EXPECT_EQ(parse_on_error("reject"), OnError::Reject);
    EXPECT_FALSE(parse_on_error("ignore"));
}

TEST(RuntimeSettings, DefaultsWhenUnset)
{
    std::vector<std::string> errors;
    auto s = RuntimeSettings::from([](const char *) { return nullptr; }, errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(s.script, "");
    EXPECT_EQ(s.on_error, OnError::Tempfail);
    EXPECT_EQ(s.timeout_ms, 200u);
    EXPECT_EQ(s.memory_limit, 32u << 20);
}

TEST(RuntimeSettings, BadValuesAreReportedAndReplacedBySafeDefaults)
{
    std::vector<std::string> errors;
    auto s = RuntimeSettings::from(
        [](const char *name) -> const char * {
            std::string n = name;
            if (n == "mruby_script") return "/etc/dovecot/policy.rb";
            if (n == "mruby_on_error") return "yolo";
            if (n == "mruby_timeout") return "soon";
            if (n == "mruby_memory_limit") return "100k";   // below the 1M floor
            return nullptr;
        },
        errors);
    EXPECT_EQ(s.script, "/etc/dovecot/policy.rb");
    EXPECT_EQ(s.on_error, OnError::Tempfail);
    EXPECT_EQ(s.timeout_ms, 200u);
    EXPECT_EQ(s.memory_limit, 32u << 20);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_NE(errors[0].find("mruby_on_error: invalid value 'yolo'"), std::string::npos);
    EXPECT_NE(errors[1].find("mruby_timeout"), std::string::npos);
    EXPECT_NE(errors[2].find("mruby_memory_limit"), std::string::npos);
}

TEST(ServiceSet, DefaultIsImapAndPop3)
{
    std::vector<std::string> errors;
    ServiceSet set = ServiceSet::parse("", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(set.names, (std::vector<std::string>{"imap", "pop3"}));
    EXPECT_TRUE(set.contains("imap"));
    EXPECT_TRUE(set.contains("pop3"));
    EXPECT_FALSE(set.contains("lmtp"));
    EXPECT_FALSE(set.contains("doveadm"));
    EXPECT_FALSE(set.contains(""));
}

TEST(ServiceSet, NamedServicesOnlySeparatedBySpacesOrCommas)
{
    std::vector<std::string> errors;
    ServiceSet set = ServiceSet::parse("  imap\tLMTP,submission, imap ", errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(set.names, (std::vector<std::string>{"imap", "lmtp", "submission"}));
    EXPECT_FALSE(set.contains("pop3"));
}

TEST(ServiceSet, UnknownNamesAreReportedAndSkipped)
{
    std::vector<std::string> errors;
    ServiceSet set = ServiceSet::parse("imap pop3 lmpt", errors);
    EXPECT_EQ(set.names, (std::vector<std::string>{"imap", "pop3"}));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].rfind("mruby_services: unknown service 'lmpt' ignored (known: imap pop3 "
                              "submission lmtp lda doveadm",
                              0),
              0u);
}

TEST(ServiceSet, NothingKnownFallsBackToTheDefaultNeverToNone)
{
    // A typo must not switch the policy off for every client session.
    std::vector<std::string> errors;
    ServiceSet set = ServiceSet::parse("imapp", errors);
    EXPECT_EQ(set.names, (std::vector<std::string>{"imap", "pop3"}));
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_NE(errors[0].find("'imapp'"), std::string::npos);
    EXPECT_EQ(errors[1], "mruby_services: no known service left; using 'imap pop3'");
    errors.clear();
    EXPECT_EQ(ServiceSet::parse(" , ", errors).names, (std::vector<std::string>{"imap", "pop3"}));
    EXPECT_TRUE(errors.empty());
}

TEST(DeliveryService, LmtpAndLdaOnly)
{
    EXPECT_TRUE(is_delivery_service("lmtp"));
    EXPECT_TRUE(is_delivery_service("lda"));
    EXPECT_FALSE(is_delivery_service("imap"));
    EXPECT_FALSE(is_delivery_service("submission"));
    EXPECT_FALSE(is_delivery_service(""));
}

TEST(RuntimeSettings, ScriptCacheDefaultsToTheStoreDirectory)
{
    std::vector<std::string> errors;
    auto lookup = [](std::map<std::string, std::string> values) {
        return [values](const char *name) -> const char * {
            auto it = values.find(name);
            return it == values.end() ? nullptr : it->second.c_str();
        };
    };
    EXPECT_EQ(RuntimeSettings::from(lookup({}), errors).script_cache,
              "/var/lib/dovecot/mruby/scripts");
    EXPECT_EQ(RuntimeSettings::from(lookup({{"mruby_store", "lmdb:/srv/mruby"}}), errors)
                  .script_cache,
              "/srv/mruby/scripts");
    EXPECT_EQ(RuntimeSettings::from(lookup({{"mruby_script_cache", "no"}}), errors).script_cache,
              "");
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(RuntimeSettings::from(lookup({{"mruby_script_cache", "rel"}}), errors).script_cache,
              "/var/lib/dovecot/mruby/scripts");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("mruby_script_cache: 'rel' is not an absolute path"),
              std::string::npos);
}

TEST(RuntimeSettings, ShadowIsOffUnlessSetAndABadValueKeepsItOff)
{
    std::vector<std::string> errors;
    auto lookup = [](const char *value) {
        return [value](const char *name) -> const char * {
            return std::string(name) == "mruby_shadow" ? value : nullptr;
        };
    };
    EXPECT_FALSE(RuntimeSettings::from(lookup(nullptr), errors).shadow);
    EXPECT_TRUE(RuntimeSettings::from(lookup("yes"), errors).shadow);
    EXPECT_FALSE(RuntimeSettings::from(lookup("no"), errors).shadow);
    EXPECT_TRUE(errors.empty());
    EXPECT_FALSE(RuntimeSettings::from(lookup("maybe"), errors).shadow);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "mruby_shadow: invalid value 'maybe' (expected yes or no); using no");
}

TEST(StorePassword, ComesFromItsOwnSettingOrAFileNeverBoth)
{
    std::map<std::string, std::string> plugin = {
        {"mruby_store", "redis://127.0.0.1:6379/0"}, {"mruby_store_password", "s3cret"}};
    std::vector<std::string> errors;
    auto s = RuntimeSettings::from(
        [&](const char *name) {
            auto it = plugin.find(name);
            return it == plugin.end() ? nullptr : it->second.c_str();
        },
        errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(s.store, "redis://127.0.0.1:6379/0");   // the spec stays without it
    EXPECT_EQ(s.store_password, "s3cret");
    EXPECT_EQ(s.store_password_file, "");

    plugin["mruby_store_password_file"] = "/etc/dovecot/redis.pass";
    errors.clear();
    s = RuntimeSettings::from(
        [&](const char *name) {
            auto it = plugin.find(name);
            return it == plugin.end() ? nullptr : it->second.c_str();
        },
        errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "mruby_store_password: set together with mruby_store_password_file; "
                         "using the file");
    EXPECT_EQ(s.store_password, "");
    EXPECT_EQ(s.store_password_file, "/etc/dovecot/redis.pass");
}

TEST(StorePassword, AFileMustBeAnAbsolutePathAndTheSecretIsNeverQuoted)
{
    ScriptSettings s;
    std::vector<std::string> errors;
    EXPECT_TRUE(s.set("store_password_file", "redis.pass", ScriptSettings::kDriverArgs, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "store_password_file: 'redis.pass' is not an absolute path");
    EXPECT_EQ(s.store_password_file, "");

    errors.clear();
    s.store_password_file = "/etc/x";
    EXPECT_TRUE(s.set("store_password", "hunter2", ScriptSettings::kDriverArgs, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].find("hunter2"), std::string::npos);
}

TEST(SettingNames, AMisspellingNamesTheClosestKnownSetting)
{
    auto warnings = unknown_plugin_settings(
        {"mruby_timout", "mruby_scirpt", "mruby_store_pasword", "mruby_greeting", "quota",
         "mruby_script", "mruby_on_eror"});
    ASSERT_EQ(warnings.size(), 4u);
    EXPECT_EQ(warnings[0], "mruby_timout is not a setting (did you mean mruby_timeout?): ignored");
    EXPECT_EQ(warnings[1], "mruby_scirpt is not a setting (did you mean mruby_script?): ignored");
    EXPECT_EQ(warnings[2], "mruby_store_pasword is not a setting (did you mean "
                           "mruby_store_password?): ignored");
    EXPECT_EQ(warnings[3], "mruby_on_eror is not a setting (did you mean mruby_on_error?): ignored");
    // mruby_greeting is far from every setting: a script's own (s.setting).
}

TEST(SettingNames, EveryKnownSettingIsKnownAndFarNamesHaveNoSuggestion)
{
    std::vector<std::string> names;
    for (std::string_view name : known_plugin_settings())
        names.emplace_back(name);
    EXPECT_TRUE(unknown_plugin_settings(names).empty());
    EXPECT_EQ(closest_name("mruby_greeting", known_plugin_settings()), "");
    EXPECT_EQ(closest_name("tmeout", known_driver_args()), "timeout");
    EXPECT_EQ(closest_name("fiel", known_driver_args()), "file");
    EXPECT_EQ(closest_name("colour", known_driver_args()), "");
}
