#include "core/store_registry.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
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

StoreHandle::StoreHandle(std::string spec, StoreOptions options, std::string password_file,
                         StoreRegistry *registry)
    : spec_(std::move(spec)), options_(std::move(options)),
      password_file_(std::move(password_file)), registry_(registry)
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
        std::string why;
        if (!password_file_.empty() && !read_password_file(password_file_, options_.password, why))
            error_ = why;
        else
            owned_ = registry.open(spec_, error_, options_);
        options_.password.clear();   // the store has its copy
        store_ = owned_.get();
        if (store_ == nullptr && error_.empty())
            error_ = "cannot open store";
    }
    if (store_ == nullptr)
        error = "mruby_store=" + spec_ + ": " + error_;
    return store_;
}

bool read_password_file(const std::string &path, std::string &password, std::string &error)
{
    std::ifstream in(path);
    if (!in) {
        error = "mruby_store_password_file=" + path + ": cannot open: " + std::strerror(errno);
        return false;
    }
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r')
        line.pop_back();
    if (line.empty()) {
        error = "mruby_store_password_file=" + path + ": the first line is empty";
        return false;
    }
    password = std::move(line);
    return true;
}

StoreHandle &process_store(const ScriptSettings &settings, Logger *logger)
{
    if (settings.store_password.empty() && settings.store_password_file.empty())
        return process_store(settings.store, logger);
    // Leaked on purpose, see the header. Keyed by the spec and the password's
    // source: the password itself never leaves this map's key.
    static auto *handles = new std::map<std::string, std::unique_ptr<StoreHandle>>();
    std::string key = settings.store + '\n' + settings.store_password_file + '\n' +
                      settings.store_password;
    auto &slot = (*handles)[key];
    if (!slot) {
        StoreOptions options;
        options.logger = logger;
        options.waiter = &process_io_waiter();
        options.password = settings.store_password;
        slot = std::make_unique<StoreHandle>(settings.store, options,
                                             settings.store_password_file);
    }
    return *slot;
}

StoreHandle &process_store(const std::string &spec, Logger *logger)
{
    // Leaked on purpose, see the header.
    static auto *handles = new std::map<std::string, std::unique_ptr<StoreHandle>>();
    auto &slot = (*handles)[spec];
    if (!slot) {
        StoreOptions options;
        options.logger = logger;
        options.waiter = &process_io_waiter();
        slot = std::make_unique<StoreHandle>(spec, options);
    }
    return *slot;
}

} // namespace dmr::core
