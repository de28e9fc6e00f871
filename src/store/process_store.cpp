#include "store/process_store.hpp"

#include <map>

namespace dmr::store {

StoreHandle::StoreHandle(std::string spec, StoreOptions options)
    : spec_(std::move(spec)), options_(options)
{
}

StoreHandle::StoreHandle(Store &store)
    : spec_(store.backend()), store_(&store), tried_(true)
{
}

Store *StoreHandle::get(std::string &error)
{
    if (!tried_) {
        tried_ = true;
        owned_ = open_store(spec_, error_, options_);
        store_ = owned_.get();
        if (store_ == nullptr && error_.empty())
            error_ = "cannot open store";
    }
    if (store_ == nullptr)
        error = "mruby_store=" + spec_ + ": " + error_;
    return store_;
}

StoreHandle &process_store(const std::string &spec, core::Logger *logger)
{
    // Leaked on purpose, see the header.
    static auto *handles = new std::map<std::string, std::unique_ptr<StoreHandle>>();
    auto &slot = (*handles)[spec];
    if (!slot) {
        StoreOptions options;
        options.logger = logger;
        slot = std::make_unique<StoreHandle>(spec, options);
    }
    return *slot;
}

} // namespace dmr::store
