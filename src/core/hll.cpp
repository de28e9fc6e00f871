#include "core/hll.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace dmr::core {
namespace {

constexpr int kQ = 64 - Hll::kPrecision;   // hash bits left for the rank
constexpr int kRegisterBits = 6;
constexpr size_t kDenseBytes = (Hll::kRegisters * kRegisterBits + 7) / 8;
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

Hll::Hll() : registers_(kRegisters, 0) {}

bool Hll::add(std::string_view member)
{
    uint64_t hash = murmur_hash64a(member, kSeed);
    const size_t index = hash & (kRegisters - 1);
    hash >>= kPrecision;
    hash |= uint64_t{1} << kQ;   // a rank is at most kQ + 1
    uint8_t rank = 1;
    while ((hash & 1) == 0) {
        rank++;
        hash >>= 1;
    }
    if (registers_[index] >= rank)
        return false;
    registers_[index] = rank;
    return true;
}

void Hll::merge(const Hll &other)
{
    for (size_t i = 0; i < kRegisters; i++) {
        if (other.registers_[i] > registers_[i])
            registers_[i] = other.registers_[i];
    }
}

bool Hll::empty() const
{
    for (uint8_t r : registers_) {
        if (r != 0)
            return false;
    }
    return true;
}

uint64_t Hll::estimate() const
{
    // How many registers hold each rank.
    uint32_t histogram[kMaxRank + 1] = {0};
    for (uint8_t r : registers_)
        histogram[r]++;
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
    size_t set = 0;
    for (uint8_t r : registers_)
        set += r != 0;
    std::string out;
    if (1 + 3 * set <= kSparseMaxBytes) {
        out.reserve(1 + 3 * set);
        out += 'S';
        for (size_t i = 0; i < kRegisters; i++) {
            if (registers_[i] == 0)
                continue;
            out += static_cast<char>(i >> 8);
            out += static_cast<char>(i & 0xff);
            out += static_cast<char>(registers_[i]);
        }
        return out;
    }
    out.assign(1 + kDenseBytes, '\0');
    out[0] = 'D';
    auto *dense = reinterpret_cast<unsigned char *>(&out[1]);
    for (size_t i = 0; i < kRegisters; i++) {
        const size_t bit = i * kRegisterBits;
        const unsigned value = static_cast<unsigned>(registers_[i]) << (bit % 8);
        dense[bit / 8] |= static_cast<unsigned char>(value & 0xff);
        if (bit / 8 + 1 < kDenseBytes)
            dense[bit / 8 + 1] |= static_cast<unsigned char>(value >> 8);
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
        if (size % 3 != 0)
            return std::nullopt;
        for (size_t at = 0; at < size; at += 3) {
            const size_t index = (size_t{data[at]} << 8) | data[at + 1];
            const uint8_t rank = data[at + 2];
            if (index >= kRegisters || rank == 0 || rank > kMaxRank)
                return std::nullopt;
            hll.registers_[index] = rank;
        }
        return hll;
    }
    if (bytes[0] == 'D' && size == kDenseBytes) {
        for (size_t i = 0; i < kRegisters; i++) {
            const size_t bit = i * kRegisterBits;
            unsigned value = data[bit / 8];
            if (bit / 8 + 1 < kDenseBytes)
                value |= static_cast<unsigned>(data[bit / 8 + 1]) << 8;
            const uint8_t rank = static_cast<uint8_t>((value >> (bit % 8)) & 0x3f);
            if (rank > kMaxRank)
                return std::nullopt;
            hll.registers_[i] = rank;
        }
        return hll;
    }
    return std::nullopt;
}

} // namespace dmr::core
