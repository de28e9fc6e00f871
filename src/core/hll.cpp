#include "core/hll.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace dmr::core {
namespace {

constexpr int kQ = 64 - Hll::kPrecision;   // hash bits left for the rank
constexpr int kRegisterBits = 6;
constexpr size_t kDenseBytes = (Hll::kRegisters * kRegisterBits + 7) / 8;
static_assert(Hll::kRegisters % 4 == 0 && kDenseBytes % 3 == 0, "4 registers in 3 bytes");
constexpr uint8_t kMaxRank = kQ + 1;

uint64_t read_le64(const unsigned char *p)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = (value << 8) | p[i];
    return value;
}

// Ertl's sigma: the correction for registers still at 0 (x = their fraction).
double sigma(double x)
{
    if (x == 1.0)
        return std::numeric_limits<double>::infinity();
    double y = 1.0;
    double z = x;
    for (;;) {
        x *= x;
        const double before = z;
        z += x * y;
        y += y;
        if (z == before)
            return z;
    }
}

// Ertl's tau: the correction for registers at the largest rank.
double tau(double x)
{
    if (x == 0.0 || x == 1.0)
        return 0.0;
    double y = 1.0;
    double z = 1.0 - x;
    for (;;) {
        x = std::sqrt(x);
        const double before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if (z == before)
            return z / 3.0;
    }
}

} // namespace

