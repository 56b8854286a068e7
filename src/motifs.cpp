// Glue for the motif scanner (inst/include/epione/motifs.hpp): converts
// R matrices and sequences, runs the core, wraps sparse results.
#include "glue.h"
#include <epione/fasta.hpp>
#include <epione/motifs.hpp>

namespace {

namespace em = epione::motifs;

em::Bg as_bg(Rcpp::NumericVector x) {
    if (x.size() != 4) throw epione::input_error("background must have 4 values (A, C, G, T)");
    return {x[0], x[1], x[2], x[3]};
}

em::Matrix as_matrix(SEXP x, const std::string& name) {
    Rcpp::NumericMatrix m(x);  // copies integer input to double
    if (m.nrow() != 4)
        throw epione::input_error("motif '" + name + "' has " + std::to_string(m.nrow()) +
                                  " rows; a motif matrix needs 4 (A, C, G, T)");
    em::Matrix out{static_cast<int>(m.ncol()), std::vector<double>(m.begin(), m.end())};
    return out;
}

std::vector<em::Matrix> as_matrices(Rcpp::List mats) {
    std::vector<em::Matrix> out;
    Rcpp::CharacterVector nm = mats.names();
    for (R_xlen_t k = 0; k < mats.size(); ++k)
        out.push_back(as_matrix(mats[k], Rcpp::as<std::string>(nm[k])));
    return out;
}

Rcpp::NumericMatrix wrap_matrix(const em::Matrix& m) {
    Rcpp::NumericMatrix out(4, m.ncol);
    std::copy(m.v.begin(), m.v.end(), out.begin());
    Rcpp::rownames(out) = Rcpp::CharacterVector::create("A", "C", "G", "T");
    return out;
}

Rcpp::S4 sparse(const em::CscIndex& c, int nrow, int ncol, const char* cls,
                SEXP x) {
    Rcpp::S4 out(cls);
    out.slot("i") = Rcpp::IntegerVector(c.i.begin(), c.i.end());
    out.slot("p") = Rcpp::IntegerVector(c.p.begin(), c.p.end());
    out.slot("Dim") = Rcpp::IntegerVector::create(nrow, ncol);
    out.slot("x") = x;
    return out;
}

template <class Source>
Rcpp::List run_scan(Rcpp::List mats, const Source& src, Rcpp::NumericVector bg,
                    double p, int w, bool quirks, const std::string& out, int threads,
                    bool verbose) {
    const auto m = as_matrices(mats);
    const em::Bg b = as_bg(bg);
    glue::TbbPar par(threads);
    const auto thr = em::thresholds(m, b, p, par);
    em::ScanOptions opt;
    opt.w = w;
    opt.moods_quirks = quirks;
    const em::Scanner sc(m, thr, b, opt, par);
    const em::Output what = out == "matches" ? em::Output::matches
                            : out == "scores" ? em::Output::scores
                                              : em::Output::positions;
    em::MatchTable table;
    em::Positions pos;
    if (verbose) {
        // Only when asked: the progress adapter costs more than scanning
        // short sequences.
        glue::Progress progress(src.n(), verbose);
        em::scan_all(sc, thr, src, what, par, progress, &table, &pos);
    } else {
        epione::NoProgress progress;
        em::scan_all(sc, thr, src, what, par, progress, &table, &pos);
    }
    const int nrow = static_cast<int>(src.n()), ncol = static_cast<int>(m.size());
    Rcpp::NumericVector thresholds(thr.begin(), thr.end());
    if (what == em::Output::positions) {
        Rcpp::IntegerVector motif(pos.motif.begin(), pos.motif.end());
        Rcpp::IntegerVector seq(pos.seq.begin(), pos.seq.end());
        Rcpp::NumericVector start(pos.pos.begin(), pos.pos.end());
        Rcpp::CharacterVector strand(pos.strand.size());
        for (std::size_t k = 0; k < pos.strand.size(); ++k)
            strand[k] = pos.strand[k] == '+' ? "+" : "-";
        return Rcpp::List::create(
            Rcpp::Named("motif") = motif, Rcpp::Named("seq") = seq,
            Rcpp::Named("pos") = start, Rcpp::Named("strand") = strand,
            Rcpp::Named("score") = Rcpp::NumericVector(pos.score.begin(), pos.score.end()),
            Rcpp::Named("thresholds") = thresholds);
    }
    const em::CscIndex c = em::to_csc(table);
    const R_xlen_t nnz = static_cast<R_xlen_t>(c.i.size());
    Rcpp::LogicalVector lx(nnz, TRUE);
    Rcpp::List res = Rcpp::List::create(
        Rcpp::Named("motifMatches") = sparse(c, nrow, ncol, "lgCMatrix", lx),
        Rcpp::Named("thresholds") = thresholds);
    if (what == em::Output::scores) {
        Rcpp::NumericVector sx(nnz), cx(nnz);
        for (R_xlen_t k = 0; k < nnz; ++k) {
            sx[k] = table.max_score[c.from[k]];
            cx[k] = table.count[c.from[k]];
        }
        res["motifScores"] = sparse(c, nrow, ncol, "dgCMatrix", sx);
        res["motifCounts"] = sparse(c, nrow, ncol, "dgCMatrix", cx);
    }
    return res;
}

em::StringSource string_source(Rcpp::CharacterVector seqs) {
    em::StringSource src;
    src.seqs.reserve(seqs.size());
    for (R_xlen_t k = 0; k < seqs.size(); ++k) {
        SEXP s = STRING_ELT(seqs, k);
        if (s == NA_STRING)
            throw epione::input_error("sequence " + std::to_string(k + 1) +
                                      " is NA; remove it or use \"N\"");
        src.seqs.emplace_back(CHAR(s), static_cast<std::size_t>(LENGTH(s)));
    }
    return src;
}

epione::FastaRegions fasta_source(const std::string& path, Rcpp::CharacterVector chrom,
                                  Rcpp::NumericVector start0, Rcpp::NumericVector end) {
    epione::FastaRegions src;
    src.path = path;
    src.regions.reserve(chrom.size());
    for (R_xlen_t k = 0; k < chrom.size(); ++k)
        src.regions.push_back({Rcpp::as<std::string>(chrom[k]),
                               static_cast<std::int64_t>(start0[k]),
                               static_cast<std::int64_t>(end[k])});
    src.check();
    return src;
}

Rcpp::NumericVector counts_to_r(const std::array<std::int64_t, 4>& c) {
    Rcpp::NumericVector out(4);
    for (int b = 0; b < 4; ++b) out[b] = static_cast<double>(c[b]);
    out.names() = Rcpp::CharacterVector::create("A", "C", "G", "T");
    return out;
}

}  // namespace

