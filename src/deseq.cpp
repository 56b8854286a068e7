// Glue for the DESeq2-style engine (inst/include/epione/deseq.hpp). Rows
// arrive 0-based; every output is an R vector lent to the core.
#define EPIONE_USE_RMATH 1  // lgamma/digamma/dnbinom from R's Rmath (DESeq2's)
#include "glue.h"
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

}  // namespace

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_size_factors(Rcpp::NumericMatrix counts, int threads) {
    Rcpp::NumericVector sf(counts.ncol());
    glue::TbbPar par(threads);
    epione::deseq::size_factors(glue::cdense(counts), par, glue::span(sf));
    return sf;
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_base_stats(Rcpp::NumericMatrix counts, Rcpp::NumericVector sf,
                                Rcpp::IntegerVector rows, int threads) {
    Rcpp::NumericVector mean(rows.size()), var(rows.size());
    glue::TbbPar par(threads);
    epione::deseq::base_stats(glue::cdense(counts), norm_of(sf), cspan(rows), par,
                              glue::span(mean), glue::span(var));
    return Rcpp::List::create(Rcpp::Named("baseMean") = mean, Rcpp::Named("baseVar") = var);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_gene_init(Rcpp::NumericMatrix counts, Rcpp::NumericVector sf,
                               Rcpp::NumericMatrix x, Rcpp::NumericVector hat,
                               Rcpp::IntegerVector rows, Rcpp::NumericVector mean,
                               Rcpp::NumericVector var, Rcpp::NumericVector opt,
                               int threads,
                               Rcpp::NumericMatrix q = Rcpp::NumericMatrix(0, 0)) {
    const auto d = design_of(x);
    Rcpp::NumericMatrix mu_out(rows.size(), counts.ncol());
    Rcpp::NumericVector init(rows.size());
    glue::TbbPar par(threads);
    epione::deseq::gene_init(glue::cdense(counts), norm_of(sf), d, cspan(hat),
                             q.nrow() ? glue::cdense(q) : DenseView<const double>{},
                             cspan(rows),
                             cspan(mean), cspan(var), true, disp_options(opt), par,
                             glue::dense(mu_out), glue::span(init));
    return Rcpp::List::create(Rcpp::Named("mu") = mu_out, Rcpp::Named("alpha_init") = init);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_gene_disp(Rcpp::NumericMatrix counts, Rcpp::NumericMatrix x,
                               Rcpp::IntegerVector rows, Rcpp::NumericMatrix mu,
                               Rcpp::NumericVector alpha_init, Rcpp::NumericVector opt,
                               int threads) {
    const auto d = design_of(x);
    Rcpp::NumericVector est(rows.size());
    Rcpp::IntegerVector iter(rows.size());
    glue::TbbPar par(threads);
    epione::deseq::gene_dispersion(glue::cdense(counts), d, cspan(rows), glue::cdense(mu),
                                   cspan(alpha_init), disp_options(opt), par,
                                   glue::span(est), glue::span(iter));
    return Rcpp::List::create(Rcpp::Named("dispGeneEst") = est,
                              Rcpp::Named("dispGeneIter") = iter);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_map(Rcpp::NumericMatrix counts, Rcpp::NumericMatrix x,
                         Rcpp::IntegerVector rows, Rcpp::NumericMatrix mu,
                         Rcpp::NumericVector gene_est, Rcpp::NumericVector fit,
                         double prior_var, double var_log_disp, Rcpp::NumericVector opt,
                         int threads) {
    const auto d = design_of(x);
    const R_xlen_t n = rows.size();
    Rcpp::NumericVector map(n), disp(n);
    Rcpp::IntegerVector iter(n), outlier(n);
    glue::TbbPar par(threads);
    epione::deseq::map_dispersion(glue::cdense(counts), d, cspan(rows), glue::cdense(mu),
                                  cspan(gene_est), cspan(fit), prior_var, var_log_disp,
                                  disp_options(opt), par, glue::span(map), glue::span(iter),
                                  glue::span(outlier), glue::span(disp));
    return Rcpp::List::create(Rcpp::Named("dispMAP") = map, Rcpp::Named("dispIter") = iter,
                              Rcpp::Named("dispOutlier") = Rcpp::LogicalVector(outlier),
                              Rcpp::Named("dispersion") = disp);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_deseq_fit_glm(Rcpp::NumericMatrix counts, Rcpp::NumericVector sf,
                             Rcpp::NumericMatrix x, Rcpp::IntegerVector rows,
                             Rcpp::NumericVector alpha, Rcpp::NumericVector lambda,
                             Rcpp::NumericMatrix ls_op, bool want_hat, double beta_tol,
                             int maxit, double minmu, int threads, bool want_mu = true,
                             Rcpp::IntegerVector cooks_cell = Rcpp::IntegerVector()) {
    const auto d = design_of(x);
    const int n = rows.size();
    const bool want_cooks = cooks_cell.size() > 0;
    Rcpp::NumericMatrix beta(n, d.p), beta_var(n, d.p);
    Rcpp::NumericMatrix mu(want_mu ? n : 0, want_mu ? d.m : 0);
    Rcpp::NumericMatrix hat(want_hat ? n : 0, want_hat ? d.m : 0);
    Rcpp::NumericMatrix cooks(want_cooks ? n : 0, want_cooks ? d.m : 0);
    epione::deseq::CooksDesign cd;
    if (want_cooks) cd = {std::vector<int>(cooks_cell.begin(), cooks_cell.end()), d.p};
    Rcpp::IntegerVector iter(n);
    Rcpp::NumericVector ll(n);
    epione::deseq::GlmOptions opt;
    opt.beta_tol = beta_tol;
    opt.maxit = maxit;
    opt.minmu = minmu;
    epione::deseq::GlmOut out{glue::dense(beta), glue::dense(beta_var),
                              want_mu ? glue::dense(mu) : DenseView<double>{},
                              want_hat ? glue::dense(hat) : DenseView<double>{},
                              glue::span(iter), glue::span(ll),
                              want_cooks ? glue::dense(cooks) : DenseView<double>{}, &cd};
    glue::TbbPar par(threads);
    std::vector<double> lam(lambda.begin(), lambda.end());
    epione::deseq::fit_glm(glue::cdense(counts), norm_of(sf), d, cspan(rows), cspan(alpha),
                           lam, glue::cdense(ls_op), opt, par, out);
    return Rcpp::List::create(Rcpp::Named("beta") = beta, Rcpp::Named("beta_var") = beta_var,
                              Rcpp::Named("mu") = mu, Rcpp::Named("hat") = hat,
                              Rcpp::Named("iter") = iter, Rcpp::Named("logLike") = ll,
                              Rcpp::Named("cooks") = cooks);
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_deseq_cooks(Rcpp::NumericMatrix counts, Rcpp::NumericVector sf,
                                    Rcpp::IntegerVector rows, Rcpp::IntegerVector cell,
                                    int p, Rcpp::NumericMatrix mu, Rcpp::NumericMatrix hat,
                                    int threads) {
    Rcpp::NumericMatrix cooks(rows.size(), counts.ncol());
    const epione::deseq::CooksDesign cl(std::vector<int>(cell.begin(), cell.end()), p);
    glue::TbbPar par(threads);
    epione::deseq::cooks_distance(glue::cdense(counts), norm_of(sf), cspan(rows), cl,
                                  glue::cdense(mu), glue::cdense(hat), par,
                                  glue::dense(cooks));
    return cooks;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_trimmed_mean(Rcpp::NumericMatrix counts, Rcpp::NumericVector sf,
                                           Rcpp::IntegerVector rows, double trim,
                                           int threads) {
    Rcpp::NumericVector out(rows.size());
    glue::TbbPar par(threads);
    epione::deseq::trimmed_base_mean(glue::cdense(counts), norm_of(sf), cspan(rows), trim,
                                     par, glue::span(out));
    return out;
}

// One pass over the counts: how many NA, negative and non-integer values.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_count_issues(Rcpp::NumericMatrix counts) {
    double na = 0, neg = 0, frac = 0;
    for (double v : counts) {
        if (std::isnan(v)) { na++; continue; }
        if (v < 0) neg++;
        if (v != std::round(v)) frac++;
    }
    return Rcpp::NumericVector::create(Rcpp::Named("na") = na, Rcpp::Named("negative") = neg,
                                       Rcpp::Named("fraction") = frac);
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

// Rejections of p.adjust(p, "BH") < alpha on the subset filter >= cutoff,
// for each cutoff; `p` is sorted decreasing and `filter` follows it. The
// adjusted values are cummin(n / (n:1) * p), so the count is n - i + 1 for
// the first i whose n / (n - i + 1) * p_i is below alpha (same arithmetic).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_num_rej(Rcpp::NumericVector p, Rcpp::NumericVector filter,
                                      Rcpp::NumericVector cutoffs, double alpha) {
    const R_xlen_t n_all = p.size();
    Rcpp::NumericVector out(cutoffs.size());
    for (R_xlen_t c = 0; c < cutoffs.size(); ++c) {
        R_xlen_t n = 0;
        for (R_xlen_t i = 0; i < n_all; ++i) n += filter[i] >= cutoffs[c];
        R_xlen_t k = 0;
        double rej = 0;
        for (R_xlen_t i = 0; i < n_all; ++i) {
            if (!(filter[i] >= cutoffs[c])) continue;
            ++k;
            const double v = static_cast<double>(n) / static_cast<double>(n - k + 1) * p[i];
            if (v < alpha) { rej = static_cast<double>(n - k + 1); break; }
        }
        out[c] = rej;
    }
    return out;
}

// One IRLS step of glm(y ~ x, family = Gamma(link = "identity")) from the
// coefficients `coef` (mu = coef[0] + coef[1] x): the weighted least-squares
// fit of z = eta + (y - mu) with weights 1 / mu^2, in centred closed form
// (two columns), so that DESeq2's parametric trend fit allocates nothing
// per iteration (at 200k peaks each lm.fit() cost a full R garbage
// collection). Also returns the Gamma deviance at `coef` and whether every
// mu is finite and positive.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_deseq_gamma_step(Rcpp::NumericVector y, Rcpp::NumericVector x,
                                         Rcpp::NumericVector coef) {
    const R_xlen_t n = y.size();
    long double sw = 0, sx = 0, sz = 0;
    double dev = 0;
    bool valid = true;
    for (R_xlen_t i = 0; i < n; ++i) {
        const double mu = coef[0] + coef[1] * x[i];
        valid &= std::isfinite(mu) && mu > 0;
        const double w = 1.0 / (mu * mu), z = mu + (y[i] - mu);
        sw += w;
        sx += w * x[i];
        sz += w * z;
        dev += -2.0 * (std::log(y[i] == 0 ? 1.0 : y[i] / mu) - (y[i] - mu) / mu);
    }
    const double xbar = static_cast<double>(sx / sw), zbar = static_cast<double>(sz / sw);
    long double sxx = 0, sxz = 0;
    for (R_xlen_t i = 0; i < n; ++i) {
        const double mu = coef[0] + coef[1] * x[i];
        const double w = 1.0 / (mu * mu), dx = x[i] - xbar;
        sxx += w * dx * dx;
        sxz += w * dx * (mu + (y[i] - mu) - zbar);
    }
    const double b1 = static_cast<double>(sxz / sxx), b0 = zbar - b1 * xbar;
    return Rcpp::NumericVector::create(b0, b1, dev, valid ? 1.0 : 0.0);
}
