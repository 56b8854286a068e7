// Reader for 10x-style fragment files (chrom, start, end, barcode[, count]),
// bgzip-compressed and tabix-indexed, through HTSlib. One chromosome is read
// at a time (tabix query), so memory never holds more than the caller keeps
// of one chromosome. Every line is validated: malformed, unsorted, negative
// or reversed fragments and truncated compression raise format_error with
// the line and the fix.
#pragma once
#include <htslib/bgzf.h>
#include <htslib/hts.h>
#include <htslib/hts_log.h>
#include <htslib/tbx.h>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>
#include "error.hpp"
#include "tabix.hpp"

namespace epione {
namespace fragments {

inline bool file_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// Parses a non-negative decimal integer; false on anything else.
inline bool parse_int(std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    bool neg = false;
    std::size_t k = 0;
    if (s[0] == '-') { neg = true; k = 1; }
    if (k == s.size()) return false;
    std::int64_t v = 0;
    for (; k < s.size(); ++k) {
        const char c = s[k];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
        if (v > (std::int64_t(1) << 40)) return false;
    }
    out = neg ? -v : v;
    return true;
}

// Splits the first four tab-separated columns of a fragment line into
// `col`; returns how many were found (the last may run to the line's end).
inline int split_columns(std::string_view s, std::string_view (&col)[4]) {
    std::size_t from = 0;
    int k = 0;
    for (; k < 4; ++k) {
        const std::size_t tab = s.find('\t', from);
        col[k] = s.substr(from, tab == std::string_view::npos ? std::string_view::npos : tab - from);
        if (tab == std::string_view::npos) return k + 1;
        from = tab + 1;
    }
    return k;
}

class FragmentFile {
public:
    // `threads` > 1 decompresses BGZF blocks on extra threads.
    FragmentFile(const std::string& path, int threads = 1) : path_(path) {
        hts_set_log_level(HTS_LOG_OFF);  // report through exceptions, not stderr
        if (!file_exists(path)) throw input_error("fragment file '" + path + "' does not exist");
        if (!file_exists(path + ".tbi") && !file_exists(path + ".csi"))
            throw format_error("fragment file '" + path + "' has no tabix index ('" + path +
                               ".tbi'). Sort, compress and index it: `sort -k1,1 -k2,2n frags.tsv | "
                               "bgzip > frags.tsv.gz && tabix -p bed frags.tsv.gz`");
        fp_ = hts_open(path.c_str(), "r");
        if (!fp_) throw format_error("cannot open fragment file '" + path + "'");
        const htsFormat* fmt = hts_get_format(fp_);
        if (fmt->compression != bgzf)
            throw format_error("fragment file '" + path + "' is not bgzip-compressed (plain gzip or text); "
                               "recompress it with `zcat f.tsv.gz | bgzip > f.bgz.tsv.gz` and index with "
                               "`tabix -p bed`");
        // A complete BGZF file ends with an empty EOF block; without it the
        // file was cut short (interrupted download or copy).
        if (bgzf_check_EOF(hts_get_bgzfp(fp_)) == 0)
            throw format_error("fragment file '" + path + "' is truncated (no BGZF end-of-file block); "
                               "re-download or re-create it with bgzip");
        if (threads > 1) hts_set_threads(fp_, threads);
        idx_ = tbx_index_load(path.c_str());
        if (!idx_)
            throw format_error("cannot load the tabix index of '" + path +
                               "'; rebuild it with `tabix -f -p bed " + path + "`");
    }
    FragmentFile(const FragmentFile&) = delete;
    FragmentFile& operator=(const FragmentFile&) = delete;
    ~FragmentFile() {
        if (idx_) tbx_destroy(idx_);
        if (fp_) hts_close(fp_);
    }

    std::vector<std::string> seqnames() const { return tabix_seqnames(idx_); }

    // Calls fn(start0, end, barcode) for every fragment of `chrom` in file
    // order; start0 is the 0-based BED start. Returns the number of lines.
    template <class F>
    std::int64_t for_each(const std::string& chrom, F&& fn) {
        const int tid = tbx_name2id(idx_, chrom.c_str());
        if (tid < 0) return 0;
        hts_itr_t* itr = tbx_itr_queryi(idx_, tid, 0, HTS_POS_MAX);
        if (!itr) throw format_error("tabix query for '" + chrom + "' failed in '" + path_ + "'");
        std::unique_ptr<hts_itr_t, void (*)(hts_itr_t*)> guard(itr, hts_itr_destroy);
        kstring_t line = {0, 0, nullptr};
        std::int64_t n = 0, prev = -1;
        int ret;
        while ((ret = tbx_itr_next(fp_, idx_, itr, &line)) >= 0) {
            ++n;
            std::string_view s(line.s, line.l);
            std::string_view col[4];
            const int k = split_columns(s, col);
            if (k < 4 || col[3].empty()) fail(chrom, n, s, "has fewer than 4 tab-separated columns (chrom, start, end, barcode)");
            std::int64_t st, en;
            if (!parse_int(col[1], st) || !parse_int(col[2], en))
                fail(chrom, n, s, "has a start or end that is not a whole number");
            if (st < 0 || en < 0) fail(chrom, n, s, "has a negative coordinate");
            if (en <= st) fail(chrom, n, s, "has start >= end (an empty or reversed fragment); fix or drop such lines");
            if (st < prev)
                fail(chrom, n, s, "is out of order: the file is not sorted by start. Sort it with "
                                  "`sort -k1,1 -k2,2n`, then bgzip and `tabix -p bed` again");
            prev = st;
            fn(st, en, col[3]);
        }
        std::free(line.s);
        if (ret < -1)
            throw format_error("fragment file '" + path_ + "' is truncated or corrupt (bgzip read failed in '" +
                               chrom + "' after " + std::to_string(n) +
                               " lines); re-download or re-create it");
        return n;
    }

private:
    [[noreturn]] void fail(const std::string& chrom, std::int64_t n, std::string_view s, const char* what) {
        std::string shown(s.substr(0, 120));
        throw format_error("fragment file '" + path_ + "': line " + std::to_string(n) + " of " + chrom +
                           " ('" + shown + "') " + what);
    }
    std::string path_;
    htsFile* fp_ = nullptr;
    tbx_t* idx_ = nullptr;
};

}  // namespace fragments
}  // namespace epione

