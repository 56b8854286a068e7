// Truncated SVD of a sparse matrix: the k largest singular triplets by a
// thick-restarted block Lanczos method with full reorthogonalisation on the
// Gram matrix of the smaller side, t(A) A or A t(A) (restarting as in Wu &
// Simon 2000, "Thick-restart Lanczos method for large symmetric eigenvalue
// problems", SIAM J. Matrix Anal. Appl. 22:602-616; irlba's augmented
// restarted bidiagonalisation, Baglama & Reichel 2005, is the one-vector
// relative). The other side's vectors are A v / d (or t(A) u / d).
//
// Why blocks: irlba multiplies by A and t(A) one vector at a time, so every
// product streams the whole sparse matrix through memory for two flops per
// non-zero. A block of b vectors reads the matrix once for 2b flops per
// non-zero, and the block products split over output rows into threads.
// Working on the smaller side's Gram matrix keeps the reorthogonalisation
// on the short vectors (cells, when there are fewer cells than features).
// Squaring the values costs no accuracy here: d is wanted to ~1e-8 of d[0]
// and the LSI values lie within a factor of 100 of each other.
//
// Determinism: each output row of a sparse product is one serial sum over
// its stored entries in storage order, and the dense steps are BLAS calls
// that do not depend on `par`, so any thread count gives the same bits.
// The start block is the caller's vector (R's rnorm, as irlba draws it)
// plus columns from rng::stream(seed, 0).
//
// Notation: Q (dim x nt) orthonormal, T = t(Q) G Q (G the Gram matrix),
// G Q = Q T + F L E' with F the next block (orthogonal to Q), L its
// coefficients and E selecting the last block. For a Ritz pair (theta, Q z)
// of T the residual ||G Q z - theta Q z|| = ||L z_last||: the test.
#pragma once
#include <armadillo>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "error.hpp"
#include "rng.hpp"
#include "sparse.hpp"
#include "span.hpp"

