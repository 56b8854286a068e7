// Vectorised per-row loops of the dispersion objective (nbglm.hpp's
// DispObjective): the line search evaluates them ~20 times per row, and
// they are where the DESeq2 engine spends most of its time. Each loop runs
// 4 samples at a time (vecmath.hpp), with an AVX2 + FMA copy chosen at run
// time. The arithmetic is the scalar code's (same formulas, sums in 4
// partial sums), so results agree with it to a few ulps.
#pragma once
#include <cmath>
#include <vector>
#include "vecmath.hpp"

namespace epione {
namespace nb {

// defined in nbglm.hpp, which includes this header after them
inline double lgam_fast(double x);
inline double digam_log(double x, double lx);

namespace vec {

using vm::vd;
using vm::vi;
using vm::splat;

// Designs up to this many coefficients get their X' W X sums in fixed-size
// vector accumulators inside the per-sample loops (IRLS normal equations,
// Cox-Reid term); larger ones use xtwx_body or DESeq2's QR.
constexpr int kMaxSumsP = 6;

// Per-sample quantities at one log alpha (see DispObjective::fill). With
// `xtwx` set (p <= kMaxSumsP), fill also sums X' W X into it and dlp
// sums X' diag(-w^2) X into `dxtwx` (the Cox-Reid term and its derivative).
struct DispRow {
    const double* y = nullptr;
    const double* mu = nullptr;
    int m = 0;
    double *l1p = nullptr, *q = nullptr, *w = nullptr, *ly = nullptr, *g = nullptr;
    std::vector<int>* small = nullptr;  // y > 0 with y + 1/alpha < 10
    const double* x = nullptr;          // design, m x p column-major
    int p = 0;
    double *xtwx = nullptr, *dxtwx = nullptr;
    // With `uy` (the distinct_body() kernels): the terms of y + 1/alpha
    // are taken once per distinct non-zero count uy[0..nd) (uc[] samples
    // each) into ly / g indexed by those, and `small` lists distinct values.
    const double* uy = nullptr;
    const double* uc = nullptr;
    int nd = 0;
};

// Above this many samples the per-count terms (log and reciprocal of
// y + 1/alpha, lgamma, digamma) are taken once per distinct count: at 100
// samples a row holds ~56 distinct values. Below it nblanes.hpp runs four
// rows at a time (p <= 6) and the per-sample kernels stay bit for bit.
constexpr int kDistinctMinSamples = 25;

// Running sums of X' diag(w) X (lower triangle), 4 samples at a time.
struct XtwxSums {
    vd acc[kMaxSumsP * kMaxSumsP];
    double tail[kMaxSumsP * kMaxSumsP];
    const double* x;
    int m, p;
    EPIONE_VM_INLINE XtwxSums(const double* xx, int mm, int pp) : x(xx), m(mm), p(pp) {
        for (int k = 0; k < p * p; ++k) {
            acc[k] = splat(0.0);
            tail[k] = 0.0;
        }
    }
    EPIONE_VM_INLINE void add(int j, vd w) {
        for (int k = 0; k < p; ++k) {
            const vd wxk = w * vm::load(x + static_cast<size_t>(k) * m + j);
            for (int l = 0; l <= k; ++l)
                acc[k * p + l] += wxk * vm::load(x + static_cast<size_t>(l) * m + j);
        }
    }
    EPIONE_VM_INLINE void add1(int j, double w) {
        for (int k = 0; k < p; ++k) {
            const double wxk = w * x[static_cast<size_t>(k) * m + j];
            for (int l = 0; l <= k; ++l) tail[k * p + l] += wxk * x[static_cast<size_t>(l) * m + j];
        }
    }
    // b = the symmetric p x p sums, column-major.
    EPIONE_VM_INLINE void finish(double* b) const {
        for (int k = 0; k < p; ++k)
            for (int l = 0; l <= k; ++l) {
                const double v = vm::hsum(acc[k * p + l]) + tail[k * p + l];
                b[k + l * p] = v;
                b[l + k * p] = v;
            }
    }
};

// Stirling's series for lgamma(x), x >= 10, from lx = log x and g = 1/x;
// the constants of nbglm.hpp's lgam_log.
EPIONE_VM_INLINE vd lgam_series(vd x, vd lx, vd g) {
    const vd f = g * g;
    const vd s = g * (splat(1.0 / 12) + f * (splat(-1.0 / 360) + f * (splat(1.0 / 1260) +
        f * (splat(-1.0 / 1680) + f * (splat(1.0 / 1188) + f * (splat(-691.0 / 360360) +
        f * splat(1.0 / 156)))))));
    return (x - splat(0.5)) * lx - x + splat(0.91893853320467274178) + s;
}
// The asymptotic series of digamma(x), x >= 10 (nbglm.hpp's digam_log).
EPIONE_VM_INLINE vd digam_series(vd lx, vd g) {
    const vd f = g * g;
    const vd t = f * (splat(-1.0 / 12) + f * (splat(1.0 / 120) + f * (splat(-1.0 / 252) +
        f * (splat(1.0 / 240) + f * (splat(-1.0 / 132) + f * (splat(691.0 / 32760) +
        f * splat(-1.0 / 12)))))));
    return lx - splat(0.5) * g + t;
}

// lgamma(x) and digamma(x) for 1 <= x < 10 (the `small` samples: y >= 1,
// y + 1/alpha < 10), 4 at a time instead of lgamma_r / the digamma
// recurrence per sample: shifted to x + 10 where the series hold,
// lgamma(x) = lgamma(x + 10) - log(x (x + 1) ... (x + 9)) and
// digamma(x) = digamma(x + 10) - sum_k 1 / (x + k), the sum as one fraction.
EPIONE_VM_INLINE vd lgam_small(vd x) {
    vd prod = x;
    for (int k = 1; k < 10; ++k) prod *= x + splat(k);
    const vd x10 = x + splat(10.0);
    return lgam_series(x10, vm::log_normal(x10), splat(1.0) / x10) - vm::log_normal(prod);
}
EPIONE_VM_INLINE vd digam_small(vd x) {
    vd num = splat(1.0), den = x;  // 1 / x
    for (int k = 1; k < 10; ++k) {
        const vd t = x + splat(k);
        num = num * t + den;
        den = den * t;
    }
    const vd x10 = x + splat(10.0);
    return digam_series(vm::log_normal(x10), splat(1.0) / x10) - num / den;
}

// Calls fn(lanes, k4, n) for the small samples 4 at a time: k4 their
// indices (the last group padded with its first index), n how many count.
template <class F>
EPIONE_VM_INLINE void for_small(const std::vector<int>& small, F&& fn) {
    const int ns = static_cast<int>(small.size());
    for (int i = 0; i < ns; i += vm::kLanes) {
        int k4[vm::kLanes];
        const int n = ns - i < vm::kLanes ? ns - i : vm::kLanes;
        for (int l = 0; l < vm::kLanes; ++l) k4[l] = small[i + (l < n ? l : 0)];
        fn(k4, n);
    }
}
EPIONE_VM_INLINE vd gather(const double* v, const int* k4) {
    return vd{v[k4[0]], v[k4[1]], v[k4[2]], v[k4[3]]};
}

// The per-sample terms of the dispersion objective from den = 1 + mu alpha
// and x = y + 1/alpha: q = 1 / den, g = 1 / x, l1p = log(den), ly = log(x).
// The four reciprocals (q, g and the two logs' 1 / (2 + f)) come from one
// division: divisions, not the polynomials, bound these loops. Lanes out of
// the shared division's range (`ok` clear) must be redone by libm_terms().
// (fill_body here and nblanes.hpp's eval_body.)
struct DispTerms {
    vd q, g, l1p, ly;
    vi ok;
};
EPIONE_VM_INLINE DispTerms disp_terms(vd den, vd x) {
    const vm::LogParts pd = vm::log_reduce(den), px = vm::log_reduce(x);
    const vd td = splat(2.0) + pd.f, tx = splat(2.0) + px.f;
    const vd a = den * x, b = td * tx, inv = splat(1.0) / (a * b);
    const vd inv_a = inv * b, inv_b = inv * a;
    return {x * inv_a, den * inv_a, vm::log_finish(pd, pd.f * (tx * inv_b)),
            vm::log_finish(px, px.f * (td * inv_b)),
            (den < splat(INFINITY)) & (x >= splat(2.2250738585072014e-308)) &
                (x < splat(INFINITY)) & (a * b < splat(1e300))};
}
inline void libm_terms(double den, double x, double& q, double& g, double& l1p, double& ly) {
    q = 1.0 / den;
    g = 1.0 / x;
    l1p = std::log(den);
    ly = std::log(x);
}

// fill: q = 1 / (1 + mu alpha), l1p = log(1 + mu alpha), w = mu q,
// ly = log(y + r), g = 1 / (y + r); the y > 0 samples with y + r < 10
// (where the series do not hold) listed in `small`.
EPIONE_VM_INLINE void fill_body(const DispRow& d, double alpha, double r) {
    const vd va = splat(alpha), vr = splat(r), one = splat(1.0), ten = splat(10.0);
    d.small->clear();
    XtwxSums sums(d.x, d.m, d.xtwx ? d.p : 0);
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {
        const vd mu = vm::load(d.mu + j), y = vm::load(d.y + j);
        const vd den = one + mu * va, x = y + vr;
        const DispTerms t = disp_terms(den, x);
        vm::store(d.q + j, t.q);
        vm::store(d.w + j, mu * t.q);
        vm::store(d.g + j, t.g);
        vm::store(d.l1p + j, t.l1p);
        vm::store(d.ly + j, t.ly);
        const vi sm = (y != splat(0.0)) & (x < ten);
        if (vm::any(~t.ok | sm)) {
            for (int l = 0; l < vm::kLanes; ++l) {
                if (!t.ok[l]) {
                    libm_terms(den[l], x[l], d.q[j + l], d.g[j + l], d.l1p[j + l], d.ly[j + l]);
                    d.w[j + l] = mu[l] * d.q[j + l];
                }
                if (sm[l]) d.small->push_back(j + l);
            }
        }
        if (d.xtwx) sums.add(j, vm::load(d.w + j));
    }
    for (; j < d.m; ++j) {
        const double den = 1.0 + d.mu[j] * alpha, x = d.y[j] + r;
        libm_terms(den, x, d.q[j], d.g[j], d.l1p[j], d.ly[j]);
        d.w[j] = d.mu[j] * d.q[j];
        if (d.y[j] != 0 && x < 10.0) d.small->push_back(j);
        if (d.xtwx) sums.add1(j, d.w[j]);
    }
    if (d.xtwx) sums.finish(d.xtwx);
}

// ---- the same terms with the count part per distinct count -------------
// 1 / v and log(v) from one division (the reciprocal and the log's
// 1 / (2 + f) share it), for den and for x separately; lanes with `ok`
// clear are out of that division's range (libm instead).
EPIONE_VM_INLINE void recip_log(vd v, vd& recip, vd& lg, vi& ok) {
    const vm::LogParts pv = vm::log_reduce(v);
    const vd tv = splat(2.0) + pv.f, prod = v * tv, inv = splat(1.0) / prod;
    recip = inv * tv;
    lg = vm::log_finish(pv, pv.f * (v * inv));
    ok = (v >= splat(2.2250738585072014e-308)) & (v < splat(INFINITY)) &
         (prod < splat(1e300));
}

// fill with the count terms per distinct count (DispRow::uy): per sample
// q, l1p, w (and X' W X); per distinct value g = 1 / x, ly = log(x) of
// x = uy + r, `small` the distinct values with x < 10.
EPIONE_VM_INLINE void fill_distinct_body(const DispRow& d, double alpha, double r) {
    const vd va = splat(alpha), vr = splat(r), one = splat(1.0), ten = splat(10.0);
    d.small->clear();
    XtwxSums sums(d.x, d.m, d.xtwx ? d.p : 0);
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {
        const vd mu = vm::load(d.mu + j), den = one + mu * va;
        vd q, l1p;
        vi ok;
        recip_log(den, q, l1p, ok);
        vm::store(d.q + j, q);
        vm::store(d.w + j, mu * q);
        vm::store(d.l1p + j, l1p);
        if (vm::any(~ok))
            for (int l = 0; l < vm::kLanes; ++l)
                if (!ok[l]) {
                    d.q[j + l] = 1.0 / den[l];
                    d.l1p[j + l] = std::log(den[l]);
                    d.w[j + l] = mu[l] * d.q[j + l];
                }
        if (d.xtwx) sums.add(j, vm::load(d.w + j));
    }
    for (; j < d.m; ++j) {
        const double den = 1.0 + d.mu[j] * alpha;
        d.q[j] = 1.0 / den;
        d.l1p[j] = std::log(den);
        d.w[j] = d.mu[j] * d.q[j];
        if (d.xtwx) sums.add1(j, d.w[j]);
    }
    if (d.xtwx) sums.finish(d.xtwx);
    int k = 0;
    for (; k + vm::kLanes <= d.nd; k += vm::kLanes) {
        const vd x = vm::load(d.uy + k) + vr;
        vd g, ly;
        vi ok;
        recip_log(x, g, ly, ok);
        vm::store(d.g + k, g);
        vm::store(d.ly + k, ly);
        const vi sm = x < ten;
        if (vm::any(~ok | sm))
            for (int l = 0; l < vm::kLanes; ++l) {
                if (!ok[l]) {
                    d.g[k + l] = 1.0 / x[l];
                    d.ly[k + l] = std::log(x[l]);
                }
                if (sm[l]) d.small->push_back(k + l);
            }
    }
    for (; k < d.nd; ++k) {
        const double x = d.uy[k] + r;
        d.g[k] = 1.0 / x;
        d.ly[k] = std::log(x);
        if (x < 10.0) d.small->push_back(k);
    }
}

// lp_body with the count terms per distinct count, each times its count.
EPIONE_VM_INLINE double lp_distinct_body(const DispRow& d, double a, double r, double lgr,
                                         double* mag) {
    const vd va = splat(a), vr = splat(r), vlgr = splat(lgr), ten = splat(10.0);
    vd acc = splat(0.0), macc = splat(0.0);
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {  // -r l1p - y (l1p - a)
        const vd y = vm::load(d.y + j), l1p = vm::load(d.l1p + j);
        const vd yl = y * (l1p - va), rl = vr * l1p;
        const vi pos = y != splat(0.0);
        acc -= vm::select(pos, yl, splat(0.0)) + rl;
        if (mag) macc += vm::select(pos, vm::abs(yl), splat(0.0)) + vm::abs(rl);
    }
    double s = vm::hsum(acc), ms = mag ? vm::hsum(macc) : 0.0;
    for (; j < d.m; ++j) {
        const double yl = d.y[j] != 0 ? d.y[j] * (d.l1p[j] - a) : 0.0, rl = r * d.l1p[j];
        s -= yl + rl;
        ms += std::fabs(yl) + std::fabs(rl);
    }
    // c (lgamma(x) - lgamma(r)) per distinct count
    vd cacc = splat(0.0), cmag = splat(0.0);
    auto add = [&](vd c, vd lg, vi use) {
        cacc += vm::select(use, c * (lg - vlgr), splat(0.0));
        if (mag) cmag += vm::select(use, c * (vm::abs(lg) + vm::abs(vlgr)), splat(0.0));
    };
    int k = 0;
    for (; k + vm::kLanes <= d.nd; k += vm::kLanes) {
        const vd x = vm::load(d.uy + k) + vr;
        add(vm::load(d.uc + k), lgam_series(x, vm::load(d.ly + k), vm::load(d.g + k)),
            x >= ten);
    }
    for (; k < d.nd; ++k) {  // one value in lane 0
        const vd x = splat(d.uy[k] + r);
        add(splat(d.uc[k]), lgam_series(x, splat(d.ly[k]), splat(d.g[k])),
            vm::first_lanes(1) & (x >= ten));
    }
    for_small(*d.small, [&](const int* k4, int n) {
        add(gather(d.uc, k4), lgam_small(gather(d.uy, k4) + vr), vm::first_lanes(n));
    });
    if (mag) *mag = ms + vm::hsum(cmag);
    return s + vm::hsum(cacc);
}

// dlp_body with the digamma terms per distinct count, each times its count.
EPIONE_VM_INLINE double dlp_distinct_body(const DispRow& d, double alpha, double r,
                                          double dgr) {
    const vd va = splat(alpha), vr = splat(r), vdgr = splat(dgr), ten = splat(10.0);
    vd acc = splat(0.0);
    XtwxSums sums(d.x, d.m, d.dxtwx ? d.p : 0);
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {  // l1p - mu alpha q + y alpha q
        if (d.dxtwx) {
            const vd w = vm::load(d.w + j);
            sums.add(j, -(w * w));
        }
        const vd y = vm::load(d.y + j), q = vm::load(d.q + j);
        acc += vm::load(d.l1p + j) + (y - vm::load(d.mu + j)) * va * q;
    }
    double s = vm::hsum(acc);
    for (; j < d.m; ++j) {
        if (d.dxtwx) sums.add1(j, -(d.w[j] * d.w[j]));
        s += d.l1p[j] + (d.y[j] - d.mu[j]) * alpha * d.q[j];
    }
    if (d.dxtwx) sums.finish(d.dxtwx);
    vd cacc = splat(0.0);
    int k = 0;
    for (; k + vm::kLanes <= d.nd; k += vm::kLanes) {
        const vd x = vm::load(d.uy + k) + vr;
        const vd t = vdgr - digam_series(vm::load(d.ly + k), vm::load(d.g + k));
        cacc += vm::select(x >= ten, vm::load(d.uc + k) * t, splat(0.0));
    }
    for (; k < d.nd; ++k) {
        const double x = d.uy[k] + r;
        if (x >= 10.0) s += d.uc[k] * (dgr - digam_series(splat(d.ly[k]), splat(d.g[k]))[0]);
    }
    for_small(*d.small, [&](const int* k4, int n) {
        const vd t = vdgr - digam_small(gather(d.uy, k4) + vr);
        cacc += vm::select(vm::first_lanes(n), gather(d.uc, k4) * t, splat(0.0));
    });
    return s + vm::hsum(cacc);
}

// Sum over samples of the NB log-likelihood terms of lp (log alpha a):
// -r l1p + [y > 0] (lgamma(y + r) - lgamma(r) - y (l1p - a)). With `mag`,
// also the sum of the terms' magnitudes (the scale of the sum's rounding
// error, for the tie tests of the line search).
EPIONE_VM_INLINE double lp_body(const DispRow& d, double a, double r, double lgr, double* mag) {
    const vd va = splat(a), vr = splat(r), vlgr = splat(lgr), ten = splat(10.0);
    vd acc = splat(0.0), macc = splat(0.0);
    // one sample group's terms: lg = lgamma(y + r) where `use` holds
    auto add = [&](vd y, vd l1p, vd lg, vi use) {
        const vd yl = y * (l1p - va), rl = vr * l1p;
        acc += vm::select(use, lg - vlgr - yl, splat(0.0)) - rl;
        if (mag)
            macc += vm::select(use, vm::abs(lg) + vm::abs(vlgr) + vm::abs(yl), splat(0.0)) +
                    vm::abs(rl);
    };
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {
        const vd y = vm::load(d.y + j), x = y + vr;
        add(y, vm::load(d.l1p + j), lgam_series(x, vm::load(d.ly + j), vm::load(d.g + j)),
            (y != splat(0.0)) & (x >= ten));
    }
    for (; j < d.m; ++j) {  // one sample in lane 0, the others masked
        const vd y = splat(d.y[j]), x = y + vr;
        const vi lane0 = vm::first_lanes(1);
        add(vm::select(lane0, y, splat(0.0)), vm::select(lane0, splat(d.l1p[j]), splat(0.0)),
            lgam_series(x, splat(d.ly[j]), splat(d.g[j])),
            lane0 & (y != splat(0.0)) & (x >= ten));
    }
    for_small(*d.small, [&](const int* k4, int n) {
        const vd y = gather(d.y, k4);
        // the -r l1p part was added with the sample's own group
        const vd yl = y * (gather(d.l1p, k4) - va), lg = lgam_small(y + vr);
        const vi use = vm::first_lanes(n);
        acc += vm::select(use, lg - vlgr - yl, splat(0.0));
        if (mag) macc += vm::select(use, vm::abs(lg) + vm::abs(vlgr) + vm::abs(yl), splat(0.0));
    });
    if (mag) *mag = vm::hsum(macc);
    return vm::hsum(acc);
}

// Sum over samples of the derivative terms of dlp (before the r^2 factor):
// l1p - mu alpha q + [y > 0] (digamma(r) - digamma(y + r) + y alpha q).
EPIONE_VM_INLINE double dlp_body(const DispRow& d, double alpha, double r, double dgr) {
    const vd va = splat(alpha), vr = splat(r), vdgr = splat(dgr), ten = splat(10.0);
    vd acc = splat(0.0);
    XtwxSums sums(d.x, d.m, d.dxtwx ? d.p : 0);
    int j = 0;
    for (; j + vm::kLanes <= d.m; j += vm::kLanes) {
        if (d.dxtwx) {
            const vd w = vm::load(d.w + j);
            sums.add(j, -(w * w));
        }
        const vd y = vm::load(d.y + j), q = vm::load(d.q + j), x = y + vr;
        const vd ma = vm::load(d.mu + j) * va;
        const vd series = vdgr - digam_series(vm::load(d.ly + j), vm::load(d.g + j)) +
                          y * va * q;
        const vi use = (y != splat(0.0)) & (x >= ten);
        acc += vm::load(d.l1p + j) - ma * q + vm::select(use, series, splat(0.0));
    }
    double s = vm::hsum(acc);
    for (; j < d.m; ++j) {
        const double y = d.y[j], x = y + r, q = d.q[j];
        if (d.dxtwx) sums.add1(j, -(d.w[j] * d.w[j]));
        s += d.l1p[j] - d.mu[j] * alpha * q;
        if (y != 0 && x >= 10.0) {
            const vd v = digam_series(splat(d.ly[j]), splat(d.g[j]));
            s += dgr - v[0] + y * alpha * q;
        }
    }
    vd sm = splat(0.0);
    for_small(*d.small, [&](const int* k4, int n) {
        const vd y = gather(d.y, k4);
        const vd t = vdgr - digam_small(y + vr) + y * va * gather(d.q, k4);
        sm += vm::select(vm::first_lanes(n), t, splat(0.0));
    });
    s += vm::hsum(sm);
    if (d.dxtwx) sums.finish(d.dxtwx);
    return s;
}

// B = X' diag(w) X (p x p, column-major; X is m x p column-major), or with
// `neg_sq`, X' diag(-w^2) X (the derivative of the Cox-Reid weights).
EPIONE_VM_INLINE void xtwx_body(const double* x, int m, int p, const double* w, bool neg_sq,
                                double* b) {
    for (int k = 0; k < p; ++k)
        for (int l = 0; l <= k; ++l) {
            const double* xk = x + static_cast<size_t>(k) * m;
            const double* xl = x + static_cast<size_t>(l) * m;
            vd acc = splat(0.0);
            int j = 0;
            for (; j + vm::kLanes <= m; j += vm::kLanes) {
                vd wv = vm::load(w + j);
                if (neg_sq) wv = -(wv * wv);
                acc += vm::load(xk + j) * (vm::load(xl + j) * wv);
            }
            double s = vm::hsum(acc);
            for (; j < m; ++j) s += xk[j] * (xl[j] * (neg_sq ? -(w[j] * w[j]) : w[j]));
            b[k + l * p] = s;
            b[l + k * p] = s;
        }
}


// ---- IRLS (deseq.hpp's fit_row) ---------------------------------------------

// sum_j of the mu-dependent part of log dnbinom(y_j; size, mu_j) (nbglm.hpp's
// nb_mu_part): -size log1p(mu / size) + [y > 0] y log(mu / (size + mu)),
// with log1p(z) = log(u) + (z - (u - 1)) / u, u = 1 + z (exact to rounding).
EPIONE_VM_INLINE double nb_loglik_body(const double* y, const double* mu, int m, double size) {
    const vd vs = splat(size), one = splat(1.0);
    const vd tiny = splat(2.2250738585072014e-308), inf = splat(INFINITY);
    vd acc = splat(0.0);
    double fix = 0.0;
    int j = 0;
    for (; j + vm::kLanes <= m; j += vm::kLanes) {
        const vd mv = vm::load(mu + j), yv = vm::load(y + j);
        const vd z = mv / vs, u = one + z, ratio = mv / (vs + mv);
        const vd l1 = vm::log_normal(u) + (z - (u - one)) / u;
        const vd lr = vm::log_normal(ratio);
        const vi ok = (u < inf) & (ratio >= tiny) & (ratio < inf);
        const vi pos = yv != splat(0.0);
        vd t = vm::select(pos, yv * lr, splat(0.0)) - vs * l1;
        if (vm::any(~ok)) {
            for (int l = 0; l < vm::kLanes; ++l) {
                if (ok[l]) continue;
                const double a = -size * std::log1p(mu[j + l] / size);
                fix += y[j + l] == 0 ? a : a + y[j + l] * std::log(mu[j + l] / (size + mu[j + l]));
                t[l] = 0.0;
            }
        }
        acc += t;
    }
    double s = vm::hsum(acc) + fix;
    for (; j < m; ++j) {
        const double a = -size * std::log1p(mu[j] / size);
        s += y[j] == 0 ? a : a + y[j] * std::log(mu[j] / (size + mu[j]));
    }
    return s;
}

// mu = max(nf exp(eta), minmu) (minmu = 0: unclamped).
EPIONE_VM_INLINE void mu_of_eta_body(const double* nf, const double* eta, int m, double minmu,
                                     double* mu) {
    const vd lo = splat(minmu);
    int j = 0;
    for (; j + vm::kLanes <= m; j += vm::kLanes) {
        const vd e = vm::load(eta + j);
        vd v = vm::load(nf + j) * vm::exp_small(e);
        const vi ok = (e >= splat(-700.0)) & (e <= splat(700.0));
        if (vm::any(~ok))
            for (int l = 0; l < vm::kLanes; ++l)
                if (!ok[l]) v[l] = nf[j + l] * std::exp(eta[j + l]);
        const vi below = v < lo;  // NaN stays NaN, as std::max(NaN, lo) keeps it
        vm::store(mu + j, vm::select(below, lo, v));
    }
    for (; j < m; ++j) mu[j] = std::max(nf[j] * std::exp(eta[j]), minmu);
}

// sum over y > 0 of lgamma(y + size) - lgamma(size), given lgamma(size):
// Stirling from log(y + size) where y + size >= 10, lgamma_r elsewhere.
EPIONE_VM_INLINE double lgamma_shift_sum_body(const double* y, int m, double size, double lg_size) {
    const vd vs = splat(size), one = splat(1.0), ten = splat(10.0);
    vd acc = splat(0.0);
    int j = 0;
    for (; j + vm::kLanes <= m; j += vm::kLanes) {
        const vd yv = vm::load(y + j), x = yv + vs;
        const vd lg = lgam_series(x, vm::log_normal(x), one / x) - splat(lg_size);
        const vi pos = yv != splat(0.0), big = x >= ten;
        acc += vm::select(pos & big, lg, splat(0.0));
        const vi sm = pos & ~big;  // 1 <= x < 10
        if (vm::any(sm)) acc += vm::select(sm, lgam_small(x) - splat(lg_size), splat(0.0));
    }
    double s = vm::hsum(acc);
    for (; j < m; ++j) {
        if (y[j] == 0) continue;
        const double x = y[j] + size;
        s += (x < 10.0 ? lgam_fast(x) : lgam_series(splat(x), splat(std::log(x)),
                                                    splat(1.0 / x))[0]) - lg_size;
    }
    return s;
}

// out = log(y / nf + 0.1), the least-squares start of IRLS.
EPIONE_VM_INLINE void log_norm_counts_body(const double* y, const double* nf, int m, double* out) {
    int j = 0;
    for (; j + vm::kLanes <= m; j += vm::kLanes) {
        const vd v = vm::load(y + j) / vm::load(nf + j) + splat(0.1);
        vm::store(out + j, vm::log_normal(v));
        const vi ok = (v >= splat(2.2250738585072014e-308)) & (v < splat(INFINITY));
        if (vm::any(~ok))
            for (int l = 0; l < vm::kLanes; ++l)
                if (!ok[l]) out[j + l] = std::log(v[l]);
    }
    for (; j < m; ++j) out[j] = std::log(y[j] / nf[j] + 0.1);
}

// The IRLS normal equations of one step: A = X' W X and b = X' W z, with
// w = mu / (1 + alpha mu) and the working response z = log(mu / nf) +
// (y - mu) / mu, where log(mu / nf) is eta unless mu was clamped at minmu.
// X is m x p column-major, p <= kMaxSumsP. DESeq2 solves the same
// least-squares problem by QR; the sums here run 4 samples at a time
// instead of the QR's chains of dependent scalar operations.
EPIONE_VM_INLINE void irls_normal_eq_body(const double* x, int m, int p, const double* y,
                                          const double* mu, const double* eta,
                                          const double* nf, double alpha, double minmu,
                                          double* a, double* b) {
    XtwxSums sums(x, m, p);
    vd acc_b[kMaxSumsP];
    double tail_b[kMaxSumsP];
    for (int k = 0; k < p; ++k) {
        acc_b[k] = splat(0.0);
        tail_b[k] = 0.0;
    }
    const vd va = splat(alpha), one = splat(1.0), lo = splat(minmu);
    int j = 0;
    for (; j + vm::kLanes <= m; j += vm::kLanes) {
        const vd mv = vm::load(mu + j);
        const vd w = mv / (one + va * mv);
        vd lmu = vm::load(eta + j);
        const vi clamped = mv == lo;
        if (vm::any(clamped))
            for (int l = 0; l < vm::kLanes; ++l)
                if (clamped[l]) lmu[l] = std::log(mu[j + l] / nf[j + l]);
        const vd wz = w * (lmu + (vm::load(y + j) - mv) / mv);
        sums.add(j, w);
        for (int k = 0; k < p; ++k)
            acc_b[k] += vm::load(x + static_cast<size_t>(k) * m + j) * wz;
    }
    for (; j < m; ++j) {
        const double w = mu[j] / (1.0 + alpha * mu[j]);
        const double lmu = mu[j] == minmu ? std::log(mu[j] / nf[j]) : eta[j];
        const double wz = w * (lmu + (y[j] - mu[j]) / mu[j]);
        sums.add1(j, w);
        for (int k = 0; k < p; ++k) tail_b[k] += x[static_cast<size_t>(k) * m + j] * wz;
    }
    sums.finish(a);
    for (int k = 0; k < p; ++k) b[k] = vm::hsum(acc_b[k]) + tail_b[k];
}

#ifdef EPIONE_VM_X86
EPIONE_VM_AVX2 inline void fill_avx2(const DispRow& d, double alpha, double r) {
    fill_body(d, alpha, r);
}
EPIONE_VM_AVX2 inline double lp_avx2(const DispRow& d, double a, double r, double lgr,
                                     double* mag) {
    return lp_body(d, a, r, lgr, mag);
}
EPIONE_VM_AVX2 inline double dlp_avx2(const DispRow& d, double alpha, double r, double dgr) {
    return dlp_body(d, alpha, r, dgr);
}
EPIONE_VM_AVX2 inline void fill_distinct_avx2(const DispRow& d, double alpha, double r) {
    fill_distinct_body(d, alpha, r);
}
EPIONE_VM_AVX2 inline double lp_distinct_avx2(const DispRow& d, double a, double r, double lgr,
                                              double* mag) {
    return lp_distinct_body(d, a, r, lgr, mag);
}
EPIONE_VM_AVX2 inline double dlp_distinct_avx2(const DispRow& d, double alpha, double r,
                                               double dgr) {
    return dlp_distinct_body(d, alpha, r, dgr);
}
EPIONE_VM_AVX2 inline void xtwx_avx2(const double* x, int m, int p, const double* w,
                                     bool neg_sq, double* b) {
    xtwx_body(x, m, p, w, neg_sq, b);
}
#endif

// (the *_distinct kernels when the row has DispRow::uy)
inline void fill(const DispRow& d, double alpha, double r) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2())
        return d.uy ? fill_distinct_avx2(d, alpha, r) : fill_avx2(d, alpha, r);
#endif
    if (d.uy) return fill_distinct_body(d, alpha, r);
    fill_body(d, alpha, r);
}
inline double lp(const DispRow& d, double a, double r, double lgr, double* mag = nullptr) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2())
        return d.uy ? lp_distinct_avx2(d, a, r, lgr, mag) : lp_avx2(d, a, r, lgr, mag);
#endif
    if (d.uy) return lp_distinct_body(d, a, r, lgr, mag);
    return lp_body(d, a, r, lgr, mag);
}
inline double dlp(const DispRow& d, double alpha, double r, double dgr) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2())
        return d.uy ? dlp_distinct_avx2(d, alpha, r, dgr) : dlp_avx2(d, alpha, r, dgr);
#endif
    if (d.uy) return dlp_distinct_body(d, alpha, r, dgr);
    return dlp_body(d, alpha, r, dgr);
}
inline void xtwx(const double* x, int m, int p, const double* w, bool neg_sq, double* b) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2()) return xtwx_avx2(x, m, p, w, neg_sq, b);
#endif
    xtwx_body(x, m, p, w, neg_sq, b);
}

}  // namespace vec
}  // namespace nb
}  // namespace epione
