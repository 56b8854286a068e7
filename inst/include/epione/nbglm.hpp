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

#ifdef EPIONE_USE_RMATH
extern "C" {
double Rf_lgammafn(double);
double Rf_digamma(double);
double Rf_dnbinom_mu(double, double, double, int);
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

// ---- the dispersion objective (DESeq2's log_posterior / dlog_posterior) ----
// Log posterior of log alpha for one row: NB log-likelihood without the
// alpha-free terms, Cox-Reid adjustment, optional normal prior on log alpha.
struct DispObjective {
    const Design& d;
    const double* y;
    const double* mu;
    bool use_prior = false;
    double prior_mean = 0.0, prior_var = 1.0;
    bool use_cr = true;
    mutable std::vector<double> w, dw, b, db, binv;

    DispObjective(const Design& design, const double* yy, const double* mm)
        : d(design), y(yy), mu(mm), w(design.m), dw(design.m),
          b(design.p * design.p), db(design.p * design.p) {}

    double lp(double a) const {
        const double alpha = std::exp(a);
        double cr = 0.0;
        if (use_cr) {
            // pow(., -1) as DESeq2's Armadillo code writes it (bit parity on
            // flat log-posteriors near minDisp, where ties decide the grid)
            for (int j = 0; j < d.m; ++j) w[j] = std::pow(std::pow(mu[j], -1.0) + alpha, -1.0);
            xtwx(d, w.data(), b.data());
            cr = -0.5 * std::log(det_small(b.data(), d.p));
        }
        const double r = 1.0 / alpha;
        const double lgr = lgam(r);
        double ll = 0.0;
        // y = 0 gives lgamma(0 + r) = lgamma(r): reuse it (same bits)
        for (int j = 0; j < d.m; ++j)
            ll += (y[j] == 0 ? lgr : lgam(y[j] + r)) - lgr -
                  y[j] * std::log(mu[j] + r) - r * std::log(1.0 + mu[j] * alpha);
        double prior = 0.0;
        if (use_prior) prior = -0.5 * (a - prior_mean) * (a - prior_mean) / prior_var;
        return ll + prior + cr;
    }

    double dlp(double a) const {
        const double alpha = std::exp(a);
        double cr = 0.0;
        if (use_cr) {
            for (int j = 0; j < d.m; ++j) {
                const double v = std::pow(mu[j], -1.0) + alpha;
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
        double prior = 0.0;
        if (use_prior) prior = -(a - prior_mean) / prior_var;
        return (ll + cr) * alpha + prior;
    }
};

struct LineSearchResult {
    double a;
    int iter;
    double initial_lp, last_lp;
};

// DESeq2's Armijo line search on log alpha (C++ fitDisp), quirks included:
// rejected proposals count as iterations and the "log alpha -> -inf" exit
// does not update lp.
inline LineSearchResult line_search(const DispObjective& f, double a,
                                    double min_log_alpha, double kappa_0,
                                    double tol, int maxit) {
    const double epsilon = 1.0e-4;
    double lp = f.lp(a), dlp = f.dlp(a), kappa = kappa_0;
    LineSearchResult res{a, 0, lp, lp};
    int iter_accept = 0;
    for (int t = 0; t < maxit; ++t) {
        res.iter++;
        const double a_propose = a + kappa * dlp;
        if (a_propose < -30.0) kappa = (-30.0 - a) / dlp;
        if (a_propose > 10.0) kappa = (10.0 - a) / dlp;
        const double theta_kappa = -f.lp(a + kappa * dlp);
        const double theta_hat_kappa = -lp - kappa * epsilon * dlp * dlp;
        if (theta_kappa <= theta_hat_kappa) {
            iter_accept++;
            a = a + kappa * dlp;
            // DESeq2 re-evaluates lp(a) here; it is the value just computed
            // at the same point, so reuse it (bit-identical, one call less).
            const double lpnew = -theta_kappa;
            const double change = lpnew - lp;
            if (change < tol) { lp = lpnew; break; }
            if (a < min_log_alpha) break;
            lp = lpnew;
            dlp = f.dlp(a);
            kappa = std::min(kappa * 1.1, kappa_0);
            if (iter_accept % 5 == 0) kappa = kappa / 2.0;
        } else {
            kappa = kappa / 2.0;
        }
    }
    res.a = a;
    res.last_lp = lp;
    return res;
}

// DESeq2's fitDispGrid: 20 points on [log 1e-8, log maxDisp], then 20 points
// around the best one; the first maximum wins ties. Returns log alpha.
inline double grid_search(const DispObjective& f, double max_disp) {
    const int n = 20;
    const double lo = std::log(1e-8), hi = std::log(max_disp);
    // DESeq2 takes the spacing as grid[1] - grid[0] of R's seq(), which is
    // not bit-equal to (hi - lo) / 19; the fine grid depends on it.
    const double delta = (lo + (hi - lo) / (n - 1)) - lo;
    // Grid points as R's seq() and Armadillo's linspace() place them.
    auto best_of = [&](double from, double to) {
        const double step = (to - from) / (n - 1);
        double best = -INFINITY, arg = from;
        for (int t = 0; t < n; ++t) {
            const double a = (t == n - 1) ? to : from + t * step;
            const double v = f.lp(a);
            if (t == 0 || v > best) { best = v; arg = a; }
        }
        return arg;
    };
    const double a_hat = best_of(lo, hi);
    return best_of(a_hat - delta, a_hat + delta);
}

}  // namespace nb
}  // namespace epione
