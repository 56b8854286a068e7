// Fragments -> ArchR Arrow file: per-barcode QC (ArchR 1.0.3 createArrowFiles,
// R/CreateArrow.R), the Fragments store, the TileMatrix (R/MatrixTiles.R)
// and the raw gene scores of ArchR's gene model (R/MatrixGeneScores.R).
// Two passes over the fragment file, one chromosome at a time:
//   scan():  lines and QC counters for every barcode;
//   write(): fragments and tile matrix of the kept cells into the HDF5 file,
//            raw (unnormalised) gene scores returned to the caller, which
//            normalises and rounds them exactly as ArchR does in R.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <unordered_map>
#include <tuple>
#include <utility>
#include <vector>
#include "error.hpp"
#include "fragments.hpp"
#include "hdf5.hpp"

namespace epione {
namespace arrow {

using i64 = std::int64_t;

// Closed 1-based intervals that may overlap; count(p) = number of intervals
// containing p, i.e. an insertion is counted once per overlapping feature,
// as findOverlaps() + tabulate does in ArchR.
struct Intervals {
    std::vector<i64> starts, ends;
    std::vector<std::pair<i64, i64>> pairs;  // the intervals as given
    void add(i64 s, i64 e) {
        starts.push_back(s);
        ends.push_back(e);
        pairs.emplace_back(s, e);
    }
    void finish() {
        std::sort(starts.begin(), starts.end());
        std::sort(ends.begin(), ends.end());
    }
    i64 count(i64 p) const {
        if (starts.empty()) return 0;
        const i64 a = std::upper_bound(starts.begin(), starts.end(), p) - starts.begin();
        const i64 b = std::lower_bound(ends.begin(), ends.end(), p) - ends.begin();
        return a - b;
    }
    bool any(i64 s, i64 e) const {  // does [s, e] overlap any interval?
        if (starts.empty()) return false;
        const i64 a = std::upper_bound(starts.begin(), starts.end(), e) - starts.begin();
        const i64 b = std::lower_bound(ends.begin(), ends.end(), s) - ends.begin();
        return a - b > 0;
    }
};

struct Chrom {
    std::string name;
    i64 length = 0;
    std::vector<i64> chunk_start;  // 1-based starts of ArchR's nChunk tiles
    std::vector<int> chunk_rank;   // rank of each chunk's name in C order
    int chunk_of(i64 start1) const {
        auto it = std::upper_bound(chunk_start.begin(), chunk_start.end(), start1);
        const i64 k = std::max<i64>(0, (it - chunk_start.begin()) - 1);
        return chunk_rank.empty() ? 0 : chunk_rank[static_cast<std::size_t>(k)];
    }
};

// QC feature sets per chromosome name.
struct Features {
    std::unordered_map<std::string, Intervals> window, flank, promoter, blacklist;
};

struct FragmentFilter {
    i64 min_size = 10, max_size = 2000;  // ArchR minFragSize / maxFragSize
    i64 nuc_length = 147;
};

struct Barcodes {
    std::unordered_map<std::string, int> id;
    std::vector<std::string> name;
    std::vector<double> lines, nfrags, mono, di, multi, window, flank, promoter, blacklist;
    std::vector<int> first_chunk;
    // The per-barcode counters, for code that treats them all alike.
    using Tally = std::vector<double> Barcodes::*;
    static constexpr Tally tallies[] = {&Barcodes::lines, &Barcodes::nfrags, &Barcodes::mono,
                                        &Barcodes::di, &Barcodes::multi, &Barcodes::window,
                                        &Barcodes::flank, &Barcodes::promoter, &Barcodes::blacklist};
    int get(std::string_view bc) {
        auto it = id.find(std::string(bc));
        if (it != id.end()) return it->second;
        const int k = static_cast<int>(name.size());
        id.emplace(std::string(bc), k);
        name.emplace_back(bc);
        for (Tally t : tallies) (this->*t).push_back(0);
        first_chunk.push_back(1 << 30);
        return k;
    }
};

inline const Intervals* find(const std::unordered_map<std::string, Intervals>& m, const std::string& c) {
    auto it = m.find(c);
    return it == m.end() ? nullptr : &it->second;
}

// Pass 1. Fragments are assigned to a chromosome's chunk by their start, as
// ArchR's scanTabix over `tile(chromSizes, nChunk)` does; starts past the
// chromosome end are not read by ArchR and are skipped here too.
inline Barcodes scan_chrom(fragments::FragmentFile& file, const Chrom& chr, const Features& feat,
                           const FragmentFilter& filt) {
    Barcodes bc;
    const Intervals* win = find(feat.window, chr.name);
    const Intervals* fl = find(feat.flank, chr.name);
    const Intervals* pr = find(feat.promoter, chr.name);
    const Intervals* bl = find(feat.blacklist, chr.name);
    int last = -1;
    std::string last_bc;
    file.for_each(chr.name, [&](i64 s0, i64 end, std::string_view b) {
        const i64 start = s0 + 1;
        if (start > chr.length) return;
        if (last < 0 || b != last_bc) {
            last = bc.get(b);
            last_bc.assign(b);
        }
        const int k = last;
        bc.lines[k] += 1;
        bc.first_chunk[k] = std::min(bc.first_chunk[k], chr.chunk_of(start));
        const i64 w = end - start + 1;
        if (w < filt.min_size || w > filt.max_size) return;
        bc.nfrags[k] += 1;
        const i64 cls = std::min<i64>(w / filt.nuc_length + 1, 3);
        (cls == 1 ? bc.mono : cls == 2 ? bc.di : bc.multi)[k] += 1;
        for (i64 p : {start, end}) {
            if (win) bc.window[k] += win->count(p);
            if (fl) bc.flank[k] += fl->count(p);
            if (pr) bc.promoter[k] += pr->count(p);
            if (bl) bc.blacklist[k] += bl->count(p);
        }
    });
    return bc;
}

// One task per chromosome, each with its own file handle; per-chromosome
// tallies are merged in chromosome order, so barcode ids and sums equal a
// serial scan for any thread count.
struct Source {
    std::string path;
    int threads = 1;  // BGZF decompression threads when chromosomes run serially
    std::unique_ptr<fragments::FragmentFile> open(int par_threads) const {
        return std::make_unique<fragments::FragmentFile>(path, par_threads > 1 ? 1 : threads);
    }
};

inline void merge_into(Barcodes& to, const Barcodes& from) {
    for (std::size_t j = 0; j < from.name.size(); ++j) {
        const int k = to.get(from.name[j]);
        for (Barcodes::Tally t : Barcodes::tallies) (to.*t)[k] += (from.*t)[j];
        to.first_chunk[k] = std::min(to.first_chunk[k], from.first_chunk[j]);
    }
}

template <class Par, class Progress>
Barcodes scan(const Source& src, const std::vector<Chrom>& chroms, const Features& feat,
              const FragmentFilter& filt, Par& par, Progress& progress) {
    const std::size_t n = chroms.size();
    std::vector<std::unique_ptr<Barcodes>> done(n);
    std::size_t next = 0;  // merge as soon as a prefix is complete: few tallies live at once
    std::mutex mu;
    Barcodes bc;
    par.run(static_cast<i64>(n), [&](i64 t) {
        auto file = src.open(par.threads());
        auto b = std::make_unique<Barcodes>(scan_chrom(*file, chroms[t], feat, filt));
        std::lock_guard<std::mutex> lock(mu);
        done[t] = std::move(b);
        for (; next < n && done[next]; ++next) {
            merge_into(bc, *done[next]);
            done[next].reset();
        }
        progress.tick();
    });
    return bc;
}

// ArchR's gene model on one chromosome, prepared in R (GenomicRanges):
// genes in ArchR's sorted order, their extended regions (distance target),
// their windows (which tiles count) and weights.
struct GeneChrom {
    std::string name;
    std::vector<i64> region_start, region_end, tss, win_start, win_end;
    std::vector<int> minus;
    std::vector<double> weight;
    i64 max_window = 0;
};

struct GeneScoreOptions {
    i64 tile_size = 500;
    double ceiling = 4;
    std::vector<double> model;  // f(x) for x = -model_half .. model_half
    i64 model_half = 0;
};

struct TileOptions {
    i64 tile_size = 500;
    bool binarize = true;
};

// A genes x cells block in CSC form (0-based rows).
struct Csc {
    i64 nrow = 0, ncol = 0;
    std::vector<int> p, i;
    std::vector<double> x;
};

struct SparseSummary {
    std::vector<double> col_sums, row_sums, row_means_log2, row_vars_log2;
};

// rowSums, colSums, rowMeansLog2 = mean(log2(x + 1)) and rowVarsLog2 =
// sample variance of log2(x + 1), zeros included (ArchR .addMatToArrow).
inline SparseSummary summarise(const Csc& m) {
    SparseSummary s;
    s.col_sums.assign(m.ncol, 0.0);
    s.row_sums.assign(m.nrow, 0.0);
    std::vector<double> lsum(m.nrow, 0.0), lsq(m.nrow, 0.0);
    std::vector<int> nnz(m.nrow, 0);
    for (i64 j = 0; j < m.ncol; ++j)
        for (int k = m.p[j]; k < m.p[j + 1]; ++k) {
            s.col_sums[j] += m.x[k];
            s.row_sums[m.i[k]] += m.x[k];
            lsum[m.i[k]] += std::log2(m.x[k] + 1);
        }
    const double n = static_cast<double>(m.ncol);
    s.row_means_log2.resize(m.nrow);
    for (i64 r = 0; r < m.nrow; ++r) s.row_means_log2[r] = lsum[r] / n;
    for (i64 j = 0; j < m.ncol; ++j)
        for (int k = m.p[j]; k < m.p[j + 1]; ++k) {
            const double d = std::log2(m.x[k] + 1) - s.row_means_log2[m.i[k]];
            lsq[m.i[k]] += d * d;
            nnz[m.i[k]] += 1;
        }
    s.row_vars_log2.resize(m.nrow);
    for (i64 r = 0; r < m.nrow; ++r) {
        const double mu = s.row_means_log2[r];
        const double ss = lsq[r] + (n - nnz[r]) * mu * mu;
        s.row_vars_log2[r] = m.ncol > 1 ? ss / (n - 1) : NAN;
    }
    return s;
}

// One chromosome block of a matrix group in ArchR's layout version 2.
inline void write_sparse(hid_t file, const std::string& group, const Csc& m) {
    using namespace h5;
    const hsize_t nnz = m.i.size();
    WriteOptions plain;
    write_ints(file, group + "/indices", m.i.data(), {nnz}, plain);
    write_ints(file, group + "/indptr", m.p.data(), {static_cast<hsize_t>(m.p.size())}, plain);
    write_doubles(file, group + "/data", m.x.data(), {nnz}, plain);
    const int shape[2] = {static_cast<int>(m.nrow), static_cast<int>(m.ncol)};
    write_ints(file, group + "/shape", shape, {2}, plain);
    const SparseSummary s = summarise(m);
    const hsize_t nc = m.ncol, nr = m.nrow;
    write_doubles(file, group + "/colSums", s.col_sums.data(), {1, nc});
    write_doubles(file, group + "/rowSums", s.row_sums.data(), {1, nr});
    write_doubles(file, group + "/rowMeansLog2", s.row_means_log2.data(), {1, nr});
    write_doubles(file, group + "/rowVarsLog2", s.row_vars_log2.data(), {1, nr});
}

struct Stored {
    int cell, chunk;
    std::int32_t start, width;
};

struct WriteResult {
    std::vector<Csc> gene_scores;      // one per GeneChrom, raw sums
    std::vector<double> size_hist;     // widths 1..1000 of kept fragments
};

inline void write_fragments(hid_t file, const std::string& chr, const std::vector<Stored>& fr,
                            const std::vector<std::string>& cells) {
    using namespace h5;
    const std::string g = "Fragments/" + chr;
    ensure_group(file, g);
    const hsize_t n = fr.size();
    std::vector<int> ranges(2 * n);
    std::vector<int> lengths;
    std::vector<std::string> values;
    for (hsize_t k = 0; k < n; ++k) {
        ranges[k] = fr[k].start;
        ranges[n + k] = fr[k].width;
        if (k == 0 || fr[k].cell != fr[k - 1].cell) {
            lengths.push_back(0);
            values.push_back(cells[fr[k].cell]);
        }
        lengths.back() += 1;
    }
    WriteOptions opt;
    write_ints(file, g + "/Ranges", ranges.data(), {2, n}, opt);
    const hsize_t nr = lengths.size();
    write_ints(file, g + "/RGLengths", lengths.data(), {1, nr}, opt);
    std::size_t size = 0;
    for (const auto& v : values) size = std::max(size, v.size());
    // ArchR sizes RGValues as longest + 1 (4 when empty).
    write_strings(file, g + "/RGValues", values, {1, nr}, n ? size + 1 : 4, opt);
}

// Tile counts of one chromosome: insertions at start and end, tile index
// trunc(p / tileSize); fragments outside [1, length] skipped like ArchR.
inline Csc tile_matrix(const std::vector<Stored>& fr, int n_cells, i64 length,
                       const TileOptions& opt, const Intervals* blacklist) {
    Csc m;
    m.nrow = length / opt.tile_size + 1;
    m.ncol = n_cells;
    m.p.assign(n_cells + 1, 0);
    std::vector<i64> tiles;
    std::size_t k = 0;
    for (int c = 0; c < n_cells; ++c) {
        tiles.clear();
        while (k < fr.size() && fr[k].cell == c) {
            const i64 s = fr[k].start, e = s + fr[k].width - 1;
            if (s >= 1 && e <= length) {
                tiles.push_back(s / opt.tile_size);
                tiles.push_back(e / opt.tile_size);
            }
            ++k;
        }
        std::sort(tiles.begin(), tiles.end());
        for (std::size_t a = 0; a < tiles.size();) {
            std::size_t b = a;
            while (b < tiles.size() && tiles[b] == tiles[a]) ++b;
            m.i.push_back(static_cast<int>(tiles[a]));
            m.x.push_back(opt.binarize ? 1.0 : static_cast<double>(b - a));
            a = b;
        }
        m.p[c + 1] = static_cast<int>(m.i.size());
    }
    return m;
}

// Drops rows flagged in `zero` from a CSC matrix.
inline void drop_rows(Csc& m, const std::vector<char>& zero) {
    std::vector<int> p(m.p.size(), 0);
    std::size_t out = 0;
    for (i64 j = 0; j < m.ncol; ++j) {
        for (int k = m.p[j]; k < m.p[j + 1]; ++k) {
            if (zero[m.i[k]]) continue;
            m.i[out] = m.i[k];
            m.x[out] = m.x[k];
            ++out;
        }
        p[j + 1] = static_cast<int>(out);
    }
    m.i.resize(out);
    m.x.resize(out);
    m.p = p;
}

// Raw gene scores on one chromosome: per cell, insertions binned to tiles
// tileStart = trunc(p / ts) * ts (capped at `ceiling`), then for every gene
// whose window overlaps tile [t, t + ts - 1]:
//   score += model(signed distance(region, tile)) * weight * !blacklisted * count,
// summed over tiles in increasing order as Matrix's sparse product does.
inline Csc gene_scores(const std::vector<Stored>& fr, int n_cells, const GeneChrom& g,
                       const GeneScoreOptions& opt, const Intervals* blacklist) {
    Csc m;
    const i64 ng = static_cast<i64>(g.weight.size());
    m.nrow = ng;
    m.ncol = n_cells;
    m.p.assign(n_cells + 1, 0);
    std::vector<double> acc(ng, 0.0);
    std::vector<char> touched(ng, 0);
    std::vector<int> hit;
    std::vector<i64> tiles;
    // genes sorted by window start for the overlap search
    std::vector<int> by_start(ng);
    std::iota(by_start.begin(), by_start.end(), 0);
    std::stable_sort(by_start.begin(), by_start.end(),
                     [&](int a, int b) { return g.win_start[a] < g.win_start[b]; });
    std::vector<i64> sorted_start(ng);
    for (i64 k = 0; k < ng; ++k) sorted_start[k] = g.win_start[by_start[k]];
    const i64 ts = opt.tile_size;
    std::size_t k = 0;
    for (int c = 0; c < n_cells; ++c) {
        tiles.clear();
        while (k < fr.size() && fr[k].cell == c) {
            const i64 s = fr[k].start, e = s + fr[k].width - 1;
            tiles.push_back((s / ts) * ts);
            tiles.push_back((e / ts) * ts);
            ++k;
        }
        std::sort(tiles.begin(), tiles.end());
        hit.clear();
        for (std::size_t a = 0; a < tiles.size();) {
            std::size_t b = a;
            while (b < tiles.size() && tiles[b] == tiles[a]) ++b;
            const i64 t0 = tiles[a], t1 = t0 + ts - 1;
            const double count = std::min(static_cast<double>(b - a), opt.ceiling);
            a = b;
            const bool black = blacklist && blacklist->any(t0, t1);
            const i64 hi = std::upper_bound(sorted_start.begin(), sorted_start.end(), t1) - sorted_start.begin();
            for (i64 q = hi - 1; q >= 0 && sorted_start[q] >= t0 - g.max_window; --q) {
                const int gi = by_start[q];
                if (g.win_end[gi] < t0) continue;
                const i64 gap = std::max(g.region_start[gi], t0) - std::min(g.region_end[gi], t1) - 1;
                i64 d = std::max<i64>(gap, 0);
                // sign of (tile start - gene start), flipped for minus-strand genes
                i64 sg = (t0 > g.tss[gi]) - (t0 < g.tss[gi]);
                if (g.minus[gi]) sg = -sg;
                d *= sg;
                if (d < -opt.model_half || d > opt.model_half)
                    throw input_error("gene score distance outside the model table");
                double w = opt.model[static_cast<std::size_t>(d + opt.model_half)] * g.weight[gi];
                if (black) w *= 0.0;
                if (!touched[gi]) {
                    touched[gi] = 1;
                    hit.push_back(gi);
                }
                acc[gi] += w * count;
            }
        }
        std::sort(hit.begin(), hit.end());
        for (int gi : hit) {
            m.i.push_back(gi);
            m.x.push_back(acc[gi]);
            acc[gi] = 0.0;
            touched[gi] = 0;
        }
        m.p[c + 1] = static_cast<int>(m.i.size());
    }
    return m;
}

struct WriteSpec {
    std::vector<Chrom> chroms;              // Fragments groups, chromSizes order
    std::vector<char> tile_chrom;           // per chrom: add a TileMatrix block?
    std::vector<std::string> cells;         // kept barcodes, Arrow order
    FragmentFilter filter;
    bool add_tiles = true;
    TileOptions tile;
    bool add_gene_scores = true;
    std::vector<GeneChrom> genes;
    GeneScoreOptions gene;
    std::unordered_map<std::string, Intervals> blacklist;
};

// The kept cells' fragments of one chromosome, grouped by cell, then in
// ArchR's chunk order, then file order.
inline std::vector<Stored> read_chrom(fragments::FragmentFile& file, const Chrom& chr,
                                      const std::unordered_map<std::string, int>& cell_id,
                                      const FragmentFilter& filter) {
    std::vector<Stored> fr;
    int last = -2;
    std::string last_bc;
    file.for_each(chr.name, [&](i64 s0, i64 end, std::string_view b) {
        const i64 start = s0 + 1;
        if (start > chr.length) return;
        if (last == -2 || b != last_bc) {
            auto it = cell_id.find(std::string(b));
            last = it == cell_id.end() ? -1 : it->second;
            last_bc.assign(b);
        }
        if (last < 0) return;
        const i64 w = end - start + 1;
        if (w < filter.min_size || w > filter.max_size) return;
        fr.push_back({last, chr.chunk_of(start), static_cast<std::int32_t>(start),
                      static_cast<std::int32_t>(w)});
    });
    std::stable_sort(fr.begin(), fr.end(), [](const Stored& a, const Stored& b) {
        return a.cell != b.cell ? a.cell < b.cell : a.chunk < b.chunk;
    });
    return fr;
}

// Tile matrix of one chromosome with ArchR's blacklist rule: tiles
// (start %/% ts + 1) .. (end %/% ts + 1) of every blacklist range are zeroed.
inline Csc blacklisted_tiles(const std::vector<Stored>& fr, int nc, i64 length,
                             const TileOptions& opt, const Intervals* bl) {
    Csc m = tile_matrix(fr, nc, length, opt, bl);
    if (!bl || bl->pairs.empty()) return m;
    std::vector<char> zero(static_cast<std::size_t>(m.nrow), 0);
    for (const auto& pr : bl->pairs) {
        const i64 a0 = pr.first / opt.tile_size, a1 = pr.second / opt.tile_size;
        for (i64 t = std::max<i64>(a0, 0); t <= std::min<i64>(a1, m.nrow - 1); ++t) zero[t] = 1;
    }
    drop_rows(m, zero);
    return m;
}

// Pass 2: fragments of kept cells, their TileMatrix block and raw gene
// scores, chromosome by chromosome.
template <class Par, class Progress>
WriteResult write(const Source& src, hid_t h5file, const WriteSpec& spec, Par& par, Progress& progress) {
    std::unordered_map<std::string, int> cell_id;
    for (std::size_t k = 0; k < spec.cells.size(); ++k) cell_id.emplace(spec.cells[k], static_cast<int>(k));
    const int nc = static_cast<int>(spec.cells.size());
    std::unordered_map<std::string, int> gene_chrom;
    for (std::size_t k = 0; k < spec.genes.size(); ++k) gene_chrom.emplace(spec.genes[k].name, static_cast<int>(k));
    WriteResult res;
    res.gene_scores.resize(spec.genes.size());
    for (std::size_t k = 0; k < spec.genes.size(); ++k) {
        res.gene_scores[k].nrow = static_cast<i64>(spec.genes[k].weight.size());
        res.gene_scores[k].ncol = nc;
        res.gene_scores[k].p.assign(nc + 1, 0);
    }
    // Chromosomes run in parallel (one file handle each); the HDF5 library
    // is not thread-safe, so writes are serialised. Histograms are summed in
    // chromosome order afterwards: identical for any thread count.
    const std::size_t n = spec.chroms.size();
    std::vector<std::vector<double>> hist(n);
    std::mutex h5_mutex;
    par.run(static_cast<i64>(n), [&](i64 ci) {
        const Chrom& chr = spec.chroms[ci];
        auto file = src.open(par.threads());
        std::vector<Stored> fr = read_chrom(*file, chr, cell_id, spec.filter);
        hist[ci].assign(1000, 0.0);
        for (const Stored& f : fr)
            if (f.width >= 1 && f.width <= 1000) hist[ci][f.width - 1] += 1;
        const Intervals* bl = find(spec.blacklist, chr.name);
        Csc tiles;
        const bool tile_here = spec.add_tiles && spec.tile_chrom[ci];
        if (tile_here) tiles = blacklisted_tiles(fr, nc, chr.length, spec.tile, bl);
        auto it = gene_chrom.find(chr.name);
        if (spec.add_gene_scores && it != gene_chrom.end())
            res.gene_scores[it->second] = gene_scores(fr, nc, spec.genes[it->second], spec.gene, bl);
        std::lock_guard<std::mutex> lock(h5_mutex);
        write_fragments(h5file, chr.name, fr, spec.cells);
        if (tile_here) write_sparse(h5file, "TileMatrix/" + chr.name, tiles);
        progress.tick();
    });
    res.size_hist.assign(1000, 0.0);
    for (const auto& h : hist)
        for (std::size_t w = 0; w < h.size(); ++w) res.size_hist[w] += h[w];
    return res;
}

// ---- matrices from the fragments already in an Arrow file -----------------

// Fragments of one chromosome of an Arrow file for the cells in `cell_id`,
// grouped by cell in that order (file order within a cell).
inline std::vector<Stored> read_arrow_fragments(hid_t file, const std::string& chr,
                                                const std::unordered_map<std::string, int>& cell_id) {
    std::vector<Stored> out;
    const std::string g = "Fragments/" + chr;
    if (!h5::exists(file, g + "/Ranges")) return out;
    const std::vector<int> r = h5::read_ints(file, g + "/Ranges");
    const std::vector<int> len = h5::read_ints(file, g + "/RGLengths");
    const std::vector<std::string> val = h5::read_strings(file, g + "/RGValues");
    const std::size_t n = r.size() / 2;
    std::size_t k = 0;
    for (std::size_t run = 0; run < len.size(); ++run) {
        auto it = cell_id.find(val[run]);
        for (int q = 0; q < len[run]; ++q, ++k) {
            if (it == cell_id.end()) continue;
            if (k >= n) throw format_error("Fragments/" + chr + ": RGLengths exceed Ranges");
            out.push_back({it->second, 0, r[k], r[n + k]});
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const Stored& a, const Stored& b) { return a.cell < b.cell; });
    return out;
}

// Insertion counts per (feature, cell): both ends of each fragment, counted
// once per overlapping feature, capped at `ceiling` (ArchR .addFeatureMatrix).
// Rows are `idx - 1`; `in_features` (before the cap) and `total` (2 x
// fragments) accumulate per cell for ReadsInPeaks / FRIP.
struct FeatureChrom {
    std::vector<i64> start, end;
    std::vector<int> idx;  // 1-based row within the chromosome
    i64 max_width = 0;
    int nrow = 0;
};

inline Csc feature_counts(const std::vector<Stored>& fr, int n_cells, const FeatureChrom& f,
                          double ceiling, bool binarize, std::vector<double>& in_features,
                          std::vector<double>& total) {
    Csc m;
    m.nrow = f.nrow;
    m.ncol = n_cells;
    m.p.assign(n_cells + 1, 0);
    const i64 nf = static_cast<i64>(f.start.size());
    std::vector<int> order(nf);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return f.start[a] < f.start[b]; });
    std::vector<i64> sorted(nf);
    for (i64 k = 0; k < nf; ++k) sorted[k] = f.start[order[k]];
    std::vector<double> acc(f.nrow, 0.0);
    std::vector<int> hit;
    std::size_t k = 0;
    for (int c = 0; c < n_cells; ++c) {
        hit.clear();
        while (k < fr.size() && fr[k].cell == c) {
            const i64 s = fr[k].start, e = s + fr[k].width - 1;
            total[c] += 2;
            for (i64 p : {s, e}) {
                const i64 hi = std::upper_bound(sorted.begin(), sorted.end(), p) - sorted.begin();
                for (i64 q = hi - 1; q >= 0 && sorted[q] >= p - f.max_width; --q) {
                    const int fi = order[q];
                    if (f.end[fi] < p) continue;
                    const int row = f.idx[fi] - 1;
                    if (acc[row] == 0.0) hit.push_back(row);
                    acc[row] += 1.0;
                    in_features[c] += 1.0;
                }
            }
            ++k;
        }
        std::sort(hit.begin(), hit.end());
        for (int row : hit) {
            double v = std::min(acc[row], ceiling);
            if (binarize) v = 1.0;
            m.i.push_back(row);
            m.x.push_back(v);
            acc[row] = 0.0;
        }
        m.p[c + 1] = static_cast<int>(m.i.size());
    }
    return m;
}

