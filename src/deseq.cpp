// Glue for the DESeq2-style engine (inst/include/epione/deseq.hpp). Rows
// arrive 1-based (see RowMap); every output is an R vector lent to the core
// or scattered into one.
#define EPIONE_USE_RMATH 1  // lgamma/digamma/dnbinom from R's Rmath (DESeq2's)
#include "glue.h"
#include <algorithm>
#include <deque>
#include <epione/deseq.hpp>

namespace {

using epione::DenseView;
using epione::Span;

epione::nb::Design design_of(Rcpp::NumericMatrix x) {
    epione::nb::Design d;
    d.m = x.nrow();
    d.p = x.ncol();
    d.x.assign(x.begin(), x.end());
    return d;
}
Span<const double> cspan(Rcpp::NumericVector v) { return {REAL(v), XLENGTH(v)}; }

// Size factors (a vector) or normalization factors (a matrix like counts).
epione::deseq::Norm norm_of(Rcpp::NumericVector sf) {
    epione::deseq::Norm n;
    if (Rf_isMatrix(sf)) {
        n.nf = glue::cdense(Rcpp::NumericMatrix(sf));
    } else {
        n.sf = REAL(sf);
    }
    return n;
}
Span<const int> cspan(Rcpp::IntegerVector v) { return {INTEGER(v), XLENGTH(v)}; }

// The counts as R holds them (integer or double matrix), without a copy.
epione::deseq::Counts counts_of(SEXP x) {
    if (!Rf_isMatrix(x) || (TYPEOF(x) != INTSXP && TYPEOF(x) != REALSXP))
        Rcpp::stop("counts must be an integer or double matrix");
    epione::deseq::Counts c;
    c.nrow = Rf_nrows(x);
    c.ncol = Rf_ncols(x);
    if (TYPEOF(x) == INTSXP) c.iv = INTEGER(x); else c.dv = REAL(x);
    return c;
}

// X (X'X)^-1 X' (`hat`, m x m) or the Q of X's QR (`q`, used when it has
// rows): the linear-model fit of the rough dispersion start.
epione::deseq::LinearFit linear_of(Rcpp::NumericVector hat, Rcpp::NumericMatrix q) {
    return {cspan(hat), q.nrow() ? glue::cdense(q) : DenseView<const double>{}};
}

// Stored means (`mu` with rows) or the linear-model means recomputed per row.
epione::deseq::MuRows mu_rows(DenseView<const double> mu, const epione::deseq::Counts& y,
                              const epione::deseq::Norm& norm,
                              const epione::deseq::LinearFit& lin, double minmu) {
    epione::deseq::MuRows r;
    if (mu.nrow) r.stored = mu;
    r.y = &y;
    r.norm = &norm;
    r.lin = lin;
    r.minmu = minmu;
    return r;
}

epione::deseq::DispOptions disp_options(Rcpp::NumericVector o) {
    epione::deseq::DispOptions opt;
    opt.min_disp = o["minDisp"];
    opt.max_disp = o["maxDisp"];
    opt.kappa_0 = o["kappa_0"];
    opt.disp_tol = o["dispTol"];
    opt.maxit = static_cast<int>(o["maxit"]);
    opt.minmu = o["minmu"];
    return opt;
}

// The pipeline's per-row vectors are as long as the counts have rows, NA
// where a row is not fitted (all-zero peaks), so that R never expands them
// (that doubled the n-vectors of a run with any all-zero peak, ~8 MB of its
// 18 MB peak at 50k x 6). The core works on `rows` (1-based from R, read
// without materialising a seq_len()) in order: RowMap gathers per-row
// inputs at `rows` and scatters outputs into NA-filled full-length
// vectors. With n_full = 0 everything is as long as `rows` (one-row refits).
class RowMap {
public:
    RowMap(SEXP rows, R_xlen_t n_full) : rows_(XLENGTH(rows)) {
        if (TYPEOF(rows) != INTSXP) Rcpp::stop("rows must be an integer vector");
        const R_xlen_t r = XLENGTH(rows);
        n_ = n_full > 0 ? n_full : r;
        for (R_xlen_t k = 0; k < r; ++k) {
            rows_[k] = INTEGER_ELT(rows, k) - 1;
            if (rows_[k] < 0 || (n_full > 0 && rows_[k] >= n_full))
                Rcpp::stop("row %d is outside 1..%d", rows_[k] + 1, n_full);
        }
        direct_ = n_full <= 0 || r == n_full;
        for (R_xlen_t k = 0; direct_ && n_full > 0 && k < r; ++k) direct_ = rows_[k] == k;
    }
    // 0-based rows for the core.
    Span<const int> rows() const { return {rows_.data(), size()}; }
    // 1-based number of position k (0-based) in `rows`: its row with n_full,
    // else k + 1.
    int row1(R_xlen_t k) const { return direct_ ? k + 1 : rows_[k] + 1; }

