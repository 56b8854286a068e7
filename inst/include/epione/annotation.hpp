// Peak annotation core: nearest point (TSS, gene start) and point-in-
// interval membership on sorted coordinates, by binary search. Positions are
// 1-based integers; chromosomes are integer codes shared by both sides.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "sparse.hpp"

namespace epione {
namespace annotation {

// Points (or intervals) sorted by (chromosome, start, input order), with
// the range of each chromosome code in that order.
struct Sorted {
    std::vector<index_t> order;      // sorted position -> input index
    std::vector<int> start, end;     // in sorted order
    std::vector<index_t> chr_begin;  // size n_chr + 1
};

inline Sorted sort_by_position(Span<const int> chr, Span<const int> start,
                               Span<const int> end, int n_chr) {
    require_size(start, chr.size(), "start");
    require_size(end, chr.size(), "end");
    Sorted s;
    s.order.resize(chr.size());
    std::iota(s.order.begin(), s.order.end(), index_t(0));
    for (index_t k = 0; k < chr.size(); ++k)
        require(chr[k] >= 0 && chr[k] < n_chr, "chromosome code out of range");
    std::stable_sort(s.order.begin(), s.order.end(), [&](index_t a, index_t b) {
        return chr[a] != chr[b] ? chr[a] < chr[b] : start[a] < start[b];
    });
    s.start.resize(chr.size());
    s.end.resize(chr.size());
    s.chr_begin.assign(n_chr + 1, 0);
    for (index_t k = 0; k < chr.size(); ++k) {
        s.start[k] = start[s.order[k]];
        s.end[k] = end[s.order[k]];
        s.chr_begin[chr[s.order[k]] + 1]++;
    }
    for (int c = 0; c < n_chr; ++c) s.chr_begin[c + 1] += s.chr_begin[c];
    return s;
}

// Nearest subject point to each query point on the same chromosome, with
// GenomicRanges::distanceToNearest()'s answer and tie rule (so ArchR's
// annotation is reproduced): a subject at the query position wins (lowest
// input index); otherwise the next subject to the right ("precede", lowest
// index at that position) competes with the previous one to the left
// ("follow", highest index at that position); the closer wins, and on equal
// distance the lower input index. Distance is GenomicRanges' gap width,
// max(|q - s| - 1, 0). `hit` is a 0-based input index, -1 when the
// chromosome has no subject.
template <class Par>
void nearest_points(Span<const int> qchr, Span<const int> qpos,
                    const Sorted& subj, Par& par, Span<int> hit,
                    Span<int> dist) {
    require_size(qpos, qchr.size(), "query positions");
    require_size(hit, qchr.size(), "hit");
    require_size(dist, qchr.size(), "dist");
    const index_t n_chr = static_cast<index_t>(subj.chr_begin.size()) - 1;
    const index_t n = qchr.size(), block = 8192;
    par.run((n + block - 1) / block, [&](index_t b) {
        const index_t to = std::min(n, (b + 1) * block);
        for (index_t k = b * block; k < to; ++k) {
            hit[k] = -1;
            dist[k] = -1;
            const int c = qchr[k], q = qpos[k];
            if (c < 0 || c >= n_chr) continue;
            const auto lo = subj.start.begin() + subj.chr_begin[c];
            const auto hi = subj.start.begin() + subj.chr_begin[c + 1];
            if (lo == hi) continue;
            auto right = std::lower_bound(lo, hi, q);
            index_t best = -1;
            int d = 0;
            if (right != hi && *right == q) {
                index_t m = subj.order[right - subj.start.begin()];
                for (auto it = right; it != hi && *it == q; ++it)
                    m = std::min(m, subj.order[it - subj.start.begin()]);
                best = m;
            } else {
                index_t p = -1, f = -1;
                int dp = 0, df = 0;
                if (right != hi) {   // lowest index among the first start > q
                    p = subj.order[right - subj.start.begin()];
                    for (auto it = right; it != hi && *it == *right; ++it)
                        p = std::min(p, subj.order[it - subj.start.begin()]);
                    dp = *right - q - 1;
                }
                if (right != lo) {   // highest index among the last start < q
                    auto left = right - 1;
                    f = subj.order[left - subj.start.begin()];
                    for (auto it = left;; --it) {
                        if (*it != *left) break;
                        f = std::max(f, subj.order[it - subj.start.begin()]);
                        if (it == lo) break;
                    }
                    df = q - *left - 1;
                }
                if (p < 0 || (f >= 0 && (df < dp || (df == dp && f < p)))) {
                    best = f;
                    d = df;
                } else {
                    best = p;
                    d = dp;
                }
            }
            hit[k] = static_cast<int>(best);
            dist[k] = d;
        }
    });
}

// Merges overlapping or touching intervals within each chromosome, in place.
inline Sorted merge_intervals(Sorted s) {
    const index_t n_chr = static_cast<index_t>(s.chr_begin.size()) - 1;
    std::vector<int> st, en;
    std::vector<index_t> begin(n_chr + 1, 0);
    for (index_t c = 0; c < n_chr; ++c) {
        begin[c] = static_cast<index_t>(st.size());
        // sorted by start only: keep a running maximum of the end
        for (index_t k = s.chr_begin[c]; k < s.chr_begin[c + 1]; ++k) {
            if (st.size() > static_cast<std::size_t>(begin[c]) &&
                s.start[k] <= en.back() + 1) {
                en.back() = std::max(en.back(), s.end[k]);
            } else {
                st.push_back(s.start[k]);
                en.push_back(s.end[k]);
            }
        }
    }
    begin[n_chr] = static_cast<index_t>(st.size());
    Sorted m;
    m.start = std::move(st);
    m.end = std::move(en);
    m.chr_begin = std::move(begin);
    return m;
}

// Whether each query point lies in one of the merged intervals `m`.
template <class Par>
void points_in(Span<const int> qchr, Span<const int> qpos, const Sorted& m,
               Par& par, Span<int> out) {
    require_size(out, qchr.size(), "out");
    const index_t n_chr = static_cast<index_t>(m.chr_begin.size()) - 1;
    const index_t n = qchr.size(), block = 8192;
    par.run((n + block - 1) / block, [&](index_t b) {
        const index_t to = std::min(n, (b + 1) * block);
        for (index_t k = b * block; k < to; ++k) {
            out[k] = 0;
            const int c = qchr[k];
            if (c < 0 || c >= n_chr) continue;
            const auto lo = m.start.begin() + m.chr_begin[c];
            const auto hi = m.start.begin() + m.chr_begin[c + 1];
            auto it = std::upper_bound(lo, hi, qpos[k]);   // first start > q
            if (it == lo) continue;
            out[k] = m.end[(it - 1) - m.start.begin()] >= qpos[k];
        }
    });
}

}  // namespace annotation
}  // namespace epione
