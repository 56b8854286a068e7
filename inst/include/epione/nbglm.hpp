// Negative-binomial building blocks shared by the DESeq2-style engine:
// special functions, tiny dense linear algebra (p x p, p = number of model
// coefficients, usually 2-6) and the per-row dispersion objective.
//
// Special functions: DESeq2 evaluates lgamma, digamma and dnbinom with R's
// Rmath. When the glue defines EPIONE_USE_RMATH (src/deseq.cpp does), the
// same Rmath routines are called (they are pure and thread-safe in the range
// used here), so answers match DESeq2 to the last bits where possible. The
// portable fallbacks keep the core buildable and testable without R.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "nbvec.hpp"

#ifdef EPIONE_USE_RMATH
extern "C" {
double Rf_lgammafn(double);
double Rf_digamma(double);
double Rf_dnbinom_mu(double, double, double, int);
double Rf_pnorm5(double, double, double, int, int);
}
#endif

namespace epione {
namespace nb {

inline double lgam(double x) {
#ifdef EPIONE_USE_RMATH
    return Rf_lgammafn(x);
#else
    return std::lgamma(x);
#endif
}

// Portable digamma: recurrence up to x >= 10, then the asymptotic series.
inline double digam(double x) {
#ifdef EPIONE_USE_RMATH
    return Rf_digamma(x);
#else
    double r = 0.0;
    while (x < 10.0) { r -= 1.0 / x; x += 1.0; }
    const double f = 1.0 / (x * x);
    const double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 +
        f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 +
        f * (-1.0 / 12)))))));
    return r + std::log(x) - 0.5 / x + t;
#endif
}

// P(Z > x) for a standard normal Z (R's pnorm(x, lower.tail = FALSE)).
inline double pnorm_upper(double x) {
#ifdef EPIONE_USE_RMATH
    return Rf_pnorm5(x, 0.0, 1.0, 0, 0);
#else
    return 0.5 * std::erfc(x / std::sqrt(2.0));
#endif
}

// log dnbinom(y; size, mu), R's parameterisation (var = mu + mu^2/size).
inline double ldnbinom_mu(double y, double size, double mu) {
#ifdef EPIONE_USE_RMATH
    return Rf_dnbinom_mu(y, size, mu, 1);
#else
    if (mu == 0) return y == 0 ? 0.0 : -INFINITY;
    return lgam(y + size) - lgam(size) - lgam(y + 1) +
           size * std::log(size / (size + mu)) + y * std::log(mu / (size + mu));
#endif
}

// ---- tiny dense linear algebra (column-major p x p) ----------------------

// Inverse and determinant by Gauss-Jordan with partial pivoting. Returns
// false if the matrix is singular (a zero pivot); det is still written.
inline bool invert(std::vector<double> a, int p, std::vector<double>& inv,
                   double& det) {
    inv.assign(static_cast<size_t>(p) * p, 0.0);
    for (int k = 0; k < p; ++k) inv[k + k * p] = 1.0;
    det = 1.0;
    for (int c = 0; c < p; ++c) {
        int piv = c;
        for (int r = c + 1; r < p; ++r)
            if (std::fabs(a[r + c * p]) > std::fabs(a[piv + c * p])) piv = r;
        const double pv = a[piv + c * p];
        if (pv == 0.0) { det = 0.0; return false; }
        if (piv != c) {
            det = -det;
            for (int k = 0; k < p; ++k) {
                std::swap(a[c + k * p], a[piv + k * p]);
                std::swap(inv[c + k * p], inv[piv + k * p]);
            }
        }
        det *= pv;
        for (int k = 0; k < p; ++k) { a[c + k * p] /= pv; inv[c + k * p] /= pv; }
        for (int r = 0; r < p; ++r) {
            if (r == c) continue;
            const double f = a[r + c * p];
            if (f == 0.0) continue;
            for (int k = 0; k < p; ++k) {
                a[r + k * p] -= f * a[c + k * p];
                inv[r + k * p] -= f * inv[c + k * p];
            }
        }
    }
    return true;
}

// det of a p x p matrix (closed forms for p <= 2, as Armadillo uses).
inline double det_small(const double* b, int p) {
    if (p == 1) return b[0];
    if (p == 2) return b[0] * b[3] - b[2] * b[1];
    std::vector<double> inv;
    double d;
    invert(std::vector<double>(b, b + p * p), p, inv, d);
    return d;
}