// ---- reading rows and cells of a stored matrix ---------------------------

// Columns [lo, hi) of one chromosome block `g` of a stored sparse matrix:
// p (hi - lo + 1 offsets from 0), 0-based rows and values. Layout v2
// (indices/indptr/data) reads three hyperslabs; layout v1 (ArchR < 1.0.2:
// 1-based i, run-length column jLengths/jValues, x absent when binary)
// reads the runs whole and slices i and x. A missing block is empty.
struct BlockSlice {
    std::vector<i64> p;
    std::vector<int> i;
    std::vector<double> x;
};

inline BlockSlice read_block_slice(hid_t file, const std::string& g, int lo, int hi) {
    BlockSlice s;
    s.p.assign(static_cast<std::size_t>(hi - lo) + 1, 0);
    i64 first = 0;
    bool one_based = false, has_x = true;
    if (h5::exists(file, g + "/indptr")) {
        const auto ptr = h5::read_slice<double>(file, g + "/indptr", H5T_NATIVE_DOUBLE,
                                                static_cast<hsize_t>(lo), static_cast<hsize_t>(hi - lo) + 1);
        first = static_cast<i64>(ptr[0]);
        for (std::size_t k = 0; k < ptr.size(); ++k) s.p[k] = static_cast<i64>(ptr[k]) - first;
    } else if (h5::exists(file, g + "/jLengths")) {
        const auto len = h5::read_doubles(file, g + "/jLengths");
        const auto col = h5::read_doubles(file, g + "/jValues");
        if (len.size() != col.size()) throw format_error(g + ": jLengths and jValues differ in length");
        for (std::size_t r = 0; r < len.size(); ++r) {
            const i64 c = static_cast<i64>(col[r]) - 1, n = static_cast<i64>(len[r]);
            if (c < lo) first += n;
            else if (c < hi) s.p[static_cast<std::size_t>(c - lo) + 1] += n;
        }
        for (std::size_t k = 1; k < s.p.size(); ++k) s.p[k] += s.p[k - 1];
        one_based = true;
        has_x = h5::exists(file, g + "/x");
    } else {
        return s;
    }
    const hsize_t off = static_cast<hsize_t>(first), n = static_cast<hsize_t>(s.p.back());
    s.i = h5::read_slice<int>(file, g + (one_based ? "/i" : "/indices"), H5T_NATIVE_INT, off, n);
    if (one_based)
        for (int& r : s.i) r -= 1;
    s.x = has_x ? h5::read_slice<double>(file, g + (one_based ? "/x" : "/data"), H5T_NATIVE_DOUBLE, off, n)
                : std::vector<double>(n, 1.0);
    return s;
}

