// Random access to an indexed FASTA file (plain or bgzip) through HTSlib's
// faidx. One `Fasta` per thread: a faidx handle is not safe to share, and
// opening one only reads the small .fai index. Used by the motif scanner,
// and meant for chromVAR's GC bias and any peak-sequence retrieval.
#pragma once
#include <htslib/faidx.h>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "threads.hpp"
#include <array>
#include <string_view>

namespace epione {

// A genomic interval, 0-based half-open, on a named sequence.
struct Region {
    std::string chrom;
    std::int64_t start0 = 0, end = 0;
};

class Fasta {
public:
    // Opens `path`; the index `path`.fai (and `path`.gzi if bgzipped) must
    // exist unless `build_index` is true, in which case HTSlib writes it.
    explicit Fasta(const std::string& path, bool build_index = false)
        : path_(path) {
        fai_ = fai_load3(path.c_str(), nullptr, nullptr,
                         build_index ? FAI_CREATE : 0);
        if (!fai_)
            throw format_error(
                "cannot open the FASTA index of '" + path + "': index it with "
                "Rsamtools::indexFa('" + path + "') or `samtools faidx " +
                path + "` (a gzip FASTA must be bgzip-compressed)");
    }
    ~Fasta() { if (fai_) fai_destroy(fai_); }
    Fasta(const Fasta&) = delete;
    Fasta& operator=(const Fasta&) = delete;

    const std::string& path() const { return path_; }
    int n_seqs() const { return faidx_nseq(fai_); }
    std::string seq_name(int k) const { return faidx_iseq(fai_, k); }
    bool has(const std::string& chrom) const {
        return faidx_has_seq(fai_, chrom.c_str()) != 0;
    }
    std::int64_t length(const std::string& chrom) const {
        if (!has(chrom)) throw input_error(absent(chrom));
        return faidx_seq_len(fai_, chrom.c_str());
    }

    // Throws an input_error naming the problem unless `r` lies inside its
    // sequence.
    void check(const Region& r, std::int64_t index) const {
        if (!has(r.chrom)) throw input_error("range " + std::to_string(index + 1) +
                                             ": " + absent(r.chrom));
        const std::int64_t len = length(r.chrom);
        if (r.start0 < 0 || r.end > len || r.end < r.start0)
            throw input_error(
                "range " + std::to_string(index + 1) + " (" + r.chrom + ":" +
                std::to_string(r.start0 + 1) + "-" + std::to_string(r.end) +
                ") lies outside the sequence, which has length " +
                std::to_string(len) + " in '" + path_ +
                "'; drop or trim() such ranges first");
    }

    // The bases of `r` as stored in the file (case kept). Appends to `out`.
    void fetch(const Region& r, std::string& out) const {
        out.clear();
        if (r.end <= r.start0) return;
        hts_pos_t len = 0;
        char* s = faidx_fetch_seq64(fai_, r.chrom.c_str(), r.start0, r.end - 1, &len);
        if (!s || len != r.end - r.start0) {
            std::free(s);
            throw format_error("cannot read " + r.chrom + ":" +
                               std::to_string(r.start0 + 1) + "-" +
                               std::to_string(r.end) + " from '" + path_ +
                               "'; the file or its .fai index may be damaged");
        }
        out.assign(s, static_cast<std::size_t>(len));
        std::free(s);
    }
    std::string fetch(const Region& r) const {
        std::string out;
        fetch(r, out);
        return out;
    }

private:
    std::string absent(const std::string& chrom) const {
        std::string some;
        for (int k = 0; k < n_seqs() && k < 5; ++k) some += (k ? ", " : "") + seq_name(k);
        return "sequence '" + chrom + "' is absent from '" + path_ +
               "' (it has " + std::to_string(n_seqs()) + ": " + some +
               (n_seqs() > 5 ? ", ..." : "") +
               "); check the genome build and chromosome naming (e.g. 'chr1' vs '1')";
    }
    std::string path_;
    faidx_t* fai_ = nullptr;
};

// A sequence source over regions of one FASTA file (for scanners that take
// `n()` and a per-task `reader().get(i)`): each task opens its own handle
// and holds one region at a time, so memory does not grow with the genome.
struct FastaRegions {
    std::string path;
    std::vector<Region> regions;
    index_t n() const { return static_cast<index_t>(regions.size()); }
    struct Reader {
        Fasta fasta;
        const FastaRegions* src;
        std::string buf;
        std::string_view get(index_t i) {
            fasta.fetch(src->regions[i], buf);
            return buf;
        }
    };
    Reader reader() const { return Reader{Fasta(path), this, {}}; }
    // Throws an input_error for the first region off its sequence.
    void check() const {
        Fasta fa(path);
        for (index_t i = 0; i < n(); ++i) fa.check(regions[i], i);
    }
};

// A, C, G, T counts (either case) over every sequence of a FASTA file, read
// in 1-Mb pieces in parallel; other letters are ignored.
template <class Par>
std::array<std::int64_t, 4> fasta_base_counts(const std::string& path, Par& par) {
    constexpr std::int64_t piece = 1 << 20;
    std::vector<Region> pieces;
    {
        Fasta fa(path);
        for (int k = 0; k < fa.n_seqs(); ++k) {
            const std::string name = fa.seq_name(k);
            const std::int64_t len = fa.length(name);
            for (std::int64_t s = 0; s < len; s += piece)
                pieces.push_back({name, s, std::min(len, s + piece)});
        }
    }
    const index_t n = static_cast<index_t>(pieces.size());
    const index_t nb = std::min<index_t>(n, 256);
    std::vector<std::array<std::int64_t, 4>> part(nb, std::array<std::int64_t, 4>{});
    par.run(nb, [&](index_t b) {
        Fasta fa(path);
        std::string buf;
        std::array<std::int64_t, 256> c{};
        const auto r = block_range(n, nb, b);
        for (index_t i = r.begin; i < r.end; ++i) {
            fa.fetch(pieces[i], buf);
            for (char ch : buf) ++c[static_cast<unsigned char>(ch)];
        }
        const char* acgt = "ACGT";
        for (int k = 0; k < 4; ++k)
            part[b][k] = c[static_cast<unsigned char>(acgt[k])] +
                         c[static_cast<unsigned char>(acgt[k] + 32)];
    });
    std::array<std::int64_t, 4> total{};
    for (const auto& p : part)
        for (int k = 0; k < 4; ++k) total[k] += p[k];
    return total;
}

}  // namespace epione
