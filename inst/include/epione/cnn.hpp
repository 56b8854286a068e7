// scBasset (Yuan & Kelley 2022, calico/scBasset make_model + basenji_utils):
// a sequence CNN whose last dense layer holds one weight vector and one
// intercept per cell. Forward and backward passes are written by hand;
// convolutions are im2col + GEMM through Armadillo on R's BLAS.
//
// Layout: an activation of the batch is a (channels x length*B) matrix,
// sample s owning columns [s*len, (s+1)*len); per sample it is the
// channels-last (len, channels) tensor of Keras, so flattening matches.
// Work is split into fixed chunks of samples (Config::chunk), never by
// thread, and per-chunk partial sums combine in chunk order: a seed gives
// the same bits on any thread count, provided each BLAS call is
// single-threaded (the glue sets that).
#pragma once
#include <armadillo>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
#include "cnn_layers.hpp"
#include "error.hpp"
#include "rng.hpp"
#include "threads.hpp"

namespace epione {
namespace cnn {

// Sizes of the network. Defaults are the original ("full") profile.
struct Config {
    int seq_len = 1344;
    int stem_filters = 288, stem_kernel = 17, stem_pool = 3;
    int tower_start = 288, tower_end = 512, tower_repeat = 6;
    int tower_kernel = 5, tower_pool = 2;
    int conv1x1 = 256, bottleneck = 32;
    double dropout = 0.2, bn_momentum = 0.9, bn_eps = 1e-3;
    int n_cells = 1, n_batches = 0;  // n_batches 0: no batch term
    int chunk = 8;                   // samples per parallel task
    // basenji's StochasticShift / StochasticReverseComplement (scBasset,
    // scvi-tools) draw one shift and one flip per minibatch; 0 draws them
    // per sequence instead.
    int augment_batch = 1;
};

struct ConvSpec {
    int cin, cout, k, pool, len_in;
    int len_out() const { return len_in / pool; }
};

// basenji conv_tower: filters grow geometrically, each one rounded.
inline std::vector<int> tower_filters(const Config& c) {
    std::vector<int> out;
    const double mult = c.tower_repeat > 1
        ? std::exp(std::log(double(c.tower_end) / c.tower_start) / (c.tower_repeat - 1)) : 1.0;
    double f = c.tower_start;
    for (int r = 0; r < c.tower_repeat; ++r) {
        out.push_back(static_cast<int>(std::lround(f)));
        f *= mult;
    }
    return out;
}

inline std::vector<ConvSpec> conv_specs(const Config& c) {
    std::vector<ConvSpec> s;
    int len = c.seq_len;
    require(c.stem_kernel % 2 == 1 && c.tower_kernel % 2 == 1, "kernel sizes must be odd");
    s.push_back({4, c.stem_filters, c.stem_kernel, c.stem_pool, len});
    len /= c.stem_pool;
    int cin = c.stem_filters;
    for (int f : tower_filters(c)) {
        s.push_back({cin, f, c.tower_kernel, c.tower_pool, len});
        len /= c.tower_pool;
        cin = f;
    }
    s.push_back({cin, c.conv1x1, 1, 1, len});
    int check = c.seq_len;
    for (const auto& q : s) {
        if (check % q.pool != 0 || check / q.pool < 1)
            throw input_error("sequence length " + std::to_string(c.seq_len) +
                              " is not divisible by the pooling of the network (" +
                              std::to_string(c.stem_pool) + " x " +
                              std::to_string(c.tower_pool) + "^" +
                              std::to_string(c.tower_repeat) + ")");
        check /= q.pool;
    }
    return s;
}

// Offsets of one tensor in the flat parameter vector.
struct Slot {
    std::string name;
    std::int64_t off, rows, cols;
};

// The activations of one training step kept for the backward pass.
template <class T>
struct Cache {
    int B = 0;
    std::vector<arma::Mat<T>> z, out;            // pre-BN conv outputs, pooled outputs
    std::vector<arma::Mat<T>> zsel;              // pre-BN value at each pool's argmax
    std::vector<std::vector<std::uint8_t>> arg;  // argmax offset within each pool window
    std::vector<std::vector<double>> mean, istd;
    arma::Mat<T> x;                              // one-hot input, 4 x len*B
    arma::Mat<T> h, u_hat, mask, v, e, logits;   // dense part
    std::vector<double> d_mean, d_istd;
    std::vector<arma::Mat<T>> dbuf;              // gradients w.r.t. block inputs
};

template <class T>
class Net {
public:
    using Mat = arma::Mat<T>;
    Config cfg;
    std::vector<ConvSpec> convs;
    int flat = 0;
    std::vector<Slot> slots, state_slots;
    std::vector<T> theta, grad;       // trainable parameters and gradients
    std::vector<double> state;        // BN moving means and variances
    std::vector<double> adam_m, adam_v;
    std::int64_t adam_t = 0;
    std::vector<int> cell_batch;      // batch index of each cell (n_batches > 0)
    std::vector<T> wpart;             // per-chunk kernel gradients, reused

