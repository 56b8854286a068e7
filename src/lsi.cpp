// Glue for the iterative LSI engine (inst/include/epione/lsi.hpp): converts
// dgCMatrix / vectors to views, calls the core, wraps the results.
#include "glue.h"
#include <epione/lsi.hpp>
#include <epione/svd.hpp>

namespace {
epione::Span<const int> cspan(const Rcpp::IntegerVector& v) {
    return {INTEGER(v), XLENGTH(v)};
}
epione::Span<const double> cspan(const Rcpp::NumericVector& v) {
    return {REAL(v), XLENGTH(v)};
}
epione::lsi::TfidfOptions tfidf_opt(int method, double scale_to, bool binarize) {
    epione::lsi::TfidfOptions o;
    o.method = method;
    o.scale_to = scale_to;
    o.binarize = binarize;
    return o;
}
}  // namespace

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_lsi_col_sums(Rcpp::S4 x, Rcpp::IntegerVector row_map,
                                     Rcpp::IntegerVector cols, bool binarize,
                                     int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    Rcpp::NumericVector out(cols.size());
    glue::TbbPar par(threads);
    epione::lsi::col_sums(v, cspan(row_map), cspan(cols), binarize, par,
                          glue::span(out));
    return out;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_lsi_row_sums(Rcpp::S4 x, Rcpp::IntegerVector row_map,
                                     int n_rows, Rcpp::IntegerVector cols,
                                     bool binarize) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    const auto s = epione::lsi::row_sums(v, cspan(row_map), n_rows, cspan(cols),
                                         binarize);
    return Rcpp::NumericVector(s.begin(), s.end());
}

// Returns the slots of a dgCMatrix (built in R): p, i, x, Dim.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_lsi_tfidf(Rcpp::S4 x, Rcpp::IntegerVector row_map, int n_rows,
                         Rcpp::IntegerVector cols, Rcpp::NumericVector col_sum,
                         Rcpp::NumericVector row_sum, double n_col, int method,
                         double scale_to, bool binarize, int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    glue::TbbPar par(threads);
    const auto m = epione::lsi::tfidf(v, cspan(row_map), n_rows, cspan(cols),
                                      cspan(col_sum), cspan(row_sum), n_col,
                                      tfidf_opt(method, scale_to, binarize), par);
    if (m.p.back() > std::numeric_limits<int>::max())
        throw epione::input_error(
            "the LSI sub-matrix has more than 2^31 - 1 non-zeros; lower "
            "varFeatures or sampleCellsPre");
    return Rcpp::List::create(
        Rcpp::Named("p") = Rcpp::IntegerVector(m.p.begin(), m.p.end()),
        Rcpp::Named("i") = Rcpp::IntegerVector(m.i.begin(), m.i.end()),
        Rcpp::Named("x") = Rcpp::NumericVector(m.x.begin(), m.x.end()),
        Rcpp::Named("Dim") = Rcpp::IntegerVector::create(n_rows, m.ncol));
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_lsi_project(Rcpp::S4 x, Rcpp::IntegerVector row_map,
                                    Rcpp::IntegerVector cols,
                                    Rcpp::NumericVector row_sum, double n_col,
                                    Rcpp::NumericMatrix u, bool keep0,
                                    int method, double scale_to, bool binarize,
                                    int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    Rcpp::NumericMatrix out(cols.size(), u.ncol());
    glue::TbbPar par(threads);
    epione::lsi::project(v, cspan(row_map), cspan(cols), cspan(row_sum), n_col,
                         glue::cdense(u), keep0,
                         tfidf_opt(method, scale_to, binarize), par,
                         glue::dense(out));
    return out;
}

// group: per column of x, the 0-based group or -1 (not used).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_lsi_group_sums(Rcpp::S4 x, Rcpp::IntegerVector row_map,
                                       int n_rows, Rcpp::IntegerVector group,
                                       int n_groups, int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    std::vector<std::vector<int>> cells(n_groups);
    for (R_xlen_t c = 0; c < group.size(); ++c)
        if (group[c] >= 0) cells.at(group[c]).push_back(static_cast<int>(c));
    Rcpp::NumericMatrix out(n_rows, n_groups);
    glue::TbbPar par(threads);
    epione::lsi::group_sums(v, cspan(row_map), cells, par, glue::dense(out));
    return out;
}

// Truncated SVD of the TF-IDF matrix (inst/include/epione/svd.hpp). `v0`:
// the start vector drawn in R (rnorm(ncol(x)), as irlba draws it); the rest
// of the start block is seeded from its bits. Returns irlba's fields.
// `sizes`: block, basis and kept vectors (0 = the core's choice).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_lsi_svd(Rcpp::S4 x, int k, Rcpp::NumericVector v0, double tol,
                       Rcpp::IntegerVector sizes, int max_restarts,
                       int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(x, h);
    epione::svd::SvdOptions opt;
    opt.k = k;
    opt.tol = tol;
    if (sizes.size() != 3)
        throw epione::input_error("svd sizes must be block, basis, keep");
    opt.block = sizes[0];
    opt.basis = sizes[1];
    opt.keep = sizes[2];
    opt.max_restarts = max_restarts;
    glue::TbbPar par(threads);
    const auto r = epione::svd::truncated_svd(
        v, opt, cspan(v0), epione::svd::seed_from(cspan(v0)), par);
    return Rcpp::List::create(
        Rcpp::Named("d") = Rcpp::NumericVector(r.d.begin(), r.d.end()),
        Rcpp::Named("u") = Rcpp::wrap(r.u), Rcpp::Named("v") = Rcpp::wrap(r.v),
        Rcpp::Named("iter") = r.restarts + 1,
        Rcpp::Named("mprod") = static_cast<double>(r.products),
        Rcpp::Named("converged") = r.converged,
        Rcpp::Named("residual") = r.max_residual);
}