    Span<const double> in(Rcpp::NumericVector v) {
        check(v.size(), "a per-row vector");
        if (direct_) return cspan(v);
        ins_.emplace_back(size());
        for (R_xlen_t k = 0; k < size(); ++k) ins_.back()[k] = v[rows_[k]];
        return {ins_.back().data(), size()};
    }
    // rows x k matrix input; a 0-row matrix stays empty
    DenseView<const double> in(Rcpp::NumericMatrix v) {
        if (v.nrow() == 0 || direct_) return glue::cdense(v);
        check(v.nrow(), "a per-row matrix");
        const R_xlen_t r = size();
        ins_.emplace_back(r * v.ncol());
        for (int c = 0; c < v.ncol(); ++c)
            for (R_xlen_t k = 0; k < r; ++k) ins_.back()[k + c * r] = v(rows_[k], c);
        return {ins_.back().data(), r, v.ncol()};
    }

    // Outputs: `full` gets its n-length (n x ncol) R object; the core
    // writes the returned view, scattered by finish() unless direct.
    Span<double> out(Rcpp::NumericVector& full) {
        full = Rcpp::NumericVector(n_);
        return {dense_out(REAL(full), 1), size()};
    }
    Span<int> out(Rcpp::IntegerVector& full) {
        full = Rcpp::IntegerVector(n_);
        return int_out(INTEGER(full));
    }
    Span<int> out(Rcpp::LogicalVector& full) {  // (NA_LOGICAL is NA_INTEGER)
        full = Rcpp::LogicalVector(n_);
        return int_out(LOGICAL(full));
    }
    DenseView<double> out(Rcpp::NumericMatrix& full, int ncol, bool want = true) {
        full = Rcpp::NumericMatrix(want ? n_ : 0, want ? ncol : 0);
        if (!want) return {};
        return {dense_out(REAL(full), ncol), size(), ncol};
    }
    void finish() {
        const R_xlen_t r = size();
        for (auto& o : douts_)
            for (int c = 0; c < o.ncol; ++c)
                for (R_xlen_t k = 0; k < r; ++k) o.full[rows_[k] + c * n_] = o.tmp[k + c * r];
        for (auto& o : iouts_)
            for (R_xlen_t k = 0; k < r; ++k) o.full[rows_[k]] = o.tmp[k];
        douts_.clear();
        iouts_.clear();
    }

private:
    struct DOut {
        std::vector<double> tmp;
        double* full;
        int ncol;
    };
    struct IOut {
        std::vector<int> tmp;
        int* full;
    };
    std::vector<int> rows_;
    R_xlen_t n_;
    bool direct_;
    std::deque<std::vector<double>> ins_;
    std::deque<DOut> douts_;
    std::deque<IOut> iouts_;

