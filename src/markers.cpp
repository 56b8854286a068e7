// Glue for the marker tests (inst/include/epione/markers.hpp).
#include "glue.h"
#include <epione/markers.hpp>

// x: cells x features (the transpose of the features x cells matrix).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_markers_wilcoxon(Rcpp::S4 xt, Rcpp::IntegerVector g1,
                                Rcpp::IntegerVector g2, Rcpp::NumericVector f1,
                                Rcpp::NumericVector f2, int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(xt, h);
    Rcpp::NumericVector auc(v.ncol), pval(v.ncol);
    glue::TbbPar par(threads);
    epione::markers::wilcoxon(
        v, epione::Span<const int>(INTEGER(g1), g1.size()),
        epione::Span<const int>(INTEGER(g2), g2.size()),
        epione::Span<const double>(REAL(f1), f1.size()),
        epione::Span<const double>(REAL(f2), f2.size()), par, glue::span(auc),
        glue::span(pval));
    return Rcpp::List::create(Rcpp::Named("auc") = auc, Rcpp::Named("pval") = pval);
}

// Means and variances per feature for the t-test (markers.hpp row_moments).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_markers_moments(Rcpp::S4 xt, Rcpp::IntegerVector g1,
                               Rcpp::IntegerVector g2, Rcpp::NumericVector f1,
                               Rcpp::NumericVector f2, int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(xt, h);
    Rcpp::NumericVector mean1(v.ncol), mean2(v.ncol), var1(v.ncol), var2(v.ncol);
    glue::TbbPar par(threads);
    epione::markers::row_moments(
        v, epione::Span<const int>(INTEGER(g1), g1.size()),
        epione::Span<const int>(INTEGER(g2), g2.size()),
        epione::Span<const double>(REAL(f1), f1.size()),
        epione::Span<const double>(REAL(f2), f2.size()), par, glue::span(mean1),
        glue::span(mean2), glue::span(var1), glue::span(var2));
    return Rcpp::List::create(Rcpp::Named("mean1") = mean1,
                              Rcpp::Named("mean2") = mean2,
                              Rcpp::Named("var1") = var1,
                              Rcpp::Named("var2") = var2);
}