namespace epione {
namespace fragments {

// Compresses a fragment file (plain text or gzip) to BGZF and builds its
// tabix index. Lines are validated as in FragmentFile::for_each; unsorted
// input is an error unless `sort` is true, in which case the whole file is
// sorted in memory (chromosomes in first-appearance order, then start, end).
inline std::int64_t bgzip_index(const std::string& in, const std::string& out, bool sort) {
    hts_set_log_level(HTS_LOG_OFF);
    htsFile* fin = hts_open(in.c_str(), "r");
    if (!fin) throw input_error("cannot open '" + in + "'");
    std::unique_ptr<htsFile, int (*)(htsFile*)> gin(fin, hts_close);
    struct Line { int chrom; std::int64_t start, end; std::string text; };
    std::vector<Line> lines;
    std::vector<std::string> chroms;
    kstring_t ks = {0, 0, nullptr};
    std::int64_t n = 0, prev = -1;
    int cur = -1;
    BGZF* fout = nullptr;
    const std::string tmp = out + ".tmp";
    if (!sort) {
        fout = bgzf_open(tmp.c_str(), "w");
        if (!fout) throw input_error("cannot write '" + out + "'");
    }
    auto fail = [&](const std::string& what) {
        if (fout) bgzf_close(fout);
        std::remove(tmp.c_str());
        std::free(ks.s);
        throw format_error("'" + in + "' line " + std::to_string(n) + ": " + what);
    };
    int ret;
    while ((ret = hts_getline(fin, '\n', &ks)) >= 0) {
        ++n;
        std::string_view s(ks.s, ks.l);
        if (s.empty() || s[0] == '#') continue;
        std::string_view col[4];
        const int k = split_columns(s, col);
        std::int64_t st, en;
        if (k < 4 || col[3].empty()) fail("fewer than 4 tab-separated columns (chrom, start, end, barcode)");
        if (!parse_int(col[1], st) || !parse_int(col[2], en)) fail("start or end is not a whole number");
        if (st < 0 || en < 0) fail("negative coordinate");
        if (en <= st) fail("start >= end (an empty or reversed fragment)");
        const std::string c(col[0]);
        if (cur < 0 || chroms[cur] != c) {
            auto it = std::find(chroms.begin(), chroms.end(), c);
            if (it != chroms.end() && !sort)
                fail("chromosome '" + c + "' appears in two separate blocks: the file is not sorted. "
                     "Sort it (`sort -k1,1 -k2,2n`) or use sort = TRUE");
            cur = static_cast<int>(it - chroms.begin());
            if (it == chroms.end()) chroms.push_back(c);
            prev = -1;
        }
        if (st < prev && !sort)
            fail("fragments are not sorted by start. Sort them (`sort -k1,1 -k2,2n`) or use sort = TRUE");
        prev = st;
        if (sort) {
            lines.push_back({cur, st, en, std::string(s)});
        } else {
            if (bgzf_write(fout, ks.s, ks.l) < 0 || bgzf_write(fout, "\n", 1) < 0) fail("write failed");
        }
    }
    if (ret < -1) fail("the input is truncated or corrupt");
    std::free(ks.s);
    ks.s = nullptr;
    if (sort) {
        std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
            if (a.chrom != b.chrom) return a.chrom < b.chrom;
            if (a.start != b.start) return a.start < b.start;
            return a.end < b.end;
        });
        fout = bgzf_open(tmp.c_str(), "w");
        if (!fout) throw input_error("cannot write '" + out + "'");
        for (const Line& l : lines) {
            if (bgzf_write(fout, l.text.data(), l.text.size()) < 0 ||
                bgzf_write(fout, "\n", 1) < 0) {
                bgzf_close(fout);
                std::remove(tmp.c_str());
                throw input_error("cannot write '" + out + "' (disk full?)");
            }
        }
    }
    if (bgzf_close(fout) < 0) throw input_error("cannot finish writing '" + out + "'");
    if (std::rename(tmp.c_str(), out.c_str()) != 0) throw input_error("cannot rename to '" + out + "'");
    if (tbx_index_build(out.c_str(), 0, &tbx_conf_bed) != 0)
        throw format_error("tabix could not index '" + out + "'; is it sorted by chromosome and start?");
    return n;
}

}  // namespace fragments
}  // namespace epione