// trace(B^-1 dB) for symmetric p x p B (closed form for p <= 2).
inline double trace_inv_prod(const std::vector<double>& b, const std::vector<double>& db,
                             int p, std::vector<double>& binv) {
    if (p == 1) return db[0] / b[0];
    if (p == 2) {
        const double det = b[0] * b[3] - b[1] * b[2];
        return (b[3] * db[0] - b[2] * db[1] - b[1] * db[2] + b[0] * db[3]) / det;
    }
    double det;
    invert(b, p, binv, det);
    double tr = 0.0;
    for (int k = 0; k < p; ++k)
        for (int l = 0; l < p; ++l) tr += binv[k + l * p] * db[l + k * p];
    return tr;
}

// Model matrix X (m x p, column-major) with its shape.
struct Design {
    int m = 0, p = 0;
    std::vector<double> x;
    double operator()(int j, int k) const { return x[j + static_cast<size_t>(k) * m]; }
};

// B = X' diag(w) X into b (p x p).
inline void xtwx(const Design& d, const double* w, double* b) {
    for (int k = 0; k < d.p; ++k)
        for (int l = 0; l <= k; ++l) {
            double s = 0.0;
            for (int j = 0; j < d.m; ++j) s += d(j, k) * (d(j, l) * w[j]);
            b[k + l * d.p] = s;
            b[l + k * d.p] = s;
        }
}

// ---- fast special functions ------------------------------------------------
// Rmath's digamma (via dpsifn) and dnbinom cost 100-150 ns a call and
// dominate the dispersion line search and IRLS. These versions agree with
// Rmath to a few units in the last place; the line search only uses them to
// pick its path, and the grid (where ties decide) keeps Rmath.

// lgamma without the global `signgam` write of std::lgamma (thread safety).
inline double lgam_fast(double x) {
    int sign;
    return ::lgamma_r(x, &sign);
}

// lgamma(x) given lx = log(x): Stirling's series for x >= 10 (the first
// omitted term is below 3e-17 there), lgamma_r below.
inline double lgam_log(double x, double lx) {
    if (x < 10.0) return lgam_fast(x);
    const double g = 1.0 / x, f = g * g;
    const double s = g * (1.0 / 12 + f * (-1.0 / 360 + f * (1.0 / 1260 +
        f * (-1.0 / 1680 + f * (1.0 / 1188 + f * (-691.0 / 360360 +
        f * (1.0 / 156)))))));
    return (x - 0.5) * lx - x + 0.91893853320467274178 + s;  // 0.5 log(2 pi)
}

// digamma for x > 0 given lx = log(x) (used when x >= 10): recurrence up to
// x >= 10, then the asymptotic series (Abramowitz & Stegun 6.3.18; the next
// term is below 5e-17 at x = 10).
inline double digam_log(double x, double lx) {
    double r = 0.0;
    if (x < 10.0) {
        while (x < 10.0) { r -= 1.0 / x; x += 1.0; }
        lx = std::log(x);
    }
    const double f = 1.0 / (x * x);
    const double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 +
        f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 +
        f * (-1.0 / 12)))))));
    return r + lx - 0.5 / x + t;
}
inline double digam_fast(double x) { return digam_log(x, x < 10.0 ? 0.0 : std::log(x)); }

// The mu-dependent part of log dnbinom(y; size, mu): size log(size / (size
// + mu)) + y log(mu / (size + mu)), written with log1p so that it stays
// accurate for size -> inf (dispersion near minDisp). The rest,
// lgamma(y + size) - lgamma(size) - lgamma(y + 1), is nb_const().
inline double nb_mu_part(double y, double size, double mu) {
    const double a = -size * std::log1p(mu / size);
    return y == 0 ? a : a + y * std::log(mu / (size + mu));
}
// lgamma(y + 1) of a count y, from a table below 4096 (same bits as
// lgam_fast: the table is filled by it).
inline double lgam_count1(double y) {
    constexpr int kTable = 4096;
    static const std::vector<double> table = [] {
        std::vector<double> t(kTable);
        for (int k = 0; k < kTable; ++k) t[k] = lgam_fast(k + 1.0);
        return t;
    }();
    return y >= 0 && y < kTable ? table[static_cast<int>(y)] : lgam_fast(y + 1);
}
inline double nb_const(double y, double size) {
    return y == 0 ? 0.0 : lgam_fast(y + size) - lgam_fast(size) - lgam_fast(y + 1);
}

