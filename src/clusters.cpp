// Glue for graph clustering (inst/include/epione/clusters.hpp).
#include "glue.h"
#include <epione/clusters.hpp>

// SNN graph from a 1-based kNN matrix; returns a symmetric dgCMatrix's
// slots (p, i, x) in CSC (the graph is symmetric, so rows = columns).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_clusters_snn(Rcpp::IntegerMatrix knn, double prune) {
    std::vector<int> k0(knn.begin(), knn.end());
    for (int& v : k0) --v;
    epione::DenseView<const int> kv{k0.data(), knn.nrow(), knn.ncol()};
    const auto g = epione::clusters::snn_graph(kv, prune);
    if (g.start.back() > std::numeric_limits<int>::max())
        throw epione::input_error("SNN graph too large (> 2^31 edges); lower k");
    return Rcpp::List::create(
        Rcpp::Named("p") = Rcpp::IntegerVector(g.start.begin(), g.start.end()),
        Rcpp::Named("i") = Rcpp::IntegerVector(g.nbr.begin(), g.nbr.end()),
        Rcpp::Named("x") = Rcpp::NumericVector(g.w.begin(), g.w.end()));
}

// Seurat-equivalent Louvain on a symmetric dgCMatrix graph (diagonal
// ignored). Returns 0-based cluster ids ordered by size.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_clusters_louvain(Rcpp::S4 graph, double resolution, int n_start,
                                int n_iter, double seed) {
    glue::CscHolder h;
    const auto v = glue::csc_view(graph, h);
    epione::clusters::Graph g;
    g.n = static_cast<int>(v.ncol);
    g.start.assign(g.n + 1, 0);
    for (epione::index_t c = 0; c < v.ncol; ++c) {
        v.for_col(c, [&](int r, double x) {
            if (r != c && x != 0) {
                g.nbr.push_back(r);
                g.w.push_back(x);
            }
        });
        g.start[c + 1] = static_cast<epione::index_t>(g.nbr.size());
    }
    epione::clusters::LouvainOptions opt;
    opt.resolution = resolution;
    opt.n_start = n_start;
    opt.n_iter = n_iter;
    opt.seed = static_cast<std::uint64_t>(seed);
    std::vector<int> cl;
    const double q = epione::clusters::louvain(g, opt, cl);
    return Rcpp::List::create(
        Rcpp::Named("membership") = Rcpp::IntegerVector(cl.begin(), cl.end()),
        Rcpp::Named("modularity") = q);
}

// [[Rcpp::export(rng = false)]]
Rcpp::IntegerMatrix epi_clusters_knn(Rcpp::NumericMatrix data,
                                     Rcpp::NumericMatrix query, int k,
                                     int threads) {
    Rcpp::IntegerMatrix out(query.nrow(), k);
    glue::TbbPar par(threads);
    epione::DenseView<int> ov{INTEGER(out), out.nrow(), out.ncol()};
    epione::clusters::knn_exact(glue::cdense(data), glue::cdense(query), k, par,
                                ov);
    for (auto& x : out) ++x;
    return out;
}
