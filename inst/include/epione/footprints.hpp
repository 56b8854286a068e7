// TF footprints from a tabix-indexed fragment file: Tn5 insertion counts
// around motif sites per group, the k-mer position table of the sites and
// the observed insertion k-mer counts for ArchR's hexamer Tn5 bias model
// (ArchR 1.0.3 getFootprints / .addKmerBiasToCoverage). Coordinates are
// 1-based; a fragment `chrom start0 end barcode` inserts at start0 + 1 and
// at end (ArchR's Arrow convention). Self-contained: the only dependency is
// HTSlib's tabix and BAM readers. A bulk BAM of paired reads is read as
// fragments the way 10x/sinto make them: start0 = leftmost mate + 4,
// end = start0 - 4 + TLEN - 5 (the Tn5 shift).
#pragma once
#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/sam.h>
#include <htslib/tbx.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "tabix.hpp"
#include "threads.hpp"

namespace epione {
namespace footprints {

// Sites of one chromosome. `fp_start` is the first base of the footprint
// window (centre - flank), `kmer_start` the first base of the window + k
// sequence used for the bias table; `minus` flips both profiles.
struct Sites {
    std::vector<int> fp_start, kmer_start, motif;
    std::vector<char> minus;
};

struct Options {
    int flank = 250;    // window = 2 * flank + 1
    int k = 6;          // Tn5 bias k-mer length (ArchR kmerLength)
};

// 2-bit code of a k-mer (A=0, C=1, G=2, T=3, first base most significant,
// the order of ArchR's .getKmers()), -1 if it holds anything but ACGT.
inline int kmer_code(const char* s, int k) {
    int code = 0;
    for (int i = 0; i < k; ++i) {
        int b;
        switch (s[i]) {
            case 'A': case 'a': b = 0; break;
            case 'C': case 'c': b = 1; break;
            case 'G': case 'g': b = 2; break;
            case 'T': case 't': b = 3; break;
            default: return -1;
        }
        code = code * 4 + b;
    }
    return code;
}

inline int reverse_complement_code(int code, int k) {
    int out = 0;
    for (int i = 0; i < k; ++i) {
        out = out * 4 + (3 - (code & 3));
        code >>= 2;
    }
    return out;
}

// Read pairs of a BAM file as Tn5 fragments: one per properly paired,
// primary, non-duplicate pair with mapping quality >= min_mapq (sinto's
// default 30), taken from the leftmost mate (TLEN > 0); the barcode is the
// CB tag when present.
constexpr int kMinMapq = 30;
template <class F>
void for_each_bam_fragment(htsFile* fp, const std::string& path,
                           const std::string& chrom, F&& fn) {
    sam_hdr_t* hdr = sam_hdr_read(fp);
    hts_idx_t* idx = hdr ? sam_index_load(fp, path.c_str()) : nullptr;
    if (!idx) {
        if (hdr) sam_hdr_destroy(hdr);
        hts_close(fp);
        throw file_error("BAM file '" + path + "' has no index; create it "
                         "with Rsamtools::indexBam() or samtools index");
    }
    hts_itr_t* itr = sam_itr_querys(idx, hdr, chrom.c_str());
    bam1_t* b = bam_init1();
    const uint16_t skip = BAM_FUNMAP | BAM_FMUNMAP | BAM_FSECONDARY |
                          BAM_FQCFAIL | BAM_FDUP | BAM_FSUPPLEMENTARY;
    int ret = -1;
    while (itr && (ret = sam_itr_next(fp, itr, b)) >= 0) {
        const bam1_core_t& c = b->core;
        if ((c.flag & skip) || !(c.flag & BAM_FPROPER_PAIR)) continue;
        if (c.qual < kMinMapq || c.isize <= 0) continue;
        const long s0 = static_cast<long>(c.pos) + 4;
        const long e = static_cast<long>(c.pos) + static_cast<long>(c.isize) - 5;
        if (e <= s0) continue;
        const uint8_t* cb = bam_aux_get(b, "CB");
        const char* bc = cb ? bam_aux2Z(cb) : nullptr;
        fn(s0, e, bc ? std::string(bc) : std::string());
    }
    bam_destroy1(b);
    if (itr) hts_itr_destroy(itr);
    hts_idx_destroy(idx);
    sam_hdr_destroy(hdr);
    hts_close(fp);
    if (ret < -1)
        throw format_error("BAM file '" + path + "' is truncated or corrupt "
                           "(read failed on " + chrom + ")");
}

// Streams the fragments of `chrom` from a tabix-indexed fragment file or an
// indexed BAM, calling fn(start0, end, barcode).
template <class F>
void for_each_fragment(const std::string& path, const std::string& chrom,
                       F&& fn) {
    htsFile* fp = hts_open(path.c_str(), "r");
    if (!fp) throw input_error("cannot open fragment file '" + path + "'");
    if (hts_get_format(fp)->format == bam) {
        for_each_bam_fragment(fp, path, chrom, fn);
        return;
    }
    tbx_t* idx = tbx_index_load(path.c_str());
    if (!idx) {
        hts_close(fp);
        throw input_error("fragment file '" + path + "' has no tabix index; "
                          "create it with Rsamtools::indexTabix(file, "
                          "format = \"bed\") or tabix -p bed");
    }
    hts_itr_t* itr = tbx_itr_querys(idx, chrom.c_str());
    kstring_t line = {0, 0, nullptr};
    std::string err;
    if (itr) {
        while (tbx_itr_next(fp, idx, itr, &line) >= 0) {
            char* p = line.s;
            char* tab1 = std::strchr(p, '\t');
            char* end = nullptr;
            if (!tab1) { err = "a line without tabs"; break; }
            long s0 = std::strtol(tab1 + 1, &end, 10);
            if (*end != '\t') { err = "a bad start"; break; }
            long e = std::strtol(end + 1, &end, 10);
            if (*end != '\t' && *end != '\0') { err = "a bad end"; break; }
            const char* bc = *end == '\t' ? end + 1 : end;
            const char* bc_end = bc;
            while (*bc_end && *bc_end != '\t') ++bc_end;
            fn(s0, e, std::string(bc, bc_end - bc));
        }
        hts_itr_destroy(itr);
    }
    free(line.s);
    tbx_destroy(idx);
    hts_close(fp);
    if (!err.empty())
        throw format_error("fragment file '" + path + "' has " + err +
                           " on " + chrom + "; expected chrom, start, end, "
                           "barcode (10x fragments.tsv.gz)");
}

// Sequence names of a BAM header or a tabix index.
inline std::vector<std::string> fragment_seqnames(const std::string& path) {
    htsFile* fp = hts_open(path.c_str(), "r");
    if (!fp) throw input_error("cannot open fragment file '" + path + "'");
    std::vector<std::string> out;
    if (hts_get_format(fp)->format == bam) {
        sam_hdr_t* hdr = sam_hdr_read(fp);
        for (int i = 0; hdr && i < sam_hdr_nref(hdr); ++i)
            out.emplace_back(sam_hdr_tid2name(hdr, i));
        if (hdr) sam_hdr_destroy(hdr);
        hts_close(fp);
        return out;
    }
    hts_close(fp);
    tbx_t* idx = tbx_index_load(path.c_str());
    if (!idx)
        throw file_error("fragment file '" + path + "' has no tabix index; "
                         "create it with indexFragments() or tabix -p bed");
    out = tabix_seqnames(idx);
    tbx_destroy(idx);
    return out;
}

// Accumulates, for one chromosome, the insertion profile of every motif
// and group (`profile`: window x groups x motifs, column-major) and the
// observed k-mer counts at insertions (`observed`: 4^k x groups; k-mer at
// insertion x = seq[x - k/2 .. x - k/2 + k - 1], ArchR's Views()). `seq`
// may be empty (no bias). `group_of` maps barcodes to 0-based groups; an
// unmapped barcode is skipped unless `all_group` >= 0 takes every barcode.
struct ChromCounter {
    const Sites& sites;            // sorted by fp_start
    const Options& opt;
    Span<const char> seq;
    const std::unordered_map<std::string, int>& group_of;
    int all_group, n_groups, n_motifs;
    Span<double> profile, observed, insertions;   // insertions: per group

