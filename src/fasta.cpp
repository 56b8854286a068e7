// Glue for the indexed FASTA reader (inst/include/epione/fasta.hpp), used
// through the internal helpers in R/utils-genome.R.
#include "glue.h"
#include <epione/fasta.hpp>

// Sequence names and lengths of an indexed FASTA file.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_fasta_lengths(std::string path, bool build_index) {
    epione::Fasta fa(path, build_index);
    Rcpp::NumericVector out(fa.n_seqs());
    Rcpp::CharacterVector names(fa.n_seqs());
    for (int k = 0; k < fa.n_seqs(); ++k) {
        names[k] = fa.seq_name(k);
        out[k] = static_cast<double>(fa.length(fa.seq_name(k)));
    }
    out.names() = names;
    return out;
}

// Bases of each region (0-based start, end exclusive), as stored.
// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_fasta_fetch(std::string path, Rcpp::CharacterVector chrom,
                                      Rcpp::NumericVector start0, Rcpp::NumericVector end) {
    epione::FastaRegions src;
    src.path = path;
    for (R_xlen_t k = 0; k < chrom.size(); ++k)
        src.regions.push_back({Rcpp::as<std::string>(chrom[k]),
                               static_cast<std::int64_t>(start0[k]),
                               static_cast<std::int64_t>(end[k])});
    src.check();
    auto rd = src.reader();
    Rcpp::CharacterVector out(chrom.size());
    for (R_xlen_t k = 0; k < chrom.size(); ++k) {
        const auto s = rd.get(k);
        out[k] = Rcpp::String(std::string(s));
    }
    return out;
}

// A, C, G, T counts over the whole file (motifmatchr's bg = "genome").
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_fasta_base_counts(std::string path, int threads) {
    glue::TbbPar par(threads);
    const auto c = epione::fasta_base_counts(path, par);
    Rcpp::NumericVector out(4);
    for (int b = 0; b < 4; ++b) out[b] = static_cast<double>(c[b]);
    out.names() = Rcpp::CharacterVector::create("A", "C", "G", "T");
    return out;
}
