// Glue for peak-to-gene links and co-accessibility (inst/include/epione/p2g.hpp).
#include "glue.h"
#include <epione/p2g.hpp>

namespace {
epione::DenseView<const int> int_view(const Rcpp::IntegerMatrix& m) {
    return {INTEGER(m), m.nrow(), m.ncol()};
}
}  // namespace

// kNN of the query cells (0-based) and ArchR's overlap filter. Returns the
// kNN matrix (0-based cells) and a 0/1 keep flag per query.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_p2g_knn_groups(Rcpp::NumericMatrix emb, Rcpp::IntegerVector query,
                              int k, int max_shared, int threads) {
    Rcpp::IntegerMatrix nn(query.size(), k);
    glue::TbbPar par(threads);
    epione::p2g::knn(glue::cdense(emb),
                     epione::Span<const int>(INTEGER(query), XLENGTH(query)), k, par,
                     epione::DenseView<int>{INTEGER(nn), nn.nrow(), nn.ncol()});
    const auto keep = epione::p2g::keep_groups(int_view(nn), emb.nrow(), max_shared);
    return Rcpp::List::create(Rcpp::Named("knn") = nn,
                              Rcpp::Named("keep") = Rcpp::wrap(keep));
}

// Metacell matrices of `a` (and `b`, or `a` again when b is NULL), then the
// Pearson correlation of each pair (ia into a's rows, ib into b's rows,
// 0-based). groups_a / groups_b: G x k cell indices (0-based) into the
// columns of a / b. Returns cor and the per-row variances of both.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_p2g_correlate(Rcpp::S4 a, Rcpp::Nullable<Rcpp::S4> b,
                             Rcpp::IntegerMatrix groups_a, Rcpp::IntegerMatrix groups_b,
                             Rcpp::IntegerVector ia, Rcpp::IntegerVector ib,
                             double scale_to, bool log2_norm, int threads) {
    glue::TbbPar par(threads);
    const epione::p2g::MetacellOptions opt{scale_to, log2_norm};
    const epione::index_t G = groups_a.nrow();
    glue::CscHolder ha, hb;
    auto ma = epione::p2g::metacells(glue::csc_view(a, ha), int_view(groups_a), opt, par);
    const auto va = epione::p2g::standardise(ma, G, par);
    std::vector<double> mb, vb;
    if (b.isNotNull()) {
        mb = epione::p2g::metacells(glue::csc_view(Rcpp::S4(b.get()), hb),
                                    int_view(groups_b), opt, par);
        vb = epione::p2g::standardise(mb, G, par);
    }
    Rcpp::NumericVector cor(ia.size());
    epione::p2g::pair_correlations(
        ma, b.isNotNull() ? mb : ma, G,
        epione::Span<const int>(INTEGER(ia), XLENGTH(ia)),
        epione::Span<const int>(INTEGER(ib), XLENGTH(ib)), par, glue::span(cor));
    return Rcpp::List::create(Rcpp::Named("cor") = cor,
                              Rcpp::Named("varA") = Rcpp::wrap(va),
                              Rcpp::Named("varB") = Rcpp::wrap(vb));
}

// Metacell matrix alone (features x groups), for heatmaps and checks.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_p2g_metacells(Rcpp::S4 x, Rcpp::IntegerMatrix groups,
                                      double scale_to, bool log2_norm, int threads) {
    glue::TbbPar par(threads);
    glue::CscHolder h;
    const auto m = epione::p2g::metacells(glue::csc_view(x, h), int_view(groups),
                                          {scale_to, log2_norm}, par);
    const epione::index_t G = groups.nrow(), nf = G ? m.size() / G : 0;
    Rcpp::NumericMatrix out(nf, G);
    for (epione::index_t f = 0; f < nf; ++f)
        for (epione::index_t g = 0; g < G; ++g) out(f, g) = m[f * G + g];
    return out;
}
