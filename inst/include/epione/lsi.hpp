// Iterative LSI engine (ArchR addIterativeLSI): sub-matrix sums, the three
// TF-IDF variants ("LSIMethod"), projection of cells onto a fitted SVD and
// pseudo-bulk group sums for cluster-guided feature selection. The SVD
// itself runs in R (irlba, exactly as ArchR calls it) on the sparse matrix
// built here, so the first iteration reproduces ArchR bit for bit.
//
// Conventions: the input is features x cells (CSC). A feature subset is a
// `row_map` (old row -> new row, or -1 = not used), a cell subset a list of
// 0-based columns. Nothing is densified; every output column is one task.
#pragma once
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>
#include "error.hpp"
#include "sparse.hpp"
#include "span.hpp"
#include "threads.hpp"

namespace epione {
namespace lsi {

// ArchR's LSIMethod: 1 "tf-logidf" (Cusanovich), 2 "log(tf-idf)" (Stuart),
// 3 "logtf-logidf".
struct TfidfOptions {
    int method = 2;
    double scale_to = 1e4;
    bool binarize = true;
};

inline void check_map(const Span<const int>& row_map, index_t nrow) {
    require(row_map.size() == nrow,
            "row_map must have one entry per matrix row");
}

// Per selected column: sum over mapped rows (binarized values when asked).
template <class T, class P, class Par>
void col_sums(const CscView<T, P>& x, const Span<const int>& row_map,
              const Span<const int>& cols, bool binarize, Par& par,
              Span<double> out) {
    check_map(row_map, x.nrow);
    require_size(out, cols.size(), "col_sums output");
    par.run(cols.size(), [&](index_t k) {
        double s = 0.0;
        x.for_col(cols[k], [&](int r, T v) {
            if (row_map[r] >= 0 && v != T(0))
                s += binarize ? 1.0 : static_cast<double>(v);
        });
        out[k] = s;
    });
}

// Per new row: sum over the selected columns. Serial in columns, so the
// summation order (and every bit) never depends on the thread count.
template <class T, class P>
std::vector<double> row_sums(const CscView<T, P>& x,
                             const Span<const int>& row_map, index_t n_rows,
                             const Span<const int>& cols, bool binarize) {
    check_map(row_map, x.nrow);
    std::vector<double> out(n_rows, 0.0);
    for (index_t k = 0; k < cols.size(); ++k)
        x.for_col(cols[k], [&](int r, T v) {
            const int nr = row_map[r];
            if (nr >= 0 && v != T(0))
                out[nr] += binarize ? 1.0 : static_cast<double>(v);
        });
    return out;
}

template <class T>
void sort_column(Csc<T>& m, index_t b, index_t e) {
    bool sorted = true;
    for (index_t k = b + 1; k < e; ++k)
        if (m.i[k] < m.i[k - 1]) { sorted = false; break; }
    if (sorted) return;
    std::vector<std::pair<int, T>> tmp;
    for (index_t k = b; k < e; ++k) tmp.emplace_back(m.i[k], m.x[k]);
    std::sort(tmp.begin(), tmp.end(),
              [](const auto& a, const auto& c) { return a.first < c.first; });
    for (index_t k = b; k < e; ++k) {
        m.i[k] = tmp[k - b].first;
        m.x[k] = tmp[k - b].second;
    }
}

// The transformed value of one entry, in the same operation order as
// ArchR's .computeLSI / .projectLSI (x / colSm, then * idf, then log), so
// the doubles are identical to ArchR's.
inline double tfidf_value(double v, double col_sum, double row_sum,
                          double n_col, const TfidfOptions& opt) {
    const double tf = v / col_sum;
    switch (opt.method) {
    case 1: return std::log(1.0 + n_col / row_sum) * tf;
    case 2: return std::log(tf * (n_col / row_sum) * opt.scale_to + 1.0);
    case 3: return std::log(1.0 + n_col / row_sum) * std::log(tf + 1.0);
    default: throw input_error("LSIMethod must be 1, 2 or 3");
    }
}

// Sub-matrix (mapped rows x selected columns) with TF-IDF values. `col_sum`
// per selected column, `row_sum` per new row (of the fitted cells), `n_col`
// the number of fitted cells. Rows keep their order within each column.
template <class T, class P, class Par>
Csc<double> tfidf(const CscView<T, P>& x, const Span<const int>& row_map,
                  index_t n_rows, const Span<const int>& cols,
                  const Span<const double>& col_sum,
                  const Span<const double>& row_sum, double n_col,
                  const TfidfOptions& opt, Par& par) {
    check_map(row_map, x.nrow);
    require_size(col_sum, cols.size(), "col_sum");
    require_size(row_sum, n_rows, "row_sum");
    const index_t nc = cols.size();
    Csc<double> out;
    out.nrow = n_rows;
    out.ncol = nc;
    out.p.assign(nc + 1, 0);
    par.run(nc, [&](index_t k) {
        index_t n = 0;
        x.for_col(cols[k], [&](int r, T v) {
            if (row_map[r] >= 0 && v != T(0)) ++n;
        });
        out.p[k + 1] = n;
    });
    for (index_t k = 0; k < nc; ++k) out.p[k + 1] += out.p[k];
    out.i.resize(out.p[nc]);
    out.x.resize(out.p[nc]);
    par.run(nc, [&](index_t k) {
        index_t dst = out.p[k];
        const index_t first = dst;
        x.for_col(cols[k], [&](int r, T v) {
            const int nr = row_map[r];
            if (nr < 0 || v == T(0)) return;
            const double val = opt.binarize ? 1.0 : static_cast<double>(v);
            out.i[dst] = nr;
            out.x[dst] = tfidf_value(val, col_sum[k], row_sum[nr], n_col, opt);
            ++dst;
        });
        // row_map need not be monotone (features may be reordered): sort.
        sort_column(out, first, dst);
    });
    return out;
}

// Pseudo-bulk: out(new row, g) = sum of x over the cells of group g. One
// task per group (cells listed in `group_cells`), so any thread count gives
// the same bits. `out` is n_rows x n_groups, column-major, zero-filled here.
template <class T, class P, class Par>
void group_sums(const CscView<T, P>& x, const Span<const int>& row_map,
                const std::vector<std::vector<int>>& group_cells, Par& par,
                DenseView<double> out) {
    check_map(row_map, x.nrow);
    require(out.ncol == static_cast<index_t>(group_cells.size()),
            "group_sums: one output column per group");
    par.run(out.ncol, [&](index_t g) {
        auto col = out.col(g);
        for (double& v : col) v = 0.0;
        for (int c : group_cells[g])
            x.for_col(c, [&](int r, T v) {
                const int nr = row_map[r];
                if (nr >= 0) col[nr] += static_cast<double>(v);
            });
    });
}

// Coordinates of cells on a fitted LSI: out = t(X) %*% u, X the TF-IDF of
// the selected cells over the fitted rows (idf from the fit), as ArchR's
// .projectLSI. Cells whose sum over the fitted rows is 0 get 1 when
// keep0 (ArchR keep0lsi) and NaN rows otherwise (the caller drops them).
template <class T, class P, class Par>
void project(const CscView<T, P>& x, const Span<const int>& row_map,
             const Span<const int>& cols, const Span<const double>& row_sum,
             double n_col, const DenseView<const double>& u, bool keep0,
             const TfidfOptions& opt, Par& par, DenseView<double> out) {
    check_map(row_map, x.nrow);
    require(u.nrow == row_sum.size(), "project: nrow(u) must equal the fitted rows");
    require(out.nrow == cols.size() && out.ncol == u.ncol,
            "project: output must be cells x dims");
    par.run(cols.size(), [&](index_t k) {
        double cs = 0.0;
        x.for_col(cols[k], [&](int r, T v) {
            if (row_map[r] >= 0 && v != T(0))
                cs += opt.binarize ? 1.0 : static_cast<double>(v);
        });
        if (cs == 0.0 && keep0) cs = 1.0;
        for (index_t j = 0; j < u.ncol; ++j) out(k, j) = cs == 0.0 ? NAN : 0.0;
        if (cs == 0.0) return;
        x.for_col(cols[k], [&](int r, T v) {
            const int nr = row_map[r];
            if (nr < 0 || v == T(0)) return;
            const double val = opt.binarize ? 1.0 : static_cast<double>(v);
            const double t = tfidf_value(val, cs, row_sum[nr], n_col, opt);
            for (index_t j = 0; j < u.ncol; ++j) out(k, j) += t * u(nr, j);
        });
    });
}

}  // namespace lsi
}  // namespace epione