// Rows and columns of a matrix stored as chromosome blocks `group/chr`:
// the columns `cols` (ascending, 0-based) in that order and, per block
// chroms[b], the rows with row_maps[b][row] >= 0, renumbered to that value
// (row_maps[b] empty: block skipped). Only columns min(cols)..max(cols)
// are read, one chromosome at a time, so memory is that slice plus the
// result. Stored zeros are kept (the LSI kernels count stored entries).
inline Csc read_cells(hid_t file, const std::string& group, const std::vector<std::string>& chroms,
                      const std::vector<std::vector<int>>& row_maps, int n_rows,
                      const std::vector<int>& cols) {
    if (row_maps.size() != chroms.size()) throw input_error("read_cells: one row map per chromosome");
    for (std::size_t k = 1; k < cols.size(); ++k)
        if (cols[k] <= cols[k - 1]) throw input_error("read_cells: columns must be strictly ascending");
    Csc out;
    out.nrow = n_rows;
    out.ncol = static_cast<i64>(cols.size());
    out.p.assign(cols.size() + 1, 0);
    if (cols.empty()) return out;
    const int lo = cols.front(), hi = cols.back() + 1;
    std::vector<std::vector<int>> ri(chroms.size());
    std::vector<std::vector<double>> rx(chroms.size());
    std::vector<std::vector<i64>> counts(chroms.size());
    for (std::size_t b = 0; b < chroms.size(); ++b) {
        const auto& map = row_maps[b];
        if (map.empty()) continue;
        const BlockSlice s = read_block_slice(file, group + "/" + chroms[b], lo, hi);
        if (s.i.empty()) continue;
        counts[b].assign(cols.size(), 0);
        for (std::size_t k = 0; k < cols.size(); ++k) {
            const std::size_t c = static_cast<std::size_t>(cols[k] - lo);
            for (i64 t = s.p[c]; t < s.p[c + 1]; ++t) {
                const int r = s.i[static_cast<std::size_t>(t)];
                if (r < 0 || static_cast<std::size_t>(r) >= map.size())
                    throw format_error(group + "/" + chroms[b] + ": row index outside the FeatureDF");
                if (map[static_cast<std::size_t>(r)] < 0) continue;
                ri[b].push_back(map[static_cast<std::size_t>(r)]);
                rx[b].push_back(s.x[static_cast<std::size_t>(t)]);
                ++counts[b][k];
            }
        }
    }
    i64 nnz = 0;
    for (std::size_t k = 0; k < cols.size(); ++k) {
        for (const auto& c : counts)
            if (!c.empty()) nnz += c[k];
        if (nnz > INT32_MAX) throw input_error("read_cells: more than 2^31 - 1 values; read fewer cells at once");
        out.p[k + 1] = static_cast<int>(nnz);
    }
    out.i.resize(static_cast<std::size_t>(nnz));
    out.x.resize(static_cast<std::size_t>(nnz));
    std::vector<i64> pos(chroms.size(), 0);
    for (std::size_t k = 0; k < cols.size(); ++k) {
        const std::size_t at = static_cast<std::size_t>(out.p[k]);
        std::size_t q = at;
        for (std::size_t b = 0; b < chroms.size(); ++b) {
            if (counts[b].empty()) continue;
            for (i64 t = 0; t < counts[b][k]; ++t, ++q, ++pos[b]) {
                out.i[q] = ri[b][static_cast<std::size_t>(pos[b])];
                out.x[q] = rx[b][static_cast<std::size_t>(pos[b])];
            }
        }
        // Maps need not follow the block order: keep rows sorted per column.
        if (!std::is_sorted(out.i.begin() + at, out.i.begin() + q)) {
            std::vector<std::pair<int, double>> e;
            for (std::size_t t = at; t < q; ++t) e.emplace_back(out.i[t], out.x[t]);
            std::sort(e.begin(), e.end());
            for (std::size_t t = at; t < q; ++t) std::tie(out.i[t], out.x[t]) = e[t - at];
        }
    }
    return out;
}

}  // namespace arrow
}  // namespace epione
