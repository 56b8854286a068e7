// Peak-to-gene links and co-accessibility (ArchR 1.0.3 addPeak2GeneLinks /
// addCoAccessibility): kNN metacells over an embedding, overlap filtering,
// metacell aggregation with depth normalisation and log2, Pearson
// correlation of listed feature pairs. Statistics on the correlations
// (Student t, BH) stay in R, where pt() and p.adjust() are the reference.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "sparse.hpp"
#include "threads.hpp"

namespace epione {
namespace p2g {

// Exact k nearest neighbours (squared Euclidean) of the query rows among all
// rows of `emb` (cells x dims), the query cell itself included, as ArchR's
// nabor::knn(data = rD, query = rD[idx, ]) does. Ties go to the lower cell
// index. `out` is nq x k, column-major, 0-based cell indices, nearest first.
template <class Par>
void knn(const DenseView<const double>& emb, Span<const int> query, int k,
         Par& par, DenseView<int> out) {
    const index_t n = emb.nrow, nq = query.size();
    require(k >= 1 && k <= n, "k must be in [1, number of cells]");
    require(out.nrow == nq && out.ncol == k, "knn: output must be nq x k");
    par.run(nq, [&](index_t q) {
        const index_t cq = query[q];
        require(cq >= 0 && cq < n, "knn: query index out of range");
        std::vector<double> d(n, 0.0);
        for (index_t j = 0; j < emb.ncol; ++j) {
            const double* col = emb.ptr + j * n;
            const double x = col[cq];
            for (index_t c = 0; c < n; ++c) {
                const double t = col[c] - x;
                d[c] += t * t;
            }
        }
        std::vector<int> ord(n);
        std::iota(ord.begin(), ord.end(), 0);
        auto less = [&](int a, int b) { return d[a] < d[b] || (d[a] == d[b] && a < b); };
        std::partial_sort(ord.begin(), ord.begin() + k, ord.end(), less);
        for (int j = 0; j < k; ++j) out(q, j) = ord[j];
    });
}

// ArchR's overlap filter (determineOverlapCpp): walking the kNN groups in
// order, group i is dropped when it shares more than `max_shared` cells with
// any earlier group that was kept. Returns 1 for kept groups.
inline std::vector<int> keep_groups(const DenseView<const int>& knn, index_t n_cells,
                                    int max_shared) {
    const index_t nq = knn.nrow, k = knn.ncol;
    std::vector<int> keep(nq, 0), stamp(n_cells, -1);
    std::vector<index_t> kept;
    for (index_t i = 0; i < nq; ++i) {
        for (index_t j = 0; j < k; ++j) stamp[knn(i, j)] = static_cast<int>(i);
        bool ok = true;
        for (index_t g : kept) {
            int shared = 0;
            for (index_t j = 0; j < k; ++j) shared += stamp[knn(g, j)] == i;
            if (shared > max_shared) { ok = false; break; }
        }
        if (ok) { keep[i] = 1; kept.push_back(i); }
    }
    return keep;
}

// Metacell matrix in feature-major layout (`out[f * G + g]`), so a feature's
// G values are contiguous for the pair dot products. Column g sums the
// columns groups(g, .) of `x`, is scaled to `scale_to` over all features
// (ArchR: t(t(M) / colSums(M)) * scaleTo) and optionally log2(x + 1).
struct MetacellOptions {
    double scale_to = 1e4;
    bool log2_norm = true;
};

template <class Par>
std::vector<double> metacells(const CscView<double>& x, const DenseView<const int>& groups,
                              const MetacellOptions& opt, Par& par) {
    const index_t nf = x.nrow, G = groups.nrow, k = groups.ncol;
    std::vector<double> out(static_cast<std::size_t>(nf) * G, 0.0);
    const index_t width = 8;  // 8 doubles: one cache line per feature and task
    const index_t n_tasks = (G + width - 1) / width;
    par.run(n_tasks, [&](index_t t) {
        const index_t g0 = t * width, g1 = std::min(G, g0 + width);
        std::vector<double> acc(static_cast<std::size_t>(nf) * (g1 - g0), 0.0);
        std::vector<index_t> cells(k);
        for (index_t g = g0; g < g1; ++g) {
            double* col = acc.data() + (g - g0) * nf;
            // ArchR sums a group's cells in matrix column order and
            // normalises as (sum / colSum) * scaleTo with R's long double
            // colSums; doing the same keeps exact ties in the variances.
            for (index_t j = 0; j < k; ++j) {
                cells[j] = groups(g, j);
                require(cells[j] >= 0 && cells[j] < x.ncol,
                        "metacells: cell index out of range");
            }
            std::sort(cells.begin(), cells.end());
            for (index_t c : cells) x.for_col(c, [&](int r, double v) { col[r] += v; });
            long double total = 0.0L;
            for (index_t r = 0; r < nf; ++r) total += col[r];
            const double tot = static_cast<double>(total);
            for (index_t r = 0; r < nf; ++r) {
                if (col[r] == 0.0) continue;   // log2(0 + 1) is exactly 0
                const double v = col[r] / tot * opt.scale_to;
                col[r] = opt.log2_norm ? std::log2(v + 1.0) : v;
            }
        }
        for (index_t r = 0; r < nf; ++r)
            for (index_t g = g0; g < g1; ++g)
                out[r * G + g] = acc[(g - g0) * nf + r];
    });
    return out;
}

// Replaces each feature's G values by (v - mean) / sqrt(sum of squares), so
// a Pearson correlation is one dot product; constant features become NaN
// (ArchR's rowCorCpp yields NaN there too). Returns the sample variances
// (n - 1 denominator, as matrixStats::rowVars).
template <class Par>
std::vector<double> standardise(std::vector<double>& m, index_t G, Par& par) {
    const index_t nf = G ? static_cast<index_t>(m.size()) / G : 0;
    std::vector<double> var(nf);
    const index_t block = 1024, n_tasks = (nf + block - 1) / block;
    par.run(n_tasks, [&](index_t t) {
        for (index_t f = t * block, e = std::min(nf, f + block); f < e; ++f) {
            double* v = m.data() + f * G;
            double mean = 0.0;
            for (index_t g = 0; g < G; ++g) mean += v[g];
            mean /= static_cast<double>(G);
            double ss = 0.0;
            for (index_t g = 0; g < G; ++g) {
                v[g] -= mean;
                ss += v[g] * v[g];
            }
            var[f] = G > 1 ? ss / static_cast<double>(G - 1)
                           : std::numeric_limits<double>::quiet_NaN();
            const double inv = ss > 0 ? 1.0 / std::sqrt(ss)
                                      : std::numeric_limits<double>::quiet_NaN();
            for (index_t g = 0; g < G; ++g) v[g] *= inv;
        }
    });
    return var;
}

// cor[p] = <a-row ia[p], b-row ib[p]> over standardised feature-major
// matrices with G columns; NaN where either row was constant.
template <class Par>
void pair_correlations(const std::vector<double>& a, const std::vector<double>& b,
                       index_t G, Span<const int> ia, Span<const int> ib, Par& par,
                       Span<double> cor) {
    require_size(ib, ia.size(), "ib");
    require_size(cor, ia.size(), "cor");
    const index_t na = static_cast<index_t>(a.size()) / G;
    const index_t nb = static_cast<index_t>(b.size()) / G;
    const index_t n = ia.size(), block = 4096, n_tasks = (n + block - 1) / block;
    par.run(n_tasks, [&](index_t t) {
        for (index_t p = t * block, e = std::min(n, p + block); p < e; ++p) {
            require(ia[p] >= 0 && ia[p] < na && ib[p] >= 0 && ib[p] < nb,
                    "pair index out of range");
            const double* x = a.data() + static_cast<index_t>(ia[p]) * G;
            const double* y = b.data() + static_cast<index_t>(ib[p]) * G;
            double s = 0.0;
            for (index_t g = 0; g < G; ++g) s += x[g] * y[g];
            cor[p] = s;
        }
    });
}

}  // namespace p2g
}  // namespace epione