// ---- the dispersion objective (DESeq2's log_posterior / dlog_posterior) ----
// Log posterior of log alpha for one row: NB log-likelihood without the
// alpha-free terms, Cox-Reid adjustment, optional normal prior on log alpha.
// One object serves a block of rows (reset() per row), so the scratch
// vectors are allocated once per block. lp()/dlp() use the fast special
// functions; lp_exact() is DESeq2's arithmetic with Rmath, bit for bit.
struct DispObjective {
    const Design& d;
    const double* y = nullptr;
    const double* mu = nullptr;
    bool use_prior = false;
    double prior_mean = 0.0, prior_var = 1.0;
    bool use_cr = true;
    mutable std::vector<double> inv_mu;  // filled on the first exact call
    mutable bool have_inv_mu = false;
    mutable std::vector<double> w, dw, b, db, binv, l1p, ly, qv, gv;
    mutable std::vector<int> small;  // see vec::DispRow
    mutable double cached_a = NAN, cached_alpha = NAN, cached_r = NAN, cr_det = 1.0;
    // distinct non-zero counts and how many samples hold each (m >=
    // vec::kDistinctMinSamples), built on the row's first fill
    mutable std::vector<double> uy, uc;
    mutable std::vector<int> slot;  // count -> its index in uy, or -1
    mutable bool have_distinct = false;

    explicit DispObjective(const Design& design)
        : d(design), inv_mu(design.m), w(design.m), dw(design.m),
          b(design.p * design.p), db(design.p * design.p), l1p(design.m),
          ly(design.m), qv(design.m), gv(design.m) {}

    void reset(const double* yy, const double* mm) {
        y = yy;
        mu = mm;
        cached_a = NAN;
        have_inv_mu = false;
        have_distinct = false;
    }

    bool by_distinct() const { return d.m >= vec::kDistinctMinSamples; }
    // In first-occurrence order through a table of small counts (a sort
    // of 100 values costs a fifth of a row's search); larger or fractional
    // values each stand alone, which the sums allow.
    void need_distinct() const {
        if (have_distinct) return;
        constexpr int kTable = 4096;
        if (slot.empty()) slot.assign(kTable, -1);
        // the table entry of count v, or null for counts that stand alone
        auto entry = [&](double v) -> int* {
            const bool small_int = v > 0 && v < kTable && v == static_cast<int>(v);
            return small_int ? &slot[static_cast<int>(v)] : nullptr;
        };
        uy.clear();
        uc.clear();
        for (int j = 0; j < d.m; ++j) {
            const double v = y[j];
            if (v == 0) continue;
            if (int* k = entry(v)) {
                if (*k >= 0) {
                    uc[*k] += 1.0;
                    continue;
                }
                *k = static_cast<int>(uy.size());
            }
            uy.push_back(v);
            uc.push_back(1.0);
        }
        for (double v : uy)  // clear the table for the next row
            if (int* k = entry(v)) *k = -1;
        have_distinct = true;
    }

    // 1 / mu for the exact arithmetic, as pow(., -1) as DESeq2's Armadillo
    // code writes it (bit parity on flat log-posteriors near minDisp, where
    // ties decide the grid); only the exact calls need it.
    void need_inv_mu() const {
        if (have_inv_mu) return;
        for (int j = 0; j < d.m; ++j) inv_mu[j] = std::pow(mu[j], -1.0);
        have_inv_mu = true;
    }

    double prior(double a) const {
        return use_prior ? -0.5 * (a - prior_mean) * (a - prior_mean) / prior_var : 0.0;
    }

    // -0.5 log det(X' W X), W = diag(1 / (1 / mu + alpha)); `exact` takes
    // the reciprocal as DESeq2 writes it, pow(., -1).
    double cox_reid(double alpha, bool exact) const {
        if (!use_cr) return 0.0;
        cached_a = NAN;  // w and b are shared with fill()
        need_inv_mu();
        for (int j = 0; j < d.m; ++j)
            w[j] = exact ? std::pow(inv_mu[j] + alpha, -1.0) : 1.0 / (inv_mu[j] + alpha);
        xtwx(d, w.data(), b.data());
        return -0.5 * std::log(det_small(b.data(), d.p));
    }

