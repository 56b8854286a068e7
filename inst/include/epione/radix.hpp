// Least-significant-digit radix sorts of 64-bit keys (11-bit digits, all
// digit histograms from one pass, passes whose digit is the same for every
// key skipped): ~5x std::sort at 50k-200k values. Non-negative doubles
// sort as their bit patterns, so quantiles and R's order() of p-values or
// means can use them (double_key).
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace epione {
namespace radix {

constexpr int kBits = 11, kPasses = (64 + kBits - 1) / kBits;
constexpr std::uint64_t kMask = (std::uint64_t{1} << kBits) - 1;

// The bits of a non-negative double (-0 as +0): ordered as the values.
inline std::uint64_t double_key(double v) {
    std::uint64_t k;
    v += 0.0;  // -0 -> +0
    std::memcpy(&k, &v, sizeof k);
    return k;
}
inline double key_double(std::uint64_t k) {
    double v;
    std::memcpy(&v, &k, sizeof v);
    return v;
}

// Histograms of every digit, made exclusive prefix sums; `skip[d]` when
// one bucket holds all keys (that pass would not move anything).
struct Counts {
    std::vector<std::array<std::uint32_t, (1 << kBits)>> h;
    std::array<bool, kPasses> skip{};
    explicit Counts(const std::vector<std::uint64_t>& keys) : h(kPasses) {
        for (auto& a : h) a.fill(0);
        for (std::uint64_t k : keys)
            for (int d = 0; d < kPasses; ++d) h[d][(k >> (d * kBits)) & kMask]++;
        for (int d = 0; d < kPasses; ++d) {
            std::uint32_t run = 0;
            skip[d] = false;
            for (auto& c : h[d]) {
                if (c == keys.size()) skip[d] = true;
                const std::uint32_t t = c;
                c = run;
                run += t;
            }
        }
    }
};

// keys sorted ascending, in place.
inline void sort(std::vector<std::uint64_t>& keys) {
    Counts c(keys);
    std::vector<std::uint64_t> tmp(keys.size());
    for (int d = 0; d < kPasses; ++d) {
        if (c.skip[d]) continue;
        auto& h = c.h[d];
        for (std::uint64_t k : keys) tmp[h[(k >> (d * kBits)) & kMask]++] = k;
        keys.swap(tmp);
    }
}

// The stable ascending order of keys (0-based positions): equal keys keep
// their order, as R's order(method = "radix") keeps ties.
inline std::vector<std::uint32_t> order(const std::vector<std::uint64_t>& keys) {
    Counts c(keys);
    const size_t n = keys.size();
    std::vector<std::uint32_t> idx(n), tmp(n);
    for (size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>(i);
    for (int d = 0; d < kPasses; ++d) {
        if (c.skip[d]) continue;
        auto& h = c.h[d];
        for (std::uint32_t i : idx) tmp[h[(keys[i] >> (d * kBits)) & kMask]++] = i;
        idx.swap(tmp);
    }
    return idx;
}

}  // namespace radix
}  // namespace epione
