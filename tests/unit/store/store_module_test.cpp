// The boundary with a store module (core/store_module.hpp): a module is
// called only when its stamp is this build's; otherwise one error names both
// stamps and the module's path, and the store fails like a dead one.
#include <gtest/gtest.h>

#include "core/store_module.hpp"
#include "store/backends.hpp"
#include "test_support.hpp"

#ifndef DMR_TEST_STAMPED_MODULE
#error "DMR_TEST_STAMPED_MODULE must name the test module with this build's stamp"
#endif

namespace dmr::core {
namespace {

class StoreModuleTest : public ::testing::Test {
protected:
    StoreRegistry registry_with(const std::string &module)
    {
        StoreRegistry registry;
        registry.add_loader([module](StoreRegistry &self, std::string &error) {
            return load_store_module({"/nonexistent/" + module.substr(module.rfind('/') + 1),
                                      module},
                                     self, error);
        });
        return registry;
    }

    ManualClock clock_;
};

TEST_F(StoreModuleTest, AModuleWithThisBuildsStampRegistersItsBackends)
{
    StoreRegistry registry = registry_with(DMR_TEST_STAMPED_MODULE);
    EXPECT_TRUE(registry.schemes().empty());   // not loaded before a spec needs it
    std::string error;
    std::unique_ptr<Store> store = registry.open("stamped:", error, StoreOptions{&clock_, nullptr, {}});
    ASSERT_NE(store, nullptr) << error;
    EXPECT_STREQ(store->backend(), "memory");
    Result<int64_t> counted = store->counter_incr("k", 2, 60'000'000);
    ASSERT_TRUE(counted.ok()) << counted.status.message();
    EXPECT_EQ(counted.value, 2);
    EXPECT_EQ(registry.schemes(), std::vector<std::string>{"stamped:"});
}

TEST_F(StoreModuleTest, AModuleOfAnotherBuildIsRefusedWithBothStampsAndItsPath)
{
    StoreRegistry registry = registry_with(DMR_TEST_WRONG_STAMP_MODULE);
    std::string error;
    EXPECT_EQ(registry.open("stamped:", error), nullptr);
    static constexpr StoreModuleStamp ours = DMR_STORE_MODULE_STAMP;
    EXPECT_EQ(error,
              "unknown store 'stamped:' (expected a registered backend); backends that could "
              "not be loaded may have it: store module " +
                  std::string(DMR_TEST_WRONG_STAMP_MODULE) +
                  " was built for another plugin: module stamp 'dovecot-mruby 0.0.1, store "
                  "boundary 0, compiler " __VERSION__ ", layout 000000000000002a', plugin "
                  "stamp '" + describe_stamp(ours) +
                  "' (install the plugins and the module from one build)");
    EXPECT_TRUE(registry.schemes().empty()) << "the module's entry point was called";
    // The plugin's stamp names what must match.
    EXPECT_NE(describe_stamp(ours).find("dovecot-mruby " DMR_PROJECT_VERSION ", store boundary "),
              std::string::npos);
    EXPECT_NE(describe_stamp(ours).find("_GLIBCXX_USE_CXX11_ABI="), std::string::npos);
}

TEST_F(StoreModuleTest, AStoreFromARefusedModuleFailsLikeADeadStore)
{
    StoreRegistry registry = registry_with(DMR_TEST_WRONG_STAMP_MODULE);
    StoreHandle handle("stamped:", StoreOptions{&clock_, nullptr, {}}, &registry);
    std::string error;
    EXPECT_EQ(handle.get(error), nullptr);
    EXPECT_NE(error.find("mruby_store=stamped:: unknown store"), std::string::npos) << error;
    EXPECT_NE(error.find("built for another plugin"), std::string::npos) << error;
    // Loaded once: the second get() gives the remembered error, no second dlopen.
    std::string again;
    EXPECT_EQ(handle.get(again), nullptr);
    EXPECT_EQ(again, error);
}

TEST_F(StoreModuleTest, ASpecARowAlreadyHasNeverLoadsTheModule)
{
    // The plugins' set-up (store::register_backends_on_demand): memory
    // registered, the module as a loader.
    StoreRegistry registry;
    registry.add(store::memory_backend());
    int loads = 0;
    registry.add_loader([&loads](StoreRegistry &, std::string &error) {
        loads++;
        error = "not in this test";
        return false;
    });
    std::string error;
    EXPECT_NE(registry.open("memory", error), nullptr) << error;
    EXPECT_EQ(loads, 0);
    EXPECT_EQ(registry.open("lmdb:/tmp/x", error), nullptr);
    EXPECT_EQ(registry.open("redis://h", error), nullptr);
    EXPECT_EQ(loads, 1) << "the loaders run once, on the first spec that needs them";
    EXPECT_NE(error.find("not in this test"), std::string::npos) << error;
}

TEST_F(StoreModuleTest, NoLoadableModuleSaysWhatWasTried)
{
    StoreRegistry registry;
    registry.add_loader([](StoreRegistry &self, std::string &error) {
        return load_store_module({"/nonexistent/dmr_store_backends.so"}, self, error);
    });
    std::string error;
    EXPECT_EQ(registry.open("lmdb:/tmp/x", error), nullptr);
    EXPECT_NE(error.find("cannot load the store backends: /nonexistent/dmr_store_backends.so"),
              std::string::npos)
        << error;
}

} // namespace
} // namespace dmr::core
