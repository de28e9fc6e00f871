#include "core/store_registry.hpp"

#include <cstring>
#include <map>

namespace dmr::core {

void StoreRegistry::add(const StoreBackend &backend)
{
    for (StoreBackend &row : rows_) {
        if (std::strcmp(row.scheme, backend.scheme) == 0) {
            row = backend;
            return;
        }
    }
    rows_.push_back(backend);
}

void StoreRegistry::add_loader(Loader loader) { loaders_.push_back(std::move(loader)); }

const StoreBackend *StoreRegistry::find(std::string_view spec) const
{
    const StoreBackend *best = nullptr;
    for (const StoreBackend &row : rows_) {
        std::string_view scheme = row.scheme;
        if (spec.substr(0, scheme.size()) == scheme &&
            (best == nullptr || scheme.size() > std::strlen(best->scheme)))
            best = &row;
    }
    return best;
}

std::vector<std::string> StoreRegistry::schemes() const
{
    std::vector<std::string> out;
    for (const StoreBackend &row : rows_)
        out.emplace_back(row.scheme);
    return out;
}

std::unique_ptr<Store> StoreRegistry::open(std::string_view spec, std::string &error,
                                           const StoreOptions &options)
{
    error.clear();
    const StoreBackend *row = find(spec);
    if (row == nullptr && !loaders_.empty()) {
        std::vector<Loader> pending;
        pending.swap(loaders_);   // each runs once, even if it adds a loader
        for (Loader &load : pending) {
            std::string why;
            if (!load(*this, why))
                load_error_ += (load_error_.empty() ? "" : "; ") + why;
        }
        row = find(spec);
    }
    if (row == nullptr) {
        error = "unknown store '" + std::string(spec) + "' (expected ";
        for (size_t i = 0; i < rows_.size(); i++)
            error += std::string(i == 0 ? "" : ", ") + rows_[i].usage;
        error += rows_.empty() ? "a registered backend)" : ")";
        if (!load_error_.empty())
            error += "; backends that could not be loaded may have it: " + load_error_;
        return nullptr;
    }
    const Clock &clock = options.clock != nullptr ? *options.clock : SystemClock::instance();
    std::unique_ptr<Store> store =
        row->open(spec.substr(std::strlen(row->scheme)), clock, options, error);
    if (store == nullptr && error.empty())
        error = std::string("cannot open a ") + row->usage + " store";
    return store;
}

StoreRegistry &store_registry()
{
    static auto *registry = new StoreRegistry();   // leaked on purpose, see the header
    return *registry;
}

std::unique_ptr<Store> open_store(std::string_view spec, std::string &error,
                                  const StoreOptions &options)
{
    return store_registry().open(spec, error, options);
}

StoreHandle::StoreHandle(std::string spec, StoreOptions options, StoreRegistry *registry)
    : spec_(std::move(spec)), options_(options), registry_(registry)
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
        StoreRegistry &registry = registry_ != nullptr ? *registry_ : store_registry();
        owned_ = registry.open(spec_, error_, options_);
        store_ = owned_.get();
        if (store_ == nullptr && error_.empty())
            error_ = "cannot open store";
    }
    if (store_ == nullptr)
        error = "mruby_store=" + spec_ + ": " + error_;
    return store_;
}

StoreHandle &process_store(const std::string &spec, Logger *logger)
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

} // namespace dmr::core
