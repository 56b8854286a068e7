// Pseudobulk Tn5 insertion coverage per cell group straight from a
// tabix-indexed fragment file (ArchR 1.0.3 getGroupBW / .createGroupBW
// counting): both insertions of each fragment, binned in tiles, each
// cell's count per tile capped at `ceiling`, summed over the group's cells.
// A small self-contained HTSlib reader; one task per chromosome, each with
// its own file handle, so results do not depend on the thread count.
#pragma once
#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/tbx.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "tabix.hpp"

namespace epione {
namespace coverage {

struct CoverageOptions {
    int tile_size = 100;  // bp per tile (ArchR getGroupBW default)
    int ceiling = 4;      // max insertions per cell and tile; <= 0: none
};

// Nonzero tiles of one chromosome: parallel vectors, sorted by group then tile.
struct ChromCoverage {
    std::vector<int> group;
    std::vector<std::int64_t> tile;  // 0-based: ArchR bin trunc(pos / tile_size)
    std::vector<double> reads;
};

// One fragment: 0-based start, end, cell index (-1 when not a wanted cell).
struct Fragment {
    std::int64_t start, end;
    int cell;
};

// Open file + tabix index, closed on scope exit.
class TabixFile {
public:
    explicit TabixFile(const std::string& path) {
        fp_ = hts_open(path.c_str(), "r");
        if (!fp_) throw input_error("cannot open fragment file '" + path + "'");
        idx_ = tbx_index_load(path.c_str());
        if (!idx_) {
            hts_close(fp_);
            throw format_error("no tabix index for '" + path +
                               "'; create it with `tabix -p bed " + path + "`");
        }
    }
    ~TabixFile() {
        if (idx_) tbx_destroy(idx_);
        if (fp_) hts_close(fp_);
    }
    TabixFile(const TabixFile&) = delete;
    TabixFile& operator=(const TabixFile&) = delete;

    std::vector<std::string> seqnames() const { return tabix_seqnames(idx_); }
    // Calls f(line) for each line in `region` ("chr" or "chr:beg-end").
    template <class F>
    void for_region(const std::string& region, F&& f) {
        hts_itr_t* itr = tbx_itr_querys(idx_, region.c_str());
        if (!itr) return;  // sequence absent from the index: no fragments
        kstring_t s = {0, 0, nullptr};
        int ret;
        while ((ret = tbx_itr_next(fp_, idx_, itr, &s)) >= 0) f(s.s, s.l);
        hts_itr_destroy(itr);
        std::free(s.s);
        if (ret < -1) throw format_error("truncated or corrupt fragment file in " + region);
    }

private:
    htsFile* fp_ = nullptr;
    tbx_t* idx_ = nullptr;
};

// Parses "chrom\tstart\tend\tbarcode[\t...]"; returns false for short lines.
inline bool parse_fragment(const char* s, std::size_t len,
                           const std::unordered_map<std::string, int>& cells,
                           Fragment& out) {
    const char* end = s + len;
    const char* t1 = static_cast<const char*>(std::memchr(s, '\t', len));
    if (!t1) return false;
    char* p;
    out.start = std::strtoll(t1 + 1, &p, 10);
    if (*p != '\t') return false;
    out.end = std::strtoll(p + 1, &p, 10);
    if (*p != '\t') return false;
    const char* b = p + 1;
    const char* be = static_cast<const char*>(std::memchr(b, '\t', end - b));
    if (!be) be = end;
    auto it = cells.find(std::string(b, be - b));
    out.cell = it == cells.end() ? -1 : it->second;
    return true;
}

// Coverage of one region (a chromosome or "chr:beg-end") for the cells in
// `cells` (barcode -> cell index); cell_group[cell] is its group.
// n_frags[cell] is incremented for each fragment read (for nFrags scaling);
// the caller gives each task its own n_frags so tasks never share memory.
inline ChromCoverage region_coverage(const std::string& path, const std::string& region,
                                     const std::unordered_map<std::string, int>& cells,
                                     Span<const int> cell_group, const CoverageOptions& opt,
                                     std::vector<double>& n_frags) {
    require(opt.tile_size >= 1, "tileSize must be >= 1");
    TabixFile tf(path);
    // key = (tile, cell): sorting groups each cell's insertions per tile.
    std::vector<std::pair<std::int64_t, int>> ins;
    Fragment fr{};
    tf.for_region(region, [&](const char* s, std::size_t len) {
        if (!parse_fragment(s, len, cells, fr))
            throw format_error("malformed fragment line in " + region + ": '" +
                               std::string(s, std::min<std::size_t>(len, 80)) + "'");
        if (fr.cell < 0) return;
        n_frags[fr.cell] += 1.0;
        // ArchR stores start + 1 (1-based) and the end; both are insertions,
        // binned as trunc(pos / tileSize).
        ins.emplace_back((fr.start + 1) / opt.tile_size, fr.cell);
        ins.emplace_back(fr.end / opt.tile_size, fr.cell);
    });
    std::sort(ins.begin(), ins.end());
    // per (tile, cell) count capped, then summed into (group, tile)
    std::vector<std::pair<std::pair<int, std::int64_t>, double>> acc;
    for (std::size_t i = 0; i < ins.size();) {
        std::size_t j = i;
        while (j < ins.size() && ins[j] == ins[i]) ++j;
        double n = static_cast<double>(j - i);
        if (opt.ceiling > 0) n = std::min(n, static_cast<double>(opt.ceiling));
        acc.push_back({{cell_group[ins[i].second], ins[i].first}, n});
        i = j;
    }
    std::sort(acc.begin(), acc.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    ChromCoverage out;
    for (std::size_t i = 0; i < acc.size();) {
        std::size_t j = i;
        double sum = 0.0;
        while (j < acc.size() && acc[j].first == acc[i].first) sum += acc[j++].second;
        out.group.push_back(acc[i].first.first);
        out.tile.push_back(acc[i].first.second);
        out.reads.push_back(sum);
        i = j;
    }
    return out;
}

}  // namespace coverage
}  // namespace epione
