// Row-wise Wilcoxon rank-sum test between two groups of columns of a sparse
// features x cells matrix (ArchR getMarkerFeatures(testMethod = "wilcoxon")
// calls presto::wilcoxauc): U of the first group, AUC = U / (n1 n2) and the
// two-sided normal-approximation p-value with tie and continuity correction
// (as presto and stats::wilcox.test(exact = FALSE, correct = TRUE)).
// Implicit zeros are one tied block. One feature per task.
#pragma once
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>
#include "error.hpp"
#include "sparse.hpp"
#include "span.hpp"

namespace epione {
namespace markers {

struct RankSum {
    double auc, pval;
};

// values: the non-zero entries of one row, each with a flag "in group 1".
inline RankSum wilcoxon_row(std::vector<std::pair<double, bool>>& nz,
                            index_t n1, index_t n2) {
    const double n = static_cast<double>(n1 + n2);
    const index_t n_zero = n1 + n2 - static_cast<index_t>(nz.size());
    index_t z1 = n1;
    for (const auto& e : nz) z1 -= e.second ? 1 : 0;
    std::sort(nz.begin(), nz.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    double r1 = 0.0, ties = 0.0, pos = 0.0;   // pos: ranks used so far
    bool zeros_done = n_zero == 0;
    auto add_zeros = [&]() {
        const double t = static_cast<double>(n_zero);
        r1 += z1 * (pos + (t + 1) / 2);
        ties += t * t * t - t;
        pos += t;
        zeros_done = true;
    };
    std::size_t i = 0;
    while (i < nz.size()) {
        if (!zeros_done && nz[i].first > 0) add_zeros();
        std::size_t j = i;
        index_t g1 = 0;
        while (j < nz.size() && nz[j].first == nz[i].first) g1 += nz[j++].second;
        const double t = static_cast<double>(j - i);
        r1 += g1 * (pos + (t + 1) / 2);
        ties += t * t * t - t;
        pos += t;
        i = j;
    }
    if (!zeros_done) add_zeros();
    const double n1n2 = static_cast<double>(n1) * static_cast<double>(n2);
    const double u = r1 - static_cast<double>(n1) * (n1 + 1) / 2.0;
    double z = u - n1n2 / 2.0;
    z -= (z > 0 ? 0.5 : (z < 0 ? -0.5 : 0.0));
    const double sigma = std::sqrt(n1n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))));
    const double p = sigma > 0 ? std::erfc(std::fabs(z / sigma) / std::sqrt(2.0)) : 1.0;
    return {u / n1n2, p};
}

// Which group each cell is in (0 none, 1 foreground, 2 background) and its
// normalisation factor.
struct GroupMap {
    std::vector<int> which;
    std::vector<double> scale;
};

inline GroupMap group_map(index_t n_cells, const Span<const int>& g1,
                          const Span<const int>& g2, const Span<const double>& f1,
                          const Span<const double>& f2) {
    require(g1.size() > 0 && g2.size() > 0, "both groups need cells");
    require(f1.size() == g1.size() && f2.size() == g2.size(),
            "one normalisation factor per cell");
    GroupMap m{std::vector<int>(n_cells, 0), std::vector<double>(n_cells, 0.0)};
    for (index_t k = 0; k < g1.size(); ++k) {
        m.which[g1[k]] = 1;
        m.scale[g1[k]] = f1[k];
    }
    for (index_t k = 0; k < g2.size(); ++k) {
        require(m.which[g2[k]] == 0, "a cell is in both groups");
        m.which[g2[k]] = 2;
        m.scale[g2[k]] = f2[k];
    }
    return m;
}

// Test every row: columns `g1` versus `g2` (0-based), each column scaled by
// its factor. `t` is the transpose (cells x features) so rows are columns.
template <class Par>
void wilcoxon(const CscView<double>& t, const Span<const int>& g1,
              const Span<const int>& g2, const Span<const double>& f1,
              const Span<const double>& f2, Par& par, Span<double> auc,
              Span<double> pval) {
    const GroupMap gm = group_map(t.nrow, g1, g2, f1, f2);
    par.run(t.ncol, [&](index_t r) {
        std::vector<std::pair<double, bool>> nz;
        t.for_col(r, [&](int c, double v) {
            if (gm.which[c] != 0 && v != 0)
                nz.emplace_back(v * gm.scale[c], gm.which[c] == 1);
        });
        const RankSum s = wilcoxon_row(nz, g1.size(), g2.size());
        auc[r] = s.auc;
        pval[r] = s.pval;
    });
}

// Per-row means and sample variances of the scaled values of both groups,
// zeros included: ArchR's .sparseMatTTest (Matrix::rowMeans and its C++
// computeSparseRowVariances: sum over non-zeros of (x - m)^2 plus
// (n - nnz) m^2, divided by n - 1). The t statistic is formed in R.
template <class Par>
void row_moments(const CscView<double>& t, const Span<const int>& g1,
                 const Span<const int>& g2, const Span<const double>& f1,
                 const Span<const double>& f2, Par& par, Span<double> mean1,
                 Span<double> mean2, Span<double> var1, Span<double> var2) {
    const GroupMap gm = group_map(t.nrow, g1, g2, f1, f2);
    const double n[2] = {static_cast<double>(g1.size()),
                         static_cast<double>(g2.size())};
    par.run(t.ncol, [&](index_t r) {
        double sum[2] = {0.0, 0.0};
        double nnz[2] = {0.0, 0.0};
        t.for_col(r, [&](int c, double v) {
            if (gm.which[c] == 0) return;
            sum[gm.which[c] - 1] += v * gm.scale[c];
            nnz[gm.which[c] - 1] += 1.0;
        });
        const double m[2] = {sum[0] / n[0], sum[1] / n[1]};
        double ss[2] = {0.0, 0.0};
        t.for_col(r, [&](int c, double v) {
            if (gm.which[c] == 0) return;
            const double d = v * gm.scale[c] - m[gm.which[c] - 1];
            ss[gm.which[c] - 1] += d * d;
        });
        mean1[r] = m[0];
        mean2[r] = m[1];
        var1[r] = (ss[0] + (n[0] - nnz[0]) * m[0] * m[0]) / (n[0] - 1);
        var2[r] = (ss[1] + (n[1] - nnz[1]) * m[1] * m[1]) / (n[1] - 1);
    });
}

}  // namespace markers
}  // namespace epione
