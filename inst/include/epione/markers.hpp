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

// Test every row: columns `g1` versus `g2` (0-based), each column scaled by
// its factor. `t` is the transpose (cells x features) so rows are columns.
template <class Par>
void wilcoxon(const CscView<double>& t, const Span<const int>& g1,
              const Span<const int>& g2, const Span<const double>& f1,
              const Span<const double>& f2, Par& par, Span<double> auc,
              Span<double> pval) {
    require(g1.size() > 0 && g2.size() > 0, "both groups need cells");
    std::vector<int> which(t.nrow, 0);     // 1: group 1, 2: group 2
    std::vector<double> scale(t.nrow, 0.0);
    for (index_t k = 0; k < g1.size(); ++k) { which[g1[k]] = 1; scale[g1[k]] = f1[k]; }
    for (index_t k = 0; k < g2.size(); ++k) {
        require(which[g2[k]] == 0, "a cell is in both groups");
        which[g2[k]] = 2;
        scale[g2[k]] = f2[k];
    }
    par.run(t.ncol, [&](index_t r) {
        std::vector<std::pair<double, bool>> nz;
        t.for_col(r, [&](int c, double v) {
            if (which[c] != 0 && v != 0) nz.emplace_back(v * scale[c], which[c] == 1);
        });
        const RankSum s = wilcoxon_row(nz, g1.size(), g2.size());
        auc[r] = s.auc;
        pval[r] = s.pval;
    });
}

}  // namespace markers
}  // namespace epione