    double lp_exact(double a) const {
        const double alpha = std::exp(a);
        const double cr = cox_reid(alpha, true);
        const double r = 1.0 / alpha;
        const double lgr = lgam(r);
        double ll = 0.0;
        // y = 0 gives lgamma(0 + r) = lgamma(r): reuse it (same bits)
        for (int j = 0; j < d.m; ++j)
            ll += (y[j] == 0 ? lgr : lgam(y[j] + r)) - lgr -
                  y[j] * std::log(mu[j] + r) - r * std::log(1.0 + mu[j] * alpha);
        return ll + prior(a) + cr;
    }

    // DESeq2's dlog_posterior with Rmath's digamma, bit for bit.
    double dlp_exact(double a) const {
        cached_a = NAN;  // w, b and db are shared with fill()
        need_inv_mu();
        const double alpha = std::exp(a);
        double cr = 0.0;
        if (use_cr) {
            for (int j = 0; j < d.m; ++j) {
                const double v = inv_mu[j] + alpha;
                w[j] = std::pow(v, -1.0);
                dw[j] = -1.0 * std::pow(v, -2.0);
            }
            xtwx(d, w.data(), b.data());
            xtwx(d, dw.data(), db.data());
            double det;
            invert(b, d.p, binv, det);
            double tr = 0.0;  // trace(B^-1 dB)
            for (int k = 0; k < d.p; ++k)
                for (int l = 0; l < d.p; ++l) tr += binv[k + l * d.p] * db[l + k * d.p];
            cr = -0.5 * (det * tr) / det;
        }
        const double r = 1.0 / alpha;
        const double dgr = digam(r);
        double s = 0.0;
        for (int j = 0; j < d.m; ++j) {
            const double ma = mu[j] * alpha;
            s += dgr + std::log(1.0 + ma) - ma * std::pow(1.0 + ma, -1.0) -
                 (y[j] == 0 ? dgr : digam(y[j] + r)) + y[j] * std::pow(mu[j] + r, -1.0);
        }
        const double ll = r * r * s;
        const double pr = use_prior ? -(a - prior_mean) / prior_var : 0.0;
        return (ll + cr) * alpha + pr;
    }

    // Everything lp(a) and dlp(a) need per sample at log alpha = a, computed
    // once: the line search evaluates dlp at the point whose lp it just
    // accepted. q = 1 / (1 + mu alpha), l1p = log(1 + mu alpha) (DESeq2's
    // own form), the Cox-Reid weight w = mu q (= 1 / (1/mu + alpha)) and
    // X' W X, and for y > 0: ly = log(y + 1/alpha), g = 1 / (y + 1/alpha)
    // (Stirling and the digamma series share them).
    void fill(double a) const {
        if (a == cached_a) return;
        const double alpha = std::exp(a), r = 1.0 / alpha;
        auto rw = row();
        const bool fused = use_cr && d.p <= vec::kMaxSumsP;
        if (fused) rw.xtwx = b.data();  // X'WX summed in the same pass
        vec::fill(rw, alpha, r);
        if (use_cr) {
            if (!fused) vec::xtwx(d.x.data(), d.m, d.p, w.data(), false, b.data());
            cr_det = det_small(b.data(), d.p);
        }
        cached_a = a;
        cached_alpha = alpha;
        cached_r = r;
    }
    vec::DispRow row() const {
        vec::DispRow r{y, mu, d.m, l1p.data(), qv.data(), w.data(), ly.data(), gv.data(),
                       &small};
        r.x = d.x.data();
        r.p = d.p;
        if (by_distinct()) {
            need_distinct();
            r.uy = uy.data();
            r.uc = uc.data();
            r.nd = static_cast<int>(uy.size());
        }
        return r;
    }

    // Uses log(mu + r) = log(r) + log(1 + mu alpha) = -a + log(1 + mu alpha).
    // With `mag`, also the sum of the magnitudes of the terms (the scale
    // of the rounding error of lp: lgamma(y + r) - lgamma(r) cancels).
    double lp(double a, double* mag = nullptr) const {
        fill(a);
        const double r = cached_r;
        const double lgr = lgam_log(r, -a);
        const double cr = use_cr ? -0.5 * std::log(cr_det) : 0.0;
        double mg = 0.0;
        const double v = vec::lp(row(), a, r, lgr, mag ? &mg : nullptr) + prior(a) + cr;
        if (mag) *mag = mg + std::fabs(v);
        return v;
    }