    // Per-thread scratch matrices (im2col buffers), reused across layers
    // and steps so that large buffers are not faulted in again each time.
    static Mat scratch(int which, std::int64_t rows, std::int64_t cols) {
        thread_local std::vector<T> buf[2];
        auto& b = buf[which];
        if (b.size() < std::size_t(rows * cols)) b.resize(std::size_t(rows * cols));
        return Mat(b.data(), rows, cols, false, true);
    }

    explicit Net(const Config& c) : cfg(c), convs(conv_specs(c)) {
        require(c.n_cells >= 1, "the model needs at least one cell");
        require(c.bottleneck >= 1 && c.chunk >= 1, "bottleneck and chunk must be >= 1");
        const auto& last = convs.back();
        flat = last.cout * last.len_out();
        std::int64_t off = 0, soff = 0;
        auto add = [&](const std::string& n, std::int64_t r, std::int64_t cc) {
            slots.push_back({n, off, r, cc});
            off += r * cc;
        };
        auto add_state = [&](const std::string& n, std::int64_t r) {
            state_slots.push_back({n, soff, r, 1});
            soff += r;
        };
        for (std::size_t i = 0; i < convs.size(); ++i) {
            const auto& q = convs[i];
            const std::string p = "conv" + std::to_string(i);
            add(p + "_kernel", q.cout, std::int64_t(q.cin) * q.k);
            add(p + "_bn_gamma", q.cout, 1);
            add(p + "_bn_beta", q.cout, 1);
            add_state(p + "_bn_moving_mean", q.cout);
            add_state(p + "_bn_moving_variance", q.cout);
        }
        add("dense_kernel", c.bottleneck, flat);
        add("dense_bn_gamma", c.bottleneck, 1);
        add("dense_bn_beta", c.bottleneck, 1);
        add_state("dense_bn_moving_mean", c.bottleneck);
        add_state("dense_bn_moving_variance", c.bottleneck);
        add("cell_embedding", c.n_cells, c.bottleneck);
        add("cell_bias", c.n_cells, 1);
        if (c.n_batches > 0) add("batch_embedding", c.n_batches, c.bottleneck);
        theta.assign(off, T(0));
        grad.assign(off, T(0));
        state.assign(soff, 0.0);
        cell_batch.assign(c.n_cells, 0);
    }

    std::int64_t n_params() const { return static_cast<std::int64_t>(theta.size()); }
    const Slot& slot(const std::string& n) const {
        for (const auto& s : slots)
            if (s.name == n) return s;
        throw input_error("no parameter named " + n);
    }
    Mat view(std::vector<T>& v, const Slot& s) {
        return Mat(v.data() + s.off, s.rows, s.cols, false, true);
    }
    Mat param(std::size_t i) { return view(theta, slots[i]); }
    Mat gparam(std::size_t i) { return view(grad, slots[i]); }
    double* st(std::size_t i) { return state.data() + state_slots[i].off; }

