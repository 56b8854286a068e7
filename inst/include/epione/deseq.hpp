// DESeq2-style differential testing of a peaks x samples count matrix
// (DESeq2 1.38 defaults; the contract with every constant is
// shared/data/ref/deseq2/SPEC.md). Each function works on a list of rows
// (0-based) of the full count matrix, so all-zero rows and the refit of
// replaced rows need no copies. Rows are independent: work is split into
// fixed blocks of rows, so every thread count gives the same bits.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>
#include "nbglm.hpp"
#include "nblanes.hpp"
#include "radix.hpp"
#include "span.hpp"
#include "threads.hpp"

namespace epione {
namespace deseq {

using nb::Design;

struct DispOptions {
    double min_disp = 1e-8;   // lower bound of every dispersion
    double max_disp = 10;     // max(10, m), set by the caller
    double kappa_0 = 1.0;     // first line-search step
    double disp_tol = 1e-6;   // stop when the log posterior gains less
    int maxit = 100;          // line-search iterations (rejections count)
    double minmu = 0.5;       // lower bound of fitted means
    bool use_cr = true;       // Cox-Reid adjustment
};

struct GlmOptions {
    double beta_tol = 1e-8;   // relative deviance change
    int maxit = 100;
    double minmu = 0.5;
    double large = 30.0;      // |beta| (natural log) that stops IRLS
};

constexpr index_t kBlock = 128;  // rows per task

template <class Par, class F>
void for_rows(Par& par, index_t n, F&& fn) {
    const index_t n_blocks = (n + kBlock - 1) / kBlock;
    par.run(n_blocks, [&](index_t b) {
        const index_t end = std::min(n, (b + 1) * kBlock);
        for (index_t k = b * kBlock; k < end; ++k) fn(k);
    });
}

// The count matrix as R holds it: integers (a count matrix's own type, so
// no n x m double copy is made) or doubles holding integers.
struct Counts {
    const int* iv = nullptr;
    const double* dv = nullptr;
    index_t nrow = 0, ncol = 0;
    double operator()(index_t r, index_t c) const {
        const index_t k = r + c * nrow;
        return iv ? static_cast<double>(iv[k]) : dv[k];
    }
};

template <class V>
inline void read_row(const V& y, index_t i, double* out) {
    for (index_t j = 0; j < y.ncol; ++j) out[j] = y(i, j);
}

// Normalization of the counts: size factors (one per sample) or, as
// DESeq2's normalizationFactors, a factor per count (rows as in the
// counts). row() gathers row i's factors into `out` (m values).
struct Norm {
    const double* sf = nullptr;
    DenseView<const double> nf;
    void row(index_t i, index_t m, double* out) const {
        if (nf.ptr) {
            for (index_t j = 0; j < m; ++j) out[j] = nf(i, j);
        } else {
            std::copy(sf, sf + m, out);
        }
    }
};

// R's median(x) of x without NAs (reorders x): the middle order statistic,
// or for even n R's mean() of the two middle ones (long double sum and
// refinement, as summary.c does it); NaN for no values.
inline double median(std::vector<double>& x) {
    const size_t n = x.size(), h = (n + 1) / 2 - 1;  // 0-based
    if (n == 0) return NAN;
    std::nth_element(x.begin(), x.begin() + h, x.end());
    const double a = x[h];
    if (n % 2) return a;
    const double b = *std::min_element(x.begin() + h + 1, x.end());
    long double s = (static_cast<long double>(a) + b) / 2;
    const long double t = (a - s) + (b - s);
    return static_cast<double>(s + t / 2);
}

// R's mean(x, trim = t) of values sorted ascending (t < 0.5): drop floor(n t)
// values at each end.
inline double trimmed_mean_sorted(const std::vector<double>& v, double trim) {
    const size_t n = v.size();
    const size_t lo = static_cast<size_t>(std::floor(n * trim));
    long double s = 0.0;
    for (size_t k = lo; k < n - lo; ++k) s += v[k];
    return static_cast<double>(s / static_cast<long double>(n - 2 * lo));
}

// R's mean(x, trim = t): drop floor(n t) values at each end (median at 0.5).
// Sorts v in place (for the ~10-100 values of a row, a sort costs less
// than two selections).
inline double trimmed_mean_inplace(std::vector<double>& v, double trim) {
    if (trim >= 0.5) return median(v);
    std::sort(v.begin(), v.end());
    return trimmed_mean_sorted(v, trim);
}
inline double trimmed_mean(std::vector<double> v, double trim) {
    return trimmed_mean_inplace(v, trim);
}

// log(y) of a count, from a table below 8192 filled by std::log (same bits):
// the size factors take two logs of every count.
inline double log_count(double y) {
    constexpr int kTable = 8192;
    static const std::vector<double> table = [] {
        std::vector<double> t(kTable);
        for (int k = 0; k < kTable; ++k) t[k] = std::log(static_cast<double>(k));
        return t;
    }();
    return y >= 0 && y < kTable ? table[static_cast<int>(y)] : std::log(y);
}

// Median-of-ratios size factors (DESeq2 estimateSizeFactorsForMatrix). The
// row sums of logs run down the columns (the matrix's own order) for a
// block of rows at a time, each row's terms still added in sample order.
template <class Par>
void size_factors(const Counts& y, Par& par, Span<double> sf) {
    require_size(sf, y.ncol, "sf");
    std::vector<double> lgm(y.nrow);
    constexpr index_t kRows = 1024;
    par.run((y.nrow + kRows - 1) / kRows, [&](index_t b) {
        const index_t lo = b * kRows, hi = std::min(y.nrow, lo + kRows);
        std::vector<long double> s(hi - lo, 0.0L);
        for (index_t j = 0; j < y.ncol; ++j)
            for (index_t i = lo; i < hi; ++i) s[i - lo] += log_count(y(i, j));
        for (index_t i = lo; i < hi; ++i) lgm[i] = static_cast<double>(s[i - lo] / y.ncol);
    });
    std::vector<char> ok(y.nrow);
    index_t n_ok = 0;
    for (index_t i = 0; i < y.nrow; ++i) n_ok += (ok[i] = std::isfinite(lgm[i]));
    if (n_ok == 0)
        throw input_error("every peak has a zero in at least one sample, so the "
                          "median-of-ratios size factors cannot be computed; use "
                          "sfType = \"poscounts\" or supply sizeFactors");
    par.run(y.ncol, [&](index_t j) {
        std::vector<double> r;
        r.reserve(n_ok);
        for (index_t i = 0; i < y.nrow; ++i)
            if (ok[i] && y(i, j) > 0) r.push_back(log_count(y(i, j)) - lgm[i]);
        sf[j] = std::exp(median(r));
    });
}

// DESeq2's varLogDispEsts: stats::mad(log(gene) - log(fit)) over the rows
// with gene >= min_use, squared (mad = 1.4826 median |x - median(x)|).
inline double var_log_disp(Span<const double> gene, Span<const double> fit, double min_use) {
    std::vector<double> r;
    r.reserve(gene.size());
    for (index_t i = 0; i < gene.size(); ++i) {
        if (!(gene[i] >= min_use)) continue;
        const double v = std::log(gene[i]) - std::log(fit[i]);
        if (!std::isnan(v)) r.push_back(v);
    }
    if (r.empty()) return NAN;
    const double c = median(r);
    for (double& v : r) v = std::fabs(v - c);
    const double mad = 1.4826 * median(r);
    return mad * mad;
}

// x sorted ascending: by radix when every value is a non-negative number
// (the means that results() filters on), else by std::sort.
inline void sort_values(std::vector<double>& x) {
    bool nonneg = true;
    for (double v : x) nonneg &= v >= 0;  // false for NaN too
    if (!nonneg) return std::sort(x.begin(), x.end());
    std::vector<std::uint64_t> k(x.size());
    for (size_t i = 0; i < x.size(); ++i) k[i] = radix::double_key(x[i]);
    radix::sort(k);
    for (size_t i = 0; i < x.size(); ++i) x[i] = radix::key_double(k[i]);
}

// The positions of the non-NaN p in R's order(p, decreasing = TRUE): ties
// keep their order, as R's radix method keeps them.
inline std::vector<std::uint32_t> order_decreasing(Span<const double> p) {
    std::vector<std::uint32_t> pos;
    std::vector<std::uint64_t> key;
    bool nonneg = true;
    for (index_t i = 0; i < p.size(); ++i) {
        if (std::isnan(p[i])) continue;
        pos.push_back(static_cast<std::uint32_t>(i));
        nonneg &= p[i] >= 0;
        key.push_back(~radix::double_key(p[i]));  // complemented: decreasing
    }
    if (!nonneg) {
        std::stable_sort(pos.begin(), pos.end(),
                         [&](std::uint32_t a, std::uint32_t b) { return p[a] > p[b]; });
        return pos;
    }
    const auto o = radix::order(key);
    std::vector<std::uint32_t> out(o.size());
    for (size_t i = 0; i < o.size(); ++i) out[i] = pos[o[i]];
    return out;
}

// R's quantile(x, probs) (type 7, R 4.2's quantile.default) of x without
// NAs: index = 1 + (n - 1) p, interpolated between the order statistics
// floor(index) and ceiling(index) where they differ; one sort for all probs.
inline std::vector<double> quantile7(std::vector<double> x, Span<const double> probs) {
    sort_values(x);
    const double n1 = std::max(static_cast<double>(x.size()) - 1, 0.0);
    std::vector<double> q(probs.size(), NAN);
    if (x.empty()) return q;
    for (index_t k = 0; k < probs.size(); ++k) {
        const double index = 1 + n1 * probs[k];
        const double lo = std::floor(index), hi = std::ceil(index);
        q[k] = x[static_cast<size_t>(lo) - 1];
        const double xh = x[static_cast<size_t>(hi) - 1];
        if (index > lo && xh != q[k]) {
            const double h = index - lo;
            q[k] = (1 - h) * q[k] + h * xh;
        }
    }
    return q;
}

// ---- results(): Wald test, independent filtering (pvalueAdjustment) -----

// results()' Wald test of coefficient k times `sign`: lfc, its standard
// error, stat = lfc / se and the two-sided p-value 2 pnorm(-|stat|), as R
// computes them elementwise (NA rows stay NA).
inline void wald_test(DenseView<const double> beta, DenseView<const double> se, index_t k,
                      double sign, Span<double> lfc, Span<double> lfc_se, Span<double> stat,
                      Span<double> pvalue) {
    for (index_t i = 0; i < beta.nrow; ++i) {
        lfc[i] = sign * beta(i, k);
        lfc_se[i] = se(i, k);
        stat[i] = lfc[i] / lfc_se[i];
        pvalue[i] = 2 * nb::pnorm_upper(std::fabs(stat[i]));
    }
}

// The non-NA p-values in R's order(p, decreasing = TRUE) (`row`, 0-based),
// with the filter statistic of each.
struct PvalueOrder {
    std::vector<std::uint32_t> row;
    std::vector<double> p, filter;
};
inline PvalueOrder pvalue_order(Span<const double> p, Span<const double> filter) {
    PvalueOrder o;
    o.row = order_decreasing(p);
    o.p.resize(o.row.size());
    o.filter.resize(o.row.size());
    for (size_t i = 0; i < o.row.size(); ++i) {
        o.p[i] = p[o.row[i]];
        o.filter[i] = filter[o.row[i]];
    }
    return o;
}

// Rejections of p.adjust(p, "BH") < alpha on the subset filter >= cutoff,
// for each cutoff (non-decreasing: quantiles). The adjusted values are
// cummin(n / (n:1) * p) over p sorted decreasing, so the count is
// n - i + 1 for the first i whose n / (n - i + 1) * p_i is below alpha
// (the same arithmetic).
inline std::vector<double> bh_rejections(const PvalueOrder& o, Span<const double> cutoffs,
                                         double alpha) {
    const index_t n_all = static_cast<index_t>(o.p.size()), n_cut = cutoffs.size();
    // Subset c holds row i iff c < the number of cutoffs <= filter[i]. One
    // pass gives each subset's size and how many of its rows come before
    // `first`, the first p < alpha: no earlier row can reject, as
    // n / (n - k + 1) >= 1 makes the product >= p >= alpha.
    std::vector<index_t> in_all(n_cut + 1, 0), in_pre(n_cut + 1, 0);
    index_t first = 0;
    while (first < n_all && !(o.p[first] < alpha)) ++first;
    for (index_t i = 0; i < n_all; ++i) {
        const double f = o.filter[i];
        const index_t k = std::isnan(f) ? 0 : std::upper_bound(cutoffs.begin(), cutoffs.end(), f) -
                                                  cutoffs.begin();
        in_all[k]++;
        if (i < first) in_pre[k]++;
    }
    std::vector<double> out(n_cut, 0.0);
    index_t n = 0, pre = 0;  // suffix sums: rows with count > c
    std::vector<index_t> n_of(n_cut), pre_of(n_cut);
    for (index_t c = n_cut - 1; c >= 0; --c) {
        n += in_all[c + 1];
        pre += in_pre[c + 1];
        n_of[c] = n;
        pre_of[c] = pre;
    }
    for (index_t c = 0; c < n_cut; ++c) {
        index_t k = pre_of[c];
        const index_t nc = n_of[c];
        for (index_t i = first; i < n_all; ++i) {
            if (!(o.filter[i] >= cutoffs[c])) continue;
            ++k;
            const double v = static_cast<double>(nc) / static_cast<double>(nc - k + 1) * o.p[i];
            if (v < alpha) {
                out[c] = static_cast<double>(nc - k + 1);
                break;
            }
        }
    }
    return out;
}

// p.adjust(p, "BH") of the subset filter >= cutoff written into padj at
// their rows (the caller fills the rest with NA): R's pmin(1, cummin(n /
// (n:1) * p)) in one pass, with its arithmetic.
inline void bh_subset(const PvalueOrder& o, double cutoff, Span<double> padj) {
    index_t n = 0;
    for (double f : o.filter) n += f >= cutoff;
    index_t k = 0;
    double run = INFINITY;
    for (size_t i = 0; i < o.p.size(); ++i) {
        if (!(o.filter[i] >= cutoff)) continue;
        ++k;
        const double v = static_cast<double>(n) / static_cast<double>(n - k + 1) * o.p[i];
        if (v < run || std::isnan(v)) run = v;
        padj[o.row[i]] = std::isnan(run) ? run : std::min(1.0, run);
    }
}

// Per-row baseMean, baseVar (of normalized counts) for the given rows.
template <class Par>
void base_stats(const Counts& y, const Norm& norm,
                Span<const int> rows, Par& par, Span<double> mean, Span<double> var) {
    const index_t m = y.ncol;
    for_rows(par, rows.size(), [&](index_t k) {
        const index_t i = rows[k];
        // per-thread buffers (one allocation per row cost more than the
        // sums); z keeps the normalized counts for the second pass
        thread_local std::vector<double> sf, z;
        sf.resize(m);
        z.resize(m);
        norm.row(i, m, sf.data());
        long double s = 0.0;
        for (index_t j = 0; j < m; ++j) {
            z[j] = y(i, j) / sf[j];
            s += z[j];
        }
        const double mu = static_cast<double>(s / m);
        double ss = 0.0;
        for (index_t j = 0; j < m; ++j) {
            const double e = z[j] - mu;
            ss += e * e;
        }
        mean[k] = mu;
        var[k] = m > 1 ? ss / (m - 1) : NAN;
    });
}

// The linear-model fit of one row's normalized counts z (DESeq2
// linearModelMuNormalized): hat z with hat = X (X'X)^-1 X' (m x m), or
// Q (Q' z) when `q` (m x p, the Q of X's QR) is given.
struct LinearFit {
    Span<const double> hat;
    DenseView<const double> q;
    void operator()(const double* z, int m, int p, double* fit, double* c) const {
        std::fill(fit, fit + m, 0.0);
        if (q.ptr) {  // O(m p) instead of O(m^2) for many samples
            std::fill(c, c + p, 0.0);
            for (int k = 0; k < p; ++k)
                for (int j = 0; j < m; ++j) c[k] += q(j, k) * z[j];
            for (int j = 0; j < m; ++j)
                for (int k = 0; k < p; ++k) fit[j] += q(j, k) * c[k];
        } else {  // DESeq2's hat-matrix product, for its bits
            for (int j = 0; j < m; ++j)
                for (int l = 0; l < m; ++l) fit[j] += z[l] * hat[l + j * m];
        }
    }
};

// The means the dispersion estimates use, one row at a time: stored (rows x
// m, from the GLM) or, for the linear-model shortcut, recomputed from the
// counts (a few flops per sample, so no rows x m matrix is kept).
struct MuRows {
    DenseView<const double> stored;
    const Counts* y = nullptr;
    const Norm* norm = nullptr;
    LinearFit lin;
    double minmu = 0.5;
    // Scratch for one thread (m values each, p for c).
    struct Scratch {
        std::vector<double> sf, z, fit, c;
        Scratch(int m, int p) : sf(m), z(m), fit(m), c(p) {}
    };
    void row(index_t k, index_t i, int p, Scratch& s, double* out) const {
        const int m = static_cast<int>(y->ncol);
        if (stored.ptr) {
            for (int j = 0; j < m; ++j) out[j] = stored(k, j);
            return;
        }
        norm->row(i, m, s.sf.data());
        for (int j = 0; j < m; ++j) s.z[j] = (*y)(i, j) / s.sf[j];
        lin(s.z.data(), m, p, s.fit.data(), s.c.data());
        for (int j = 0; j < m; ++j) out[j] = std::max(s.fit[j] * s.sf[j], minmu);
    }
};

// Rough starting dispersion (DESeq2 roughDispEstimate, momentsDispEstimate)
// from the linear-model fit. When `mu` is set (rows x m) it receives the
// clamped linear mean if `linear_mu`, else it must already hold the GLM mean
// (clamped here).
template <class Par>
void gene_init(const Counts& y, const Norm& norm,
               const Design& d, const LinearFit& lin, Span<const int> rows,
               Span<const double> mean, Span<const double> var, bool linear_mu,
               const DispOptions& opt, Par& par, DenseView<double> mu,
               Span<double> alpha_init) {
    const int m = d.m, p = d.p;
    double xim = 0.0;
    if (norm.nf.ptr) {  // DESeq2: mean(1 / colMeans(normalizationFactors))
        for (int j = 0; j < m; ++j) {
            long double c = 0.0;
            for (index_t k = 0; k < rows.size(); ++k) c += norm.nf(rows[k], j);
            xim += 1.0 / static_cast<double>(c / rows.size());
        }
    } else {
        for (int j = 0; j < m; ++j) xim += 1.0 / norm.sf[j];
    }
    xim /= m;
    for_rows(par, rows.size(), [&](index_t k) {
        const index_t i = rows[k];
        std::vector<double> z(m), fit(m), sf(m), c(p);
        norm.row(i, m, sf.data());
        for (int j = 0; j < m; ++j) z[j] = y(i, j) / sf[j];
        lin(z.data(), m, p, fit.data(), c.data());
        double s = 0.0;
        for (int j = 0; j < m; ++j) {
            const double mt = std::max(1.0, fit[j]);
            s += ((z[j] - mt) * (z[j] - mt) - mt) / (mt * mt);
        }
        const double rough = std::max(s / (m - p), 0.0);
        const double moments = (var[k] - xim * mean[k]) / (mean[k] * mean[k]);
        alpha_init[k] = std::min(std::max(opt.min_disp, std::min(rough, moments)),
                                 opt.max_disp);
        if (!mu.ptr) return;
        for (int j = 0; j < m; ++j) {
            double v = linear_mu ? fit[j] * sf[j] : mu(k, j);
            mu(k, j) = std::max(v, opt.minmu);
        }
    });
}

// Samples padded with zeros to a multiple of the vector width (count 0,
// mean 0, design rows 0) for the dispersion objective: every per-sample
// term of a padding sample is exactly 0 (log(1 + 0 alpha) = 0, weight 0)
// in both the fast and DESeq2's exact arithmetic, so the vector loops
// need no scalar tail (at 6 samples the MAP step runs ~9 % faster).
inline Design padded_design(const Design& d) {
    const int m4 = (d.m + vm::kLanes - 1) / vm::kLanes * vm::kLanes;
    Design out{m4, d.p, std::vector<double>(static_cast<size_t>(m4) * d.p, 0.0)};
    for (int k = 0; k < d.p; ++k)
        for (int j = 0; j < d.m; ++j) out.x[j + static_cast<size_t>(k) * m4] = d(j, k);
    return out;
}

// A row's dispersion objective on demand, with its scratch: the counts and
// means of the listed row read into buffers padded as padded_design(). One
// per block of rows.
struct RowObjective {
    const Counts& y;
    const MuRows& mu;
    const int p;
    std::vector<double> yr, mr;
    MuRows::Scratch ms;
    nb::DispObjective f;
    RowObjective(const Counts& yy, const MuRows& m, const Design& d, const Design& padded,
                 bool use_cr)
        : y(yy), mu(m), p(d.p), yr(padded.m, 0.0), mr(padded.m, 0.0), ms(d.m, d.p),
          f(padded) {
        f.use_cr = use_cr;
    }
    // yr, mr := listed row k (row `row` of the counts)
    void read(index_t k, index_t row) {
        read_row(y, row, yr.data());
        mu.row(k, row, p, ms, mr.data());
    }
    nb::DispObjective& at(index_t k, index_t row) {
        read(k, row);
        f.reset(yr.data(), mr.data());
        return f;
    }
};

// Calls fn(k, f) for each listed row k with the dispersion objective f set
// to that row's counts and means.
template <class Par, class F>
void for_rows_disp(const Counts& y, const Design& d,
                   Span<const int> rows, const MuRows& mu,
                   const DispOptions& opt, Par& par, F&& fn) {
    const index_t n = rows.size(), n_blocks = (n + kBlock - 1) / kBlock;
    const Design dp = padded_design(d);
    par.run(n_blocks, [&](index_t b) {
        RowObjective obj(y, mu, d, dp, opt.use_cr);
        const index_t end = std::min(n, (b + 1) * kBlock);
        for (index_t k = b * kBlock; k < end; ++k) fn(k, obj.at(k, rows[k]));
    });
}

// Whether the dispersion line searches run 4 rows at a time (nblanes.hpp):
// with few samples a row's loops are short and its per-evaluation scalar
// work dominates; with many, nbvec.hpp's samples-in-lanes loops are full.
inline bool disp_in_lanes(const Design& d) {
    return d.p <= nb::vec::kMaxSumsP && d.m <= 24;
}

// The line searches of the listed rows, 4 rows per vector (nblanes.hpp;
// `check_first` as there): start(k, R, lane) sets the lane's prior mean
// if any and returns row k's start log alpha; done(k, result, clear, obj)
// gets the outcome, obj giving the row's scalar objective (exact redo,
// grid).
template <class Par, class Start, class Done>
void lane_rows_disp(const Counts& y, const Design& d, Span<const int> rows,
                    const MuRows& mu, const DispOptions& opt, Par& par,
                    bool use_prior, double prior_var, bool check_first, Start&& start,
                    Done&& done) {
    const index_t n = rows.size(), n_blocks = (n + kBlock - 1) / kBlock;
    const Design dp = padded_design(d);
    par.run(n_blocks, [&](index_t b) {
        const index_t from = b * kBlock, cnt = std::min(n, from + kBlock) - from;
        nb::lanes::Rows R(d);
        R.use_cr = opt.use_cr;
        R.use_prior = use_prior;
        R.prior_var = prior_var;
        RowObjective obj(y, mu, d, dp, opt.use_cr);
        nb::lanes::line_search_rows(
            R, cnt, std::log(opt.min_disp / 10), opt.kappa_0, opt.disp_tol, opt.maxit,
            check_first,
            [&](index_t i, int lane, nb::lanes::Rows& rr) {
                const index_t k = from + i;
                obj.read(k, rows[k]);
                rr.set(lane, obj.yr.data(), obj.mr.data());
                return start(k, rr, lane);
            },
            [&](index_t i, const nb::LineSearchResult& res, bool clear) {
                done(from + i, res, clear, obj);
            });
    });
}

// Gene-wise dispersion (estimateDispersionsGeneEst with niter = 1).
template <class Par>
void gene_dispersion(const Counts& y, const Design& d,
                     Span<const int> rows, const MuRows& mu,
                     Span<const double> alpha_init, const DispOptions& opt,
                     Par& par, Span<double> est, Span<int> iter) {
    const double lo = std::log(opt.min_disp / 10);
    // after the search: the tie test, the start's fallback and the grid;
    // objective() gives the row's scalar objective
    auto store = [&](index_t k, nb::LineSearchResult r, auto&& objective) {
        const double a0 = std::log(alpha_init[k]);
        // the test below reads initial_lp: near a tie, take DESeq2's exact one
        if (r.mag > 0 && std::fabs(r.last_lp - (r.initial_lp + std::fabs(r.initial_lp) / 1e6)) <=
                             nb::kTieMargin * r.mag)
            r = nb::line_search_from(objective(), a0, lo, opt.kappa_0, opt.disp_tol, opt.maxit,
                                     true);
        double a = std::min(std::exp(r.a), opt.max_disp);
        if (r.last_lp < r.initial_lp + std::fabs(r.initial_lp) / 1e6) a = alpha_init[k];
        const bool conv = r.iter < opt.maxit && r.iter != 1;
        if (!conv && a > opt.min_disp * 10) a = std::exp(nb::grid_search(objective(), opt.max_disp));
        est[k] = std::min(std::max(a, opt.min_disp), opt.max_disp);
        iter[k] = r.iter;
    };
    if (disp_in_lanes(d)) {
        lane_rows_disp(y, d, rows, mu, opt, par, false, 1.0, true,
            [&](index_t k, nb::lanes::Rows&, int) { return std::log(alpha_init[k]); },
            [&](index_t k, nb::LineSearchResult r, bool clear, RowObjective& obj) {
                auto objective = [&]() -> nb::DispObjective& { return obj.at(k, rows[k]); };
                if (!clear)  // as nb::line_search: the exact first step, no `mag`
                    r = nb::line_search_from(objective(), std::log(alpha_init[k]), lo,
                                             opt.kappa_0, opt.disp_tol, opt.maxit, true);
                store(k, r, objective);
            });
        return;
    }
    for_rows_disp(y, d, rows, mu, opt, par, [&](index_t k, nb::DispObjective& f) {
        const auto r = nb::line_search(f, std::log(alpha_init[k]), lo, opt.kappa_0,
                                       opt.disp_tol, opt.maxit, true);
        store(k, r, [&]() -> nb::DispObjective& { return f; });
    });
}

// MAP dispersion (estimateDispersionsMAP) with the outlier rule.
template <class Par>
void map_dispersion(const Counts& y, const Design& d,
                    Span<const int> rows, const MuRows& mu,
                    Span<const double> gene_est, Span<const double> fit,
                    double prior_var, double var_log_disp, const DispOptions& opt,
                    Par& par, Span<double> map, Span<int> iter,
                    Span<int> outlier, Span<double> disp) {
    const double sd_log = std::sqrt(var_log_disp);
    auto init = [&](index_t k) {
        const double g = gene_est[k];
        return std::log((!std::isnan(g) && g > 0.1 * fit[k]) ? g : fit[k]);
    };
    auto prior = [&](nb::DispObjective& f, index_t k) {
        f.use_prior = true;
        f.prior_mean = std::log(fit[k]);
        f.prior_var = prior_var;
    };
    // the result, the grid where the search did not converge
    auto store = [&](index_t k, const nb::LineSearchResult& r, auto&& objective) {
        double a = std::exp(r.a);
        if (r.iter >= opt.maxit) a = std::exp(nb::grid_search(objective(), opt.max_disp));
        map[k] = std::min(std::max(a, opt.min_disp), opt.max_disp);
        iter[k] = r.iter;
        const double g = gene_est[k];
        const bool out = std::log(g) > std::log(fit[k]) + 2.0 * sd_log;
        outlier[k] = out;
        disp[k] = out ? g : map[k];
    };
    if (disp_in_lanes(d)) {
        lane_rows_disp(y, d, rows, mu, opt, par, true, prior_var, false,
            [&](index_t k, nb::lanes::Rows& R, int lane) {
                R.prior_mean[lane] = std::log(fit[k]);
                return init(k);
            },
            [&](index_t k, const nb::LineSearchResult& r, bool, RowObjective& obj) {
                store(k, r, [&]() -> nb::DispObjective& {
                    auto& f = obj.at(k, rows[k]);
                    prior(f, k);
                    return f;
                });
            });
        return;
    }
    for_rows_disp(y, d, rows, mu, opt, par, [&](index_t k, nb::DispObjective& f) {
        prior(f, k);
        const auto r = nb::line_search(f, init(k), std::log(opt.min_disp / 10),
                                       opt.kappa_0, opt.disp_tol, opt.maxit);
        store(k, r, [&]() -> nb::DispObjective& { return f; });
    });
}

// ---- the parametric dispersion trend (parametricDispersionFit) -----------

// glm(disps ~ I(1 / means), family = Gamma(link = "identity")) as glm.fit
// evaluates it at coefficients c (mu = c0 + c1 x, x = 1 / mean): the Gamma
// deviance and validity of mu, and the weighted least-squares fit of the
// working response (weights 1 / mu^2) that is glm.fit's next step, in
// centred closed form (two columns).
struct GammaEval {
    double b0, b1, dev;
    bool valid;
};
// The rows are summed in this many fixed chunks (each in order, then the
// chunks in order), in parallel: the sums, and so the fit, do not depend on
// the number of threads.
constexpr index_t kTrendChunks = 16;
template <class Par>
inline GammaEval gamma_eval(const std::vector<double>& y, const std::vector<double>& x,
                            const double* c, Par& par) {
    const index_t n = static_cast<index_t>(y.size());
    const index_t step = (n + kTrendChunks - 1) / kTrendChunks;
    struct Part {
        long double sw = 0, sx = 0, sz = 0, sxx = 0, sxz = 0;
        double dev = 0;
        bool valid = true;
    };
    std::array<Part, kTrendChunks> part{};
    auto rows = [&](index_t t, auto&& fn) {
        for (index_t i = t * step; i < std::min(n, (t + 1) * step); ++i) fn(part[t], i);
    };
    par.run(kTrendChunks, [&](index_t t) {
        rows(t, [&](Part& q, index_t i) {
            const double mu = c[0] + c[1] * x[i];
            q.valid &= std::isfinite(mu) && mu > 0;
            const double w = 1.0 / (mu * mu), z = mu + (y[i] - mu);
            q.sw += w;
            q.sx += w * x[i];
            q.sz += w * z;
            q.dev += -2.0 * (std::log(y[i] == 0 ? 1.0 : y[i] / mu) - (y[i] - mu) / mu);
        });
    });
    long double sw = 0, sx = 0, sz = 0;
    double dev = 0;
    bool valid = true;
    for (const Part& q : part) {
        sw += q.sw;
        sx += q.sx;
        sz += q.sz;
        dev += q.dev;
        valid &= q.valid;
    }
    const double xbar = static_cast<double>(sx / sw), zbar = static_cast<double>(sz / sw);
    par.run(kTrendChunks, [&](index_t t) {
        rows(t, [&](Part& q, index_t i) {
            const double mu = c[0] + c[1] * x[i];
            const double w = 1.0 / (mu * mu), dx = x[i] - xbar;
            q.sxx += w * dx * dx;
            q.sxz += w * dx * (mu + (y[i] - mu) - zbar);
        });
    });
    long double sxx = 0, sxz = 0;
    for (const Part& q : part) {
        sxx += q.sxx;
        sxz += q.sxz;
    }
    const double b1 = static_cast<double>(sxz / sxx);
    return {zbar - b1 * xbar, b1, dev, valid};
}

// glm.fit's IRLS from `c` (deviance rule 1e-8, 25 iterations, step halving
// while the deviance is not finite or mu invalid); c is updated. Each
// evaluation's least-squares fit is the next iteration's step, so one pass
// over the rows per iteration. Returns whether it converged.
template <class Par>
inline bool gamma_glm(const std::vector<double>& y, const std::vector<double>& x, double* c,
                      Par& par) {
    double old[2] = {c[0], c[1]};
    GammaEval e = gamma_eval(y, x, c, par);
    double devold = e.dev;
    for (int iter = 0; iter < 25; ++iter) {
        c[0] = e.b0;
        c[1] = e.b1;
        if (!std::isfinite(c[0]) || !std::isfinite(c[1])) return false;
        e = gamma_eval(y, x, c, par);
        while (!std::isfinite(e.dev) || !e.valid) {
            c[0] = (c[0] + old[0]) / 2;
            c[1] = (c[1] + old[1]) / 2;
            e = gamma_eval(y, x, c, par);
        }
        if (std::fabs(e.dev - devold) / (std::fabs(e.dev) + 0.1) < 1e-8) return true;
        devold = e.dev;
        old[0] = c[0];
        old[1] = c[1];
    }
    return false;
}

// DESeq2's parametricDispersionFit on the rows with disps > min_use: from
// (0.1, 1), refit the Gamma GLM on the rows whose residual disps / fit lies
// in (1e-4, 15) until the coefficients settle (sum of squared log ratios <
// 1e-6, summed in long double as R's sum()) after a converged glm. Returns
// (asymptDisp, extraPois); `ok` is false where DESeq2 stops with an error
// (a coefficient <= 0 or NaN, or more than 10 rounds), which sends it to the
// local fit.
template <class Par>
inline std::array<double, 2> parametric_trend(Span<const double> means, Span<const double> disps,
                                              double min_use, Par& par, bool& ok) {
    double c[2] = {0.1, 1.0};
    std::vector<double> y, x;
    for (int round = 0;; ++round) {
        y.clear();
        x.clear();
        for (index_t i = 0; i < means.size(); ++i) {
            if (!(disps[i] > min_use)) continue;
            const double r = disps[i] / (c[0] + c[1] / means[i]);
            if (r > 1e-4 && r < 15) {
                y.push_back(disps[i]);
                x.push_back(1 / means[i]);
            }
        }
        const double old[2] = {c[0], c[1]};
        const bool conv = gamma_glm(y, x, c, par);
        if (!(c[0] > 0 && c[1] > 0)) break;
        const double l0 = std::log(c[0] / old[0]), l1 = std::log(c[1] / old[1]);
        const long double ss = static_cast<long double>(l0 * l0) + l1 * l1;
        if (static_cast<double>(ss) < 1e-6 && conv) {
            ok = true;
            return {c[0], c[1]};
        }
        if (round + 1 > 10) break;
    }
    ok = false;
    return {c[0], c[1]};
}

// Cook's distances (calculateCooksDistance with robustMethodOfMomentsDisp).
// `cell` gives each sample's distinct-design-row index.
struct CooksDesign {
    std::vector<int> cell, size;
    int n_cell = 0, p = 0;
    bool any3 = false;
    CooksDesign() = default;
    CooksDesign(std::vector<int> c, int n_coef) : cell(std::move(c)), p(n_coef) {
        n_cell = *std::max_element(cell.begin(), cell.end()) + 1;
        size.assign(n_cell, 0);
        for (int k : cell) size[k]++;
        for (int k : size) any3 |= k >= 3;
    }
};

// The squares (v - c)^2 of v (sorted ascending) in ascending order, by
// merging the two monotone runs on either side of c (rounding keeps each
// run monotone): the same values a sort would give, in O(m).
inline void sorted_squares(const std::vector<double>& v, double c, std::vector<double>& out) {
    const size_t n = v.size();
    size_t r = std::lower_bound(v.begin(), v.end(), c) - v.begin();
    size_t l = r;  // v[0, l) lie below c, their squares fall as the index rises
    out.resize(n);
    for (size_t k = 0; k < n; ++k) {
        const double sl = l > 0 ? (v[l - 1] - c) * (v[l - 1] - c) : INFINITY;
        const double sr = r < n ? (v[r] - c) * (v[r] - c) : INFINITY;
        if (r >= n || (l > 0 && sl <= sr)) {
            out[k] = sl;
            --l;
        } else {
            out[k] = sr;
            ++r;
        }
    }
}

// DESeq2's floor of the robust dispersion. Each Cook's distance falls as
// the dispersion rises (also in rounded arithmetic: every step is
// monotone), so the distances at the floor bound the true ones from above.
constexpr double kMinRobustDisp = 0.04;

// Robust method-of-moments dispersion of one row (counts yr, size factors
// sf): trimmed cell variances when a cell has >= 3 samples, else one
// trimmed variance over all samples.
inline double robust_disp(const double* yr, const double* sf, const CooksDesign& c) {
    const int m = static_cast<int>(c.cell.size());
    auto bin = [](int n) { return n <= 3.5 ? 0 : (n <= 23.5 ? 1 : 2); };
    const double trim[3] = {1.0 / 3, 1.0 / 4, 1.0 / 8}, scale[3] = {2.04, 1.86, 1.51};
    // per-thread buffers: this runs once per row inside the GLM fit, and
    // allocating them per row cost more than the arithmetic
    thread_local std::vector<double> z, zc, sq;
    z.resize(m);
    long double s = 0.0;
    for (int j = 0; j < m; ++j) { z[j] = yr[j] / sf[j]; s += z[j]; }
    const double mean = static_cast<double>(s / m);
    double v = -INFINITY;
    // trimmed variance of one set of values: zc is left sorted by the
    // trimmed mean, so the squared deviations come sorted by a merge
    auto trimmed_var = [&](double t) {
        const double cm = trimmed_mean_inplace(zc, t);
        sorted_squares(zc, cm, sq);
        return trimmed_mean_sorted(sq, t);
    };
    if (c.any3) {
        for (int k = 0; k < c.n_cell; ++k) {
            if (c.size[k] < 3) continue;
            zc.clear();
            for (int j = 0; j < m; ++j) if (c.cell[j] == k) zc.push_back(z[j]);
            const int b = bin(c.size[k]);
            v = std::max(v, scale[b] * trimmed_var(trim[b]));
        }
    } else {
        zc.assign(z.begin(), z.end());
        v = 1.51 * trimmed_var(1.0 / 8);
    }
    return std::max((v - mean) / (mean * mean), kMinRobustDisp);
}

// Cook's distances of one row from its fitted means and hat values at the
// dispersion arob.
inline void cooks_row_at(const double* yr, const double* mu, const double* hat,
                         const CooksDesign& c, double arob, double* out) {
    for (size_t j = 0; j < c.cell.size(); ++j) {
        const double u = mu[j], h = hat[j];
        const double var = u + arob * u * u;
        const double e = yr[j] - u;
        out[j] = e * e / var / c.p * h / ((1 - h) * (1 - h));
    }
}
inline void cooks_row(const double* yr, const double* sf, const double* mu,
                      const double* hat, const CooksDesign& c, double* out) {
    cooks_row_at(yr, mu, hat, c, robust_disp(yr, sf, c), out);
}

// Householder QR least squares of the (m + p) x p system [sqrt(w) X; sqrt(L)]
// against [sqrt(w) z; 0], as DESeq2's fitBeta (useQR = TRUE) solves it.
// `v` is scratch of at least `rows` values.
inline void qr_solve(std::vector<double>& a, int rows, int p,
                     std::vector<double>& b, std::vector<double>& v, double* beta) {
    for (int c = 0; c < p; ++c) {
        double norm = 0.0;
        for (int r = c; r < rows; ++r) norm += a[r + c * rows] * a[r + c * rows];
        norm = std::sqrt(norm);
        if (norm == 0.0) continue;
        const double alpha = a[c + c * rows] > 0 ? -norm : norm;
        const int len = rows - c;
        for (int r = c; r < rows; ++r) v[r - c] = a[r + c * rows];
        v[0] -= alpha;
        double vv = 0.0;
        for (int r = 0; r < len; ++r) vv += v[r] * v[r];
        if (vv == 0.0) continue;
        auto reflect = [&](double* col) {
            double s = 0.0;
            for (int r = c; r < rows; ++r) s += v[r - c] * col[r];
            s = 2.0 * s / vv;
            for (int r = c; r < rows; ++r) col[r] -= s * v[r - c];
        };
        for (int k = c; k < p; ++k) reflect(&a[k * rows]);
        reflect(b.data());
    }
    for (int c = p - 1; c >= 0; --c) {
        double s = b[c];
        for (int k = c + 1; k < p; ++k) s -= a[c + k * rows] * beta[k];
        beta[c] = s / a[c + c * rows];
    }
}

// Output of the NB GLM fit for a set of rows (natural-log coefficients).
struct GlmOut {
    DenseView<double> beta;      // rows x p
    DenseView<double> beta_var;  // rows x p, diag of the sandwich covariance
    DenseView<double> mu;        // rows x m, unclamped nf * exp(X beta); may be empty
    DenseView<double> hat;       // rows x m, may be empty (ptr == nullptr)
    Span<int> iter;
    Span<double> log_like;       // full NB log-likelihood at unclamped mu
    DenseView<double> cooks;     // rows x m Cook's distances, may be empty
    const CooksDesign* cooks_design = nullptr;  // needed when cooks is set
    // Instead of `cooks` (no rows x m matrix): per-row maxima of the Cook's
    // distances over sample masks (m x K, nonzero = use), and the full rows
    // whose maximum over all samples exceeds `keep_above`.
    DenseView<double> cooks_max;  // rows x K, may be empty
    DenseView<const int> cooks_masks;
    double keep_above = INFINITY;
    struct Kept {
        std::vector<std::vector<index_t>> rows;  // per block of rows
        std::vector<std::vector<double>> vals;   // m values per kept row
    };
    Kept* kept = nullptr;
    // When given (one flag per listed row): rows whose Cook's distances at
    // kMinRobustDisp, upper bounds of the true ones, are all at or below
    // keep_above get those bounds' maxima in cooks_max and the flag 1,
    // skipping the robust dispersion (its sorts are ~1/3 of the fit at 100
    // samples); for callers that only compare the maxima with keep_above
    // or a larger cutoff.
    Span<int> bounded;
};

// Maximum of x[j] over the j with use[j] != 0 (-inf if none), NaN if any
// such x[j] is NaN: the arithmetic of epi_deseq_row_max.
inline double masked_max(const double* x, const int* use, index_t m) {
    double out = -INFINITY;
    for (index_t j = 0; j < m; ++j) {
        if (use && !use[j]) continue;
        if (std::isnan(x[j]) || std::isnan(out)) out = NAN;
        else if (x[j] > out) out = x[j];
    }
    return out;
}

// Scratch of fit_row, allocated once per block of rows.
struct GlmScratch {
    std::vector<double> mu, w, a, b, eta, nb, v, lgc, xtx, ridge, inv;
    GlmScratch(int m, int p)
        : mu(m), w(m), a(static_cast<size_t>(m + p) * p), b(m + p), eta(m), nb(p),
          v(m + p), lgc(m), xtx(p * p), ridge(p * p), inv(p * p) {}
};

// One IRLS step solved through its normal equations (X'WX + Lambda) beta
// = X'Wz, summed 4 samples at a time. Returns false (beta untouched) when p
// is large or the system is ill-conditioned (1-norm condition number above
// 1e8, where the QR of irls_step_qr keeps DESeq2's accuracy).
EPIONE_VM_INLINE bool irls_step_normal_eq(const double* yr, const double* nf, const Design& d,
                                          double alpha, const std::vector<double>& lambda,
                                          const GlmOptions& opt, GlmScratch& s, double* beta) {
    const int p = d.p;
    if (p > nb::vec::kMaxSumsP) return false;
    nb::vec::irls_normal_eq_body(d.x.data(), d.m, p, yr, s.mu.data(), s.eta.data(), nf, alpha,
                                 opt.minmu, s.xtx.data(), s.nb.data());
    for (int k = 0; k < p; ++k) s.xtx[k + k * p] += lambda[k];
    double det;
    if (!nb::invert(s.xtx, p, s.inv, det)) return false;
    auto norm1 = [p](const std::vector<double>& a) {
        double mx = 0.0;
        for (int c = 0; c < p; ++c) {
            double t = 0.0;
            for (int r = 0; r < p; ++r) t += std::fabs(a[r + c * p]);
            mx = std::max(mx, t);
        }
        return mx;
    };
    const double cond = norm1(s.xtx) * norm1(s.inv);
    if (!(cond < 1e8)) return false;
    for (int k = 0; k < p; ++k) {
        double v = 0.0;
        for (int l = 0; l < p; ++l) v += s.inv[k + l * p] * s.nb[l];
        beta[k] = v;
    }
    return true;
}

// One IRLS step as DESeq2's fitBeta solves it: the QR least squares of
// [sqrt(W) X; sqrt(Lambda)] against [sqrt(W) z; 0].
EPIONE_VM_INLINE void irls_step_qr(const double* yr, const double* nf, const Design& d,
                                   double alpha, const std::vector<double>& lambda,
                                   const GlmOptions& opt, GlmScratch& s, double* beta) {
    const int m = d.m, p = d.p, rows = m + p;
    std::fill(s.a.begin(), s.a.end(), 0.0);
    for (int j = 0; j < m; ++j) {
        const double mu = s.mu[j], w = mu / (1.0 + alpha * mu), sw = std::sqrt(w);
        for (int k = 0; k < p; ++k) s.a[j + k * rows] = d(j, k) * sw;
        // log(mu / nf) is eta unless mu was clamped at minmu (one log
        // per sample and iteration less; the same up to rounding)
        const double lmu = mu == opt.minmu ? std::log(mu / nf[j]) : s.eta[j];
        s.b[j] = (lmu + (yr[j] - mu) / mu) * sw;
    }
    for (int k = 0; k < p; ++k) {
        s.a[m + k + k * rows] = std::sqrt(lambda[k]);
        s.b[m + k] = 0.0;
    }
    qr_solve(s.a, rows, p, s.b, s.v, s.nb.data());
    std::copy(s.nb.begin(), s.nb.end(), beta);
}

// IRLS per row (DESeq2 fitBeta; each step through its normal equations,
// or DESeq2's QR when they are ill-conditioned), started from the least
// squares fit of log(y/s + 0.1) (`ls_op`, p x m, is R^-1 Q' of X's QR, so
// start = ls_op * log(y/s + 0.1); natural log). The deviance is the NB
// log-likelihood split into its mu-free constant (computed once per row)
// and the mu part (per iteration). The per-sample loops are nbvec.hpp's;
// fit_row() below picks the AVX2 copy when the CPU has it.
EPIONE_VM_INLINE void fit_row_body(const double* yr, const double* nf, const Design& d,
                                   double alpha, const std::vector<double>& lambda,
                                   const DenseView<const double>& ls_op, const GlmOptions& opt,
                                   GlmScratch& s, double* beta, double* beta_var,
                                   double* mu_out, double* hat_out, int& iter,
                                   double& log_like) {
    const int m = d.m, p = d.p;
    auto& mu = s.mu;
    auto& w = s.w;
    auto& eta = s.eta;
    nb::vec::log_norm_counts_body(yr, nf, m, eta.data());  // eta as scratch
    for (int c = 0; c < p; ++c) {
        double b0 = 0.0;
        for (int j = 0; j < m; ++j) b0 += ls_op(c, j) * eta[j];
        beta[c] = b0;
    }
    auto linpred = [&]() {
        for (int j = 0; j < m; ++j) {
            double t = 0.0;
            for (int k = 0; k < p; ++k) t += d(j, k) * beta[k];
            eta[j] = t;
        }
    };
    const double size = 1.0 / alpha, lg_size = nb::lgam_fast(size);
    // nb_const() summed: lgamma(y + size) - lgamma(size) - lgamma(y + 1)
    double ll_const = nb::vec::lgamma_shift_sum_body(yr, m, size, lg_size);
    for (int j = 0; j < m; ++j)
        if (yr[j] != 0) ll_const -= nb::lgam_count1(yr[j]);
    auto loglik = [&](const double* mm) {
        return ll_const + nb::vec::nb_loglik_body(yr, mm, m, size);
    };
    linpred();
    nb::vec::mu_of_eta_body(nf, eta.data(), m, opt.minmu, mu.data());
    double dev = 0.0, dev_old = 0.0, ll = 0.0;
    bool current = false;  // eta, mu and ll belong to the final beta
    iter = 0;
    for (int t = 0; t < opt.maxit; ++t) {
        iter++;
        if (!irls_step_normal_eq(yr, nf, d, alpha, lambda, opt, s, beta))
            irls_step_qr(yr, nf, d, alpha, lambda, opt, s, beta);
        bool large = false;
        for (int k = 0; k < p; ++k) large |= std::fabs(beta[k]) > opt.large;
        current = !large;
        if (large) { iter = opt.maxit; break; }
        linpred();
        nb::vec::mu_of_eta_body(nf, eta.data(), m, opt.minmu, mu.data());
        ll = loglik(mu.data());
        dev = -2.0 * ll;
        const double conv = std::fabs(dev - dev_old) / (std::fabs(dev) + 0.1);
        if (std::isnan(conv)) { iter = opt.maxit; break; }
        if (t > 0 && conv < opt.beta_tol) break;
        dev_old = dev;
    }
    // Covariance and hat values at the final (clamped) mu, as fitBeta does.
    for (int j = 0; j < m; ++j) w[j] = mu[j] / (1.0 + alpha * mu[j]);
    nb::xtwx(d, w.data(), s.xtx.data());
    s.ridge = s.xtx;
    for (int k = 0; k < p; ++k) s.ridge[k + k * p] += lambda[k];
    double det;
    nb::invert(s.ridge, p, s.inv, det);
    const auto& inv = s.inv;
    for (int k = 0; k < p; ++k) {  // diag(inv * xtx * inv)
        double v = 0.0;
        for (int l = 0; l < p; ++l)
            for (int q = 0; q < p; ++q) v += inv[k + l * p] * s.xtx[l + q * p] * inv[q + k * p];
        beta_var[k] = v;
    }
    if (hat_out)
        for (int j = 0; j < m; ++j) {
            double v = 0.0;
            for (int k = 0; k < p; ++k)
                for (int l = 0; l < p; ++l) v += d(j, k) * inv[l + k * p] * d(j, l);
            hat_out[j] = v * w[j];
        }
    // The unclamped mu and its log-likelihood: those of the last iteration
    // unless a mean sat at minmu (clamped; an exact minmu is recomputed too)
    for (int j = 0; j < m && current; ++j) current = mu[j] != opt.minmu;
    if (current) {
        std::copy(mu.begin(), mu.end(), mu_out);
        log_like = ll;
        return;
    }
    linpred();
    nb::vec::mu_of_eta_body(nf, eta.data(), m, 0.0, mu_out);
    log_like = loglik(mu_out);
}

#ifdef EPIONE_VM_X86
EPIONE_VM_AVX2 inline void fit_row_avx2(const double* yr, const double* nf, const Design& d,
                                        double alpha, const std::vector<double>& lambda,
                                        const DenseView<const double>& ls_op,
                                        const GlmOptions& opt, GlmScratch& s, double* beta,
                                        double* beta_var, double* mu_out, double* hat_out,
                                        int& iter, double& log_like) {
    fit_row_body(yr, nf, d, alpha, lambda, ls_op, opt, s, beta, beta_var, mu_out, hat_out,
                 iter, log_like);
}
#endif
inline void fit_row(const double* yr, const double* nf, const Design& d, double alpha,
                    const std::vector<double>& lambda, const DenseView<const double>& ls_op,
                    const GlmOptions& opt, GlmScratch& s, double* beta, double* beta_var,
                    double* mu_out, double* hat_out, int& iter, double& log_like) {
#ifdef EPIONE_VM_X86
    if (vm::have_avx2())
        return fit_row_avx2(yr, nf, d, alpha, lambda, ls_op, opt, s, beta, beta_var, mu_out,
                            hat_out, iter, log_like);
#endif
    fit_row_body(yr, nf, d, alpha, lambda, ls_op, opt, s, beta, beta_var, mu_out, hat_out,
                 iter, log_like);
}

// NB GLM for the given rows with dispersions `alpha` (one per listed row).
// `lambda` is the ridge on the natural-log scale. The start is DESeq2's
// least-squares fit of log(y/s + 0.1): `ls_op` (p x m) is R^-1 Q' of the QR
// of X, so start = ls_op * log(z + 0.1).
template <class Par>
void fit_glm(const Counts& y, const Norm& norm,
             const Design& d, Span<const int> rows, Span<const double> alpha,
             const std::vector<double>& lambda, const DenseView<const double>& ls_op,
             const GlmOptions& opt, Par& par, GlmOut out) {
    const int m = d.m, p = d.p;
    const index_t n = rows.size(), n_blocks = (n + kBlock - 1) / kBlock;
    if (out.kept) {
        out.kept->rows.assign(n_blocks, {});
        out.kept->vals.assign(n_blocks, {});
    }
    par.run(n_blocks, [&](index_t blk) {
        GlmScratch s(m, p);
        std::vector<double> yr(m), beta(p), bv(p), mu(m), h(m), ck(m), sf(m);
        const index_t end = std::min(n, (blk + 1) * kBlock);
        for (index_t k = blk * kBlock; k < end; ++k) {
            read_row(y, rows[k], yr.data());
            norm.row(rows[k], m, sf.data());
            int iter;
            double ll;
            const bool want_ck = out.cooks.ptr || out.cooks_max.ptr;
            const bool want_h = out.hat.ptr || want_ck;
            fit_row(yr.data(), sf.data(), d, alpha[k], lambda, ls_op, opt, s, beta.data(),
                    bv.data(), mu.data(), want_h ? h.data() : nullptr, iter, ll);
            for (int c = 0; c < p; ++c) {
                out.beta(k, c) = beta[c];
                out.beta_var(k, c) = bv[c];
            }
            if (out.mu.ptr) for (int j = 0; j < m; ++j) out.mu(k, j) = mu[j];
            if (out.hat.ptr) for (int j = 0; j < m; ++j) out.hat(k, j) = h[j];
            if (want_ck) {  // fused: no rows x m mu/hat matrices needed
                const auto& cd = *out.cooks_design;
                bool bound = false;
                if (out.bounded.ptr) {
                    cooks_row_at(yr.data(), mu.data(), h.data(), cd, kMinRobustDisp, ck.data());
                    bound = masked_max(ck.data(), nullptr, m) <= out.keep_above;
                    out.bounded[k] = bound;
                }
                if (!bound) cooks_row(yr.data(), sf.data(), mu.data(), h.data(), cd, ck.data());
                if (out.cooks.ptr) for (int j = 0; j < m; ++j) out.cooks(k, j) = ck[j];
                if (out.cooks_max.ptr)
                    for (index_t c = 0; c < out.cooks_max.ncol; ++c)
                        out.cooks_max(k, c) = masked_max(ck.data(), &out.cooks_masks(0, c), m);
                if (out.kept && masked_max(ck.data(), nullptr, m) > out.keep_above) {
                    out.kept->rows[blk].push_back(k);
                    out.kept->vals[blk].insert(out.kept->vals[blk].end(), ck.begin(), ck.end());
                }
            }
            out.iter[k] = iter;
            out.log_like[k] = ll;
        }
    });
}

// Cook's distances for listed rows from stored means and hat values.
template <class Par>
void cooks_distance(const Counts& y, const Norm& norm,
                    Span<const int> rows, const CooksDesign& c,
                    const DenseView<const double>& mu, const DenseView<const double>& hat,
                    Par& par, DenseView<double> cooks) {
    const index_t m = y.ncol;
    for_rows(par, rows.size(), [&](index_t k) {
        std::vector<double> yr(m), mr(m), hr(m), out(m), sf(m);
        read_row(y, rows[k], yr.data());
        norm.row(rows[k], m, sf.data());
        read_row(mu, k, mr.data());
        read_row(hat, k, hr.data());
        cooks_row(yr.data(), sf.data(), mr.data(), hr.data(), c, out.data());
        for (index_t j = 0; j < m; ++j) cooks(k, j) = out[j];
    });
}

// Trimmed (0.2) mean of the normalized counts per listed row, the base of
// DESeq2's outlier replacement counts.
template <class Par>
void trimmed_base_mean(const Counts& y, const Norm& norm,
                       Span<const int> rows, double trim, Par& par, Span<double> out) {
    const index_t m = y.ncol;
    for_rows(par, rows.size(), [&](index_t k) {
        std::vector<double> z(m), sf(m);
        norm.row(rows[k], m, sf.data());
        for (index_t j = 0; j < m; ++j) z[j] = y(rows[k], j) / sf[j];
        out[k] = trimmed_mean(z, trim);
    });
}

}  // namespace deseq
}  // namespace epione