    double dlp(double a) const {
        fill(a);
        const double alpha = cached_alpha, r = cached_r;
        auto rw = row();
        const bool fused = use_cr && d.p <= vec::kMaxSumsP;
        if (fused) rw.dxtwx = db.data();  // X'(-w^2)X summed in the same pass
        const double ll = r * r * vec::dlp(rw, alpha, r, digam_log(r, -a));
        double cr = 0.0;
        if (use_cr) {
            if (!fused) vec::xtwx(d.x.data(), d.m, d.p, w.data(), true, db.data());
            cr = -0.5 * trace_inv_prod(b, db, d.p, binv);
        }
        const double pr = use_prior ? -(a - prior_mean) / prior_var : 0.0;
        return (ll + cr) * alpha + pr;
    }
};

struct LineSearchResult {
    double a;
    int iter;
    double initial_lp, last_lp;
    double mag = 0;  // scale of the rounding error of initial_lp when fast
};

// DESeq2's Armijo line search on log alpha (C++ fitDisp) one step at a
// time, quirks included: rejected proposals count as iterations and the
// "log alpha -> -inf" exit does not update lp. The scalar searches below
// and nblanes.hpp's four-row search both run it.
struct SearchStep {
    double a = 0, lp = 0, dlp = 0, kappa = 0, kappa_0 = 0, min_log_alpha = 0, tol = 0;
    int iter = 0, accepts = 0;
    SearchStep() = default;
    SearchStep(double a0, double lp0, double dlp0, double k0, double lo, double t)
        : a(a0), lp(lp0), dlp(dlp0), kappa(k0), kappa_0(k0), min_log_alpha(lo), tol(t) {}
    // The next point to try (an iteration, taken or not); kappa is cut so
    // that it stays in [-30, 10].
    double propose() {
        iter++;
        const double a_propose = a + kappa * dlp;
        if (a_propose < -30.0) kappa = (-30.0 - a) / dlp;
        if (a_propose > 10.0) kappa = (10.0 - a) / dlp;
        return a + kappa * dlp;
    }
    // The proposal's lp: taken if it rises enough (Armijo, epsilon 1e-4),
    // else kappa halves. True when the search stops; dlp_at(a) is asked
    // for the new point only when it goes on.
    template <class D>
    bool take(double lp_new, D&& dlp_at) {
        if (!(-lp_new <= -lp - kappa * 1.0e-4 * dlp * dlp)) {
            kappa = kappa / 2.0;
            return false;
        }
        accepts++;
        a = a + kappa * dlp;
        // DESeq2 re-evaluates lp(a) here; it is the value just computed
        // at the same point, so reuse it (bit-identical, one call less).
        if (lp_new - lp < tol) {
            lp = lp_new;
            return true;
        }
        if (a < min_log_alpha) return true;
        lp = lp_new;
        dlp = dlp_at(a);
        kappa = std::min(kappa * 1.1, kappa_0);
        if (accepts % 5 == 0) kappa = kappa / 2.0;
        return false;
    }
    // Whether the first step's decisions (accept, stop, the -inf exit) at
    // a_new are clear of the fast arithmetic's rounding, given the
    // magnitudes of lp's terms at the start (mag0) and at a_new (mag1);
    // called after propose(), before take().
    bool first_clear(double a_new, double lp_new, double mag0, double mag1) const;
};

// Relative size of a decision margin below which the fast arithmetic may
// not be trusted to take DESeq2's branch: its rounding error is a few ulps
// of the terms' magnitude (1e-16), so 1e-10 leaves a factor of 1e5.
constexpr double kTieMargin = 1e-10;

inline bool SearchStep::first_clear(double a_new, double lp_new, double mag0,
                                    double mag1) const {
    const double margin = kTieMargin * (mag0 + mag1);
    const double accept = (-lp - kappa * 1.0e-4 * dlp * dlp) - (-lp_new);
    const double stop = (lp_new - lp) - tol;
    return std::isfinite(margin) && std::isfinite(accept) && std::isfinite(stop) &&
           std::fabs(accept) > margin && std::fabs(stop) > margin &&
           std::fabs(a_new - min_log_alpha) > kTieMargin * (1 + std::fabs(a));
}