    // Keras initialisers: he_normal kernels, BN gamma 1 / beta 0, moving
    // mean 0 / variance 1, zero intercepts and batch embedding.
    void init(std::uint64_t seed) {
        auto g = rng::stream(seed, 0);
        std::fill(theta.begin(), theta.end(), T(0));
        for (const auto& s : slots) {
            if (s.name.find("_kernel") != std::string::npos)
                he_normal(theta.data() + s.off, s.rows * s.cols, static_cast<int>(s.cols), g);
            else if (s.name == "cell_embedding")
                he_normal(theta.data() + s.off, s.rows * s.cols, static_cast<int>(s.cols), g);
            else if (s.name.find("_gamma") != std::string::npos)
                std::fill(theta.begin() + s.off, theta.begin() + s.off + s.rows, T(1));
        }
        for (const auto& s : state_slots)
            std::fill(state.begin() + s.off, state.begin() + s.off + s.rows,
                      s.name.find("variance") != std::string::npos ? 1.0 : 0.0);
        adam_m.assign(theta.size(), 0.0);
        adam_v.assign(theta.size(), 0.0);
        adam_t = 0;
    }

    // Effective cell weights: cell embedding plus the cell's batch embedding
    // (scvi-tools' batch term; calico's make_model_bc is the same product).
    Mat cell_weights() {
        Mat w = view(theta, slot("cell_embedding"));
        if (cfg.n_batches == 0) return w;
        Mat out = w;
        Mat b = view(theta, slot("batch_embedding"));
        for (int c = 0; c < cfg.n_cells; ++c) out.row(c) += b.row(cell_batch[c]);
        return out;
    }

    // ---- convolution block: GELU -> conv -> BN -> max-pool -------------
    template <class Par>
    void conv_forward(std::size_t i, const T* a, bool first, int B, bool train, Par& par,
                      Cache<T>& c) {
        const ConvSpec& q = convs[i];
        const int nch = (B + cfg.chunk - 1) / cfg.chunk;
        Mat& z = c.z[i];
        z.set_size(q.cout, std::int64_t(q.len_in) * B);
        Mat W = param(3 * i);
        par.run(nch, [&](std::int64_t ch) {
            const int s0 = int(ch) * cfg.chunk, s1 = std::min(B, s0 + cfg.chunk), ns = s1 - s0;
            Mat col = scratch(0, std::int64_t(q.cin) * q.k, std::int64_t(q.len_in) * ns);
            // GELU also on the one-hot input: basenji's conv_block starts with it
            im2col_gelu(a + std::int64_t(s0) * q.cin * q.len_in, q.cin, q.len_in, q.k, ns,
                        true, col.memptr());
            Mat zc(z.colptr(std::int64_t(s0) * q.len_in), q.cout, std::int64_t(q.len_in) * ns,
                   false, true);
            zc = W * col;
        });
        (void)first;
        bn_stats(i, B, train, par, c);
        bn_pool_forward(i, B, train, par, c);
    }

    template <class Par>
    void bn_stats(std::size_t i, int B, bool train, Par& par, Cache<T>& c) {
        const ConvSpec& q = convs[i];
        std::vector<double>& mean = c.mean[i];
        std::vector<double>& istd = c.istd[i];
        mean.assign(q.cout, 0.0);
        istd.assign(q.cout, 0.0);
        double* rm = st(2 * i);
        double* rv = st(2 * i + 1);
        if (!train) {
            for (int k = 0; k < q.cout; ++k) {
                mean[k] = rm[k];
                istd[k] = 1.0 / std::sqrt(rv[k] + cfg.bn_eps);
            }
            return;
        }
        const int nch = (B + cfg.chunk - 1) / cfg.chunk;
        std::vector<double> part(std::size_t(nch) * 2 * q.cout, 0.0);
        const Mat& z = c.z[i];
        par.run(nch, [&](std::int64_t ch) {
            const int s0 = int(ch) * cfg.chunk, s1 = std::min(B, s0 + cfg.chunk);
            double* p = part.data() + ch * 2 * q.cout;
            for (std::int64_t col = std::int64_t(s0) * q.len_in; col < std::int64_t(s1) * q.len_in;
                 ++col) {
                const T* zc = z.colptr(col);
                for (int k = 0; k < q.cout; ++k) {
                    p[k] += zc[k];
                    p[q.cout + k] += double(zc[k]) * zc[k];
                }
            }
        });
        finish_stats(part, nch, q.cout, double(B) * q.len_in, mean, istd, rm, rv);
    }