// Converts motifs to the score matrices motifmatchr scans: kind "pfm"
// (counts; TFBSTools::toPWM with `prior` and `pseudocount`) or "pwm" (log
// odds against `prior`), then re-expressed against `bg`.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_motifs_convert(Rcpp::List mats, Rcpp::CharacterVector kind,
                              Rcpp::NumericMatrix prior, Rcpp::NumericVector bg,
                              double pseudocount) {
    const em::Bg b = as_bg(bg);
    Rcpp::CharacterVector nm = mats.names();
    Rcpp::List out(mats.size());
    for (R_xlen_t k = 0; k < mats.size(); ++k) {
        const std::string name = Rcpp::as<std::string>(nm[k]);
        em::Matrix m = as_matrix(mats[k], name);
        const em::Bg pr{prior(0, k), prior(1, k), prior(2, k), prior(3, k)};
        if (kind[k] == "pfm") {
            em::check_pfm(m, name);
            m = em::pfm_to_pwm(m, pr, pseudocount);
        } else {
            if (m.ncol < 1) throw epione::input_error("motif '" + name + "' has no columns");
            for (double v : m.v)
                if (!std::isfinite(v))
                    throw epione::input_error("motif '" + name + "' has NA or infinite scores");
        }
        out[k] = wrap_matrix(em::convert_pwm(m, em::pwm_type(m, pr, name), pr, b));
    }
    out.names() = nm;
    return out;
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_motifs_thresholds(Rcpp::List mats, Rcpp::NumericVector bg,
                                          double p, int threads) {
    glue::TbbPar par(threads);
    const auto t = em::thresholds(as_matrices(mats), as_bg(bg), p, par);
    return Rcpp::NumericVector(t.begin(), t.end());
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_motifs_count_strings(Rcpp::CharacterVector seqs, int threads) {
    glue::TbbPar par(threads);
    const auto src = string_source(seqs);
    return counts_to_r(em::count_bases(src, par));
}

// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_motifs_count_fasta(std::string path, Rcpp::CharacterVector chrom,
                                           Rcpp::NumericVector start0, Rcpp::NumericVector end,
                                           int threads) {
    glue::TbbPar par(threads);
    const auto src = fasta_source(path, chrom, start0, end);
    return counts_to_r(em::count_bases(src, par));
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_motifs_scan_strings(Rcpp::List mats, Rcpp::CharacterVector seqs,
                                   Rcpp::NumericVector bg, double p, int w, bool quirks,
                                   std::string out, int threads, bool verbose) {
    const auto src = string_source(seqs);
    return run_scan(mats, src, bg, p, w, quirks, out, threads, verbose);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_motifs_scan_fasta(Rcpp::List mats, std::string path,
                                 Rcpp::CharacterVector chrom, Rcpp::NumericVector start0,
                                 Rcpp::NumericVector end, Rcpp::NumericVector bg, double p,
                                 int w, bool quirks, std::string out, int threads,
                                 bool verbose) {
    const auto src = fasta_source(path, chrom, start0, end);
    return run_scan(mats, src, bg, p, w, quirks, out, threads, verbose);
}
