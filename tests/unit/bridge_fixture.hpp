// Runs inline scripts in a real VM with a fake host (recording logger, map
// settings). DOVECOT_MRUBY_GC_STRESS=1 runs every test with constant GC.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "core/events.hpp"
#include "fakes.hpp"
#include "mruby/vm.hpp"

namespace dmr::testing {

class BridgeTest : public ::testing::Test {
protected:
    std::unique_ptr<mruby::Vm> make_vm(uint64_t memory_limit = 32u << 20, uint32_t timeout_ms = 200)
    {
        mruby::VmOptions options;
        options.logger = &logger;
        options.memory_limit = memory_limit;
        options.timeout_ms = timeout_ms;
        options.gc_stress = std::getenv("DOVECOT_MRUBY_GC_STRESS") != nullptr;
        core::ScriptError error;
        auto vm = mruby::Vm::create(options, error);
        EXPECT_NE(vm, nullptr) << error.describe();
        return vm;
    }

    // A VM with `source` loaded as policy.rb; fails the test on a load error.
    std::unique_ptr<mruby::Vm> vm_with(const std::string &source, uint64_t memory_limit = 32u << 20,
                                       uint32_t timeout_ms = 200)
    {
        auto vm = make_vm(memory_limit, timeout_ms);
        if (vm) {
            auto error = vm->load_source(source, "policy.rb");
            EXPECT_FALSE(error) << error->describe();
        }
        return vm;
    }

    core::HookResult session_start(mruby::Vm &vm)
    {
        auto event = core::Event::make<core::Hook::SessionStart>();
        event.session = &session;
        return vm.run(event);
    }

    core::HookResult mailbox_open(mruby::Vm &vm, const std::string &name, bool readonly = false)
    {
        core::MailboxInfo box{name, readonly};
        auto event = core::Event::make<core::Hook::MailboxOpen>(box);
        event.session = &session;
        return vm.run(event);
    }

    void SetUp() override
    {
        settings.values = {{"mruby_greeting", "hello"}};
        session.user = "alice@example.com";
        session.service = "imap";
        session.remote_ip = "192.0.2.10";
        session.local_ip = "127.0.0.1";
        session.remote_port = 50123;
        session.local_port = 143;
        session.session_id = "AbCdEf";
        session.userdb_fields = {{"quota_rule", "*:storage=1G"}, {"zip", "01234"}};
        session.settings = &settings;
    }

    RecordingLogger logger;
    MapSettings settings;
    core::SessionInfo session;
};

} // namespace dmr::testing