    void finish_stats(const std::vector<double>& part, int nch, int n_feat, double n,
                      std::vector<double>& mean, std::vector<double>& istd, double* rm,
                      double* rv) {
        for (int k = 0; k < n_feat; ++k) {
            double s = 0, ss = 0;
            for (int ch = 0; ch < nch; ++ch) {
                s += part[std::size_t(ch) * 2 * n_feat + k];
                ss += part[std::size_t(ch) * 2 * n_feat + n_feat + k];
            }
            const double m = s / n, var = std::max(ss / n - m * m, 0.0);
            mean[k] = m;
            istd[k] = 1.0 / std::sqrt(var + cfg.bn_eps);
            // moving averages as Keras BatchNormalization (unbiased variance)
            const double mom = cfg.bn_momentum;
            rm[k] = mom * rm[k] + (1 - mom) * m;
            rv[k] = mom * rv[k] + (1 - mom) * (n > 1 ? var * n / (n - 1) : var);
        }
    }

    template <class Par>
    void bn_pool_forward(std::size_t i, int B, bool train, Par& par, Cache<T>& c) {
        const ConvSpec& q = convs[i];
        const int lo = q.len_out();
        c.out[i].set_size(q.cout, std::int64_t(lo) * B);
        if (train) {
            c.arg[i].resize(std::size_t(q.cout) * lo * B);
            c.zsel[i].set_size(q.cout, std::int64_t(lo) * B);
        }
        const Mat gam = param(3 * i + 1), bet = param(3 * i + 2);
        const Mat& z = c.z[i];
        Mat& out = c.out[i];
        const auto& mean = c.mean[i];
        const auto& istd = c.istd[i];
        const int nch = (B + cfg.chunk - 1) / cfg.chunk;
        par.run(nch, [&](std::int64_t ch) {
            const int s0 = int(ch) * cfg.chunk, s1 = std::min(B, s0 + cfg.chunk);
            std::vector<T> sc(q.cout), sh(q.cout);
            for (int k = 0; k < q.cout; ++k) {
                sc[k] = T(gam[k] * istd[k]);
                sh[k] = T(bet[k] - gam[k] * istd[k] * mean[k]);
            }
            for (std::int64_t j = std::int64_t(s0) * lo; j < std::int64_t(s1) * lo; ++j) {
                T* o = out.colptr(j);
                const std::int64_t base = j * q.pool;
                for (int k = 0; k < q.cout; ++k) {
                    T best = z.at(k, base) * sc[k] + sh[k];
                    std::uint8_t bi = 0;
                    for (int p = 1; p < q.pool; ++p) {
                        const T y = z.at(k, base + p) * sc[k] + sh[k];
                        if (y > best) {
                            best = y;
                            bi = std::uint8_t(p);
                        }
                    }
                    o[k] = best;
                    if (train) {
                        c.arg[i][std::size_t(j) * q.cout + k] = bi;
                        c.zsel[i].at(k, j) = z.at(k, base + bi);
                    }
                }
            }
        });
    }

