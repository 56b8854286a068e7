// Glue for the chromVAR engine (inst/include/epione/chromvar.hpp).
#include "glue.h"
#include <epione/chromvar.hpp>
#include <epione/rng.hpp>

namespace cv = epione::chromvar;

namespace {

cv::BinModel model_from(Rcpp::NumericVector fpp, Rcpp::NumericVector bias, double w, int bs,
                        int threads = 1, bool kernel = true) {
    cv::BackgroundOptions opt;
    opt.w = w;
    opt.bs = bs;
    opt.kernel = kernel;
    glue::TbbPar par(threads);
    return cv::bin_model({REAL(fpp), XLENGTH(fpp)}, {REAL(bias), XLENGTH(bias)}, opt, par);
}

// What both deviation methods share: views of counts and annotations,
// the annotations' peak sets (and transposed), cell totals and the R
// outputs (annotations x cells) the core writes into.
struct DeviationsSetup {
    glue::CscHolder hx, ha;
    epione::CscView<double> x, m;
    std::vector<std::vector<int>> sets;
    epione::Csc<double> anno_rows;
    std::vector<double> fps;
    Rcpp::NumericMatrix dev, z;
    Rcpp::NumericVector matches, overlap;

    DeviationsSetup(Rcpp::S4 counts, Rcpp::S4 anno)
        : x(glue::csc_view(counts, hx)), m(glue::csc_view(anno, ha)), sets(cv::peak_sets(m)),
          anno_rows(epione::transpose(m)), fps(epione::col_sums(x)), dev(m.ncol, x.ncol),
          z(m.ncol, x.ncol), matches(m.ncol), overlap(m.ncol) {}

    epione::Span<const double> cell_totals() const { return {fps.data(), x.ncol}; }
    cv::DeviationsOutput output() {
        return {glue::dense(dev), glue::dense(z), glue::span(matches), glue::span(overlap)};
    }
    Rcpp::List result() const {
        return Rcpp::List::create(Rcpp::Named("deviations") = dev, Rcpp::Named("z") = z,
                                  Rcpp::Named("fractionMatches") = matches,
                                  Rcpp::Named("fractionBackgroundOverlap") = overlap);
    }
};

}  // namespace

// Whitening, bin grid and membership of getBackgroundPeaks (for checks).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_chromvar_bin_model(Rcpp::NumericVector fpp, Rcpp::NumericVector bias,
                                  double w, int bs) {
    const auto m = model_from(fpp, bias, w, bs);
    Rcpp::IntegerVector memb(m.membership.begin(), m.membership.end());
    for (auto& b : memb) b += 1;
    return Rcpp::List::create(
        Rcpp::Named("x1") = Rcpp::wrap(m.whitened1), Rcpp::Named("x2") = Rcpp::wrap(m.whitened2),
        Rcpp::Named("bin") = memb, Rcpp::Named("density") = Rcpp::wrap(m.density),
        Rcpp::Named("bins1") = Rcpp::wrap(m.bins1), Rcpp::Named("bins2") = Rcpp::wrap(m.bins2),
        Rcpp::Named("chol") = Rcpp::NumericVector(m.chol, m.chol + 3));
}

// Peak totals of a count matrix with its NA / negative / whole-number
// checks in one threaded pass (getBackgroundPeaks' input).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_chromvar_peak_totals(Rcpp::S4 counts, int threads) {
    glue::CscHolder h;
    const auto x = glue::csc_view(counts, h);
    glue::TbbPar par(threads);
    const auto s = epione::count_row_sums(x, par);
    return Rcpp::List::create(Rcpp::Named("sums") = Rcpp::wrap(s.sums),
                              Rcpp::Named("invalid") = s.invalid,
                              Rcpp::Named("whole") = s.whole);
}