// The search from a. With `exact_first`, the start and the first proposal
// use DESeq2's exact arithmetic: whether the search stops after one
// iteration (gene-wise: iter == 1 sends the row to the grid) then matches
// DESeq2 even where the first decision is a near tie on a flat posterior.
inline LineSearchResult line_search_from(const DispObjective& f, double a,
                                         double min_log_alpha, double kappa_0,
                                         double tol, int maxit, bool exact_first,
                                         const double* pre = nullptr) {
    // `pre`: lp(a), dlp(a) and lp at the first proposal, already computed
    // in the fast arithmetic (same bits as computing them here)
    const double lp = exact_first ? f.lp_exact(a) : (pre ? pre[0] : f.lp(a));
    const double dlp = exact_first ? f.dlp_exact(a) : (pre ? pre[1] : f.dlp(a));
    SearchStep s(a, lp, dlp, kappa_0, min_log_alpha, tol);
    for (int t = 0; t < maxit; ++t) {
        const double a_new = s.propose();
        const double lp_new = t == 0 && exact_first ? f.lp_exact(a_new)
                                                    : (t == 0 && pre ? pre[2] : f.lp(a_new));
        if (s.take(lp_new, [&](double x) { return f.dlp(x); })) break;
    }
    return LineSearchResult{s.a, s.iter, lp, s.lp};
}

// The line search; with `exact_first`, the first step's decisions (accept,
// stop, the -inf exit) as DESeq2's exact arithmetic takes them. The exact
// arithmetic (Rmath's lgamma and digamma, a third of the gene-wise cost at
// 100 samples) is only run where the fast one lands near a tie; elsewhere
// both take the same branches.
inline LineSearchResult line_search(const DispObjective& f, double a,
                                    double min_log_alpha, double kappa_0,
                                    double tol, int maxit, bool exact_first = false) {
    if (!exact_first) return line_search_from(f, a, min_log_alpha, kappa_0, tol, maxit, false);
    double mag0, mag1;
    const double lp = f.lp(a, &mag0), dlp = f.dlp(a);
    SearchStep s(a, lp, dlp, kappa_0, min_log_alpha, tol);
    const double a_new = s.propose();
    const double lp_new = f.lp(a_new, &mag1);
    if (!s.first_clear(a_new, lp_new, mag0, mag1))
        return line_search_from(f, a, min_log_alpha, kappa_0, tol, maxit, true);
    const double pre[3] = {lp, dlp, lp_new};
    auto res = line_search_from(f, a, min_log_alpha, kappa_0, tol, maxit, false, pre);
    res.mag = mag0;
    return res;
}

// DESeq2's fitDispGrid: 20 points on [log 1e-8, log maxDisp], then 20 points
// around the best one; the first maximum wins ties. Each stage is first
// evaluated in the fast arithmetic; when its best point beats every other by
// more than the rounding margin (kTieMargin of the terms' magnitudes) that
// is DESeq2's choice too, else the stage is redone in DESeq2's exact
// arithmetic (lp_exact), where ties decide. Returns log alpha.
inline double grid_search(const DispObjective& f, double max_disp) {
    constexpr int n = 20;
    const double lo = std::log(1e-8), hi = std::log(max_disp);
    // DESeq2 takes the spacing as grid[1] - grid[0] of R's seq(), which is
    // not bit-equal to (hi - lo) / 19; the fine grid depends on it.
    const double delta = (lo + (hi - lo) / (n - 1)) - lo;
    // Grid points as R's seq() and Armadillo's linspace() place them.
    auto point = [](double from, double to, int t) {
        return t == n - 1 ? to : from + t * ((to - from) / (n - 1));
    };
    auto best_of = [&](double from, double to) {
        double v[n], mag[n];
        int tb = 0;
        for (int t = 0; t < n; ++t) {
            v[t] = f.lp(point(from, to, t), &mag[t]);
            if (v[t] > v[tb]) tb = t;
        }
        bool clear = std::isfinite(v[tb]);
        for (int t = 0; t < n && clear; ++t)
            if (t != tb)
                clear = std::isfinite(mag[t]) &&
                        v[tb] - v[t] > kTieMargin * (mag[tb] + mag[t]);
        if (clear) return point(from, to, tb);
        double best = -INFINITY, arg = from;
        for (int t = 0; t < n; ++t) {
            const double a = point(from, to, t);
            const double e = f.lp_exact(a);
            if (t == 0 || e > best) { best = e; arg = a; }
        }
        return arg;
    };
    const double a_hat = best_of(lo, hi);
    return best_of(a_hat - delta, a_hat + delta);
}

}  // namespace nb
}  // namespace epione