    // Backward of block i given d(out) in `dout`; returns d(input) in `din`
    // (skipped for the stem, whose input is data).
    template <class Par>
    void conv_backward(std::size_t i, const T* a, int B, Par& par, Cache<T>& c, Mat& dout,
                       Mat& din) {
        const ConvSpec& q = convs[i];
        const int lo = q.len_out(), nch = (B + cfg.chunk - 1) / cfg.chunk;
        Mat& z = c.z[i];  // overwritten by dz
        const auto& mean = c.mean[i];
        const auto& istd = c.istd[i];
        const auto& arg = c.arg[i];
        const Mat gam = param(3 * i + 1);
        // pass 1: d gamma = sum dy * xhat, d beta = sum dy (dy is zero off the argmax)
        std::vector<double> part(std::size_t(nch) * 2 * q.cout, 0.0);
        par.run(nch, [&](std::int64_t ch) {
            const int s0 = int(ch) * cfg.chunk, s1 = std::min(B, s0 + cfg.chunk);
            double* p = part.data() + ch * 2 * q.cout;
            const Mat& zs = c.zsel[i];
            for (std::int64_t j = std::int64_t(s0) * lo; j < std::int64_t(s1) * lo; ++j) {
                const T* d = dout.colptr(j);
                const T* zj = zs.colptr(j);
                for (int k = 0; k < q.cout; ++k) {
                    p[k] += double(d[k]) * zj[k];   // xhat folded in below
                    p[q.cout + k] += d[k];
                }
            }
        });
        std::vector<double> dg(q.cout, 0.0), db(q.cout, 0.0);
        for (int k = 0; k < q.cout; ++k) {
            double sdz = 0;
            for (int ch = 0; ch < nch; ++ch) {
                sdz += part[std::size_t(ch) * 2 * q.cout + k];
                db[k] += part[std::size_t(ch) * 2 * q.cout + q.cout + k];
            }
            // sum dy xhat = istd (sum dy z - mean sum dy)
            dg[k] = istd[k] * (sdz - mean[k] * db[k]);
        }
        Mat ggam = gparam(3 * i + 1), gbet = gparam(3 * i + 2);
        for (int k = 0; k < q.cout; ++k) {
            ggam[k] += T(dg[k]);
            gbet[k] += T(db[k]);
        }
        const double n = double(B) * q.len_in;
        // pass 2: dz in place of z; pass 3: kernel gradient and d input
        Mat W = param(3 * i);
        const std::int64_t wn = std::int64_t(q.cout) * q.cin * q.k;
        wpart.resize(std::size_t(nch) * wn);
        if (i > 0) din.set_size(q.cin, std::int64_t(q.len_in) * B);
        // dz = gam istd (dy - db/n - xhat dg/n) = A dy + C z + D per channel
        std::vector<T> cA(q.cout), cC(q.cout), cD(q.cout);
        for (int k = 0; k < q.cout; ++k) {
            const double a = gam[k] * istd[k];
            cA[k] = T(a);
            cC[k] = T(-a * istd[k] * dg[k] / n);
            cD[k] = T(-a * db[k] / n + a * istd[k] * dg[k] * mean[k] / n);
        }
        par.run(nch, [&](std::int64_t ch) {
            const int s0 = int(ch) * cfg.chunk, s1 = std::min(B, s0 + cfg.chunk), ns = s1 - s0;
            for (std::int64_t j = std::int64_t(s0) * lo; j < std::int64_t(s1) * lo; ++j) {
                const T* d = dout.colptr(j);
                for (int p = 0; p < q.pool; ++p) {
                    T* zc = z.colptr(j * q.pool + p);
                    for (int k = 0; k < q.cout; ++k) zc[k] = cC[k] * zc[k] + cD[k];
                }
                const std::uint8_t* ar = arg.data() + std::size_t(j) * q.cout;
                for (int k = 0; k < q.cout; ++k) z.at(k, j * q.pool + ar[k]) += cA[k] * d[k];
            }
            const std::int64_t c0 = std::int64_t(s0) * q.len_in, nc = std::int64_t(ns) * q.len_in;
            Mat dz(z.colptr(c0), q.cout, nc, false, true);
            Mat col = scratch(0, std::int64_t(q.cin) * q.k, nc);
            const T* as = a + std::int64_t(s0) * q.cin * q.len_in;
            im2col_gelu(as, q.cin, q.len_in, q.k, ns, true, col.memptr());
            Mat wp(wpart.data() + ch * wn, q.cout, std::int64_t(q.cin) * q.k, false, true);
            wp = dz * col.t();
            if (i == 0) return;
            Mat dcol = scratch(1, std::int64_t(q.cin) * q.k, nc);
            dcol = W.t() * dz;
            T* ds = din.colptr(c0);
            std::fill(ds, ds + std::int64_t(q.cin) * nc, T(0));
            col2im_add(dcol.memptr(), q.cin, q.len_in, q.k, ns, ds);
            for (std::int64_t e = 0; e < std::int64_t(q.cin) * nc; ++e) ds[e] *= gelu_grad(as[e]);
        });
        T* gw = grad.data() + slots[3 * i].off;
        const std::int64_t nblk = std::max<std::int64_t>(1, std::min<std::int64_t>(64, wn / 4096));
        par.run(nblk, [&](std::int64_t b) {
            const auto r = block_range(wn, nblk, b);
            for (int ch = 0; ch < nch; ++ch) {
                const T* p = wpart.data() + ch * wn;
                for (std::int64_t e = r.begin; e < r.end; ++e) gw[e] += p[e];
            }
        });
    }

