// Glue for pseudobulk coverage from fragment files (epione/coverage.hpp).
#include "glue.h"
#include <epione/coverage.hpp>

// Group coverage over `regions` (one task each). cell_group: 0-based group
// of each barcode. Returns the nonzero (region, group, tile) rows with
// their capped insertion counts, and the fragments read per barcode.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_coverage_groups(std::string path, std::vector<std::string> regions,
                               std::vector<std::string> barcodes,
                               Rcpp::IntegerVector cell_group, int tile_size,
                               int ceiling, int threads) {
    std::unordered_map<std::string, int> cells;
    cells.reserve(barcodes.size());
    for (std::size_t i = 0; i < barcodes.size(); ++i)
        cells.emplace(barcodes[i], static_cast<int>(i));
    const epione::coverage::CoverageOptions opt{tile_size, ceiling};
    const epione::index_t nr = regions.size();
    std::vector<epione::coverage::ChromCoverage> cov(nr);
    std::vector<std::vector<double>> frags(nr, std::vector<double>(barcodes.size(), 0.0));
    glue::TbbPar par(threads);
    const epione::Span<const int> cg(INTEGER(cell_group), XLENGTH(cell_group));
    par.run(nr, [&](epione::index_t r) {
        cov[r] = epione::coverage::region_coverage(path, regions[r], cells, cg, opt,
                                                   frags[r]);
    });
    std::size_t n = 0;
    for (const auto& c : cov) n += c.reads.size();
    Rcpp::IntegerVector region(n), group(n);
    Rcpp::NumericVector tile(n), reads(n), n_frags(barcodes.size());
    std::size_t k = 0;
    for (epione::index_t r = 0; r < nr; ++r) {
        for (std::size_t i = 0; i < cov[r].reads.size(); ++i, ++k) {
            region[k] = static_cast<int>(r) + 1;
            group[k] = cov[r].group[i] + 1;
            tile[k] = static_cast<double>(cov[r].tile[i]);
            reads[k] = cov[r].reads[i];
        }
        for (std::size_t c = 0; c < barcodes.size(); ++c) n_frags[c] += frags[r][c];
    }
    return Rcpp::List::create(Rcpp::Named("region") = region, Rcpp::Named("group") = group,
                              Rcpp::Named("tile") = tile, Rcpp::Named("reads") = reads,
                              Rcpp::Named("nFrags") = n_frags);
}
