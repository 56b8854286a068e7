// The dispersion line search on 4 rows at once, one row per vector lane
// (nbvec.hpp runs one row with its samples in the lanes). With the few
// samples of a typical bulk design (6-12) a row's per-sample loops are 2-3
// vector steps, and the per-evaluation scalar work (alpha and 1 / alpha,
// lgamma and digamma of 1 / alpha, the Cox-Reid determinant, the search's
// own bookkeeping) costs as much as the loops; across rows all of it runs 4
// at a time. The arithmetic is the fast path's (nbglm.hpp DispObjective::lp
// and dlp: same formulas and special functions), each lane summing its
// samples in order, so results agree with it to rounding; the line search
// is line_search_from()'s, step for step.
#pragma once
#include <array>
#include <cmath>
#include <vector>
#include "nbglm.hpp"

namespace epione {
namespace nb {
namespace lanes {

using vm::splat;
using vm::vd;
using vm::vi;
constexpr int kL = vm::kLanes;

// Four rows' counts and means, sample-major (sample j of lane l at
// j * kL + l), the shared design, and each lane's point log alpha `a`
// and prior mean (log scale).
struct Rows {
    int m = 0, p = 0;
    const double* x = nullptr;  // m x p column-major
    std::vector<double> xx;     // x_jk x_jl, lower triangle per sample
    std::vector<double> y, mu;
    bool use_cr = true, use_prior = false;
    double prior_var = 1.0;
    double a[kL] = {0, 0, 0, 0}, prior_mean[kL] = {0, 0, 0, 0};