    // ---- whole network ---------------------------------------------------
    // Fills c.x (one-hot, augmented in training) for the regions `idx`.
    template <class Par>
    void load_input(const std::uint8_t* codes, const std::vector<std::int64_t>& idx,
                    bool augment, std::uint64_t seed, std::uint64_t step, Par& par, Cache<T>& c) {
        const int B = static_cast<int>(idx.size()), L = cfg.seq_len;
        c.B = B;
        c.x.set_size(4, std::int64_t(L) * B);
        par.run(B, [&](std::int64_t s) {
            int shift = 0;
            bool rc = false;
            if (augment) {
                const std::uint64_t who = cfg.augment_batch ? 0 : std::uint64_t(s) + 1;
                auto g = rng::stream(seed, (step << 20) + who);
                shift = int(g.below(7)) - 3;  // StochasticShift(3)
                rc = g.below(2) == 1;         // StochasticReverseComplement
            }
            one_hot_augmented(codes + idx[s] * L, L, shift, rc,
                              c.x.colptr(std::int64_t(s) * L));
        });
    }

    // Forward to the region embedding e (bottleneck x B) and logits.
    template <class Par>
    void forward(int B, bool train, std::uint64_t seed, std::uint64_t step, Par& par,
                 Cache<T>& c, bool logits = true) {
        const std::size_t nc = convs.size();
        c.z.resize(nc);
        c.out.resize(nc);
        c.arg.resize(nc);
        c.zsel.resize(nc);
        c.mean.resize(nc);
        c.istd.resize(nc);
        const T* a = c.x.memptr();
        for (std::size_t i = 0; i < nc; ++i) {
            conv_forward(i, a, i == 0, B, train, par, c);
            if (!train) c.z[i].reset();
            a = c.out[i].memptr();
        }
        dense_forward(B, train, seed, step, c);
        if (logits) {
            const Mat w = cell_weights();
            const Mat bias = view(theta, slot("cell_bias"));
            c.logits = w * c.e;
            c.logits.each_col() += bias.col(0);
        }
    }

