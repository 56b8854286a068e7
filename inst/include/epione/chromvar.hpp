// chromVAR engine: background peaks (bit-exact port of chromVAR 1.29's
// getBackgroundPeaks), deviations by chromVAR's sampled null or by its
// closed-form limit, and row standard deviations for computeVariability.
// Algorithm facts (summation orders, long-double reductions, Walker alias
// sampling, dnorm) are documented in shared/data/ref/chromvar/NOTES.md.
#pragma once
#include <algorithm>
#include <functional>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <armadillo>
#include <htslib/faidx.h>
#include "error.hpp"
#include "span.hpp"
#include "sparse.hpp"
#include "threads.hpp"

namespace epione {
namespace chromvar {

using ldouble = long double;

// R's NA_real_: a quiet NaN whose low word is 1954, so R prints NA, not NaN.
inline double na_real() {
    const std::uint64_t bits = 0x7FF00000000007A2ULL;
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

// R's mean as used by cov()/var(): long-double sum, then one correction
// pass (src/library/stats/src/cov.c, MEAN macro).
template <class Get>
double r_cov_mean(index_t n, Get&& x) {
    ldouble sum = 0;
    for (index_t k = 0; k < n; ++k) sum += x(k);
    ldouble tmp = sum / n;
    if (std::isfinite(static_cast<double>(tmp))) {
        ldouble s2 = 0;
        for (index_t k = 0; k < n; ++k) s2 += static_cast<ldouble>(x(k)) - tmp;
        tmp = tmp + s2 / n;
    }
    return static_cast<double>(tmp);
}

// R's var(x) for one column without NA: two-pass, long double.
template <class Get>
double r_var(index_t n, Get&& x) {
    for (index_t k = 0; k < n; ++k)
        if (std::isnan(x(k))) return na_real();
    const ldouble m = r_cov_mean(n, x);
    ldouble sum = 0;
    for (index_t k = 0; k < n; ++k) {
        const ldouble d = static_cast<ldouble>(x(k)) - m;
        sum += d * d;
    }
    return static_cast<double>(sum / (n - 1));
}

// Armadillo 12's accumulate(): two interleaved accumulators.
inline double arma_accumulate(const double* x, index_t n) {
    double a1 = 0, a2 = 0;
    index_t i = 0;
    for (; i + 1 < n; i += 2) {
        a1 += x[i];
        a2 += x[i + 1];
    }
    if (i < n) a1 += x[i];
    return a1 + a2;
}

// R's nmath dnorm(x, 0, sigma) for x >= 0.
inline double r_dnorm0(double d, double sigma) {
    const double m_1_sqrt_2pi = 0.398942280401432677939946059934;
    const double x = std::fabs(d / sigma);
    const double m_ln2 = 0.693147180559945309417232121458;
    if (x >= 2 * std::sqrt(std::numeric_limits<double>::max())) return 0.;
    if (x < 5) return m_1_sqrt_2pi * std::exp(-0.5 * x * x) / sigma;
    if (x > std::sqrt(-2 * m_ln2 * (std::numeric_limits<double>::min_exponent + 1 -
                                    std::numeric_limits<double>::digits)))
        return 0.;
    // R: ldexp(nearbyint(ldexp(x, 16)), -16). Here 5 <= x < 39, so scaling
    // by 2^+-16 is exact and adding then removing 2^52 rounds to the nearest
    // integer, ties to even, as nearbyint does (no libm calls).
    const double two52 = 4503599627370496.0;
    const double x1 = ((x * 65536.0 + two52) - two52) * (1.0 / 65536.0);
    const double x2 = x - x1;
    return m_1_sqrt_2pi / sigma * (std::exp(-0.5 * x1 * x1) * std::exp((-0.5 * x2 - x1) * x2));
}

struct BackgroundOptions {
    int niterations = 50;  // background peaks per peak
    double w = 0.1;        // Gaussian kernel width on the whitened grid
    int bs = 50;           // grid points per axis (bs^2 bins)
    bool kernel = true;    // tabulate BinModel's kernel (only the sampler needs it)
};

// The sampling model behind getBackgroundPeaks: every peak falls in one
// grid bin; a peak in bin i draws peer k with probability
// kernel(bin(k), i) / density(bin(k)), normalised over all peaks.
struct BinModel {
    int bs = 0;
    std::vector<int> membership;   // 0-based bin of each peak
    std::vector<double> density;   // peaks per bin (bs^2)
    std::vector<double> bins1, bins2;
    std::vector<double> whitened1, whitened2;
    double chol[3] = {0, 0, 0};    // R11, R12, R22
    // Kernel between grid points b and i (chromVAR: dnorm(euc_dist(bin_data),
    // 0, w)): it depends on the pair only through (dx^2, dy^2), which take
    // few distinct values on the grid, so it is tabulated over those
    // (dx2_class[a * bs + a'] x dy2_class[c * bs + c']), not over bs^4 pairs.
    std::vector<int> dx2_class, dy2_class;
    std::vector<double> kernel_table;  // n_dx2 x n_dy2, row-major
    int n_dy2 = 0;
    // out[b] = kernel(b, i) for every grid point b
    void kernel_column(index_t i, double* out) const {
        const index_t ai = i / bs, ci = i % bs;
        for (index_t a = 0; a < bs; ++a) {
            const double* row = &kernel_table[dx2_class[a * bs + ai] * static_cast<index_t>(n_dy2)];
            for (index_t c = 0; c < bs; ++c) out[a * bs + c] = row[dy2_class[c * bs + ci]];
        }
    }
};

// R's seq(from, to, length.out = n) for n > 2 and from != to (R 4.2).
inline std::vector<double> r_seq(double from, double to, int n) {
    std::vector<double> out(n);
    if (n == 1) {
        out[0] = from;
        return out;
    }
    const double by = (to - from) / (n - 1);
    out[0] = from;
    for (int k = 1; k < n - 1; ++k) out[k] = from + k * by;
    out[n - 1] = to;
    return out;
}

inline int nearest_index(const std::vector<double>& g, double v) {
    auto it = std::lower_bound(g.begin(), g.end(), v);
    if (it == g.begin()) return 0;
    if (it == g.end()) return static_cast<int>(g.size()) - 1;
    const int hi = static_cast<int>(it - g.begin());
    return (v - g[hi - 1] <= g[hi] - v) ? hi - 1 : hi;
}

// Exact nearest grid point (nabor::knn, k = 1), ties to the lower bin: the
// nearest point of a rectangular grid is near the per-axis nearest, so a
// 3x3 patch is checked.
inline int nearest_bin(const BinModel& m, double q1, double q2) {
    const int bs = m.bs;
    const int a0 = nearest_index(m.bins1, q1), c0 = nearest_index(m.bins2, q2);
    double best = std::numeric_limits<double>::infinity();
    int best_b = 0;
    for (int a = std::max(0, a0 - 1); a <= std::min(bs - 1, a0 + 1); ++a)
        for (int c = std::max(0, c0 - 1); c <= std::min(bs - 1, c0 + 1); ++c) {
            const double dx = q1 - m.bins1[a], dy = q2 - m.bins2[c];
            const double d = dx * dx + dy * dy;
            const int b = a * bs + c;
            if (d < best || (d == best && b < best_b)) {
                best = d;
                best_b = b;
            }
        }
    return best_b;
}

// Whitening, grid, kernel and bin membership (NOTES.md §1 steps 1-10).
template <class Par>
BinModel bin_model(Span<const double> fpp, Span<const double> bias,
                   const BackgroundOptions& opt, Par& par) {
    const index_t n = fpp.size();
    require_size(bias, n, "bias");
    require(n >= 2, "getBackgroundPeaks needs at least 2 peaks");
    require(opt.bs >= 3, "'bs' must be at least 3");
    for (index_t k = 0; k < n; ++k) {  // messages are built only on failure
        if (!(fpp[k] > 0))
            require(false, "All peaks must have at least one fragment in one sample; "
                           "remove empty peaks first (e.g. filterPeaks()).");
        if (!std::isfinite(bias[k]))
            require(false, "'bias' has a missing or non-finite value at peak " +
                               std::to_string(k + 1) +
                               "; recompute it with addGCBias() or drop that peak.");
    }
    std::vector<double> y1(n);
    for (index_t k = 0; k < n; ++k) y1[k] = std::log10(fpp[k]);
    auto g1 = [&](index_t k) { return y1[k]; };
    auto g2 = [&](index_t k) { return bias[k]; };
    const ldouble m1 = r_cov_mean(n, g1), m2 = r_cov_mean(n, g2);
    ldouble s11 = 0, s12 = 0, s22 = 0;
    for (index_t k = 0; k < n; ++k) {
        const ldouble a = y1[k] - m1, b = bias[k] - m2;
        s11 += a * a;
        s12 += a * b;
        s22 += b * b;
    }
    const double S11 = static_cast<double>(s11 / (n - 1));
    const double S12 = static_cast<double>(s12 / (n - 1));
    const double S22 = static_cast<double>(s22 / (n - 1));
    BinModel mdl;
    const double R11 = std::sqrt(S11);
    const double R12 = S12 / R11;
    const double d22 = S22 - R12 * R12;
    if (!(S11 > 0) || !(d22 > 0))
        throw numeric_error("the covariance of (log10 counts, bias) is singular: all peaks "
                            "have the same bias or the same total count, so background "
                            "peaks cannot be matched. Check rowData(object)$bias.");
    const double R22 = std::sqrt(d22);
    mdl.chol[0] = R11;
    mdl.chol[1] = R12;
    mdl.chol[2] = R22;
    // OpenBLAS dtrsm multiplies by the reciprocal of the diagonal.
    const double i11 = 1.0 / R11, i22 = 1.0 / R22;
    mdl.whitened1.resize(n);
    mdl.whitened2.resize(n);
    for (index_t k = 0; k < n; ++k) {
        const double x1 = y1[k] * i11;
        mdl.whitened1[k] = x1;
        mdl.whitened2[k] = (bias[k] - R12 * x1) * i22;
    }
    const int bs = opt.bs;
    mdl.bs = bs;
    auto mm1 = std::minmax_element(mdl.whitened1.begin(), mdl.whitened1.end());
    auto mm2 = std::minmax_element(mdl.whitened2.begin(), mdl.whitened2.end());
    mdl.bins1 = r_seq(*mm1.first, *mm1.second, bs);
    mdl.bins2 = r_seq(*mm2.first, *mm2.second, bs);
    const index_t nb = static_cast<index_t>(bs) * bs;
    mdl.membership.resize(n);
    mdl.density.assign(nb, 0.0);
    constexpr index_t block = 4096;  // peaks per task
    par.run((n + block - 1) / block, [&](index_t t) {
        for (index_t k = t * block; k < std::min(n, (t + 1) * block); ++k)
            mdl.membership[k] = nearest_bin(mdl, mdl.whitened1[k], mdl.whitened2[k]);
    });
    for (index_t k = 0; k < n; ++k) mdl.density[mdl.membership[k]] += 1.0;
    if (!opt.kernel) return mdl;
    // Squared coordinate differences of grid points, grouped by their exact
    // bits; the kernel of a pair is dnorm(sqrt(dx^2 + dy^2)), computed once
    // per (dx^2, dy^2) class pair (the same operations as per pair).
    auto classes = [&](const std::vector<double>& g, std::vector<int>& cls) {
        std::vector<double> sq(bs * bs);
        for (int a = 0; a < bs; ++a)
            for (int a2 = 0; a2 < bs; ++a2) {
                const double d = g[a] - g[a2];
                sq[a * bs + a2] = d * d;
            }
        std::vector<double> vals(sq);
        std::sort(vals.begin(), vals.end());
        vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
        cls.resize(sq.size());
        for (std::size_t k = 0; k < sq.size(); ++k)
            cls[k] = static_cast<int>(std::lower_bound(vals.begin(), vals.end(), sq[k]) -
                                      vals.begin());
        return vals;
    };
    const std::vector<double> dx2 = classes(mdl.bins1, mdl.dx2_class);
    const std::vector<double> dy2 = classes(mdl.bins2, mdl.dy2_class);
    mdl.n_dy2 = static_cast<int>(dy2.size());
    mdl.kernel_table.resize(dx2.size() * dy2.size());
    par.run(static_cast<index_t>(dx2.size()), [&](index_t a) {
        for (std::size_t c = 0; c < dy2.size(); ++c)
            mdl.kernel_table[a * dy2.size() + c] = r_dnorm0(std::sqrt(dx2[a] + dy2[c]), opt.w);
    });
    return mdl;
}

inline BinModel bin_model(Span<const double> fpp, Span<const double> bias,
                          const BackgroundOptions& opt) {
    Serial serial;
    return bin_model(fpp, bias, opt, serial);
}

// Peaks of every grid bin, ascending (CSR by bin, built by counting).
struct BinPeaks {
    std::vector<index_t> start;  // nb + 1
    std::vector<index_t> peaks;
    BinPeaks(const std::vector<int>& membership, index_t nb) : start(nb + 1, 0) {
        for (int b : membership) ++start[b + 1];
        for (index_t b = 0; b < nb; ++b) start[b + 1] += start[b];
        peaks.resize(membership.size());
        std::vector<index_t> next(start.begin(), start.end() - 1);
        for (index_t k = 0; k < static_cast<index_t>(membership.size()); ++k)
            peaks[next[membership[k]]++] = k;
    }
    Span<const index_t> operator[](index_t b) const {
        return {peaks.data() + start[b], start[b + 1] - start[b]};
    }
};

// Portable SWAR popcount: without -mpopcnt, __builtin_popcountll is a
// library call.
inline int popcount64(std::uint64_t x) {
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
}

// Bits set below position `bit` (0..63) of a word.
inline int bits_below(std::uint64_t word, int bit) {
    return popcount64(word & ((std::uint64_t(1) << bit) - 1));
}

// Walker alias table for the peers of one bin, equal to the one chromVAR's
// ProbSampleReplace builds from p[k] = kernel(bin(k), i) / density(bin(k))
// (normalised by arma::sum and true division, scaled by n), without
// touching every peak:
//  * the scaled p depends on the peak's bin only (same operations, same
//    bits), so it is kept per bin; only "large" peaks (p >= 1), whose p the
//    alias chain changes, are stored one by one;
//  * HL holds the small peaks ascending, then the large ones descending.
//    A small peak with p <= 2^-54 gives p - 1 == -1 exactly, and x - 1 is
//    exact for 1 <= x < 2^53, so a run of such peaks lowers the current
//    large's p by exactly 1 per step: runs are jumped over, and the alias
//    of a small peak is found later from its rank in HL (segments).
// R's quirk of scanning past the small part of HL is kept.
struct AliasTable {
    const int* memb = nullptr;
    std::vector<double> v;                  // scaled p per bin
    std::vector<std::uint64_t> large_bits;  // bitmap of large peaks
    std::vector<int> large_below;           // larges before each 64-block
    std::vector<int> large;                 // large peaks, descending (HL tail)
    std::vector<double> lp;                 // their final p (desc order)
    std::vector<int> large_alias;           // alias of a large processed as ii
    std::vector<index_t> seg_start;         // small rank where a segment starts
    std::vector<int> seg_jj;                // alias of the smalls of the segment
    std::vector<int> seg_first;             // first segment of each 64 ranks
    index_t smalls_done = 0;                // smalls ranked below this have an alias
    std::vector<unsigned char> cls;         // class of each bin in the bitmaps

    // One draw (0-based) from rU = unif * n, as ProbSampleReplace does.
    int draw(double rU) const {
        const int kk = static_cast<int>(rU);
        const double q = v[memb[kk]];
        const index_t w = kk >> 6;
        const int below = bits_below(large_bits[w], kk & 63);
        if (q >= 1.0) {  // large: its position in `large` from the bitmap
            const index_t pos = static_cast<index_t>(large.size()) - 1 -
                                (large_below[w] + below);
            return (rU < lp[pos] + static_cast<double>(kk)) ? kk : large_alias[pos];
        }
        if (rU < q + static_cast<double>(kk)) return kk;
        const index_t rank = kk - large_below[w] - below;
        if (rank >= smalls_done) return 0;
        // the segment holding this rank: the last start <= rank, a step or
        // two past the block's first (seg_start ends with a sentinel)
        index_t s = seg_first[rank >> 6];
        while (seg_start[s + 1] <= rank) ++s;
        return seg_jj[s];
    }
};

// arma::sum of p[k] = kernel(bin(k), i) / density(bin(k)) over all peaks k
// for up to 8 bins i at once: per bin the two interleaved accumulators of
// Armadillo's accumulate(), in peak order (same bits); running 8 bins side
// by side hides the latency of the sequential additions.
// V (nb x 8, bin-major) receives the p of every bin for the 8 bins.
inline void bin_sums(const BinModel& m, const index_t* bins, int count, double* sums,
                     std::vector<double>& V) {
    constexpr int G = 8;
    const index_t nb = static_cast<index_t>(m.bs) * m.bs;
    const index_t n = static_cast<index_t>(m.membership.size());
    const int* memb = m.membership.data();
    V.assign(nb * G, 0.0);
    std::vector<double> col(nb);
    for (int g = 0; g < count; ++g) {
        m.kernel_column(bins[g], col.data());
        for (index_t b = 0; b < nb; ++b)
            if (m.density[b] > 0) V[b * G + g] = col[b] / m.density[b];
    }
    double a1[G] = {0}, a2[G] = {0};
    index_t k = 0;
    for (; k + 1 < n; k += 2) {
        const double* x = &V[static_cast<index_t>(memb[k]) * G];
        const double* y = &V[static_cast<index_t>(memb[k + 1]) * G];
        for (int g = 0; g < G; ++g) {
            a1[g] += x[g];
            a2[g] += y[g];
        }
    }
    if (k < n) {
        const double* x = &V[static_cast<index_t>(memb[k]) * G];
        for (int g = 0; g < G; ++g) a1[g] += x[g];
    }
    for (int g = 0; g < count; ++g) sums[g] = a1[g] + a2[g];
}

// Scaled p per bin (from p_bin[b * stride], bin_sums' V) and the bitmaps
// of large and non-negligible small peaks (cheaper than sorting peaks:
// O(n / 64 + count)). `t` and `small_bits` carry the previous table's
// bitmaps (or are empty).
inline void alias_bins(const BinModel& m, const BinPeaks& members,
                       const double* p_bin, int stride, double sum, AliasTable& t,
                       std::vector<std::uint64_t>& small_bits) {
    const index_t nb = static_cast<index_t>(m.bs) * m.bs;
    const index_t n = static_cast<index_t>(m.membership.size());
    const index_t words = (n + 63) / 64;
    const double dn = static_cast<double>(static_cast<int>(n));
    t.memb = m.membership.data();
    t.v.resize(nb);
    if (static_cast<index_t>(t.cls.size()) != nb ||
        static_cast<index_t>(small_bits.size()) != words) {
        t.cls.assign(nb, 0);
        small_bits.assign(words, 0);
        t.large_bits.assign(words, 0);
    }
    // The bitmaps always match t.cls (0 negligible, 1 small, 2 large), so
    // only the peaks of bins whose class differs from the previous bin's
    // table are toggled: neighbouring bins share most of their classes.
    std::uint64_t* bits_of[3] = {nullptr, small_bits.data(), t.large_bits.data()};
    for (index_t b = 0; b < nb; ++b) {
        if (m.density[b] <= 0) {
            t.v[b] = 0.0;
            continue;
        }
        t.v[b] = (p_bin[b * stride] / sum) * dn;
        const unsigned char c = t.v[b] >= 1.0 ? 2 : ((t.v[b] - 1.0) == -1.0 ? 0 : 1);
        if (c == t.cls[b]) continue;
        for (index_t q : members[b]) {
            const std::uint64_t bit = std::uint64_t(1) << (q & 63);
            if (t.cls[b]) bits_of[t.cls[b]][q >> 6] ^= bit;
            if (c) bits_of[c][q >> 6] ^= bit;
        }
        t.cls[b] = c;
    }
    t.large_below.resize(words + 1);
    t.large.clear();
    for (index_t w = 0, c = 0; w < words; ++w) {
        t.large_below[w] = static_cast<int>(c);
        c += popcount64(t.large_bits[w]);
    }
    for (index_t w = words; w-- > 0;)  // descending peak order
        for (std::uint64_t x = t.large_bits[w]; x; x &= ~(std::uint64_t(1) << (63 - __builtin_clzll(x))))
            t.large.push_back(static_cast<int>(w * 64 + 63 - __builtin_clzll(x)));
    t.lp.resize(t.large.size());
    for (std::size_t q = 0; q < t.large.size(); ++q) t.lp[q] = t.v[t.memb[t.large[q]]];
}

// State of R's walker while it runs over HL (see AliasTable): the current
// large L with its running p, and the rank of the next small. Passed by
// value so the hot loop keeps it in registers.
struct ChainState {
    double cur;
    index_t L, rank;
    bool done;
};

// The current large fell below 1: store it, move to the next one and open a
// segment of smalls aliased to it.
inline ChainState next_large(ChainState s, AliasTable& t) {
    t.lp[s.L] = s.cur;
    if (++s.L == static_cast<index_t>(t.large.size())) {
        s.done = true;
        return s;
    }
    t.seg_start.push_back(s.rank);
    t.seg_jj.push_back(t.large[s.L]);
    s.cur = t.lp[s.L];
    return s;
}

// `count` negligible smalls: each lowers the current large's p by exactly 1.
inline ChainState skip_smalls(ChainState s, index_t count, AliasTable& t) {
    while (count > 0 && !s.done) {
        const double need = std::floor(s.cur);  // steps until p < 1
        if (static_cast<double>(count) < need) {
            s.cur -= static_cast<double>(count);
            s.rank += count;
            break;
        }
        s.cur -= need;
        s.rank += static_cast<index_t>(need);
        count -= static_cast<index_t>(need);
        s = next_large(s, t);
    }
    return s;
}

// The smalls of HL in rank order: runs of negligible ones are skipped,
// the others processed one by one.
inline ChainState chain_smalls(ChainState s, AliasTable& t,
                               const std::vector<std::uint64_t>& small_bits) {
    const index_t words = static_cast<index_t>(small_bits.size());
    const double* v = t.v.data();
    const int* memb = t.memb;
    for (index_t w = 0; w < words; ++w) {
        for (std::uint64_t x = small_bits[w]; x; x &= x - 1) {
            const int bit = __builtin_ctzll(x);
            const index_t q = w * 64 + bit;
            const index_t r = q - t.large_below[w] - bits_below(t.large_bits[w], bit);
            // Skip the negligible smalls before this one. p - count >= 1
            // <=> count < floor(p), and p - count is exact there; no test
            // of count > 0 (an unpredictable branch): count 0 changes nothing.
            const double left = s.cur - static_cast<double>(r - s.rank);
            if (left >= 1.0) {
                s.cur = left;
                s.rank = r;
            } else {
                s = skip_smalls(s, r - s.rank, t);
                if (s.done) return s;
            }
            s.cur += (v[memb[q]] - 1);
            ++s.rank;
            if (s.cur < 1.) {
                s = next_large(s, t);
                if (s.done) return s;
            }
        }
    }
    return s;
}

inline void build_alias(const BinModel& m, const BinPeaks& members,
                        const double* p_bin, int stride, double sum, AliasTable& t,
                        std::vector<std::uint64_t>& small_bits) {
    alias_bins(m, members, p_bin, stride, sum, t, small_bits);
    const index_t n = static_cast<index_t>(m.membership.size());
    const index_t n_large = static_cast<index_t>(t.large.size()), H = n - n_large;
    t.large_alias.assign(n_large, 0);
    t.seg_start.assign(1, 0);
    t.seg_jj.assign(1, n_large ? t.large[0] : 0);
    t.smalls_done = 0;
    if (H > 0 && n_large > 0) {
        ChainState st{t.lp[0], 0, 0, false};
        st = chain_smalls(st, t, small_bits);
        if (!st.done) st = skip_smalls(st, H - st.rank, t);
        t.smalls_done = st.rank;
        // Past the small part: the larges themselves, in HL order.
        for (index_t q = 0; !st.done && q < n_large; ++q) {
            t.lp[st.L] = st.cur;
            t.large_alias[q] = t.large[st.L];
            st.cur = t.lp[st.L] + (t.lp[q] - 1);
            if (st.cur < 1.) st = next_large(st, t);
        }
        if (!st.done) t.lp[st.L] = st.cur;
    }
    // last segment starting at or before each block of 64 small ranks, and
    // a sentinel start past every rank (draw() scans forward from there)
    const index_t blocks = (t.smalls_done >> 6) + 1;
    t.seg_first.assign(blocks, 0);
    index_t s = 0;
    const index_t ns = static_cast<index_t>(t.seg_start.size());
    for (index_t blk = 0; blk < blocks; ++blk) {
        while (s + 1 < ns && t.seg_start[s + 1] <= (blk << 6)) ++s;
        t.seg_first[blk] = static_cast<int>(s);
    }
    t.seg_start.push_back(std::numeric_limits<index_t>::max());
}

// Draws of the peaks of one bin from its alias table: `u` holds the bin's
// uniforms in R's order (peaks ascending, then iterations); `draws` is
// peak-major.
inline void draw_bin(const AliasTable& tab, Span<const index_t> peaks,
                     int niterations, double dn, const double* u, int* draws) {
    for (index_t k : peaks) {
        int* row = draws + k * niterations;
        for (int r = 0; r < niterations; ++r) {
            row[r] = 1 + tab.draw(*u++ * dn);
        }
    }
}

// getBackgroundPeaks: out (n x niterations, column-major) gets 1-based
// peak indices. `unif()` must be R's unif_rand() (or a faithful port):
// exactly n * niterations draws are taken in chromVAR's order (bins
// ascending, peaks of a bin ascending, iterations), on the calling thread.
// Only that is sequential: bins are cut into chunks, and while the caller
// takes the next chunk's uniforms, every bin of the current chunk builds
// its table and draws in parallel from its own slice of the uniforms.
// `budget`: uniforms per chunk at most (32 MiB).
template <class Unif, class Par>
void background_peaks(const BinModel& m, int niterations, Unif& unif, Par& par,
                      DenseView<int> out, index_t budget = index_t(1) << 22) {
    const index_t n = static_cast<index_t>(m.membership.size());
    require(out.nrow == n && out.ncol == niterations, "background output has wrong shape");
    const index_t nb = static_cast<index_t>(m.bs) * m.bs;
    const BinPeaks members(m.membership, nb);
    std::vector<index_t> used, first(1, 0);  // first: a bin's first uniform
    for (index_t b = 0; b < nb; ++b) {
        if (members[b].size() == 0) continue;
        used.push_back(b);
        first.push_back(first.back() + members[b].size() * niterations);
    }
    const index_t nu = static_cast<index_t>(used.size());
    // ~8 chunks, so that taking uniforms overlaps all but the first one
    const index_t target = std::min(budget, std::max<index_t>(first[nu] / 8, 1 << 16));
    std::vector<index_t> cut(1, 0);  // chunk c: used bins cut[c] .. cut[c + 1]
    for (index_t u1 = 1; u1 <= nu; ++u1)
        if (u1 == nu || first[u1 + 1] - first[cut.back()] > target) cut.push_back(u1);
    const double dn = static_cast<double>(static_cast<int>(n));
    // every entry is written below: no zero fill
    std::unique_ptr<int[]> draws(new int[n * niterations]);
    std::vector<double> U[2];
    auto take = [&](std::size_t c) {
        auto& u = U[c % 2];
        u.resize(first[cut[c + 1]] - first[cut[c]]);
        for (double& x : u) x = unif();
    };
    auto work = [&](std::size_t c) {
        const index_t u0 = cut[c], u1 = cut[c + 1];
        const double* u = U[c % 2].data() - first[u0];
        // 16 neighbouring bins per task: their tables share most bitmaps
        par.run((u1 - u0 + 15) / 16, [&](index_t g) {
            AliasTable tab;
            std::vector<std::uint64_t> scratch;
            std::vector<double> V;
            const index_t end = std::min(u1, u0 + 16 * (g + 1));
            for (index_t a = u0 + 16 * g; a < end; a += 8) {
                const int count = static_cast<int>(std::min<index_t>(8, end - a));
                double sums[8];
                bin_sums(m, &used[a], count, sums, V);
                for (int k = 0; k < count; ++k) {
                    build_alias(m, members, V.data() + k, 8, sums[k], tab, scratch);
                    draw_bin(tab, members[used[a + k]], niterations, dn, u + first[a + k],
                             draws.get());
                }
            }
        });
    };
    const std::size_t chunks = cut.size() - 1;
    take(0);
    for (std::size_t c = 0; c < chunks; ++c) {
        if (c + 1 == chunks || par.threads() < 2) {
            work(c);
            if (c + 1 < chunks) take(c + 1);
            continue;
        }
        std::exception_ptr error;
        std::thread worker([&] {
            try {
                work(c);
            } catch (...) {
                error = std::current_exception();
            }
        });
        take(c + 1);
        worker.join();
        if (error) std::rethrow_exception(error);
    }
    // Peak-major draws into the column-major output, in tiles that stay
    // in cache (writing the output directly misses on every draw).
    constexpr index_t tile = 64;
    par.run((n + tile - 1) / tile, [&](index_t b) {
        const index_t k1 = std::min(n, (b + 1) * tile);
        for (int r = 0; r < niterations; ++r)
            for (index_t k = b * tile; k < k1; ++k) out(k, r) = draws[k * niterations + r];
    });
}

// ---------------------------------------------------------------------
// Deviations

struct DeviationsOutput {
    DenseView<double> dev;  // annotations x cells
    DenseView<double> z;
    Span<double> matches;   // fractionMatches
    Span<double> overlap;   // fractionBackgroundOverlap
};

// Peak sets of a (peaks x annotations) CSC match matrix: non-zero entries.
template <class T>
std::vector<std::vector<int>> peak_sets(const CscView<T>& anno) {
    std::vector<std::vector<int>> sets(anno.ncol);
    for (index_t a = 0; a < anno.ncol; ++a)
        anno.for_col(a, [&](int r, T v) {
            if (v != T(0)) sets[a].push_back(r);
        });
    return sets;
}

// Per annotation: the expected sum of every background iteration (chromVAR
// sums mult * e[j] over the drawn peaks j in ascending order, as CHOLMOD's
// sdmult does), the observed expectation sum and the background overlap.
struct SampleTables {
    std::vector<double> samp_exp;  // na x niter, annotation-major
    std::vector<double> e_sum;
};

inline void sample_tables_one(const std::vector<int>& set, const DenseView<const int>& bg,
                              Span<const double> e, index_t a, SampleTables& t,
                              const DeviationsOutput& out) {
    const index_t niter = bg.ncol, sz = static_cast<index_t>(set.size());
    out.matches[a] = static_cast<double>(sz) / static_cast<double>(bg.nrow);
    if (sz == 0) {
        out.overlap[a] = na_real();
        return;
    }
    double e_sum = 0.0;
    for (int k : set) e_sum += e[k];
    t.e_sum[a] = e_sum;
    // Every iteration's drawn peaks in ascending order with multiplicities:
    // one counting sort of all (peak, iteration) draws of the set by peak,
    // stable in the iteration, so each sum runs over ascending peaks.
    const index_t np = bg.nrow;
    std::vector<unsigned char> in_set(np, 0);
    for (int k : set) in_set[k] = 1;
    std::vector<index_t> start(np + 1, 0);
    for (index_t r = 0; r < niter; ++r)
        for (index_t q = 0; q < sz; ++q) ++start[bg(set[q], r)];
    for (index_t j = 0; j < np; ++j) start[j + 1] += start[j];
    std::vector<int> iter(niter * sz);
    {
        std::vector<index_t> next(start.begin(), start.end() - 1);
        for (index_t r = 0; r < niter; ++r)
            for (index_t q = 0; q < sz; ++q) iter[next[bg(set[q], r) - 1]++] = static_cast<int>(r);
    }
    std::vector<double> sums(niter, 0.0);
    std::vector<index_t> hits(niter, 0);
    for (index_t j = 0; j < np; ++j)
        for (index_t q = start[j]; q < start[j + 1];) {
            const int r = iter[q];
            index_t q2 = q + 1;
            while (q2 < start[j + 1] && iter[q2] == r) ++q2;
            sums[r] += static_cast<double>(q2 - q) * e[j];
            if (in_set[j]) hits[r] += q2 - q;
            q = q2;
        }
    std::vector<ldouble> hits_r(niter);
    ldouble hits_sum = 0;
    for (index_t r = 0; r < niter; ++r) {
        t.samp_exp[a * niter + r] = sums[r];
        hits_r[r] = static_cast<ldouble>(hits[r]);
        hits_sum += hits_r[r];
    }
    if (sz == 1) {
        out.overlap[a] = static_cast<double>(hits_sum) / static_cast<double>(niter);
        return;
    }
    // R's mean(): long-double sum / n, plus one correction pass.
    ldouble mu = hits_sum / niter;
    if (std::isfinite(static_cast<double>(mu))) {
        ldouble c = 0;
        for (index_t r = 0; r < niter; ++r) c += hits_r[r] - mu;
        mu += c / niter;
    }
    out.overlap[a] = static_cast<double>(mu) / static_cast<double>(sz);
}

// One cell's deviation and z for one annotation from its sampled sums
// (NOTES.md §3: colMeans and sd in long double, NA when expected <
// min_expected: chromVAR's 1; ArchR's deviations use no threshold, 0).
inline void finish_cell(double observed, double expected, double min_expected,
                        const double* sampled, const double* samp_exp, double fps,
                        index_t niter, double* dev_buf, double& dev, double& z) {
    if (expected < min_expected || std::isnan(expected)) {
        dev = z = na_real();
        return;
    }
    const double obs_dev = (observed - expected) / expected;
    ldouble sum = 0;
    for (index_t r = 0; r < niter; ++r) {
        const double se = samp_exp[r] * fps;
        dev_buf[r] = (sampled[r] - se) / se;
        sum += dev_buf[r];
    }
    const double mean = static_cast<double>(sum / niter);
    const double sd = std::sqrt(r_var(niter, [&](index_t r) { return dev_buf[r]; }));
    dev = obs_dev - mean;
    z = dev / sd;
}

struct SampleOptions {
    double min_expected = 1;                 // chromVAR's NA rule
    index_t max_entries = index_t(1) << 27;  // background entries per pass
    index_t cells_per_task = 32;
    int block = 64;                  // cells sharing one read of the index
    index_t chunk_slots = 1024;      // accumulator slots per chunk (x block)
};

// The drawn-peak index of one annotation group for the blocked integer
// sweep: slots are cut into chunks of whole annotations (so a chunk holds
// every iteration of its annotations), and per chunk a CSR over peaks lists
// the chunk-local slots (16-bit) each peak was drawn into.
struct SlotIndex {
    index_t np = 0, n_chunks = 0;
    std::vector<index_t> chunk_first;   // first annotation (group-local)
    std::vector<index_t> ptr;           // n_chunks * np + 1 offsets
    std::vector<std::uint16_t> slot;    // chunk-local slot of each entry
};

inline SlotIndex slot_index(const std::vector<std::vector<int>>& sets,
                            const DenseView<const int>& bg,
                            index_t a0, index_t a1, index_t chunk_slots) {
    SlotIndex ix;
    const index_t np = bg.nrow, niter = bg.ncol;
    ix.np = np;
    const index_t per = std::max<index_t>(1, std::min<index_t>(chunk_slots, 65536) / niter);
    for (index_t a = a0; a < a1; a += per) ix.chunk_first.push_back(a - a0);
    ix.n_chunks = static_cast<index_t>(ix.chunk_first.size());
    ix.chunk_first.push_back(a1 - a0);
    ix.ptr.assign(ix.n_chunks * np + 1, 0);
    for (index_t a = a0; a < a1; ++a) {
        const index_t base = ((a - a0) / per) * np + 1;
        for (index_t r = 0; r < niter; ++r)
            for (int k : sets[a]) ++ix.ptr[base + bg(k, r) - 1];
    }
    for (index_t q = 0; q + 1 < static_cast<index_t>(ix.ptr.size()); ++q)
        ix.ptr[q + 1] += ix.ptr[q];
    ix.slot.resize(ix.ptr.back());
    std::vector<index_t> next(ix.ptr.begin(), ix.ptr.end() - 1);
    for (index_t a = a0; a < a1; ++a) {
        const index_t h = (a - a0) / per, base = h * np;
        const index_t local = (a - a0 - h * per) * niter;
        for (index_t r = 0; r < niter; ++r)
            for (int k : sets[a])
                ix.slot[next[base + bg(k, r) - 1]++] = static_cast<std::uint16_t>(local + r);
    }
    return ix;
}

// Non-zero counts of a block of cells merged by peak: peaks ascending,
// each with its (cell in block, count) pairs.
struct BlockRows {
    std::vector<int> peak;
    std::vector<index_t> ptr;
    std::vector<int> cell;
    std::vector<std::int32_t> value;
};

inline void block_rows(const CscView<double>& x, index_t c0, int nb, BlockRows& br) {
    br.peak.clear();
    br.ptr.assign(1, 0);
    br.cell.clear();
    br.value.clear();
    index_t pos[128], end[128];
    for (int b = 0; b < nb; ++b) {
        pos[b] = x.col_begin(c0 + b);
        end[b] = x.col_end(c0 + b);
    }
    for (;;) {
        int j = std::numeric_limits<int>::max();
        for (int b = 0; b < nb; ++b)
            if (pos[b] < end[b] && x.i[pos[b]] < j) j = x.i[pos[b]];
        if (j == std::numeric_limits<int>::max()) break;
        for (int b = 0; b < nb; ++b)
            if (pos[b] < end[b] && x.i[pos[b]] == j) {
                br.cell.push_back(b);
                br.value.push_back(static_cast<std::int32_t>(x.value(pos[b])));
                ++pos[b];
            }
        br.peak.push_back(j);
        br.ptr.push_back(static_cast<index_t>(br.cell.size()));
    }
}

// Counts are whole numbers and every sampled sum fits in 32 bits: the
// integer sweep then gives exactly the double sums.
inline bool integer_counts(const CscView<double>& x, const std::vector<std::vector<int>>& sets) {
    double max_x = 0;
    for (index_t q = 0; q < x.nnz(); ++q) {
        const double v = x.value(q);
        if (v != std::floor(v)) return false;
        max_x = std::max(max_x, v);
    }
    std::size_t max_sz = 0;
    for (const auto& st : sets) max_sz = std::max(max_sz, st.size());
    return max_x * static_cast<double>(max_sz) < 2147483647.0;
}

// One annotation group, cell by cell (any counts): peak -> slots index,
// then one sweep over each cell's non-zero counts.
template <class Par>
void sweep_cells(const CscView<double>& x, const Csc<double>& anno_rows,
                 const std::vector<std::vector<int>>& sets, const DenseView<const int>& bg,
                 Span<const double> fps, const SampleTables& t, index_t a0, index_t a1,
                 const SampleOptions& opt, Par& par, const DeviationsOutput& out) {
    const index_t np = x.nrow, nc = x.ncol, niter = bg.ncol;
        const index_t ga = a1 - a0, slots = ga * niter;
        // Peak -> slots index (CSR over peaks), filled in a fixed order.
        std::vector<index_t> wp(np + 1, 0);
        for (index_t a = a0; a < a1; ++a)
            for (index_t r = 0; r < niter; ++r)
                for (int k : sets[a]) ++wp[bg(k, r)];
        for (index_t j = 0; j < np; ++j) wp[j + 1] += wp[j];
        std::vector<int> wcol(wp[np]);
        {
            std::vector<index_t> next(wp.begin(), wp.end() - 1);
            for (index_t a = a0; a < a1; ++a)
                for (index_t r = 0; r < niter; ++r)
                    for (int k : sets[a])
                        wcol[next[bg(k, r) - 1]++] = static_cast<int>((a - a0) * niter + r);
        }
        const index_t per = std::max<index_t>(1, opt.cells_per_task);
        const index_t n_tasks = (nc + per - 1) / per;
        par.run(n_tasks, [&](index_t task) {
            std::vector<double> sampled(slots), observed(ga), dev_buf(niter);
            const index_t c_end = std::min(nc, (task + 1) * per);
            for (index_t c = task * per; c < c_end; ++c) {
                std::fill(sampled.begin(), sampled.end(), 0.0);
                std::fill(observed.begin(), observed.end(), 0.0);
                x.for_col(c, [&](int j, double v) {
                    for (index_t q = wp[j]; q < wp[j + 1]; ++q) sampled[wcol[q]] += v;
                    for (index_t q = anno_rows.p[j]; q < anno_rows.p[j + 1]; ++q) {
                        const index_t a = anno_rows.i[q];
                        if (a >= a0 && a < a1) observed[a - a0] += v;
                    }
                });
                for (index_t a = a0; a < a1; ++a) {
                    if (sets[a].empty()) {
                        out.dev(a, c) = out.z(a, c) = na_real();
                        continue;
                    }
                    finish_cell(observed[a - a0], t.e_sum[a] * fps[c], opt.min_expected,
                                sampled.data() + (a - a0) * niter, t.samp_exp.data() + a * niter,
                                fps[c], niter, dev_buf.data(), out.dev(a, c), out.z(a, c));
                }
            }
        });
}

// One annotation group for whole-number counts: blocks of cells share
// each read of the (16-bit) slot index, and the sampled sums of a chunk
// of annotations accumulate in 32-bit integers (block x chunk fits in
// cache). Integer sums are exact, so the result equals sweep_cells'.
template <class Par>
void sweep_blocked(const CscView<double>& x, const Csc<double>& anno_rows,
                   const std::vector<std::vector<int>>& sets, const DenseView<const int>& bg,
                   Span<const double> fps, const SampleTables& t, index_t a0, index_t a1,
                   const SampleOptions& opt, Par& par, const DeviationsOutput& out) {
    const index_t np = x.nrow, nc = x.ncol, niter = bg.ncol, ga = a1 - a0;
    const SlotIndex ix = slot_index(sets, bg, a0, a1, opt.chunk_slots);
    const int B = std::max(1, std::min(opt.block, 128));
    const index_t n_tasks = (nc + B - 1) / B;
    par.run(n_tasks, [&](index_t task) {
        const index_t c0 = task * B;
        const int nb = static_cast<int>(std::min<index_t>(B, nc - c0));
        BlockRows br;
        block_rows(x, c0, nb, br);
        std::vector<double> observed(ga * nb, 0.0), sampled(niter), dev_buf(niter);
        for (index_t u = 0; u < static_cast<index_t>(br.peak.size()); ++u)
            for (index_t q = br.ptr[u]; q < br.ptr[u + 1]; ++q) {
                const int j = br.peak[u];
                for (index_t g = anno_rows.p[j]; g < anno_rows.p[j + 1]; ++g) {
                    const index_t a = anno_rows.i[g];
                    if (a >= a0 && a < a1) observed[(a - a0) * nb + br.cell[q]] += br.value[q];
                }
            }
        std::vector<std::int32_t> acc;
        for (index_t h = 0; h < ix.n_chunks; ++h) {
            const index_t fa = ix.chunk_first[h], la = ix.chunk_first[h + 1];
            acc.assign((la - fa) * niter * B, 0);
            const index_t* ptr = ix.ptr.data() + h * np;
            for (index_t u = 0; u < static_cast<index_t>(br.peak.size()); ++u) {
                const int j = br.peak[u];
                const std::uint16_t* sl = ix.slot.data() + ptr[j];
                const index_t len = ptr[j + 1] - ptr[j];
                const index_t q0 = br.ptr[u], q1 = br.ptr[u + 1];
                if (q1 - q0 == 1) {
                    std::int32_t* a = acc.data() + br.cell[q0];
                    const std::int32_t v = br.value[q0];
                    for (index_t e2 = 0; e2 < len; ++e2) a[static_cast<index_t>(sl[e2]) * B] += v;
                } else {
                    for (index_t e2 = 0; e2 < len; ++e2) {
                        std::int32_t* a = acc.data() + static_cast<index_t>(sl[e2]) * B;
                        for (index_t q = q0; q < q1; ++q) a[br.cell[q]] += br.value[q];
                    }
                }
            }
            for (index_t la2 = fa; la2 < la; ++la2) {
                const index_t a = a0 + la2;
                for (int b = 0; b < nb; ++b) {
                    const index_t c = c0 + b;
                    if (sets[a].empty()) {
                        out.dev(a, c) = out.z(a, c) = na_real();
                        continue;
                    }
                    const std::int32_t* col = acc.data() + (la2 - fa) * niter * B + b;
                    for (index_t r = 0; r < niter; ++r) sampled[r] = col[r * B];
                    finish_cell(observed[la2 * nb + b], t.e_sum[a] * fps[c], opt.min_expected,
                                sampled.data(),
                                t.samp_exp.data() + a * niter, fps[c], niter, dev_buf.data(),
                                out.dev(a, c), out.z(a, c));
                }
            }
        }
    });
}

// Sampled-null deviations (chromVAR's method) for all annotations, cell by
// cell: the background draws are indexed by peak (peak j -> the
// (annotation, iteration) slots it was drawn into), so one sweep over a
// cell's non-zero counts fills all sampled sums of that cell. Annotations
// are processed in groups that bound that index to `max_entries`.
template <class Par, class Progress>
void deviations_sample(const CscView<double>& x, const Csc<double>& anno_rows,
                       const std::vector<std::vector<int>>& sets,
                       const DenseView<const int>& bg, Span<const double> e,
                       Span<const double> fps, const SampleOptions& opt, Par& par,
                       Progress& progress, const DeviationsOutput& out) {
    const index_t np = x.nrow, nc = x.ncol, na = static_cast<index_t>(sets.size());
    const index_t niter = bg.ncol;
    require(bg.nrow == np, "'background_peaks' must have one row per peak");
    // (one pass without building the message per entry)
    const auto bad = std::find_if(bg.ptr, bg.ptr + bg.nrow * bg.ncol,
                                  [&](int v) { return v < 1 || v > np; });
    require(bad == bg.ptr + bg.nrow * bg.ncol,
            "'background_peaks' holds an index outside 1..nrow(object); "
            "recompute it with getBackgroundPeaks(object).");
    SampleTables t;
    t.samp_exp.assign(na * niter, 0.0);
    t.e_sum.assign(na, 0.0);
    par.run(na, [&](index_t a) { sample_tables_one(sets[a], bg, e, a, t, out); });
    const bool integer = integer_counts(x, sets);
    index_t a0 = 0;
    while (a0 < na) {
        index_t a1 = a0, entries = 0;
        do {
            entries += niter * static_cast<index_t>(sets[a1].size());
            ++a1;
        } while (a1 < na && entries + niter * static_cast<index_t>(sets[a1].size()) <=
                                opt.max_entries);
        const index_t ga = a1 - a0;
        if (integer)
            sweep_blocked(x, anno_rows, sets, bg, fps, t, a0, a1, opt, par, out);
        else
            sweep_cells(x, anno_rows, sets, bg, fps, t, a0, a1, opt, par, out);
        progress.tick(ga);
        a0 = a1;
    }
}

// ---------------------------------------------------------------------
// Analytical null: the limit of the sampled null as niterations -> inf.
// A peak in bin b draws peers from q_b (the BinModel weights), independently
// across peaks, so the per-iteration sums S = sum_k X[peer_k, c] and
// E = fps_c * sum_k e[peer_k] have moments that are sums over the set's bins
// of per-bin moments. The deviation S/E - 1 is expanded to second order
// (delta method) around (E[S], E[E]).

// The kernel is a Gaussian in the whitened plane, so it factorises over the
// two grid axes: K(b, b') = k1(a, a') k2(c, c') for grid points
// b = a * bs + c. Applying it to a grid vector is two bs x bs products
// (K1 M K2 on the bs x bs reshaped vector) instead of one bs^2 x bs^2
// product; constant factors cancel in the normalisation.
struct SeparableKernel {
    int bs = 0;
    arma::mat k1, k2;  // bs x bs, symmetric
};

inline SeparableKernel separable_kernel(const BinModel& m, double w) {
    SeparableKernel k;
    k.bs = m.bs;
    auto axis = [&](const std::vector<double>& g) {
        arma::mat a(m.bs, m.bs);
        for (int i = 0; i < m.bs; ++i)
            for (int j = 0; j < m.bs; ++j) {
                const double x = (g[i] - g[j]) / w;
                a(i, j) = std::exp(-0.5 * x * x);
            }
        return a;
    };
    k.k1 = axis(m.bins1);
    k.k2 = axis(m.bins2);
    return k;
}

// Y = K X for the columns of X (bs^2 x ncol, grid order b = a * bs + c).
// Column-major, one column is the bs x bs matrix Mt(c, a), and
// K X is Mt -> k2 Mt k1 (both symmetric).
inline void apply_kernel(const SeparableKernel& k, arma::mat& x) {
    const arma::uword bs = static_cast<arma::uword>(k.bs), nc = x.n_cols;
    arma::mat left(x.memptr(), bs, bs * nc, false, true);
    left = k.k2 * left;  // all columns at once
    arma::mat slab(bs, bs);
    for (arma::uword c = 0; c < nc; ++c) {
        arma::mat mt(x.colptr(c), bs, bs, false, true);
        slab = mt * k.k1;
        mt = slab;
    }
}

// Per used bin (nu of them): the normaliser z_i = sum_j K(i, j) over used
// bins, E_q[e] and E_q[e^2] of one background draw of a peak in bin i.
struct BinMoments {
    std::vector<int> used;      // grid id of each used bin
    std::vector<int> slot;      // grid id -> used index, or -1
    std::vector<double> inv_z;  // nu: 1 / z_i
    std::vector<double> e1, e2;
};

inline BinMoments bin_moments(const BinModel& m, const SeparableKernel& k,
                              Span<const double> e) {
    BinMoments bm;
    const index_t nb = static_cast<index_t>(m.bs) * m.bs;
    bm.slot.assign(nb, -1);
    for (index_t b = 0; b < nb; ++b)
        if (m.density[b] > 0) {
            bm.slot[b] = static_cast<int>(bm.used.size());
            bm.used.push_back(static_cast<int>(b));
        }
    const index_t nu = static_cast<index_t>(bm.used.size());
    // Grid columns: used indicator, mean e and mean e^2 within each bin.
    arma::mat g(nb, 3, arma::fill::zeros);
    for (index_t k2 = 0; k2 < static_cast<index_t>(m.membership.size()); ++k2) {
        const index_t b = m.membership[k2];
        g(b, 1) += e[k2];
        g(b, 2) += e[k2] * e[k2];
    }
    for (index_t b = 0; b < nb; ++b)
        if (m.density[b] > 0) {
            g(b, 0) = 1.0;
            g(b, 1) /= m.density[b];
            g(b, 2) /= m.density[b];
        }
    apply_kernel(k, g);
    bm.inv_z.resize(nu);
    bm.e1.resize(nu);
    bm.e2.resize(nu);
    for (index_t u = 0; u < nu; ++u) {
        const index_t b = bm.used[u];
        bm.inv_z[u] = 1.0 / g(b, 0);
        bm.e1[u] = g(b, 1) * bm.inv_z[u];
        bm.e2[u] = g(b, 2) * bm.inv_z[u];
    }
    return bm;
}

// Analytical deviations. `cols`: counts (peaks x cells CSC); `anno_rows`:
// annotation sets transposed (cells of the CSC = peaks; rows = annotations).
// Cells are processed in blocks: per block the bin sums of x, x^2 and x*e
// (sparse pass), the kernel (separable, cheap) and one dense product with
// the annotations' peaks-per-bin matrix N (BLAS), the dominant cost.
struct AnalyticalOptions {
    index_t block = 512;  // cells per block (bounds memory: 3 x bins x block)
};

// Per annotation: peaks per used bin (N, na x nu) and the constants of the
// expectation sum.
struct AnnotationBins {
    arma::mat N;
    std::vector<double> e_sum, n_e1, n_ve;
};

inline AnnotationBins annotation_bins(const std::vector<std::vector<int>>& sets,
                                      const std::vector<int>& peak_slot, const BinMoments& bm,
                                      Span<const double> e, index_t np,
                                      const DeviationsOutput& out) {
    const index_t na = static_cast<index_t>(sets.size());
    const index_t nu = static_cast<index_t>(bm.used.size());
    AnnotationBins ab;
    ab.N.zeros(na, nu);
    ab.e_sum.assign(na, 0.0);
    ab.n_e1.assign(na, 0.0);
    ab.n_ve.assign(na, 0.0);
    for (index_t a = 0; a < na; ++a) {
        out.matches[a] = static_cast<double>(sets[a].size()) / static_cast<double>(np);
        out.overlap[a] = na_real();
        for (int k : sets[a]) {
            ab.N(a, peak_slot[k]) += 1.0;
            ab.e_sum[a] += e[k];
        }
        for (index_t u = 0; u < nu; ++u) {
            ab.n_e1[a] += ab.N(a, u) * bm.e1[u];
            ab.n_ve[a] += ab.N(a, u) * (bm.e2[u] - bm.e1[u] * bm.e1[u]);
        }
    }
    return ab;
}

// Moments of one background draw per (used bin, cell) for a block of
// cells: columns [mean x | var x | cov(x, e)], nu x 3nb.
template <class Par>
arma::mat draw_moments(const CscView<double>& cols, index_t c0, index_t nb,
                       const BinModel& m, const SeparableKernel& k, const BinMoments& bm,
                       Span<const double> e, Par& par) {
    const index_t grid = static_cast<index_t>(m.bs) * m.bs;
    const index_t nu = static_cast<index_t>(bm.used.size());
    arma::mat T(grid, 3 * nb, arma::fill::zeros);  // per grid bin sums
    par.run(nb, [&](index_t cc) {
        double* t1 = T.colptr(cc);
        double* t2 = T.colptr(nb + cc);
        double* t3 = T.colptr(2 * nb + cc);
        cols.for_col(c0 + cc, [&](int j, double x) {
            const index_t b = m.membership[j];
            t1[b] += x;
            t2[b] += x * x;
            t3[b] += x * e[j];
        });
    });
    // Per-peak weights are kernel / density: scale the rows once.
    for (index_t b = 0; b < grid; ++b)
        if (m.density[b] > 0) T.row(b) /= m.density[b];
    apply_kernel(k, T);
    arma::mat Q(nu, 3 * nb);
    for (index_t c = 0; c < 3 * nb; ++c) {
        const double* t = T.colptr(c);
        double* q = Q.colptr(c);
        for (index_t u = 0; u < nu; ++u) q[u] = t[bm.used[u]] * bm.inv_z[u];
    }
    for (index_t cc = 0; cc < nb; ++cc)
        for (index_t u = 0; u < nu; ++u) {
            const double mu = Q(u, cc);
            Q(u, nb + cc) -= mu * mu;            // variance of one draw
            Q(u, 2 * nb + cc) -= bm.e1[u] * mu;  // covariance with e
        }
    return Q;
}

template <class Par, class Progress>
void deviations_analytical(const CscView<double>& cols, const std::vector<std::vector<int>>& sets,
                           const Csc<double>& anno_rows, const BinModel& m, double w,
                           Span<const double> e, Span<const double> fps,
                           const AnalyticalOptions& opt, Par& par, Progress& progress,
                           const DeviationsOutput& out) {
    const index_t np = cols.nrow, nc = cols.ncol, na = static_cast<index_t>(sets.size());
    require(static_cast<index_t>(m.membership.size()) == np,
            "bias model and counts have different numbers of peaks");
    const SeparableKernel k = separable_kernel(m, w);
    const BinMoments bm = bin_moments(m, k, e);
    std::vector<int> peak_slot(np);
    for (index_t j = 0; j < np; ++j) peak_slot[j] = bm.slot[m.membership[j]];
    const AnnotationBins ab = annotation_bins(sets, peak_slot, bm, e, np, out);
    const index_t B = std::max<index_t>(1, opt.block);
    for (index_t c0 = 0; c0 < nc; c0 += B) {
        const index_t nb = std::min(B, nc - c0);
        const arma::mat Q = draw_moments(cols, c0, nb, m, k, bm, e, par);
        const arma::mat G = ab.N * Q;  // na x 3nb
        par.run(nb, [&](index_t cc) {
            const index_t c = c0 + cc;
            std::vector<double> obs(na, 0.0);
            cols.for_col(c, [&](int j, double x) {
                for (index_t q = anno_rows.p[j]; q < anno_rows.p[j + 1]; ++q)
                    obs[anno_rows.i[q]] += x;
            });
            for (index_t a = 0; a < na; ++a) {
                const double expected = ab.e_sum[a] * fps[c];
                if (sets[a].empty() || !(expected >= 1)) {
                    out.dev(a, c) = out.z(a, c) = na_real();
                    continue;
                }
                const double obs_dev = (obs[a] - expected) / expected;
                const double es = G(a, cc), vs = G(a, nb + cc), cv = fps[c] * G(a, 2 * nb + cc);
                const double ee = fps[c] * ab.n_e1[a], ve = fps[c] * fps[c] * ab.n_ve[a];
                const double r = es / ee;
                const double mean = r - 1 - cv / (ee * ee) + r * ve / (ee * ee);
                const double var = (vs - 2 * r * cv + r * r * ve) / (ee * ee);
                const double d = obs_dev - mean;
                out.dev(a, c) = d;
                out.z(a, c) = d / std::sqrt(var);
            }
        });
        progress.tick(nb);
    }
}

// computeVariability's row_sds (Armadillo 12 stddev over finite values).
inline double arma_sd_finite(std::vector<double>& v) {
    const index_t n = static_cast<index_t>(v.size());
    if (n < 2) return std::numeric_limits<double>::quiet_NaN();
    const double mean = arma_accumulate(v.data(), n) / static_cast<double>(n);
    double acc2 = 0, acc3 = 0;
    index_t i = 0, j = 1;
    for (; j < n; i += 2, j += 2) {
        const double ti = mean - v[i], tj = mean - v[j];
        acc2 += ti * ti + tj * tj;
        acc3 += ti + tj;
    }
    if (i < n) {
        const double ti = mean - v[i];
        acc2 += ti * ti;
        acc3 += ti;
    }
    const double var = (acc2 - acc3 * acc3 / n) / (n - 1);
    return std::sqrt(var);
}

// Row sds of z (annotations x cells); `index` (optional, length ncol) picks
// columns with replacement (one bootstrap replicate).
inline void row_sds(const DenseView<const double>& z, const std::vector<index_t>* index,
                    Span<double> out) {
    std::vector<double> v;
    const index_t nc = index ? static_cast<index_t>(index->size()) : z.ncol;
    for (index_t a = 0; a < z.nrow; ++a) {
        v.clear();
        for (index_t q = 0; q < nc; ++q) {
            const double x = z(a, index ? (*index)[q] : q);
            if (std::isfinite(x)) v.push_back(x);
        }
        out[a] = arma_sd_finite(v);
    }
}

// GC fraction (C+G over A+C+G+T, any case; other letters ignored, as
// chromVAR's letterFrequency-based addGCBias) of each 1-based closed range
// [start, end] read from an indexed FASTA (plain or bgzip) with HTSlib
// faidx. A range without any A/C/G/T gets NaN.
inline void gc_content(const std::string& fasta, const std::vector<std::string>& chrom,
                       Span<const int> start, Span<const int> end, Span<double> out) {
    const index_t n = static_cast<index_t>(chrom.size());
    require_size(start, n, "start");
    require_size(end, n, "end");
    require_size(out, n, "out");
    faidx_t* fai = fai_load(fasta.c_str());
    if (!fai)
        throw format_error("cannot open or index the FASTA '" + fasta +
                           "'; it must be plain text or bgzip-compressed "
                           "(samtools faidx can index it).");
    struct Closer {
        faidx_t* f;
        ~Closer() { fai_destroy(f); }
    } closer{fai};
    for (index_t k = 0; k < n; ++k) {
        if (!faidx_has_seq(fai, chrom[k].c_str()))
            throw input_error("sequence '" + chrom[k] + "' of peak " + std::to_string(k + 1) +
                              " is not in the FASTA; use a genome with the same "
                              "sequence names (e.g. 'chr1', not '1').");
        hts_pos_t len = 0;
        char* seq = faidx_fetch_seq64(fai, chrom[k].c_str(), start[k] - 1, end[k] - 1, &len);
        if (!seq) throw format_error("could not read peak " + std::to_string(k + 1) + " from FASTA");
        index_t acgt = 0, gc = 0;
        for (hts_pos_t q = 0; q < len; ++q) {
            switch (seq[q]) {
                case 'C': case 'c': case 'G': case 'g': ++gc; ++acgt; break;
                case 'A': case 'a': case 'T': case 't': ++acgt; break;
                default: break;
            }
        }
        std::free(seq);
        out[k] = acgt ? static_cast<double>(gc) / static_cast<double>(acgt)
                      : std::numeric_limits<double>::quiet_NaN();
    }
}

}  // namespace chromvar
}  // namespace epione