uint64_t murmur_hash64a(std::string_view bytes, uint64_t seed)
{
    constexpr uint64_t m = 0xc6a4a7935bd1e995ull;
    constexpr int r = 47;
    const auto *data = reinterpret_cast<const unsigned char *>(bytes.data());
    const size_t len = bytes.size();
    uint64_t h = seed ^ (static_cast<uint64_t>(len) * m);

    const size_t blocks = len / 8;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t k = read_le64(data + 8 * i);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    const unsigned char *tail = data + 8 * blocks;
    const size_t rest = len & 7;
    if (rest != 0) {
        for (size_t i = rest; i-- > 0;)
            h ^= static_cast<uint64_t>(tail[i]) << (8 * i);
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

namespace {

// The register and rank a member's hash gives.
void locate(std::string_view member, size_t &index, uint8_t &rank)
{
    uint64_t hash = murmur_hash64a(member, Hll::kSeed);
    index = hash & (Hll::kRegisters - 1);
    hash >>= Hll::kPrecision;
    hash |= uint64_t{1} << kQ;   // a rank is at most kQ + 1
    rank = 1;
    while ((hash & 1) == 0) {
        rank++;
        hash >>= 1;
    }
}

constexpr size_t kSparseMaxSet = (Hll::kSparseMaxBytes - 1) / 3;

} // namespace

uint8_t Hll::reg(size_t index) const
{
    if (!sparse())
        return dense_[index];
    auto it = std::lower_bound(sparse_.begin(), sparse_.end(), index,
                               [](const Set &s, size_t i) { return s.index < i; });
    return it != sparse_.end() && it->index == index ? it->rank : 0;
}

void Hll::make_dense()
{
    if (!sparse())
        return;
    dense_.assign(kRegisters, 0);
    for (const Set &s : sparse_)
        dense_[s.index] = s.rank;
    sparse_.clear();
    sparse_.shrink_to_fit();
}

void Hll::set(size_t index, uint8_t rank)
{
    if (!sparse()) {
        dense_[index] = rank;
        return;
    }
    auto it = std::lower_bound(sparse_.begin(), sparse_.end(), index,
                               [](const Set &s, size_t i) { return s.index < i; });
    if (it != sparse_.end() && it->index == index) {
        it->rank = rank;
        return;
    }
    sparse_.insert(it, Set{static_cast<uint16_t>(index), rank});
    if (sparse_.size() > kSparseMaxSet)
        make_dense();
}

bool Hll::add(std::string_view member)
{
    size_t index;
    uint8_t rank;
    locate(member, index, rank);
    if (reg(index) >= rank)
        return false;
    set(index, rank);
    return true;
}

void Hll::merge(const Hll &other)
{
    if (other.sparse()) {
        for (const Set &s : other.sparse_) {
            if (reg(s.index) < s.rank)
                set(s.index, s.rank);
        }
        return;
    }
    make_dense();
    for (size_t i = 0; i < kRegisters; i++)
        dense_[i] = std::max(dense_[i], other.dense_[i]);
}

uint64_t Hll::estimate() const
{
    // How many registers hold each rank.
    uint32_t histogram[kMaxRank + 1] = {0};
    if (sparse()) {
        histogram[0] = static_cast<uint32_t>(kRegisters - sparse_.size());
        for (const Set &s : sparse_)
            histogram[s.rank]++;
    } else {
        for (uint8_t r : dense_)
            histogram[r]++;
    }
    const double m = static_cast<double>(kRegisters);
    double z = m * tau((m - histogram[kMaxRank]) / m);
    for (int k = kQ; k >= 1; k--) {
        z += histogram[k];
        z *= 0.5;
    }
    z += m * sigma(histogram[0] / m);
    // alpha_inf = 1 / (2 ln 2)
    const double alpha = 0.5 / std::log(2.0);
    return static_cast<uint64_t>(std::llround(alpha * m * m / z));
}

std::string Hll::encode() const
{
    std::string out;
    size_t set_count = sparse_.size();
    if (!sparse()) {
        set_count = 0;
        for (uint8_t r : dense_)
            set_count += r != 0;
    }
    if (set_count <= kSparseMaxSet) {
        out.reserve(1 + 3 * set_count);
        out += 'S';
        for (size_t i = 0, n = sparse() ? sparse_.size() : kRegisters; i < n; i++) {
            const size_t index = sparse() ? sparse_[i].index : i;
            const uint8_t rank = sparse() ? sparse_[i].rank : dense_[i];
            if (rank == 0)
                continue;
            out += static_cast<char>(index >> 8);
            out += static_cast<char>(index & 0xff);
            out += static_cast<char>(rank);
        }
        return out;
    }
    out.assign(1 + kDenseBytes, '\0');
    out[0] = 'D';
    // Four 6-bit registers fill three bytes exactly (least significant bit first).
    auto *dense = reinterpret_cast<unsigned char *>(&out[1]);
    for (size_t i = 0, at = 0; i < kRegisters; i += 4, at += 3) {
        const uint32_t word = uint32_t{dense_[i]} | uint32_t{dense_[i + 1]} << 6 |
                              uint32_t{dense_[i + 2]} << 12 | uint32_t{dense_[i + 3]} << 18;
        dense[at] = static_cast<unsigned char>(word);
        dense[at + 1] = static_cast<unsigned char>(word >> 8);
        dense[at + 2] = static_cast<unsigned char>(word >> 16);
    }
    return out;
}

std::optional<Hll> Hll::decode(std::string_view bytes)
{
    if (bytes.empty())
        return std::nullopt;
    Hll hll;
    const auto *data = reinterpret_cast<const unsigned char *>(bytes.data()) + 1;
    const size_t size = bytes.size() - 1;
    if (bytes[0] == 'S') {
        if (size % 3 != 0 || size / 3 > kSparseMaxSet)
            return std::nullopt;
        hll.sparse_.reserve(size / 3);
        for (size_t at = 0; at < size; at += 3) {
            const size_t index = (size_t{data[at]} << 8) | data[at + 1];
            const uint8_t rank = data[at + 2];
            if (index >= kRegisters || rank == 0 || rank > kMaxRank ||
                (!hll.sparse_.empty() && hll.sparse_.back().index >= index))
                return std::nullopt;   // encode() writes increasing indices
            hll.sparse_.push_back(Set{static_cast<uint16_t>(index), rank});
        }
        return hll;
    }
    if (bytes[0] == 'D' && size == kDenseBytes) {
        hll.dense_.resize(kRegisters);
        uint8_t highest = 0;
        for (size_t i = 0, at = 0; i < kRegisters; i += 4, at += 3) {
            const uint32_t word = uint32_t{data[at]} | uint32_t{data[at + 1]} << 8 |
                                  uint32_t{data[at + 2]} << 16;
            for (size_t j = 0; j < 4; j++) {
                const uint8_t rank = static_cast<uint8_t>((word >> (6 * j)) & 0x3f);
                hll.dense_[i + j] = rank;
                highest = std::max(highest, rank);
            }
        }
        if (highest > kMaxRank)
            return std::nullopt;
        return hll;
    }
    return std::nullopt;
}

} // namespace dmr::core