    // GELU -> flatten -> dense (no bias) -> BN -> dropout -> GELU.
    void dense_forward(int B, bool train, std::uint64_t seed, std::uint64_t step, Cache<T>& c) {
        const std::size_t nc = convs.size();
        const Mat A(c.out[nc - 1].memptr(), flat, B, false, true);
        c.h = A;
        c.h.transform([](T v) { return gelu(v); });
        const std::size_t di = 3 * nc;
        const Mat Wd = param(di), gam = param(di + 1), bet = param(di + 2);
        Mat u = Wd * c.h;
        const int nb = cfg.bottleneck;
        c.d_mean.assign(nb, 0.0);
        c.d_istd.assign(nb, 0.0);
        double* rm = st(2 * nc);
        double* rv = st(2 * nc + 1);
        if (train) {
            std::vector<double> part(2 * nb, 0.0);
            for (int b = 0; b < B; ++b)
                for (int k = 0; k < nb; ++k) {
                    part[k] += u(k, b);
                    part[nb + k] += double(u(k, b)) * u(k, b);
                }
            finish_stats(part, 1, nb, B, c.d_mean, c.d_istd, rm, rv);
        } else {
            for (int k = 0; k < nb; ++k) {
                c.d_mean[k] = rm[k];
                c.d_istd[k] = 1.0 / std::sqrt(rv[k] + cfg.bn_eps);
            }
        }
        c.u_hat.set_size(nb, B);
        c.mask.ones(nb, B);
        c.v.set_size(nb, B);
        auto g = rng::stream(seed, (step << 20) + (1ULL << 19));
        const T keep = T(1.0 - cfg.dropout);
        for (int b = 0; b < B; ++b)
            for (int k = 0; k < nb; ++k) {
                const T uh = T((u(k, b) - c.d_mean[k]) * c.d_istd[k]);
                c.u_hat(k, b) = uh;
                if (train && cfg.dropout > 0)
                    c.mask(k, b) = g.uniform() < cfg.dropout ? T(0) : T(1) / keep;
                c.v(k, b) = (gam[k] * uh + bet[k]) * c.mask(k, b);
            }
        c.e = c.v;
        c.e.transform([](T v) { return gelu(v); });
    }

    // Mean BCE over the B x n_cells targets and, if `backward`, gradients
    // added to `grad` (which the caller zeroes). y: n_cells x B of 0/1.
    template <class Par>
    double loss_backward(const Mat& y, Par& par, Cache<T>& c, bool backward = true) {
        const int B = c.B;
        const double n = double(B) * cfg.n_cells;
        double loss = 0;
        Mat dl(cfg.n_cells, B);
        for (int b = 0; b < B; ++b)
            for (int k = 0; k < cfg.n_cells; ++k) {
                const T zl = c.logits(k, b), yl = y(k, b);
                loss += bce_logit(zl, yl);
                dl(k, b) = T((sigmoid(double(zl)) - yl) / n);
            }
        loss /= n;
        if (!backward) return loss;
        const std::size_t nc = convs.size(), di = 3 * nc;
        Mat gW = view(grad, slot("cell_embedding")), gb = view(grad, slot("cell_bias"));
        const Mat dW = dl * c.e.t();
        gW += dW;
        gb.col(0) += arma::sum(dl, 1);
        if (cfg.n_batches > 0) {
            Mat gB = view(grad, slot("batch_embedding"));
            for (int k = 0; k < cfg.n_cells; ++k) gB.row(cell_batch[k]) += dW.row(k);
        }
        Mat de = cell_weights().t() * dl;  // bottleneck x B
        // GELU, dropout, BN over the batch
        const int nb = cfg.bottleneck;
        const Mat gam = param(di + 1);
        Mat gg = gparam(di + 1), gbe = gparam(di + 2);
        Mat dbn(nb, B);
        for (int b = 0; b < B; ++b)
            for (int k = 0; k < nb; ++k) dbn(k, b) = de(k, b) * gelu_grad(c.v(k, b)) * c.mask(k, b);
        Mat du(nb, B);
        for (int k = 0; k < nb; ++k) {
            double sg = 0, sb = 0;
            for (int b = 0; b < B; ++b) {
                sg += double(dbn(k, b)) * c.u_hat(k, b);
                sb += dbn(k, b);
            }
            gg[k] += T(sg);
            gbe[k] += T(sb);
            for (int b = 0; b < B; ++b)
                du(k, b) = T(gam[k] * c.d_istd[k] *
                             (dbn(k, b) - sb / B - double(c.u_hat(k, b)) * sg / B));
        }
        Mat gWd = gparam(di);
        gWd += du * c.h.t();
        Mat dA = param(di).t() * du;  // flat x B
        const Mat& A = c.out[nc - 1];
        for (std::int64_t e = 0; e < std::int64_t(dA.n_elem); ++e) dA[e] *= gelu_grad(A[e]);
        // conv blocks, last to first
        Mat dlast(dA.memptr(), convs.back().cout, std::int64_t(convs.back().len_out()) * B,
                  false, true);
        c.dbuf.resize(nc);
        Mat* dout = &dlast;
        for (std::size_t i = nc; i-- > 0;) {
            const T* a = i == 0 ? c.x.memptr() : c.out[i - 1].memptr();
            conv_backward(i, a, B, par, c, *dout, c.dbuf[i]);
            dout = &c.dbuf[i];
        }
        return loss;
    }