    R_xlen_t size() const { return static_cast<R_xlen_t>(rows_.size()); }
    void check(R_xlen_t len, const char* what) const {
        if (len != n_) Rcpp::stop("%s has %d values for %d rows", what, len, n_);
    }
    Span<int> int_out(int* full) {
        if (direct_) return {full, n_};
        iouts_.push_back({std::vector<int>(size()), full});
        std::fill(full, full + n_, NA_INTEGER);
        return {iouts_.back().tmp.data(), size()};
    }
    double* dense_out(double* full, int ncol) {
        if (direct_) return full;
        std::fill(full, full + n_ * ncol, NA_REAL);
        douts_.push_back({std::vector<double>(size() * ncol), full, ncol});
        return douts_.back().tmp.data();
    }
};

}  // namespace

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_size_factors(SEXP counts, int threads) {
    const auto y = counts_of(counts);
    Rcpp::NumericVector sf(y.ncol);
    glue::TbbPar par(threads);
    epione::deseq::size_factors(y, par, glue::span(sf));
    return sf;
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_base_stats(SEXP counts, Rcpp::NumericVector sf,
                                SEXP rows, int threads, double n_full = 0) {
    RowMap rm(rows, n_full);
    Rcpp::NumericVector mean, var;
    const auto mean_out = rm.out(mean), var_out = rm.out(var);
    glue::TbbPar par(threads);
    epione::deseq::base_stats(counts_of(counts), norm_of(sf), rm.rows(), par, mean_out,
                              var_out);
    rm.finish();
    return Rcpp::List::create(Rcpp::Named("baseMean") = mean, Rcpp::Named("baseVar") = var);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_gene_init(SEXP counts, Rcpp::NumericVector sf,
                               Rcpp::NumericMatrix x, Rcpp::NumericVector hat,
                               Rcpp::NumericMatrix q, SEXP rows,
                               Rcpp::NumericVector mean, Rcpp::NumericVector var,
                               Rcpp::NumericVector opt, bool want_mu, int threads,
                               double n_full = 0) {
    const auto d = design_of(x);
    const auto y = counts_of(counts);
    RowMap rm(rows, n_full);
    Rcpp::NumericMatrix mu_out;
    Rcpp::NumericVector init;
    const auto mu_view = rm.out(mu_out, y.ncol, want_mu);
    const auto init_out = rm.out(init);
    glue::TbbPar par(threads);
    epione::deseq::gene_init(y, norm_of(sf), d, linear_of(hat, q), rm.rows(), rm.in(mean),
                             rm.in(var), true, disp_options(opt), par, mu_view, init_out);
    rm.finish();
    return Rcpp::List::create(Rcpp::Named("mu") = mu_out, Rcpp::Named("alpha_init") = init);
}

// `mu` (rows x samples) holds the GLM means; with no rows, the linear-model
// means are recomputed from `hat`/`q` per row.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_gene_disp(SEXP counts, Rcpp::NumericVector sf, Rcpp::NumericMatrix x,
                               Rcpp::NumericVector hat, Rcpp::NumericMatrix q,
                               SEXP rows, Rcpp::NumericMatrix mu,
                               Rcpp::NumericVector alpha_init, Rcpp::NumericVector opt,
                               int threads, double n_full = 0) {
    const auto d = design_of(x);
    const auto y = counts_of(counts);
    const auto norm = norm_of(sf);
    const auto o = disp_options(opt);
    RowMap rm(rows, n_full);
    Rcpp::NumericVector est;
    Rcpp::IntegerVector iter;
    const auto est_out = rm.out(est);
    const auto iter_out = rm.out(iter);
    glue::TbbPar par(threads);
    epione::deseq::gene_dispersion(y, d, rm.rows(),
                                   mu_rows(rm.in(mu), y, norm, linear_of(hat, q), o.minmu),
                                   rm.in(alpha_init), o, par, est_out, iter_out);
    rm.finish();
    return Rcpp::List::create(Rcpp::Named("dispGeneEst") = est,
                              Rcpp::Named("dispGeneIter") = iter);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_map(SEXP counts, Rcpp::NumericVector sf, Rcpp::NumericMatrix x,
                         Rcpp::NumericVector hat, Rcpp::NumericMatrix q,
                         SEXP rows, Rcpp::NumericMatrix mu,
                         Rcpp::NumericVector gene_est, Rcpp::NumericVector fit,
                         double prior_var, double var_log_disp, Rcpp::NumericVector opt,
                         int threads, double n_full = 0) {
    const auto d = design_of(x);
    const auto y = counts_of(counts);
    const auto norm = norm_of(sf);
    const auto o = disp_options(opt);
    RowMap rm(rows, n_full);
    Rcpp::NumericVector map, disp;
    Rcpp::IntegerVector iter;
    Rcpp::LogicalVector outlier;
    const auto map_out = rm.out(map), disp_out = rm.out(disp);
    const auto iter_out = rm.out(iter), outlier_out = rm.out(outlier);
    glue::TbbPar par(threads);
    epione::deseq::map_dispersion(y, d, rm.rows(),
                                  mu_rows(rm.in(mu), y, norm, linear_of(hat, q), o.minmu),
                                  rm.in(gene_est), rm.in(fit), prior_var, var_log_disp, o,
                                  par, map_out, iter_out, outlier_out, disp_out);
    rm.finish();
    return Rcpp::List::create(Rcpp::Named("dispMAP") = map, Rcpp::Named("dispIter") = iter,
                              Rcpp::Named("dispOutlier") = outlier,
                              Rcpp::Named("dispersion") = disp);
}

// Cook's distances: `cooks_cell` (a cell index per sample) asks for them;
// with `cooks_masks` (samples x K) only their per-row maxima over each mask
// (`cooks_max`) and the rows whose maximum exceeds `keep_above`
// (`kept_rows`, 1-based row numbers as RowMap::row1 gives them, and
// `kept`) come back, else the full rows x samples matrix (`cooks`).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_fit_glm(SEXP counts, Rcpp::NumericVector sf,
                             Rcpp::NumericMatrix x, SEXP rows,
                             Rcpp::NumericVector alpha, Rcpp::NumericVector lambda,
                             Rcpp::NumericMatrix ls_op, bool want_hat, double beta_tol,
                             int maxit, double minmu, int threads, bool want_mu,
                             Rcpp::IntegerVector cooks_cell, Rcpp::IntegerMatrix cooks_masks,
                             double keep_above, double log2e = 0,
                             bool cooks_bound = false, double n_full = 0) {
    const auto d = design_of(x);
    const int n = static_cast<int>(XLENGTH(rows));
    RowMap rm(rows, n_full);
    const bool want_cooks = cooks_cell.size() > 0;
    const bool sparse = want_cooks && cooks_masks.nrow() > 0;
    const bool full = want_cooks && !sparse;
    Rcpp::NumericMatrix beta, beta_var, mu, hat, cooks, cooks_max;
    Rcpp::IntegerVector iter;
    Rcpp::NumericVector ll;
    epione::deseq::CooksDesign cd;
    if (want_cooks) cd = {std::vector<int>(cooks_cell.begin(), cooks_cell.end()), d.p};
    epione::deseq::GlmOptions opt;
    opt.beta_tol = beta_tol;
    opt.maxit = maxit;
    opt.minmu = minmu;
    epione::deseq::GlmOut out{rm.out(beta, d.p), rm.out(beta_var, d.p),
                              rm.out(mu, d.m, want_mu), rm.out(hat, d.m, want_hat),
                              rm.out(iter), rm.out(ll), rm.out(cooks, d.m, full), &cd};
    epione::deseq::GlmOut::Kept kept;
    std::vector<int> bounded(sparse && cooks_bound ? n : 0);
    const auto cooks_max_out = rm.out(cooks_max, sparse ? cooks_masks.ncol() : 0, sparse);
    if (sparse) {
        out.cooks_max = cooks_max_out;
        out.cooks_masks = {INTEGER(cooks_masks), cooks_masks.nrow(), cooks_masks.ncol()};
        out.keep_above = keep_above;
        out.kept = &kept;
        if (cooks_bound) out.bounded = {bounded.data(), n};
    }
    glue::TbbPar par(threads);
    std::vector<double> lam(lambda.begin(), lambda.end());
    epione::deseq::fit_glm(counts_of(counts), norm_of(sf), d, rm.rows(), rm.in(alpha), lam,
                           glue::cdense(ls_op), opt, par, out);
    // Rows for the optim fallback, as fitNbinomGLMs picks them: not
    // converged, or a coefficient NA, or (no variance NA and) a variance
    // <= 0. With log2e, beta and beta_var come back in place as log2
    // coefficients and their standard errors (no R temporaries).
    std::vector<int> redo;
    for (int k = 0; k < n; ++k) {
        bool na_b = false, na_v = false, nonpos = false;
        for (int c = 0; c < d.p; ++c) {
            na_b |= std::isnan(out.beta(k, c));
            na_v |= std::isnan(out.beta_var(k, c));
            nonpos |= out.beta_var(k, c) <= 0;
        }
        if (out.iter[k] >= maxit || na_b || (!na_v && nonpos)) redo.push_back(rm.row1(k));
        if (log2e > 0)
            for (int c = 0; c < d.p; ++c) {
                out.beta(k, c) = out.beta(k, c) * log2e;
                out.beta_var(k, c) = log2e * std::sqrt(std::max(out.beta_var(k, c), 0.0));
            }
    }
    rm.finish();
    // named here: naming them in R would copy both (they are shared there)
    if (!Rf_isNull(Rf_getAttrib(x, R_DimNamesSymbol))) {
        const Rcpp::List dn = Rcpp::List::create(R_NilValue, Rcpp::colnames(x));
        beta.attr("dimnames") = dn;
        beta_var.attr("dimnames") = Rcpp::clone(dn);
    }
    Rcpp::List res = Rcpp::List::create(
        Rcpp::Named("beta") = beta, Rcpp::Named("beta_var") = beta_var,
        Rcpp::Named("mu") = mu, Rcpp::Named("hat") = hat, Rcpp::Named("iter") = iter,
        Rcpp::Named("logLike") = ll, Rcpp::Named("cooks") = cooks,
        Rcpp::Named("redo") = Rcpp::IntegerVector(redo.begin(), redo.end()));
    if (sparse) {
        for (double& v : cooks_max) if (std::isnan(v)) v = NA_REAL;
        std::vector<int> kr;
        for (const auto& b : kept.rows) for (auto k : b) kr.push_back(rm.row1(k));
        Rcpp::NumericMatrix kv(static_cast<int>(kr.size()), d.m);
        size_t r = 0;
        for (const auto& b : kept.vals)
            for (size_t t = 0; t < b.size(); t += d.m, ++r)
                for (int j = 0; j < d.m; ++j) kv(r, j) = b[t + j];
        res["cooks_max"] = cooks_max;
        res["kept_rows"] = Rcpp::IntegerVector(kr.begin(), kr.end());
        res["kept"] = kv;
        std::vector<int> b;  // rows whose maxima are bounds
        for (int k = 0; k < static_cast<int>(bounded.size()); ++k)
            if (bounded[k]) b.push_back(rm.row1(k));
        res["bounded"] = Rcpp::IntegerVector(b.begin(), b.end());
    }
    return res;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_deseq_cooks(SEXP counts, Rcpp::NumericVector sf,
                                    SEXP rows, Rcpp::IntegerVector cell,
                                    int p, Rcpp::NumericMatrix mu, Rcpp::NumericMatrix hat,
                                    int threads, double n_full = 0) {
    const auto y = counts_of(counts);
    RowMap rm(rows, n_full);
    Rcpp::NumericMatrix cooks;
    const auto cooks_out = rm.out(cooks, y.ncol);
    const epione::deseq::CooksDesign cl(std::vector<int>(cell.begin(), cell.end()), p);
    glue::TbbPar par(threads);
    epione::deseq::cooks_distance(y, norm_of(sf), rm.rows(), cl, rm.in(mu), rm.in(hat), par,
                                  cooks_out);
    rm.finish();
    return cooks;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_trimmed_mean(SEXP counts, Rcpp::NumericVector sf,
                                           SEXP rows, double trim,
                                           int threads) {
    RowMap rm(rows, 0);
    Rcpp::NumericVector out(XLENGTH(rows));
    glue::TbbPar par(threads);
    epione::deseq::trimmed_base_mean(counts_of(counts), norm_of(sf), rm.rows(), trim,
                                     par, glue::span(out));
    return out;
}

// One pass over the counts: how many NA, negative and non-integer values.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_count_issues(SEXP counts) {
    // branch-free counts over a hoisted length: this scans every count
    std::int64_t na = 0, neg = 0, frac = 0;
    const R_xlen_t n = XLENGTH(counts);
    if (TYPEOF(counts) == INTSXP) {
        const int* v = INTEGER(counts);
        for (R_xlen_t k = 0; k < n; ++k) {
            na += v[k] == NA_INTEGER;
            neg += v[k] < 0;  // NA_INTEGER is negative too: taken off below
        }
        neg -= na;
    } else {
        const double* v = REAL(counts);
        for (R_xlen_t k = 0; k < n; ++k) {
            const bool nan = std::isnan(v[k]);
            na += nan;
            neg += v[k] < 0;
            frac += !nan && v[k] != std::round(v[k]);
        }
    }
    return Rcpp::NumericVector::create(Rcpp::Named("na") = static_cast<double>(na),
                                       Rcpp::Named("negative") = static_cast<double>(neg),
                                       Rcpp::Named("fraction") = static_cast<double>(frac));
}

// Row maxima of x over the columns flagged in `use` (NA rows stay NA).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_row_max(Rcpp::NumericMatrix x, Rcpp::LogicalVector use) {
    const R_xlen_t n = x.nrow();
    Rcpp::NumericVector out(n, R_NegInf);
    for (int j = 0; j < x.ncol(); ++j) {
        if (!use[j]) continue;
        const double* col = &x[static_cast<R_xlen_t>(j) * n];
        for (R_xlen_t i = 0; i < n; ++i)
            if (std::isnan(col[i]) || std::isnan(out[i])) out[i] = NA_REAL;
            else if (col[i] > out[i]) out[i] = col[i];
    }
    return out;
}

// stats::mad(log(gene) - log(fit))^2 over gene >= min_use (DESeq2's
// varLogDispEsts) without the n-length R temporaries.
// [[Rcpp::export(rng = false)]]
double epi_deseq_var_log_disp(Rcpp::NumericVector gene, Rcpp::NumericVector fit,
                              double min_use) {
    return epione::deseq::var_log_disp(cspan(gene), cspan(fit), min_use);
}

// quantile(x, probs) without names (type 7; x has no NA).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_quantile(Rcpp::NumericVector x, Rcpp::NumericVector probs) {
    const auto q = epione::deseq::quantile7(std::vector<double>(x.begin(), x.end()),
                                            cspan(probs));
    return Rcpp::NumericVector(q.begin(), q.end());
}

