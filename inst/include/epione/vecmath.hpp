// Vectorised log and exp for the NB kernels (DESeq2 engine): the dispersion
// line search and IRLS spend most of their time in one log or exp per
// sample and step, and libm's scalar calls (15-25 ns) cannot be vectorised
// by the compiler. These work on 4 doubles at once with GCC/Clang vector
// extensions, which compile to whatever SIMD the target has (two SSE2
// operations on baseline x86-64), branch-free and within 1-2 ulp of libm.
// Lanes outside the polynomial's range (0, subnormal, inf, NaN, exp beyond
// +-700) are recomputed with libm, so every input gets a correct answer.
//
// Algorithms (facts, not code, taken from the public literature):
// log: argument reduction to [sqrt(2)/2, sqrt(2)) and the minimax series
// in s = f / (2 + f) with the coefficients Lg1-Lg7 and the split ln 2 of
// FDLIBM's e_log.c (Sun Microsystems, 1993). exp: x = k ln 2 + r with
// |r| <= ln 2 / 2 and the Remez coefficients P1-P5 of FDLIBM's e_exp.c.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

// Kernels are written once, as always-inline bodies; a wrapper marked
// EPIONE_VM_AVX2 compiles a second copy of one for AVX2 + FMA (4 lanes in
// one register instead of two SSE2 halves, about 3x the log throughput),
// taken when the CPU has them. Answers can then differ between CPUs in the last bits
// (FMA rounds once), never between thread counts on one machine. Defining
// EPIONE_VM_NO_DISPATCH builds the portable copy only, as on non-x86 CPUs.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(EPIONE_VM_NO_DISPATCH)
#define EPIONE_VM_X86 1
#define EPIONE_VM_INLINE inline __attribute__((always_inline))
#define EPIONE_VM_AVX2 __attribute__((target("avx2,fma"), flatten))
#else
#define EPIONE_VM_INLINE inline
#endif
// 32-byte vectors passed by value: GCC notes that the ABI differs with and
// without AVX; every such function here is inlined, so nothing crosses it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace epione {
namespace vm {

constexpr int kLanes = 4;
typedef double vd __attribute__((vector_size(8 * kLanes)));
typedef std::int64_t vi __attribute__((vector_size(8 * kLanes)));

inline vd load(const double* p) {
    vd v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(double* p, vd v) { std::memcpy(p, &v, sizeof v); }
inline vd splat(double x) { return vd{} + x; }
// bit casts (a C-style cast between vectors of one size keeps the bits)
inline vi as_int(vd v) { return (vi)v; }
inline vd as_double(vi v) { return (vd)v; }
// Lanes of a where the mask m (all ones / zeros per lane) is set, else b.
inline vd select(vi m, vd a, vd b) { return as_double((as_int(a) & m) | (as_int(b) & ~m)); }

// The exponent field e (0 <= e < 2^52 as an integer vector) as doubles,
// without an int64 -> double conversion instruction (AVX-512 only): the
// bits of 2^52 + e, minus 2^52.
inline vd small_int_to_double(vi e) {
    const vi magic = vi{} + 0x4330000000000000LL;
    return as_double(e | magic) - splat(4503599627370496.0);
}

// log(x) in two halves, so that callers can share the one division of
// several logs: log_reduce() splits x = 2^k (1 + f) with 1 + f in
// [sqrt(2)/2, sqrt(2)); log_finish() takes s = f / (2 + f).
struct LogParts {
    vd k, f;
};
EPIONE_VM_INLINE LogParts log_reduce(vd x) {
    // shift the mantissa so that m = x / 2^k lands in [sqrt(2)/2, sqrt(2))
    const std::int64_t shift = (0x3ff00000LL - 0x3fe6a09eLL) << 32;
    const vi ix = as_int(x) + shift;
    const vd k = small_int_to_double(ix >> 52) - splat(1023.0);
    const vi mbits = (ix & 0x000fffffffffffffLL) + (0x3fe6a09eLL << 32);
    return {k, as_double(mbits) - splat(1.0)};
}
EPIONE_VM_INLINE vd log_finish(const LogParts& p, vd s) {
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double lg1 = 6.666666666666735130e-01, lg2 = 3.999999999940941908e-01,
                 lg3 = 2.857142874366239149e-01, lg4 = 2.222219843214978396e-01,
                 lg5 = 1.818357216161805012e-01, lg6 = 1.531383769920937332e-01,
                 lg7 = 1.479819860511658591e-01;
    const vd f = p.f, k = p.k;
    const vd hfsq = splat(0.5) * f * f;
    const vd z = s * s, w = z * z;
    const vd t1 = w * (splat(lg2) + w * (splat(lg4) + w * splat(lg6)));
    const vd t2 = z * (splat(lg1) + w * (splat(lg3) + w * (splat(lg5) + w * splat(lg7))));
    const vd r = t1 + t2;
    return s * (hfsq + r) + k * splat(ln2_lo) - hfsq + f + k * splat(ln2_hi);
}

// log(x) for positive normal x; other lanes are garbage (see log_n).
EPIONE_VM_INLINE vd log_normal(vd x) {
    const LogParts p = log_reduce(x);
    return log_finish(p, p.f / (splat(2.0) + p.f));
}

// exp(x) for |x| <= 700; other lanes are garbage (see exp_n).
EPIONE_VM_INLINE vd exp_small(vd x) {
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double inv_ln2 = 1.44269504088896338700e+00;
    const double p1 = 1.66666666666666019037e-01, p2 = -2.77777777770155933842e-03,
                 p3 = 6.61375632143793436117e-05, p4 = -1.65339022054652515390e-06,
                 p5 = 4.13813679705723846039e-08;
    // k = round(x / ln 2) by the 1.5 * 2^52 trick (round to nearest)
    const vd big = splat(6755399441055744.0);
    const vd kb = x * splat(inv_ln2) + big;
    const vd k = kb - big;
    const vd hi = x - k * splat(ln2_hi), lo = k * splat(ln2_lo);
    const vd r = hi - lo, t = r * r;
    const vd c = r - t * (splat(p1) + t * (splat(p2) + t * (splat(p3) + t * (splat(p4) +
                                                                           t * splat(p5)))));
    const vd y = splat(1.0) - ((lo - (r * c) / (splat(2.0) - c)) - hi);
    // scale by 2^k in two halves so that k down to -1022 - 52 stays exact
    const vi ki = as_int(kb) - as_int(big);   // k as an integer (|k| < 2^51)
    const vi k1 = ki >> 1, k2 = ki - k1;
    const vd s1 = as_double((k1 + 1023) << 52), s2 = as_double((k2 + 1023) << 52);
    return y * s1 * s2;
}

// out[j] = f(x[j]) for j < n, 4 at a time: the vector `poly` where lo <=
// x <= hi (its valid range), the scalar `libm` elsewhere (0, subnormals,
// inf, NaN, out-of-range exp). x and out may be the same array.
template <class Poly, class Libm>
inline void map_n(const double* x, double* out, int n, double lo, double hi, Poly poly,
                  Libm libm) {
    for (int j = 0; j < n; j += kLanes) {
        const int k = n - j < kLanes ? n - j : kLanes;
        double buf[kLanes] = {lo, lo, lo, lo};
        for (int l = 0; l < k; ++l) buf[l] = x[j + l];
        const vd r = poly(load(buf));
        for (int l = 0; l < k; ++l)
            out[j + l] = (buf[l] >= lo && buf[l] <= hi) ? r[l] : libm(buf[l]);
    }
}
inline void log_n(const double* x, double* out, int n) {
    map_n(x, out, n, 2.2250738585072014e-308, 1.7976931348623157e308,
          [](vd v) { return log_normal(v); }, [](double v) { return std::log(v); });
}
inline void exp_n(const double* x, double* out, int n) {
    map_n(x, out, n, -700.0, 700.0, [](vd v) { return exp_small(v); },
          [](double v) { return std::exp(v); });
}

// |v| per lane (the sign bit cleared).
inline vd abs(vd v) { return as_double(as_int(v) & 0x7fffffffffffffffLL); }

// Lanes below n set (all ones), the others clear.
inline vi first_lanes(int n) {
    vi m{};
    for (int l = 0; l < kLanes; ++l) m[l] = l < n ? -1 : 0;
    return m;
}

// Sum of the lanes.
inline double hsum(vd v) {
    double s = 0.0;
    for (int l = 0; l < kLanes; ++l) s += v[l];
    return s;
}
// Whether any lane of a mask is set.
inline bool any(vi m) {
    vi o = m;
    for (int l = 1; l < kLanes; ++l) o[0] |= m[l];
    return o[0] != 0;
}

inline bool have_avx2() {
#ifdef EPIONE_VM_X86
    // EPIONE_SIMD=baseline (read once) keeps the portable copy, to check it
    static const bool ok = [] {
        const char* env = std::getenv("EPIONE_SIMD");
        if (env && std::strcmp(env, "baseline") == 0) return false;
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }();
    return ok;
#else
    return false;
#endif
}

}  // namespace vm
}  // namespace epione