namespace epione {
namespace svd {

struct SvdOptions {
    int k = 10;              // singular triplets wanted
    int block = 0;           // block size; 0: chosen from k (see sizes())
    int basis = 0;           // largest basis before a restart; 0: chosen
    int keep = 0;            // Ritz vectors kept at a restart; 0: chosen
    double tol = 1e-7;       // converged: residual <= tol * largest value
    int max_restarts = 500;  // then `converged` is false
};

struct SvdResult {
    arma::vec d;        // k singular values, decreasing
    arma::mat u, v;     // m x k and n x k singular vectors
    int restarts = 0;   // restart cycles run
    index_t products = 0;  // vectors multiplied by A plus by t(A)
    bool converged = false;
    double max_residual = 0.0;  // largest residual / d[0] of the k triplets
};

// A 64-bit seed from the bits of a vector (the caller's start vector), so
// the rest of the start block follows the caller's RNG without drawing
// from it again.
inline std::uint64_t seed_from(const Span<const double>& v) {
    std::uint64_t h = 0x243F6A8885A308D3ULL;
    for (index_t j = 0; j < v.size(); ++j) {
        std::uint64_t bits;
        std::memcpy(&bits, &v[j], sizeof bits);
        h ^= bits;
        h = rng::splitmix64(h);
    }
    return h;
}

namespace detail {

template <int W>
inline void gather_row(const CscView<double>& a, index_t o, const double* in,
                       double* dst) {
    double acc[W] = {};
    for (index_t q = a.col_begin(o), e = a.col_end(o); q < e; ++q) {
        const double x = a.x[q];
        const double* src = in + static_cast<index_t>(a.i[q]) * W;
        for (int j = 0; j < W; ++j) acc[j] += x * src[j];
    }
    for (int j = 0; j < W; ++j) dst[j] = acc[j];
}

inline void gather_row_any(const CscView<double>& a, index_t o,
                           const double* in, arma::uword b, double* dst) {
    std::fill(dst, dst + b, 0.0);
    for (index_t q = a.col_begin(o), e = a.col_end(o); q < e; ++q) {
        const double x = a.x[q];
        const double* src = in + static_cast<index_t>(a.i[q]) * b;
        for (arma::uword j = 0; j < b; ++j) dst[j] += x * src[j];
    }
}

// out_t(:, o) = sum over the stored entries (r, o, x) of column o of `a`:
// x * in_t(:, r). Blocks are stored transposed (one column per matrix
// row) so each gathered row is contiguous. One task per 512 output rows;
// each output column is summed serially in storage order. Fixed widths
// get unrolled kernels.
template <class Par>
void gather(const CscView<double>& a, const arma::mat& in_t, arma::mat& out_t,
            Par& par) {
    const arma::uword b = in_t.n_rows;
    const index_t chunk = 512, n = a.ncol;
    const double* in = in_t.memptr();
    par.run((n + chunk - 1) / chunk, [&](index_t t) {
        const index_t end = std::min(n, (t + 1) * chunk);
        for (index_t o = t * chunk; o < end; ++o) {
            double* dst = out_t.colptr(o);
            switch (b) {
            case 1: gather_row<1>(a, o, in, dst); break;
            case 2: gather_row<2>(a, o, in, dst); break;
            case 4: gather_row<4>(a, o, in, dst); break;
            case 8: gather_row<8>(a, o, in, dst); break;
            default: gather_row_any(a, o, in, b, dst);
            }
        }
    });
}

inline arma::mat random_block(arma::uword nrow, arma::uword ncol,
                              rng::Xoshiro256pp& g) {
    arma::mat r(nrow, ncol);
    for (double& x : r) x = g.normal();
    return r;
}

inline arma::rowvec col_norms(const arma::mat& p) {
    return arma::sqrt(arma::sum(arma::square(p), 0));
}

// Orthonormalises the columns of p against basis.cols(0, nb - 1) and each
// other: on return p (input) = basis * c + q * r with q (in p) orthonormal
// and orthogonal to the basis, r upper triangular. `known` holds the
// coefficients the Lanczos recurrence gives on basis columns k0, k0 + 1,
// ...: subtracted first, so one classical Gram-Schmidt pass over the whole
// basis only removes rounding error; a second pass runs when the first
// removed much ("twice is enough"), and after a QR of nearly dependent
// columns. A column with nothing left (an invariant subspace) is replaced
// by a random direction and gets a zero column in r.
inline void orthonormalise(const arma::mat& basis, arma::uword nb,
                           arma::uword k0, const arma::mat& known,
                           arma::mat& p, arma::mat& c, arma::mat& r,
                           rng::Xoshiro256pp& g) {
    const arma::uword b = p.n_cols;
    c.zeros(nb, b);
    const arma::rowvec norm0 = col_norms(p);
    if (known.n_rows > 0) {
        const arma::span rows(k0, k0 + known.n_rows - 1);
        p -= basis.cols(k0, k0 + known.n_rows - 1) * known;
        c.rows(rows) = known;
    }
    auto project = [&](arma::mat& x) {   // x -= basis * (t(basis) x)
        const arma::mat h = basis.cols(0, nb - 1).t() * x;
        x -= basis.cols(0, nb - 1) * h;
        return h;
    };
    arma::rowvec after = col_norms(p);
    if (nb > 0) {
        const arma::rowvec before = after;
        c += project(p);
        after = col_norms(p);
        if (arma::any(after < 0.5 * before)) {
            c += project(p);
            after = col_norms(p);
        }
    }
    std::vector<arma::uword> dead;
    const arma::mat c1 = c;
    for (arma::uword j = 0; j < b; ++j)
        if (!(after[j] > 1e-12 * norm0[j])) {
            dead.push_back(j);
            arma::mat x = random_block(p.n_rows, 1, g);
            if (nb > 0) {
                project(x);
                project(x);
            }
            p.col(j) = x;
        }
    arma::mat q, r1;
    if (!arma::qr_econ(q, r1, p))
        throw numeric_error("svd: QR of a Lanczos block failed");
    const arma::vec dg = arma::abs(r1.diag());
    if (nb > 0 && (!dead.empty() || dg.min() < 1e-3 * dg.max())) {
        c += project(q) * r1;
        arma::mat r2;
        if (!arma::qr_econ(p, r2, q))
            throw numeric_error("svd: QR of a Lanczos block failed");
        r = r2 * r1;
    } else {
        p = q;
        r = r1;
    }
    for (arma::uword j : dead) {
        r.col(j).zeros();
        c.col(j) = c1.col(j);
    }
}

struct Sizes {
    arma::uword block, basis, keep;
};

// Largest singular-value residual of the first k Ritz pairs, relative to
// the largest value (irlba's test): for G = t(A) A and u = A v / d,
// ||t(A) u - d v|| = ||G v - d^2 v|| / d.
inline double worst_residual(const arma::vec& theta, const arma::mat& resid,
                             arma::uword k) {
    const double s1 = std::sqrt(std::max(theta[0], 0.0));
    double worst = 0.0;
    for (arma::uword i = 0; i < k; ++i) {
        const double rn = arma::norm(resid.col(i));
        if (rn == 0.0) continue;
        const double si = std::sqrt(std::max(theta[i], 0.0));
        worst = std::max(worst, rn / std::max(si, 1e-300) /
                                    std::max(s1, 1e-300));
    }
    return worst;
}

// Each right vector gets a non-negative sum; u follows v.
inline void fix_signs(arma::mat& u, arma::mat& v) {
    for (arma::uword i = 0; i < v.n_cols; ++i)
        if (arma::accu(v.col(i)) < 0) {
            v.col(i) *= -1.0;
            u.col(i) *= -1.0;
        }
}

// Block, basis and restart sizes. Blocks of 4 vectors: the widest whose
// gathered rows (32 bytes) stay in cache on 25 000 x 10 000 TF-IDF
// matrices; wider blocks also need more products to converge. A basis of
// 4k restarted to 2k + 4 Ritz vectors took the fewest products (about as
// many as irlba's) on synthetic scATAC TF-IDF with k = 30 (bench/lsi.R).
// Never more than min(m, n).
inline Sizes sizes(const SvdOptions& opt, index_t m, index_t n) {
    const index_t lim = std::min(m, n);
    index_t b = opt.block > 0 ? opt.block : 4;
    index_t basis = opt.basis > 0 ? opt.basis : std::max(4 * opt.k, 40);
    basis = std::min(std::max<index_t>(basis, opt.k + 1), lim);
    b = std::max<index_t>(1, std::min({b, basis / 2, basis - opt.k}));
    index_t keep = opt.keep > 0 ? opt.keep : 2 * opt.k + b;
    keep = std::max<index_t>(opt.k, std::min(keep, basis - b));
    return {static_cast<arma::uword>(b), static_cast<arma::uword>(basis),
            static_cast<arma::uword>(keep)};
}

}  // namespace detail

// The k largest singular triplets of `a` (m x n, CSC with values). `v0`
// (length n) is the first start vector; `seed` draws the rest of the start
// block. Signs: each right vector has a non-negative sum (the first one is
// then the positive Perron-like vector irlba also returns).
template <class Par>
SvdResult truncated_svd(const CscView<double>& a, const SvdOptions& opt,
                        const Span<const double>& v0, std::uint64_t seed,
                        Par& par) {
    const index_t m = a.nrow, n = a.ncol;
    require(a.x != nullptr, "svd: the matrix needs stored values");
    require(opt.k >= 1 && opt.k < std::min(m, n),
            "svd: k must be at least 1 and below min(nrow, ncol)");
    require(v0.size() == n,
            "svd: the start vector needs one value per column");
    require(opt.tol > 0, "svd: tol must be positive");
    const auto sz = detail::sizes(opt, m, n);
    const arma::uword k = opt.k, bs = sz.block, nmax = sz.basis;
    const Csc<double> at = transpose(a);   // rows of A as columns
    // Lanczos runs on the Gram matrix of the smaller side: t(A) A (right,
    // n x n) or A t(A) (left); the other side's vectors come from one
    // product at the end. `mult_a`: out_t = t(A x) for x given as in_t.
    const bool right = n <= m;
    const index_t dim = right ? n : m;
    auto mult_a = [&](const arma::mat& in_t, arma::mat& out_t) {
        out_t.set_size(in_t.n_rows, m);
        detail::gather(at.view(), in_t, out_t, par);
    };
    auto mult_at = [&](const arma::mat& in_t, arma::mat& out_t) {
        out_t.set_size(in_t.n_rows, n);
        detail::gather(a, in_t, out_t, par);
    };
    arma::mat tmp_t;
    SvdResult res;
    auto gram = [&](const arma::mat& in_t, arma::mat& out_t) {
        if (right) {
            mult_a(in_t, tmp_t);
            mult_at(tmp_t, out_t);
        } else {
            mult_at(in_t, tmp_t);
            mult_a(tmp_t, out_t);
        }
        res.products += 2 * static_cast<index_t>(in_t.n_rows);
    };

    auto g = rng::stream(seed, 0);
    arma::mat blk = detail::random_block(n, bs, g), c, r, none, out_t;
    std::copy(v0.begin(), v0.end(), blk.colptr(0));
    if (!right) {
        mult_a(blk.t(), out_t);
        blk = out_t.t();
    }
    arma::mat Q(dim, nmax), T(nmax, nmax, arma::fill::zeros);
    detail::orthonormalise(Q, 0, 0, none, blk, c, r, g);
    Q.cols(0, bs - 1) = blk;
    // nt columns of Q multiplied (T is nt x nt), nq = nt + bs in the
    // basis; `known`: coefficients of the next product on Q columns k0...
    arma::uword nt = 0, nq = bs, k0 = 0;
    arma::mat known, L, Z;
    arma::vec theta;
    for (;;) {
        for (;;) {   // expand by blocks until the basis is full
            gram(Q.cols(nt, nq - 1).t(), out_t);
            blk = out_t.t();
            detail::orthonormalise(Q, nq, k0, known, blk, c, L, g);
            T(arma::span(0, nq - 1), arma::span(nt, nq - 1)) = c;
            nt = nq;
            if (nt + bs > nmax) break;
            Q.cols(nq, nq + bs - 1) = blk;
            nq += bs;
            k0 = nt - bs;
            known = L.t();
        }
        // Rayleigh-Ritz on T (symmetric; its upper part is filled).
        const arma::span used(0, nt - 1);
        if (!arma::eig_sym(theta, Z, arma::symmatu(T(used, used))))
            throw numeric_error("svd: eigen decomposition of the projected "
                                "matrix failed");
        theta = arma::flipud(theta);
        Z = arma::fliplr(Z);
        const arma::mat last = Z.rows(nt - bs, nt - 1);
        res.max_residual = detail::worst_residual(theta, L * last, k);
        const bool zero = theta[0] <= 0.0;
        if (res.max_residual <= opt.tol || zero ||
            res.restarts >= opt.max_restarts) {
            res.converged = res.max_residual <= opt.tol || zero;
            break;
        }
        // Thick restart: keep the best Ritz vectors, continue from F.
        const arma::uword keep = std::min<arma::uword>(sz.keep, nt);
        Q.cols(0, keep - 1) = Q.cols(0, nt - 1) * Z.cols(0, keep - 1);
        T.zeros();
        T(arma::span(0, keep - 1), arma::span(0, keep - 1)) =
            arma::diagmat(theta.head(keep));
        Q.cols(keep, keep + bs - 1) = blk;
        known = (L * last.cols(0, keep - 1)).t();
        k0 = 0;
        nt = keep;
        nq = keep + bs;
        ++res.restarts;
    }
    res.d = arma::sqrt(arma::clamp(theta.head(k), 0.0, arma::datum::inf));
    arma::mat side = Q.cols(0, nt - 1) * Z.cols(0, k - 1), other;
    if (right) mult_a(side.t(), out_t); else mult_at(side.t(), out_t);
    other = out_t.t();
    for (arma::uword i = 0; i < k; ++i)
        other.col(i) *= res.d[i] > 0 ? 1.0 / res.d[i] : 0.0;
    res.v = right ? side : other;
    res.u = right ? other : side;
    detail::fix_signs(res.u, res.v);
    return res;
}

}  // namespace svd
}  // namespace epione
