// Test hooks for the shared core pieces (sparse views, RNG streams, the
// thread adapter, progress). Internal: called from tests via epione:::.
#include "glue.h"
#include <epione/rng.hpp>

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_utils_csc_summaries(Rcpp::S4 m) {
    glue::CscHolder h;
    const auto v = glue::csc_view(m, h);
    v.validate("x");
    const auto t = epione::transpose(v);
    return Rcpp::List::create(
        Rcpp::Named("colSums") = epione::col_sums(v),
        Rcpp::Named("rowSums") = epione::row_sums(v),
        Rcpp::Named("nnz") = static_cast<double>(v.nnz()),
        Rcpp::Named("t_p") = Rcpp::NumericVector(t.p.begin(), t.p.end()),
        Rcpp::Named("t_i") = Rcpp::IntegerVector(t.i.begin(), t.i.end()),
        Rcpp::Named("t_x") = Rcpp::NumericVector(t.x.begin(), t.x.end()));
}

// t(m) %*% b on `threads` threads.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_utils_csc_crossprod(Rcpp::S4 m, Rcpp::NumericMatrix b, int threads) {
    glue::CscHolder h;
    const auto v = glue::csc_view(m, h);
    Rcpp::NumericMatrix out(v.ncol, b.ncol());
    glue::TbbPar par(threads);
    epione::crossprod_dense(v, glue::cdense(b), par, glue::dense(out));
    return out;
}

// `n_blocks` x `per_block` uniforms, one stream per block, filled in
// parallel; identical for any thread count.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_utils_rng_uniform(double seed, int n_blocks, int per_block,
                                          int threads) {
    Rcpp::NumericMatrix out(per_block, n_blocks);
    const auto s = static_cast<std::uint64_t>(seed);
    glue::TbbPar par(threads);
    par.run(n_blocks, [&](std::int64_t b) {
        auto g = epione::rng::stream(s, static_cast<std::uint64_t>(b));
        for (int k = 0; k < per_block; ++k) out(k, b) = g.uniform();
    });
    return out;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_utils_rng_normal(double seed, int n) {
    auto g = epione::rng::stream(static_cast<std::uint64_t>(seed), 0);
    Rcpp::NumericVector out(n);
    for (auto& v : out) v = g.normal();
    return out;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_utils_rng_below(double seed, double n, int draws) {
    auto g = epione::rng::stream(static_cast<std::uint64_t>(seed), 0);
    Rcpp::NumericVector out(draws);
    for (auto& v : out) v = static_cast<double>(g.below(static_cast<std::uint64_t>(n)));
    return out;
}

// Raises an error from task `fail_at` inside a parallel loop; the R side
// checks it arrives as a classed condition on the main thread.
// [[Rcpp::export(rng = false)]]
int epi_utils_parallel_error(int n_tasks, int fail_at, int threads) {
    glue::TbbPar par(threads);
    par.run(n_tasks, [&](std::int64_t t) {
        if (t == fail_at)
            throw epione::input_error("task " + std::to_string(t) + " failed on purpose");
    });
    return n_tasks;
}

// A long loop with a progress bar; silent when verbose = FALSE.
// [[Rcpp::export(rng = false)]]
double epi_utils_progress_demo(int n_tasks, int threads, bool verbose) {
    glue::TbbPar par(threads);
    glue::Progress progress(n_tasks, verbose);
    std::vector<double> partial(n_tasks);
    par.run(n_tasks, [&](std::int64_t t) {
        partial[t] = static_cast<double>(t);
        progress.tick();
    });
    double total = 0;
    for (double v : partial) total += v;
    return total;
}