// getBackgroundPeaks: draws with R's own unif_rand(), so .Random.seed
// advances exactly as chromVAR's does.
// [[Rcpp::export(rng = true)]]
Rcpp::IntegerMatrix epi_chromvar_background(Rcpp::NumericVector fpp, Rcpp::NumericVector bias,
                                            int niterations, double w, int bs, int threads,
                                            double max_uniforms = 4194304) {
    const auto m = model_from(fpp, bias, w, bs, threads);
    // every entry is written by the core: no zero fill
    Rcpp::IntegerMatrix out = Rcpp::no_init(XLENGTH(fpp), niterations);
    glue::TbbPar par(threads);
    auto unif = [] { return unif_rand(); };
    cv::background_peaks(m, niterations, unif, par,
                         epione::DenseView<int>{INTEGER(out), out.nrow(), out.ncol()},
                         static_cast<epione::index_t>(max_uniforms));
    return out;
}

// Deviations with chromVAR's sampled null.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_chromvar_sample(Rcpp::S4 counts, Rcpp::S4 anno, Rcpp::IntegerMatrix bg,
                               Rcpp::NumericVector expectation, double min_expected,
                               int threads, bool verbose) {
    DeviationsSetup d(counts, anno);
    glue::TbbPar par(threads);
    glue::Progress progress(d.m.ncol, verbose);
    cv::SampleOptions opt;
    opt.min_expected = min_expected;
    cv::deviations_sample(d.x, d.anno_rows, d.sets, {INTEGER(bg), bg.nrow(), bg.ncol()},
                          {REAL(expectation), XLENGTH(expectation)}, d.cell_totals(),
                          opt, par, progress, d.output());
    return d.result();
}

// Deviations with the closed-form (niterations -> Inf) null of the same
// background model.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_chromvar_analytical(Rcpp::S4 counts, Rcpp::S4 anno, Rcpp::NumericVector fpp,
                                   Rcpp::NumericVector bias, Rcpp::NumericVector expectation,
                                   double w, int bs, int block, int threads, bool verbose) {
    DeviationsSetup d(counts, anno);
    const auto model = model_from(fpp, bias, w, bs, threads, false);
    glue::TbbPar par(threads);
    glue::Progress progress(d.x.ncol, verbose);
    cv::AnalyticalOptions opt;
    opt.block = block;
    cv::deviations_analytical(d.x, d.sets, d.anno_rows, model, w,
                              {REAL(expectation), XLENGTH(expectation)}, d.cell_totals(), opt,
                              par, progress, d.output());
    return d.result();
}

// computeVariability: row sds of z and `n_boot` bootstrap replicates
// (columns resampled with replacement; one RNG stream per replicate).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_chromvar_variability(Rcpp::NumericMatrix z, int n_boot, double seed, int threads) {
    const auto zv = glue::cdense(z);
    Rcpp::NumericVector sds(z.nrow());
    cv::row_sds(zv, nullptr, glue::span(sds));
    Rcpp::NumericMatrix boot(z.nrow(), n_boot);
    glue::TbbPar par(threads);
    const auto s = static_cast<std::uint64_t>(seed);
    const epione::index_t nc = z.ncol();
    par.run(n_boot, [&](epione::index_t b) {
        auto rng = epione::rng::stream(s, static_cast<std::uint64_t>(b));
        std::vector<epione::index_t> idx(nc);
        for (auto& i : idx) i = static_cast<epione::index_t>(rng.below(nc));
        cv::row_sds(zv, &idx, {&boot(0, b), z.nrow()});
    });
    return Rcpp::List::create(Rcpp::Named("sd") = sds, Rcpp::Named("boot") = boot);
}

// GC fraction per peak from an indexed FASTA (HTSlib faidx).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_chromvar_gc(std::string fasta, std::vector<std::string> chrom,
                                    Rcpp::IntegerVector start, Rcpp::IntegerVector end) {
    Rcpp::NumericVector out(chrom.size());
    cv::gc_content(fasta, chrom, {INTEGER(start), XLENGTH(start)}, {INTEGER(end), XLENGTH(end)},
                   glue::span(out));
    return out;
}