// results()' Wald statistic and p-value of coefficient k (1-based) times
// `sign` (one pass, no peak-length R temporaries).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_wald(Rcpp::NumericMatrix beta, Rcpp::NumericMatrix se, int k,
                          double sign) {
    const R_xlen_t n = beta.nrow();
    Rcpp::NumericVector lfc(n), lfc_se(n), stat(n), pvalue(n);
    epione::deseq::wald_test(glue::cdense(beta), glue::cdense(se), k - 1, sign, glue::span(lfc),
                             glue::span(lfc_se), glue::span(stat), glue::span(pvalue));
    return Rcpp::List::create(Rcpp::Named("lfc") = lfc, Rcpp::Named("se") = lfc_se,
                              Rcpp::Named("stat") = stat, Rcpp::Named("pvalue") = pvalue);
}

// Independent filtering: BH rejections at alpha for each cutoff of the
// filter statistic (the p-values are ordered here each call: ~1 ms,
// against three peak-length R vectors kept between the calls).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_num_rej(Rcpp::NumericVector p, Rcpp::NumericVector filter,
                                      Rcpp::NumericVector cutoffs, double alpha) {
    const auto o = epione::deseq::pvalue_order(cspan(p), cspan(filter));
    const auto rej = epione::deseq::bh_rejections(o, cspan(cutoffs), alpha);
    return Rcpp::NumericVector(rej.begin(), rej.end());
}