    // One Adam step (Keras 2 form), parallel over fixed blocks of weights.
    template <class Par>
    void adam_step(const AdamOptions& o, Par& par) {
        ++adam_t;
        const double lr_t = o.lr * std::sqrt(1 - std::pow(o.beta2, double(adam_t))) /
                            (1 - std::pow(o.beta1, double(adam_t)));
        const std::int64_t n = n_params(), nblk = std::max<std::int64_t>(1, n / 65536);
        par.run(nblk, [&](std::int64_t b) {
            const auto r = block_range(n, nblk, b);
            for (std::int64_t e = r.begin; e < r.end; ++e) {
                const double gr = grad[e];
                adam_m[e] = o.beta1 * adam_m[e] + (1 - o.beta1) * gr;
                adam_v[e] = o.beta2 * adam_v[e] + (1 - o.beta2) * gr * gr;
                theta[e] = T(theta[e] - lr_t * adam_m[e] / (std::sqrt(adam_v[e]) + o.eps));
            }
        });
    }
};

// Targets for regions `idx`: y (n_cells x B) from the region -> cells CSC
// lists (p over regions, i = cell indices).
template <class T>
void fill_targets(const std::int64_t* p, const int* ci, const std::vector<std::int64_t>& idx,
                  arma::Mat<T>& y, int n_cells) {
    y.zeros(n_cells, idx.size());
    for (std::size_t b = 0; b < idx.size(); ++b)
        for (std::int64_t q = p[idx[b]]; q < p[idx[b] + 1]; ++q) y(ci[q], b) = T(1);
}

// One training step on regions `idx`: returns the mean BCE.
template <class T, class Par>
double train_step(Net<T>& net, const std::uint8_t* codes, const std::int64_t* p, const int* ci,
                  const std::vector<std::int64_t>& idx, bool augment, std::uint64_t seed,
                  std::uint64_t step, const AdamOptions& o, Par& par, Cache<T>& c) {
    net.load_input(codes, idx, augment, seed, step, par, c);
    net.forward(static_cast<int>(idx.size()), true, seed, step, par, c);
    arma::Mat<T> y;
    fill_targets(p, ci, idx, y, net.cfg.n_cells);
    std::fill(net.grad.begin(), net.grad.end(), T(0));
    const double loss = net.loss_backward(y, par, c);
    net.adam_step(o, par);
    return loss;
}

// Region embeddings (bottleneck x n) in inference mode for all `n` regions.
template <class T, class Par>
arma::Mat<T> embed(Net<T>& net, const std::uint8_t* codes, std::int64_t n, int batch, Par& par) {
    arma::Mat<T> out(net.cfg.bottleneck, n);
    for (std::int64_t s0 = 0; s0 < n; s0 += batch) {
        const std::int64_t s1 = std::min(n, s0 + batch);
        std::vector<std::int64_t> idx(s1 - s0);
        std::iota(idx.begin(), idx.end(), s0);
        Cache<T> c;
        net.load_input(codes, idx, false, 0, 0, par, c);
        net.forward(static_cast<int>(idx.size()), false, 0, 0, par, c, false);
        out.cols(s0, s1 - 1) = c.e;
    }
    return out;
}

}  // namespace cnn
}  // namespace epione