    void insertion(long x, int g) {
        insertions[g] += 1;
        const int window = 2 * opt.flank + 1;
        if (seq.size() > 0) {
            const long from = x - opt.k / 2;     // 1-based first base
            if (from >= 1 && from + opt.k - 1 <= static_cast<long>(seq.size())) {
                const int c = kmer_code(seq.begin() + from - 1, opt.k);
                if (c >= 0) observed[c + static_cast<index_t>(g) * (1 << (2 * opt.k))] += 1;
            }
        }
        // sites whose window [fp_start, fp_start + window) holds x
        auto lo = std::lower_bound(sites.fp_start.begin(), sites.fp_start.end(),
                                   x - window + 1);
        for (auto it = lo; it != sites.fp_start.end() && *it <= x; ++it) {
            const index_t s = it - sites.fp_start.begin();
            int j = static_cast<int>(x - *it);
            if (sites.minus[s]) j = window - 1 - j;
            profile[j + window * (g + static_cast<index_t>(n_groups) * sites.motif[s])] += 1;
        }
    }
    // A fragment whose cell's group is already known (0-based; < 0 skips).
    void fragment_in_group(long s0, long e, int g) {
        if (g < 0) return;
        insertion(s0 + 1, g);
        insertion(e, g);
    }
    void fragment(long s0, long e, const std::string& barcode) {
        int g = all_group;
        if (g < 0) {
            auto f = group_of.find(barcode);
            if (f == group_of.end()) return;
            g = f->second;
        }
        insertion(s0 + 1, g);
        insertion(e, g);
    }
};

// Fragments held in memory (e.g. read from an Arrow file) for one
// chromosome: `start0`, `end` and 0-based `group` (< 0 = cell not used).
// Blocks of fragments are counted in parallel into their own buffers and
// added in block order; the counts are whole numbers, so the result does
// not depend on the number of threads.
struct FragmentTable {
    Span<const int> start0, end, group;
};
template <class Par>
void count_fragments(const Sites& sites, const Options& opt,
                     Span<const char> seq, const FragmentTable& frags,
                     int n_groups, int n_motifs, Par& par,
                     Span<double> profile, Span<double> observed,
                     Span<double> insertions) {
    const index_t n = frags.start0.size();
    if (frags.end.size() != n || frags.group.size() != n)
        throw input_error("fragment start0, end and group differ in length");
    // blocks of >= 200k fragments, each buffer set kept under ~160 MB total
    const index_t cells = profile.size() + observed.size() + 1;
    const index_t nb = std::max<index_t>(1, std::min<index_t>(
        {16, n / 200000, 20000000 / cells}));
    struct Part { std::vector<double> p, o, i; };
    std::vector<Part> part(nb);
    const std::unordered_map<std::string, int> none;
    par.run(nb, [&](index_t b) {
        Part& q = part[b];
        q.p.assign(profile.size(), 0.0);
        q.o.assign(observed.size(), 0.0);
        q.i.assign(insertions.size(), 0.0);
        ChromCounter c{sites, opt, seq, none, -1, n_groups, n_motifs,
                       Span<double>(q.p.data(), static_cast<index_t>(q.p.size())),
                       Span<double>(q.o.data(), static_cast<index_t>(q.o.size())),
                       Span<double>(q.i.data(), static_cast<index_t>(q.i.size()))};
        const auto r = block_range(n, nb, b);
        for (index_t f = r.begin; f < r.end; ++f)
            c.fragment_in_group(frags.start0[f], frags.end[f], frags.group[f]);
    });
    for (const Part& q : part) {
        for (std::size_t j = 0; j < q.p.size(); ++j) profile[j] += q.p[j];
        for (std::size_t j = 0; j < q.o.size(); ++j) observed[j] += q.o[j];
        for (std::size_t j = 0; j < q.i.size(); ++j) insertions[j] += q.i[j];
    }
}

// Expected k-mers: every k-mer of the chromosome's plus strand
// (Biostrings::oligonucleotideFrequency, which skips k-mers with non-ACGT).
inline void count_kmers(Span<const char> seq, int k, Span<double> expected) {
    for (index_t i = 0; i + k <= seq.size(); ++i) {
        const int c = kmer_code(seq.begin() + i, k);
        if (c >= 0) expected[c] += 1;
    }
}

// Tn5 bias profile of the sites (ArchR .kmerPositionFrequency +
// .computeFootprintsBiasSingle without the 4^k x window table): position j
// of a site adds oe[k-mer, group] for the k-mer starting at j of its
// window + k sequence read on the site's strand. For a minus-strand site
// that sequence is reverse-complemented and j is not mirrored again (ArchR
// passes strand 1 for every view: "BSgenome is already stranded"), which
// keeps the bias aligned with the mirrored footprint. Sites whose window + k sequence leaves the chromosome are
// dropped, as ArchR drops trimmed views. `oe`: 4^k x groups; `bias`:
// window x groups x motifs (unnormalised, summed over sites).
inline void bias_profile(const Sites& sites, Span<const char> seq,
                         const Options& opt, const DenseView<const double>& oe,
                         Span<double> bias) {
    const int window = 2 * opt.flank + 1;
    const index_t n_groups = oe.ncol;
    for (std::size_t s = 0; s < sites.kmer_start.size(); ++s) {
        const long from = sites.kmer_start[s];
        if (from < 1 || from + window + opt.k - 1 > static_cast<long>(seq.size()))
            continue;
        const index_t base = static_cast<index_t>(window) * n_groups * sites.motif[s];
        for (int j = 0; j < window; ++j) {
            int c, pos;
            if (!sites.minus[s]) {
                c = kmer_code(seq.begin() + from - 1 + j, opt.k);
                pos = j;
            } else {
                // k-mer j of the reverse-complemented window is the reverse
                // complement of the forward k-mer at offset window - j
                c = kmer_code(seq.begin() + from - 1 + window - j, opt.k);
                if (c >= 0) c = reverse_complement_code(c, opt.k);
                pos = j;
            }
            if (c < 0) continue;
            for (index_t g = 0; g < n_groups; ++g)
                bias[base + pos + window * g] += oe(c, g);
        }
    }
}

}  // namespace footprints
}  // namespace epione