// p.adjust(p[filter >= cutoff], "BH") at those rows, NA elsewhere.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_bh_subset(Rcpp::NumericVector p, Rcpp::NumericVector filter,
                                        double cutoff) {
    Rcpp::NumericVector out(p.size(), NA_REAL);
    epione::deseq::bh_subset(epione::deseq::pvalue_order(cspan(p), cspan(filter)), cutoff,
                             glue::span(out));
    return out;
}

// DESeq2's parametric dispersion trend on the rows with disps > min_use:
// (asymptDisp, extraPois, ok); ok = 0 where DESeq2 would fall back to the
// local fit. The core keeps no R vectors (at 200k peaks the subsets of each
// round cost R full garbage collections).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_parametric_trend(Rcpp::NumericVector means,
                                               Rcpp::NumericVector disps, double min_use,
                                               int threads) {
    bool ok = false;
    glue::TbbPar par(threads);
    const auto c = epione::deseq::parametric_trend(cspan(means), cspan(disps), min_use, par, ok);
    return Rcpp::NumericVector::create(c[0], c[1], ok ? 1.0 : 0.0);
}

// The per-coefficient columns of mcols(dds) from the log2 coefficients and
// standard errors (rows x p): p coefficient columns, p SE columns and, with
// `wald`, p Wald statistics (beta / se) and p two-sided normal p-values,
// 2 * pnorm(|stat|, lower.tail = FALSE) with R's own pnorm. One vector per
// column, so R makes no temporaries (a 200k-row fit made ~40 MB of them).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_coef_cols(Rcpp::NumericMatrix beta, Rcpp::NumericMatrix se, bool wald) {
    const int n = beta.nrow(), p = beta.ncol();
    Rcpp::List out((wald ? 4 : 2) * p);
    for (int k = 0; k < p; ++k) {
        Rcpp::NumericVector b(n), s(n);
        std::copy(beta.begin() + static_cast<R_xlen_t>(k) * n,
                  beta.begin() + static_cast<R_xlen_t>(k + 1) * n, b.begin());
        std::copy(se.begin() + static_cast<R_xlen_t>(k) * n,
                  se.begin() + static_cast<R_xlen_t>(k + 1) * n, s.begin());
        out[k] = b;
        out[p + k] = s;
        if (!wald) continue;
        Rcpp::NumericVector st(n), pv(n);
        for (int i = 0; i < n; ++i) {
            st[i] = b[i] / s[i];
            pv[i] = 2 * R::pnorm(std::fabs(st[i]), 0.0, 1.0, 0, 0);
        }
        out[2 * p + k] = st;
        out[3 * p + k] = pv;
    }
    return out;
}

// The vectorised log and exp of the engine's kernels (vecmath.hpp, the
// portable copy) on x, so that the tests can hold them to R's log and exp.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_vm_log_exp(Rcpp::NumericVector x) {
    const int n = x.size();
    Rcpp::NumericVector lg(n), ex(n);
    epione::vm::log_n(x.begin(), lg.begin(), n);
    epione::vm::exp_n(x.begin(), ex.begin(), n);
    return Rcpp::List::create(Rcpp::Named("log") = lg, Rcpp::Named("exp") = ex);
}
