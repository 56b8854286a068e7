// Glue for TF footprints: one call per chromosome and fragment file; the R
// layer loops over chromosomes and files and sums. Sequences are borrowed
// from the R string (no copy).
#include "glue.h"
#include <epione/footprints.hpp>

namespace {
epione::Span<const char> seq_span(Rcpp::CharacterVector seq) {
    if (seq.size() == 0) return {};
    SEXP s = STRING_ELT(seq, 0);
    return {CHAR(s), static_cast<epione::index_t>(XLENGTH(s))};
}
epione::footprints::Sites make_sites(Rcpp::IntegerVector fp_start,
        Rcpp::IntegerVector kmer_start, Rcpp::IntegerVector minus,
        Rcpp::IntegerVector motif) {
    epione::footprints::Sites s;
    s.fp_start.assign(fp_start.begin(), fp_start.end());
    s.kmer_start.assign(kmer_start.begin(), kmer_start.end());
    s.minus.assign(minus.begin(), minus.end());
    s.motif.resize(motif.size());
    for (R_xlen_t k = 0; k < motif.size(); ++k) s.motif[k] = motif[k] - 1;
    return s;
}
}  // namespace

// Insertion profiles (window x groups x motifs) and observed insertion
// k-mers (4^k x groups) of one file on one chromosome. Sites must be sorted
// by fp_start. `all_group` (1-based) assigns every barcode to one group;
// 0 uses `barcodes` -> `groups` (1-based).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_footprints_count(std::string path, std::string chrom,
        Rcpp::CharacterVector seq, Rcpp::IntegerVector fp_start,
        Rcpp::IntegerVector minus, Rcpp::IntegerVector motif, int n_motifs,
        Rcpp::CharacterVector barcodes, Rcpp::IntegerVector groups,
        int all_group, int n_groups, int flank, int k) {
    auto sites = make_sites(fp_start, fp_start, minus, motif);
    epione::footprints::Options opt;
    opt.flank = flank;
    opt.k = k;
    std::unordered_map<std::string, int> group_of;
    for (R_xlen_t i = 0; i < barcodes.size(); ++i)
        group_of[Rcpp::as<std::string>(barcodes[i])] = groups[i] - 1;
    const int window = 2 * flank + 1;
    Rcpp::NumericVector profile(static_cast<R_xlen_t>(window) * n_groups * n_motifs);
    Rcpp::NumericVector obs((static_cast<R_xlen_t>(1) << (2 * k)) * n_groups);
    Rcpp::NumericVector inserts(n_groups);
    epione::footprints::ChromCounter counter{sites, opt, seq_span(seq),
        group_of, all_group - 1, n_groups, n_motifs, glue::span(profile),
        glue::span(obs), glue::span(inserts)};
    epione::footprints::for_each_fragment(path, chrom,
        [&](long s0, long e, const std::string& bc) { counter.fragment(s0, e, bc); });
    return Rcpp::List::create(Rcpp::Named("profile") = profile,
        Rcpp::Named("observed") = obs,
        Rcpp::Named("insertions") = inserts);
}

// Sequence names of a fragment file (tabix) or BAM.
// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_footprints_seqnames(std::string path) {
    return Rcpp::wrap(epione::footprints::fragment_seqnames(path));
}

// Plus-strand k-mer counts of a sequence (4^k, ACGT order).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_footprints_kmers(Rcpp::CharacterVector seq, int k) {
    Rcpp::NumericVector out(static_cast<R_xlen_t>(1) << (2 * k));
    epione::footprints::count_kmers(seq_span(seq), k, glue::span(out));
    return out;
}

// Unnormalised Tn5 bias profile (window x groups x motifs) of the sites of
// one chromosome given observed/expected k-mer ratios `oe` (4^k x groups).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_footprints_bias(Rcpp::CharacterVector seq,
        Rcpp::IntegerVector kmer_start, Rcpp::IntegerVector minus,
        Rcpp::IntegerVector motif, int n_motifs, Rcpp::NumericMatrix oe,
        int flank, int k) {
    auto sites = make_sites(kmer_start, kmer_start, minus, motif);
    epione::footprints::Options opt;
    opt.flank = flank;
    opt.k = k;
    if (oe.nrow() != (1 << (2 * k)))
        throw epione::input_error("oe must have 4^k rows");
    Rcpp::NumericVector bias(static_cast<R_xlen_t>(2 * flank + 1) * oe.ncol() * n_motifs);
    epione::footprints::bias_profile(sites, seq_span(seq), opt,
        glue::cdense(oe), glue::span(bias));
    return bias;
}

// As epi_footprints_count, for fragments held in R (read from Arrow files):
// 0-based starts, ends and 1-based groups (NA or 0 = cell not used).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_footprints_count_table(Rcpp::CharacterVector seq,
        Rcpp::IntegerVector fp_start, Rcpp::IntegerVector minus,
        Rcpp::IntegerVector motif, int n_motifs, Rcpp::IntegerVector start0,
        Rcpp::IntegerVector end, Rcpp::IntegerVector group, int n_groups,
        int flank, int k, int threads) {
    auto sites = make_sites(fp_start, fp_start, minus, motif);
    epione::footprints::Options opt;
    opt.flank = flank;
    opt.k = k;
    std::vector<int> g0(group.size());
    for (R_xlen_t i = 0; i < group.size(); ++i)
        g0[i] = group[i] == NA_INTEGER ? -1 : group[i] - 1;
    const int window = 2 * flank + 1;
    Rcpp::NumericVector profile(static_cast<R_xlen_t>(window) * n_groups * n_motifs);
    Rcpp::NumericVector obs((static_cast<R_xlen_t>(1) << (2 * k)) * n_groups);
    Rcpp::NumericVector inserts(n_groups);
    using CSpan = epione::Span<const int>;
    epione::footprints::FragmentTable frags{
        CSpan(INTEGER(start0), XLENGTH(start0)), CSpan(INTEGER(end), XLENGTH(end)),
        CSpan(g0.data(), static_cast<epione::index_t>(g0.size()))};
    glue::TbbPar par(threads);
    epione::footprints::count_fragments(sites, opt, seq_span(seq), frags,
        n_groups, n_motifs, par, glue::span(profile), glue::span(obs),
        glue::span(inserts));
    return Rcpp::List::create(Rcpp::Named("profile") = profile,
        Rcpp::Named("observed") = obs,
        Rcpp::Named("insertions") = inserts);
}
