// Deterministic random streams. R draws one 64-bit seed on the main thread
// (so set.seed() reproduces a run); every block of work then gets its own
// stream keyed by (seed, block), independent of which thread runs it.
// Generator: xoshiro256++ (Blackman & Vigna 2019), state filled by
// SplitMix64 as its authors recommend. Reproducing R's own RNG bit for bit
// (chromVAR background peaks) is a separate port, not this generator.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

namespace epione {
namespace rng {

inline std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

class Xoshiro256pp {
public:
    using result_type = std::uint64_t;
    explicit Xoshiro256pp(std::uint64_t seed) {
        for (auto& w : s_) w = splitmix64(seed);
    }
    static constexpr result_type min() { return 0; }
    static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
    result_type operator()() {
        const std::uint64_t out = rotl(s_[0] + s_[3], 23) + s_[0];
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return out;
    }
    // Uniform on [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
    // Unbiased integer in [0, n) by Lemire's multiply-and-reject method.
    std::uint64_t below(std::uint64_t n) {
        __uint128_t m = static_cast<__uint128_t>((*this)()) * n;
        std::uint64_t low = static_cast<std::uint64_t>(m);
        if (low < n) {
            const std::uint64_t thresh = (0 - n) % n;
            while (low < thresh) {
                m = static_cast<__uint128_t>((*this)()) * n;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }
    // Standard normal by the polar Box-Muller method; the spare is kept so
    // a stream's sequence depends only on its own calls.
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u, v, s;
        do {
            u = 2.0 * uniform() - 1.0;
            v = 2.0 * uniform() - 1.0;
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        const double f = std::sqrt(-2.0 * std::log(s) / s);
        spare_ = v * f;
        has_spare_ = true;
        return u * f;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

// The stream for block `block` of a run seeded with `seed`: the pair is
// mixed through SplitMix64 so neighbouring blocks get unrelated states.
inline Xoshiro256pp stream(std::uint64_t seed, std::uint64_t block) {
    std::uint64_t s = seed;
    const std::uint64_t a = splitmix64(s);
    std::uint64_t t = a ^ (block * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL);
    return Xoshiro256pp(splitmix64(t));
}

}  // namespace rng
}  // namespace epione