    Rows(const Design& d) : m(d.m), p(d.p), x(d.x.data()), y(d.m * kL, 0.0),
                            mu(d.m * kL, 1.0) {
        const int t = p * (p + 1) / 2;
        xx.resize(static_cast<size_t>(m) * t);
        for (int j = 0; j < m; ++j) {
            int c = 0;
            for (int k = 0; k < p; ++k)
                for (int l = 0; l <= k; ++l)
                    xx[j * t + c++] = d(j, k) * d(j, l);
        }
    }
    void set(int lane, const double* yr, const double* mr) {
        for (int j = 0; j < m; ++j) {
            y[j * kL + lane] = yr[j];
            mu[j * kL + lane] = mr[j];
        }
    }
};

// lgamma(r) and digamma(r) given lr = log r, per lane: the series where
// r >= 10 (nbglm.hpp lgam_log / digam_log), lgamma_r and the recurrence
// below.
EPIONE_VM_INLINE void gamma_of_r(vd r, vd lr, vd& lgr, vd& dgr) {
    const vd g = splat(1.0) / r;
    lgr = vec::lgam_series(r, lr, g);
    dgr = vec::digam_series(lr, g);
    for (int l = 0; l < kL; ++l)
        if (!(r[l] >= 10.0)) {
            lgr[l] = lgam_log(r[l], lr[l]);
            dgr[l] = digam_log(r[l], lr[l]);
        }
}

// lp (log posterior) and dlp (its derivative in log alpha) of each lane's
// row at its a: one pass over the samples. With mag_out, also the sum of
// the magnitudes of lp's terms (DispObjective::lp's `mag`, the scale of
// its rounding error for the tie tests).
EPIONE_VM_INLINE void eval_body(const Rows& R, double* lp_out, double* dlp_out,
                                double* mag_out) {
    const int m = R.m, p = R.p, t = p * (p + 1) / 2;
    vd va, alpha;
    for (int l = 0; l < kL; ++l) {
        va[l] = R.a[l];
        alpha[l] = std::exp(R.a[l]);
    }
    const vd r = splat(1.0) / alpha, one = splat(1.0), ten = splat(10.0);
    vd lgr, dgr;
    gamma_of_r(r, -va, lgr, dgr);
    vd acc_lp = splat(0.0), acc_d = splat(0.0), acc_mag = splat(0.0);
    vd b[vec::kMaxSumsP * (vec::kMaxSumsP + 1) / 2], db[vec::kMaxSumsP * (vec::kMaxSumsP + 1) / 2];
    for (int c = 0; c < t; ++c) b[c] = db[c] = splat(0.0);
    for (int j = 0; j < m; ++j) {
        const vd y = vm::load(&R.y[j * kL]), mu = vm::load(&R.mu[j * kL]);
        const vd den = one + mu * alpha, x = y + r;
        vec::DispTerms dt = vec::disp_terms(den, x);
        if (vm::any(~dt.ok))
            for (int l = 0; l < kL; ++l)
                if (!dt.ok[l])
                    vec::libm_terms(den[l], x[l], dt.q[l], dt.g[l], dt.l1p[l], dt.ly[l]);
        const vd q = dt.q, g = dt.g, l1p = dt.l1p, ly = dt.ly;
        const vd w = mu * q;
        if (R.use_cr) {
            const vd nw2 = -(w * w);
            for (int c = 0; c < t; ++c) {
                const vd xv = splat(R.xx[j * t + c]);
                b[c] += xv * w;
                db[c] += xv * nw2;
            }
        }
        const vi use = y != splat(0.0), sm = use & (x < ten);
        vd lg = vec::lgam_series(x, ly, g), dg = vec::digam_series(ly, g);
        if (vm::any(sm)) {
            lg = vm::select(sm, vec::lgam_small(x), lg);
            dg = vm::select(sm, vec::digam_small(x), dg);
        }
        const vd yl = y * (l1p - va), rl = r * l1p;
        acc_lp += vm::select(use, lg - lgr - yl, splat(0.0)) - rl;
        if (mag_out)
            acc_mag += vm::select(use, vm::abs(lg) + vm::abs(lgr) + vm::abs(yl), splat(0.0)) +
                       vm::abs(rl);
        acc_d += l1p - mu * alpha * q + vm::select(use, dgr - dg + y * alpha * q, splat(0.0));
    }
    // Cox-Reid: -0.5 log det(X'WX) and -0.5 trace((X'WX)^-1 X'(-W^2)X), in
    // the closed forms of det_small / trace_inv_prod for p <= 2
    vd det = splat(1.0), tr = splat(0.0);
    if (R.use_cr && p == 1) {
        det = b[0];
        tr = db[0] / b[0];
    } else if (R.use_cr && p == 2) {  // b: (0,0), (1,0), (1,1)
        det = b[0] * b[2] - b[1] * b[1];
        tr = (b[2] * db[0] - b[1] * db[1] - b[1] * db[1] + b[0] * db[2]) / det;
    } else if (R.use_cr) {
        thread_local std::vector<double> bm, dbm, binv;
        bm.assign(p * p, 0.0);
        dbm.assign(p * p, 0.0);
        for (int l = 0; l < kL; ++l) {
            int c = 0;
            for (int k = 0; k < p; ++k)
                for (int q2 = 0; q2 <= k; ++q2, ++c) {
                    bm[k + q2 * p] = bm[q2 + k * p] = b[c][l];
                    dbm[k + q2 * p] = dbm[q2 + k * p] = db[c][l];
                }
            det[l] = det_small(bm.data(), p);
            tr[l] = trace_inv_prod(bm, dbm, p, binv);
        }
    }
    for (int l = 0; l < kL; ++l) {
        const double cr = R.use_cr ? -0.5 * std::log(det[l]) : 0.0;
        const double cr_d = R.use_cr ? -0.5 * tr[l] : 0.0;
        const double d = R.a[l] - R.prior_mean[l];
        const double pr = R.use_prior ? -0.5 * d * d / R.prior_var : 0.0;
        const double pr_d = R.use_prior ? -d / R.prior_var : 0.0;
        lp_out[l] = acc_lp[l] + pr + cr;
        if (mag_out) mag_out[l] = acc_mag[l] + std::fabs(lp_out[l]);
        dlp_out[l] = (r[l] * r[l] * acc_d[l] + cr_d) * alpha[l] + pr_d;
    }
}

#ifdef EPIONE_VM_X86
EPIONE_VM_AVX2 inline void eval_avx2(const Rows& R, double* lp, double* dlp, double* mag) {
    eval_body(R, lp, dlp, mag);
}
#endif
inline void eval(const Rows& R, double* lp, double* dlp, double* mag) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2()) return eval_avx2(R, lp, dlp, mag);
#endif
    eval_body(R, lp, dlp, mag);
}

// A row's search: which row, and its line search state.
struct Lane {
    index_t k = -1;  // row, -1 when idle
    bool started = false;
    double initial_lp = 0, mag0 = 0;
    SearchStep s;
};

// line_search_from() (fast arithmetic) for rows 0..n-1, four at a time.
// start(k, lane, R) puts row k's counts, means (and prior mean) into the
// lane and returns its start log alpha; done(k, result, clear) receives
// each row's outcome. With `check_first`, as nb::line_search(..., true):
// the result carries the start's magnitude `mag`, and a row whose first
// step is not clear of rounding stops there with clear = false (the caller
// redoes it in DESeq2's exact arithmetic). Lanes are refilled as rows
// finish, so rows with long searches do not hold the others back.
template <class Start, class Done>
void line_search_rows(Rows& R, index_t n, double min_log_alpha, double kappa_0, double tol,
                      int maxit, bool check_first, Start&& start, Done&& done) {
    Lane ln[kL];
    index_t next = 0;
    auto begin = [&](int l) {
        ln[l] = Lane{};
        if (next >= n) return;
        ln[l].k = next;
        R.a[l] = start(next++, l, R);
    };
    for (int l = 0; l < kL; ++l) begin(l);
    double lpv[kL], dlpv[kL], magv[kL];
    for (;;) {
        bool active = false, want_mag = false;
        for (int l = 0; l < kL; ++l) {
            active |= ln[l].k >= 0;
            want_mag |= check_first && ln[l].k >= 0 && (!ln[l].started || ln[l].s.iter == 1);
        }
        if (!active) break;
        eval(R, lpv, dlpv, want_mag ? magv : nullptr);
        for (int l = 0; l < kL; ++l) {
            Lane& ls = ln[l];
            SearchStep& s = ls.s;
            if (ls.k < 0) continue;
            bool finished = false;
            if (!ls.started) {
                ls.started = true;
                ls.initial_lp = lpv[l];
                s = SearchStep(R.a[l], lpv[l], dlpv[l], kappa_0, min_log_alpha, tol);
                if (check_first) ls.mag0 = magv[l];
            } else if (check_first && s.iter == 1 &&
                       !s.first_clear(R.a[l], lpv[l], ls.mag0, magv[l])) {
                done(ls.k, LineSearchResult{s.a, s.iter, ls.initial_lp, s.lp}, false);
                begin(l);
                continue;
            } else {
                finished = s.take(lpv[l], [&](double) { return dlpv[l]; }) || s.iter >= maxit;
            }
            if (finished) {
                LineSearchResult res{s.a, s.iter, ls.initial_lp, s.lp};
                res.mag = ls.mag0;
                done(ls.k, res, true);
                begin(l);
                continue;
            }
            R.a[l] = s.propose();
        }
    }
}

}  // namespace lanes
}  // namespace nb
}  // namespace epione
