// Building blocks of the scBasset CNN: sequence encoding and augmentation,
// GELU, im2col, max-pool bookkeeping, BCE with logits, AUROC and Adam.
// Everything is templated on the scalar T (float for training, double for
// gradient checks) and free of R.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>
#include "error.hpp"
#include "rng.hpp"

namespace epione {
namespace cnn {

// Base codes: A C G T = 0 1 2 3, anything else allowed (N) = 4.
inline std::uint8_t base_code(char ch) {
    switch (ch) {
    case 'A': case 'a': return 0;
    case 'C': case 'c': return 1;
    case 'G': case 'g': return 2;
    case 'T': case 't': return 3;
    case 'N': case 'n': return 4;
    default: return 255;
    }
}

// Encodes `n` sequences of length `len` into `codes` (n x len, row-major
// by sequence). Throws naming the first sequence of the wrong length or
// with a character outside ACGTN.
template <class GetSeq>
void encode_sequences(std::int64_t n, int len, GetSeq get, std::uint8_t* codes) {
    for (std::int64_t s = 0; s < n; ++s) {
        const std::string& seq = get(s);
        if (static_cast<int>(seq.size()) != len)
            throw input_error("sequence " + std::to_string(s + 1) + " has " +
                              std::to_string(seq.size()) + " bp but the model reads " +
                              std::to_string(len) + " bp; resize the regions to " +
                              std::to_string(len) + " bp around their centre " +
                              "(GenomicRanges::resize(x, " + std::to_string(len) +
                              ", fix = \"center\"))");
        for (int l = 0; l < len; ++l) {
            const std::uint8_t c = base_code(seq[l]);
            if (c == 255)
                throw input_error("sequence " + std::to_string(s + 1) + " has the character '" +
                                  std::string(1, seq[l]) + "' at position " +
                                  std::to_string(l + 1) +
                                  "; only A, C, G, T and N are allowed (replace IUPAC codes by N)");
            codes[s * len + l] = c;
        }
    }
}

// One-hot column for `code` (N: all zero, as basenji's dna_1hot).
template <class T>
inline void one_hot(std::uint8_t code, T* col) {
    col[0] = col[1] = col[2] = col[3] = T(0);
    if (code < 4) col[code] = T(1);
}

// Writes the 4 x len one-hot matrix of one sequence, reverse-complemented
// if `rc` and shifted by `shift` bp (basenji StochasticReverseComplement
// then StochasticShift; shifted-in positions are 0.25, its pad value).
template <class T>
void one_hot_augmented(const std::uint8_t* codes, int len, int shift, bool rc, T* out) {
    for (int l = 0; l < len; ++l) {
        const int src = l - shift;
        T* col = out + 4 * static_cast<std::int64_t>(l);
        if (src < 0 || src >= len) {
            col[0] = col[1] = col[2] = col[3] = T(0.25);
            continue;
        }
        std::uint8_t c = rc ? codes[len - 1 - src] : codes[src];
        if (rc && c < 4) c = static_cast<std::uint8_t>(3 - c);
        one_hot(c, col);
    }
}

// GELU as basenji defines it: x * sigmoid(1.702 x), and its derivative.
template <class T>
inline T sigmoid(T x) {
    return T(1) / (T(1) + std::exp(-x));
}
template <class T>
inline T gelu(T x) {
    return x * sigmoid(T(1.702) * x);
}
template <class T>
inline T gelu_grad(T x) {
    const T s = sigmoid(T(1.702) * x);
    return s + T(1.702) * x * s * (T(1) - s);
}

// im2col of GELU(a) for `ns` samples of a cin x len activation ('same'
// zero padding, odd kernel k). col is (cin*k) x (len*ns), column-major:
// column l of sample s holds g[:, l+j-pad] for j = 0..k-1 stacked.
template <class T>
void im2col_gelu(const T* a, int cin, int len, int k, int ns, bool apply_gelu, T* col) {
    const int pad = (k - 1) / 2;
    const std::int64_t rows = static_cast<std::int64_t>(cin) * k;
    std::vector<T> g(static_cast<std::size_t>(cin) * len);
    for (int s = 0; s < ns; ++s) {
        const T* as = a + static_cast<std::int64_t>(s) * cin * len;
        for (std::int64_t q = 0; q < static_cast<std::int64_t>(cin) * len; ++q)
            g[q] = apply_gelu ? gelu(as[q]) : as[q];
        T* cs = col + static_cast<std::int64_t>(s) * len * rows;
        for (int l = 0; l < len; ++l) {
            T* dst = cs + l * rows;
            for (int j = 0; j < k; ++j) {
                const int src = l + j - pad;
                if (src < 0 || src >= len)
                    std::fill(dst + j * cin, dst + (j + 1) * cin, T(0));
                else
                    std::memcpy(dst + j * cin, g.data() + static_cast<std::int64_t>(src) * cin,
                                sizeof(T) * cin);
            }
        }
    }
}

// Adds the columns of dcol back onto the positions they were copied from.
template <class T>
void col2im_add(const T* dcol, int cin, int len, int k, int ns, T* da) {
    const int pad = (k - 1) / 2;
    const std::int64_t rows = static_cast<std::int64_t>(cin) * k;
    for (int s = 0; s < ns; ++s) {
        const T* cs = dcol + static_cast<std::int64_t>(s) * len * rows;
        T* ds = da + static_cast<std::int64_t>(s) * cin * len;
        for (int l = 0; l < len; ++l) {
            const T* src = cs + l * rows;
            for (int j = 0; j < k; ++j) {
                const int dst = l + j - pad;
                if (dst < 0 || dst >= len) continue;
                T* d = ds + static_cast<std::int64_t>(dst) * cin;
                const T* sj = src + j * cin;
                for (int c = 0; c < cin; ++c) d[c] += sj[c];
            }
        }
    }
}

// Binary cross-entropy with logits, summed (numerically stable form).
template <class T>
inline double bce_logit(T z, T y) {
    const double zd = z;
    return std::max(zd, 0.0) - zd * y + std::log1p(std::exp(-std::abs(zd)));
}

// AUROC of scores against 0/1 labels by the rank-sum (Mann-Whitney)
// statistic with tied scores given their mean rank.
inline double auroc(const std::vector<float>& score, const std::vector<std::uint8_t>& label) {
    const std::size_t n = score.size();
    std::vector<std::uint32_t> ord(n);
    std::iota(ord.begin(), ord.end(), 0u);
    std::sort(ord.begin(), ord.end(), [&](std::uint32_t a, std::uint32_t b) {
        return score[a] < score[b] || (score[a] == score[b] && a < b);
    });
    double rank_sum = 0, n_pos = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && score[ord[j]] == score[ord[i]]) ++j;
        const double mid = 0.5 * (static_cast<double>(i) + static_cast<double>(j - 1)) + 1.0;
        for (std::size_t q = i; q < j; ++q)
            if (label[ord[q]]) {
                rank_sum += mid;
                n_pos += 1;
            }
        i = j;
    }
    const double n_neg = static_cast<double>(n) - n_pos;
    if (n_pos == 0 || n_neg == 0) return NAN;
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}

// Adam as Keras 2 applies it (the original trains with tf.keras):
// lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), theta -= lr_t m / (sqrt(v) + eps).
struct AdamOptions {
    double lr = 0.01, beta1 = 0.95, beta2 = 0.9995, eps = 1e-7;
};

// He-normal initialisation as Keras draws it: a normal truncated at two
// standard deviations, scaled so the variance is 2 / fan_in.
template <class T>
void he_normal(T* w, std::int64_t n, int fan_in, rng::Xoshiro256pp& g) {
    const double sd = std::sqrt(2.0 / fan_in) / 0.87962566103423978;
    for (std::int64_t q = 0; q < n; ++q) {
        double z;
        do z = g.normal(); while (std::abs(z) > 2.0);
        w[q] = static_cast<T>(z * sd);
    }
}

}  // namespace cnn
}  // namespace epione
