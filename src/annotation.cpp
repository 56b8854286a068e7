// Glue for peak annotation: chromosome codes arrive 1-based from R (NA for
// a chromosome absent on the other side) and leave 0-based for the core.
#include "glue.h"
#include <epione/annotation.hpp>

namespace {
std::vector<int> chr_codes(Rcpp::IntegerVector chr) {
    std::vector<int> out(chr.size());
    for (R_xlen_t k = 0; k < chr.size(); ++k)
        out[k] = chr[k] == NA_INTEGER ? -1 : chr[k] - 1;
    return out;
}
epione::Span<const int> cspan(const std::vector<int>& v) {
    return {v.data(), static_cast<epione::index_t>(v.size())};
}
epione::Span<const int> cspan(Rcpp::IntegerVector v) {
    return {INTEGER(v), XLENGTH(v)};
}
}  // namespace

// Nearest subject point per query point; hit is 1-based (NA: none).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_annotation_nearest(Rcpp::IntegerVector qchr,
        Rcpp::IntegerVector qpos, Rcpp::IntegerVector schr,
        Rcpp::IntegerVector spos, int n_chr, int threads) {
    const auto qc = chr_codes(qchr), sc = chr_codes(schr);
    const auto subj = epione::annotation::sort_by_position(
        cspan(sc), cspan(spos), cspan(spos), n_chr);
    Rcpp::IntegerVector hit(qchr.size()), dist(qchr.size());
    glue::TbbPar par(threads);
    epione::annotation::nearest_points(cspan(qc), cspan(qpos), subj, par,
        glue::span(hit), glue::span(dist));
    for (auto& h : hit) h = h < 0 ? NA_INTEGER : h + 1;
    for (auto& d : dist) if (d < 0) d = NA_INTEGER;
    return Rcpp::List::create(Rcpp::Named("hit") = hit,
                              Rcpp::Named("distance") = dist);
}

// Whether each query point lies within any of the intervals.
// [[Rcpp::export(rng = false)]]
Rcpp::LogicalVector epi_annotation_within(Rcpp::IntegerVector qchr,
        Rcpp::IntegerVector qpos, Rcpp::IntegerVector ichr,
        Rcpp::IntegerVector istart, Rcpp::IntegerVector iend, int n_chr,
        int threads) {
    const auto qc = chr_codes(qchr), ic = chr_codes(ichr);
    const auto merged = epione::annotation::merge_intervals(
        epione::annotation::sort_by_position(cspan(ic), cspan(istart),
                                             cspan(iend), n_chr));
    Rcpp::IntegerVector in(qchr.size());
    glue::TbbPar par(threads);
    epione::annotation::points_in(cspan(qc), cspan(qpos), merged, par,
                                  glue::span(in));
    return Rcpp::LogicalVector(in.begin(), in.end());
}

// Per annotation (column of a dgCMatrix / lgCMatrix / ngCMatrix of
// matches), the sums of each weight column over its matching peaks.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_annotation_match_counts(Rcpp::S4 m,
        Rcpp::NumericMatrix w, int threads) {
    Rcpp::IntegerVector dim = m.slot("Dim"), p = m.slot("p"), i = m.slot("i");
    std::vector<epione::index_t> p64(p.begin(), p.end());
    Rcpp::NumericMatrix out(dim[1], w.ncol());
    glue::TbbPar par(threads);
    auto run = [&](auto view) {
        view.nrow = dim[0];
        view.ncol = dim[1];
        view.p = p64.data();
        view.i = INTEGER(i);
        // binary: a match is any stored non-zero, whatever its score
        epione::crossprod_dense(view, glue::cdense(w), par, glue::dense(out),
                                true);
    };
    if (m.is("dgCMatrix")) {
        epione::CscView<double, epione::index_t> v;
        Rcpp::NumericVector x = m.slot("x");
        v.x = REAL(x);
        run(v);
    } else if (m.is("lgCMatrix")) {
        epione::CscView<int, epione::index_t> v;
        Rcpp::LogicalVector x = m.slot("x");
        v.x = LOGICAL(x);
        run(v);
    } else if (m.is("ngCMatrix")) {
        run(epione::CscView<int, epione::index_t>{});
    } else {
        throw epione::input_error("matches must be a dgCMatrix, lgCMatrix or ngCMatrix");
    }
    return out;
}
