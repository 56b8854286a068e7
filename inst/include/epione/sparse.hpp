// Compressed-sparse-column matrices: a borrowed view (over a dgCMatrix's
// @p, @i, @x) and an owning counterpart produced by the core. Column
// pointers are 64-bit so matrices beyond 2^31 non-zeros work; row indices
// are int32 because R stores them so (rows never exceed 2^31).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "span.hpp"
#include "threads.hpp"

namespace epione {

template <class T, class P = index_t>
struct CscView {
    index_t nrow = 0, ncol = 0;
    const P* p = nullptr;     // ncol + 1 offsets into i / x
    const int* i = nullptr;   // 0-based row of each stored entry
    const T* x = nullptr;     // values; nullptr means every entry is 1

    index_t nnz() const { return ncol ? static_cast<index_t>(p[ncol]) : 0; }
    index_t col_begin(index_t c) const { return static_cast<index_t>(p[c]); }
    index_t col_end(index_t c) const { return static_cast<index_t>(p[c + 1]); }
    T value(index_t k) const { return x ? x[k] : T(1); }

    // Calls f(row, value) for each stored entry of column c, in row order.
    template <class F>
    void for_col(index_t c, F&& f) const {
        for (index_t k = col_begin(c), e = col_end(c); k < e; ++k) f(i[k], value(k));
    }
    // Checks the invariants R's validity method checks, so the core can
    // trust the view afterwards: monotone pointers, rows in range, sorted.
    void validate(const char* name) const {
        require(nrow >= 0 && ncol >= 0, std::string(name) + ": negative dimensions");
        if (ncol == 0) return;
        require(p[0] == 0, std::string(name) + ": column pointers must start at 0");
        for (index_t c = 0; c < ncol; ++c) {
            require(p[c + 1] >= p[c], std::string(name) + ": column pointers decrease");
            for (index_t k = col_begin(c); k < col_end(c); ++k) {
                require(i[k] >= 0 && i[k] < nrow, std::string(name) + ": row index out of range");
                require(k == col_begin(c) || i[k] > i[k - 1],
                        std::string(name) + ": row indices not strictly increasing");
            }
        }
    }
};

// Owning CSC matrix, e.g. a transpose or a result handed back to R.
template <class T>
struct Csc {
    index_t nrow = 0, ncol = 0;
    std::vector<index_t> p;
    std::vector<int> i;
    std::vector<T> x;
    CscView<T> view() const { return {nrow, ncol, p.data(), i.data(), x.data()}; }
};

template <class T, class P>
std::vector<double> col_sums(const CscView<T, P>& a) {
    std::vector<double> out(a.ncol, 0.0);
    for (index_t c = 0; c < a.ncol; ++c)
        a.for_col(c, [&](int, T v) { out[c] += static_cast<double>(v); });
    return out;
}

template <class T, class P>
std::vector<double> row_sums(const CscView<T, P>& a) {
    std::vector<double> out(a.nrow, 0.0);
    for (index_t c = 0; c < a.ncol; ++c)
        a.for_col(c, [&](int r, T v) { out[r] += static_cast<double>(v); });
    return out;
}

// Row sums of a count matrix and what a count matrix must satisfy, in one
// pass. The sums are exact (hence equal to any other summation order,
// e.g. Matrix::rowSums) only when every value is a whole number below
// 2^53 in total; `whole` says so. Columns are split into fixed blocks, so
// the result never depends on the thread count.
struct CountRowSums {
    std::vector<double> sums;
    bool invalid = false;  // some value is NA or negative
    bool whole = true;
};

template <class T, class P, class Par>
CountRowSums count_row_sums(const CscView<T, P>& a, Par& par) {
    constexpr index_t blocks = 8;
    constexpr double two52 = 4503599627370496.0;
    std::vector<std::vector<double>> part(blocks);
    std::vector<char> bad(blocks, 0), frac(blocks, 0);
    par.run(blocks, [&](index_t b) {
        const index_t k0 = a.col_begin(a.ncol * b / blocks);
        const index_t k1 = a.col_begin(a.ncol * (b + 1) / blocks);
        auto& s = part[b];
        s.assign(a.nrow, 0.0);
        // One pass, checks without branches or float chains: !(d >= 0)
        // catches NA and negatives; for 0 <= d < 2^52, adding and removing
        // 2^52 leaves d unchanged iff d is whole, so any set bit of the
        // difference (or of NaN) marks a fraction.
        bool invalid = false;
        std::uint64_t fraction_bits = 0;
        for (index_t k = k0; k < k1; ++k) {
            const double d = static_cast<double>(a.value(k));
            s[a.i[k]] += d;
            invalid |= !(d >= 0);
            const double f = ((d + two52) - two52) - d;
            std::uint64_t u;
            std::memcpy(&u, &f, sizeof u);
            fraction_bits |= u | (d >= two52);
        }
        bad[b] = invalid;
        frac[b] = fraction_bits != 0;
    });
    CountRowSums out;
    out.sums = std::move(part[0]);
    for (index_t b = 0; b < blocks; ++b) {
        if (b > 0)
            for (index_t r = 0; r < a.nrow; ++r) out.sums[r] += part[b][r];
        out.invalid = out.invalid || bad[b];
        out.whole = out.whole && !frac[b];
    }
    double total = 0;
    for (double v : out.sums) total += v;
    out.whole = out.whole && !out.invalid && total < 9007199254740992.0;
    return out;
}

// Transpose by counting sort: O(nnz), rows of the result stay sorted.
template <class T, class P>
Csc<T> transpose(const CscView<T, P>& a) {
    Csc<T> t;
    t.nrow = a.ncol;
    t.ncol = a.nrow;
    t.p.assign(a.nrow + 1, 0);
    for (index_t k = 0; k < a.nnz(); ++k) ++t.p[a.i[k] + 1];
    for (index_t r = 0; r < a.nrow; ++r) t.p[r + 1] += t.p[r];
    t.i.resize(a.nnz());
    t.x.resize(a.nnz());
    std::vector<index_t> next(t.p.begin(), t.p.end() - 1);
    for (index_t c = 0; c < a.ncol; ++c)
        a.for_col(c, [&](int r, T v) {
            const index_t dst = next[r]++;
            t.i[dst] = static_cast<int>(c);
            t.x[dst] = v;
        });
    return t;
}

// out (ncol(a) x k) = t(a) %*% b, with b dense nrow(a) x k. Each output row
// is one task, so the result does not depend on the number of threads.
// `binary = true` reads `a` as an indicator: each stored non-zero counts as
// 1 and a stored zero as 0 (e.g. motif matches kept with their scores), so
// out(c, j) sums b(r, j) over the rows r that column c matches.
template <class T, class P, class Par>
void crossprod_dense(const CscView<T, P>& a, const DenseView<const double>& b,
                     Par& par, DenseView<double> out, bool binary = false) {
    require(b.nrow == a.nrow, "crossprod_dense: nrow(b) must equal nrow(a)");
    require(out.nrow == a.ncol && out.ncol == b.ncol,
            "crossprod_dense: output must be ncol(a) x ncol(b)");
    par.run(a.ncol, [&](index_t c) {
        for (index_t j = 0; j < b.ncol; ++j) {
            double s = 0.0;
            if (binary)
                a.for_col(c, [&](int r, T v) { if (v != T(0)) s += b(r, j); });
            else
                a.for_col(c, [&](int r, T v) { s += static_cast<double>(v) * b(r, j); });
            out(c, j) = s;
        }
    });
}

}  // namespace epione
