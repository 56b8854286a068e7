// Motif matching with motifmatchr's answers (motifmatchr 1.29 bundles MOODS
// 1.9; Korhonen et al. 2017, Bioinformatics 33:514). Every step that decides
// a hit is a faithful re-implementation of MOODS' arithmetic, in the same
// order, so hit sets, counts and positions are identical and scores are
// bit-identical:
//   * PFM -> log2-odds PWM as TFBSTools::toPWM (pseudocount 0.8 per column,
//     spread by the prior), then motifmatchr's background change;
//   * the score threshold for a p-value from MOODS' dynamic programme over
//     scores discretised to 1/2000 (threshold_from_p);
//   * the lookahead scanner with window w: a table of all 4^w window codes,
//     then the remaining columns in decreasing "expected difference" order
//     with early exit.
// What differs is engineering: flat matrices, a code-indexed table built by
// prefix sums, pre-encoded sequences, a tail-pruned threshold programme,
// per-sequence early exit when only presence is asked for, and threads.
//
// MOODS quirks reproduced on purpose (NOTES.md section 5 of the chromVAR
// reference): (i) a motif shorter than w ending on the last base of an
// ACGT interval is not reported; (ii) intervals shorter than w go through
// MOODS' special branch unchanged; (iii) a matrix whose columns sum to 1 is
// scanned as is (motifmatchr's "frequency" type never converts).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>
#include "error.hpp"
#include "span.hpp"
#include "threads.hpp"

namespace epione {
namespace motifs {

using Bg = std::array<double, 4>;

// 4 x ncol score matrix, column-major: value(b, j) = v[4 * j + b], bases
// in the order A, C, G, T.
struct Matrix {
    int ncol = 0;
    std::vector<double> v;
    double operator()(int b, int j) const { return v[4 * j + b]; }
    double& operator()(int b, int j) { return v[4 * j + b]; }
};

// ---------------------------------------------------------------- bases
// 0..3 for A/C/G/T (either case, as MOODS), 4 for N and IUPAC codes (they
// split a sequence into separately scanned intervals), 5 for characters
// that are not DNA at all.
inline const std::array<std::uint8_t, 256>& base_codes() {
    static const std::array<std::uint8_t, 256> table = [] {
        std::array<std::uint8_t, 256> t{};
        t.fill(5);
        const std::string acgt = "ACGT", other = "NMRWSYKVHDB-+.";
        for (int b = 0; b < 4; ++b) {
            t[static_cast<unsigned char>(acgt[b])] = static_cast<std::uint8_t>(b);
            t[static_cast<unsigned char>(acgt[b] + 32)] = static_cast<std::uint8_t>(b);
        }
        for (char c : other) {
            t[static_cast<unsigned char>(c)] = 4;
            if (c >= 'A' && c <= 'Z') t[static_cast<unsigned char>(c + 32)] = 4;
        }
        return t;
    }();
    return table;
}

inline std::string describe_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 32 && u < 127) return std::string("'") + c + "'";
    return "byte " + std::to_string(u);
}

// Adds the A, C, G, T counts of `s` (either case) to `counts`; throws an
// input_error naming sequence `index` at the first non-DNA character.
inline void count_bases(std::string_view s, index_t index,
                        std::array<std::int64_t, 4>& counts) {
    const auto& code = base_codes();
    std::array<std::int64_t, 6> c{};
    for (char ch : s) ++c[code[static_cast<unsigned char>(ch)]];
    if (c[5] > 0) {
        std::size_t at = 0;
        while (code[static_cast<unsigned char>(s[at])] != 5) ++at;
        throw input_error("sequence " + std::to_string(index + 1) + " has " +
                          describe_char(s[at]) + " at position " +
                          std::to_string(at + 1) +
                          ", which is not a DNA letter; only A, C, G, T, N and "
                          "IUPAC codes are allowed (replace other characters "
                          "by N)");
    }
    for (int b = 0; b < 4; ++b) counts[b] += c[b];
}

// motifmatchr's bg = "subject"/"genome": letter counts over the total.
inline Bg frequencies(const std::array<std::int64_t, 4>& counts) {
    const double total = static_cast<double>(counts[0]) + counts[1] + counts[2] + counts[3];
    if (!(total > 0))
        throw input_error("the sequences contain no A, C, G or T, so background "
                          "frequencies cannot be computed; use bg = \"even\"");
    Bg bg;
    for (int b = 0; b < 4; ++b) bg[b] = static_cast<double>(counts[b]) / total;
    return bg;
}

// ---------------------------------------------------------------- matrices
// Checks a position frequency matrix: finite, non-negative, no empty column.
inline void check_pfm(const Matrix& x, const std::string& name) {
    if (x.ncol < 1) throw input_error("motif '" + name + "' has no columns");
    for (int j = 0; j < x.ncol; ++j) {
        double s = 0;
        for (int b = 0; b < 4; ++b) {
            const double v = x(b, j);
            if (!std::isfinite(v) || v < 0)
                throw input_error("motif '" + name + "' has a negative, NA or "
                                  "infinite count in column " + std::to_string(j + 1) +
                                  "; a frequency matrix needs counts >= 0");
            s += v;
        }
        if (!(s > 0))
            throw input_error("motif '" + name + "' has an all-zero column " +
                              std::to_string(j + 1) + "; remove it or add pseudocounts");
    }
}

// TFBSTools::toPWM(x, type = "log2probratio", pseudocounts, bg = prior):
// p = (x + prior_b * ps) / (colSum + sum(prior) * ps); log2(p / (prior_b / sum(prior))).
inline Matrix pfm_to_pwm(const Matrix& x, const Bg& prior, double pseudocount) {
    long double sum_ld = 0;  // R's sum() accumulates in long double
    for (double v : prior) sum_ld += v;
    const double prior_n = static_cast<double>(sum_ld);
    Matrix out{x.ncol, std::vector<double>(x.v.size())};
    for (int j = 0; j < x.ncol; ++j) {
        long double n_ld = 0;
        for (int b = 0; b < 4; ++b) n_ld += x(b, j);
        const double denom = static_cast<double>(n_ld) + prior_n * pseudocount;
        for (int b = 0; b < 4; ++b) {
            const double p = (x(b, j) + prior[b] * pseudocount) / denom;
            out(b, j) = std::log2(p / (prior[b] / prior_n));
        }
    }
    return out;
}

enum class PwmType { frequency, log2, log };

namespace detail {
// isTRUE(all.equal(target, rep(1, n), tolerance)): mean relative difference.
inline bool all_equal_one(const std::vector<double>& target, double tol) {
    long double diff = 0, size = 0;
    for (double t : target) {
        diff += std::fabs(t - 1.0);
        size += std::fabs(t);
    }
    double xy = static_cast<double>(diff / target.size());
    const double xn = static_cast<double>(size / target.size());
    if (std::isfinite(xn) && xn > tol) xy /= xn;
    return !std::isnan(xy) && xy <= tol;
}
}  // namespace detail

// motifmatchr::pwmType: "frequency" if the columns sum to 1, else "log2" or
// "log" when sum_b bg_b * base^m[b, j] is 1 (tolerance 1e-5).
inline PwmType pwm_type(const Matrix& m, const Bg& pwm_bg, const std::string& name) {
    std::vector<double> s(m.ncol), s2(m.ncol), se(m.ncol);
    for (int j = 0; j < m.ncol; ++j) {
        long double a = 0, b2 = 0, be = 0;
        for (int b = 0; b < 4; ++b) {
            a += m(b, j);
            b2 += std::pow(2.0, m(b, j)) * pwm_bg[b];
            be += std::exp(m(b, j)) * pwm_bg[b];
        }
        s[j] = static_cast<double>(a);
        s2[j] = static_cast<double>(b2);
        se[j] = static_cast<double>(be);
    }
    if (detail::all_equal_one(s, 1.5e-8)) return PwmType::frequency;
    if (detail::all_equal_one(s2, 1e-5)) return PwmType::log2;
    if (detail::all_equal_one(se, 1e-5)) return PwmType::log;
    throw input_error("cannot tell the type of motif '" + name +
                      "': a PWM must hold log2 or natural-log odds against its "
                      "background (columns of bg * base^score summing to 1), or "
                      "probabilities summing to 1; give counts as a PFM instead");
}

// motifmatchr's convert_pwm: re-express log odds against `bg`.
inline Matrix convert_pwm(const Matrix& m, PwmType type, const Bg& pwm_bg, const Bg& bg) {
    Matrix out = m;
    if (type == PwmType::frequency) return out;  // quirk (iii)
    for (int b = 0; b < 4; ++b) {
        const double d = type == PwmType::log2 ? std::log2(pwm_bg[b]) - std::log2(bg[b])
                                               : std::log(pwm_bg[b]) - std::log(bg[b]);
        for (int j = 0; j < m.ncol; ++j) out(b, j) = m(b, j) - d;
    }
    return out;
}

inline Matrix reverse_complement(const Matrix& m) {
    Matrix rc{m.ncol, std::vector<double>(m.v.size())};
    for (int j = 0; j < m.ncol; ++j)
        for (int b = 0; b < 4; ++b) rc(b, j) = m(3 - b, m.ncol - 1 - j);
    return rc;
}

// ---------------------------------------------------------------- threshold
namespace detail {
inline double max_score(const Matrix& m) {
    double r = 0;
    for (int j = 0; j < m.ncol; ++j) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int b = 0; b < 4; ++b) mx = std::max(m(b, j), mx);
        r += mx;
    }
    return r;
}
inline double min_score(const Matrix& m) {
    double r = 0;
    for (int j = 0; j < m.ncol; ++j) {
        double mn = std::numeric_limits<double>::infinity();
        for (int b = 0; b < 4; ++b) mn = std::min(m(b, j), mn);
        r += mn;
    }
    return r;
}
inline double min_delta(const Matrix& m) {
    double md = std::numeric_limits<double>::infinity();
    for (int j = 0; j < m.ncol; ++j) {
        double mx = -std::numeric_limits<double>::infinity(), second = mx;
        for (int b = 0; b < 4; ++b) {
            const double v = m(b, j);
            if (v > mx) {
                second = mx;
                mx = v;
            } else if (v < mx && v > second) {
                second = v;
            }
        }
        md = std::min(md, mx - second);
    }
    return md;
}
}  // namespace detail

// MOODS::tools::threshold_from_p. Scores are rounded to integers at
// 1/2000 (half away from zero), the distribution of the sum under `bg`
// is built column by column, and the threshold is where the upper tail
// first exceeds p. MOODS fills the whole table; only the top tail is ever
// read, so this computes the entries above a cut and lowers the cut until
// the tail is reached. Every computed entry is the same floating-point
// expression, in the same order, as in MOODS, so the result is identical.
inline double threshold_from_p(const Matrix& pssm, const Bg& bg, double p) {
    constexpr double kMult = 2000.0;
    const long n = pssm.ncol;
    std::vector<long> mat(4 * n);
    long max_t = 0, min_v = std::numeric_limits<long>::max();
    for (long j = 0; j < n; ++j)
        for (int b = 0; b < 4; ++b) {
            const double s = pssm(b, j);
            mat[4 * j + b] = s > 0.0 ? static_cast<long>(kMult * s + 0.5)
                                     : static_cast<long>(kMult * s - 0.5);
        }
    std::vector<long> cmax(n), cmin(n);
    for (long j = 0; j < n; ++j) {
        cmax[j] = *std::max_element(&mat[4 * j], &mat[4 * j] + 4);
        cmin[j] = *std::min_element(&mat[4 * j], &mat[4 * j] + 4);
        max_t += cmax[j];
        min_v = std::min(min_v, cmin[j]);
    }
    const long R = max_t - n * min_v;
    // Support of column j's table: [lo[j], hi[j]] (offsets from n * min_v).
    std::vector<long> lo(n), hi(n);
    for (long j = 0; j < n; ++j) {
        lo[j] = (j ? lo[j - 1] : 0) + cmin[j] - min_v;
        hi[j] = (j ? hi[j - 1] : 0) + cmax[j] - min_v;
    }
    // Only the ranges filled below are ever read: no need to zero the rest.
    std::unique_ptr<double[]> b0(new double[R + 1]), b1(new double[R + 1]);
    double* t0 = b0.get();
    double* t1 = b1.get();
    // First cut: a little below where a normal approximation puts the
    // tail; lowered (down to the whole table) until the tail is reached.
    double mean = 0, var = 0;
    for (long j = 0; j < n; ++j) {
        double m1 = 0, m2 = 0;
        for (int b = 0; b < 4; ++b) {
            const double v = static_cast<double>(mat[4 * j + b] - min_v);
            m1 += bg[b] * v;
            m2 += bg[b] * v * v;
        }
        mean += m1;
        var += std::max(0.0, m2 - m1 * m1);
    }
    double z = std::sqrt(2.0 * std::log(1.0 / std::max(p, 1e-300))) - 1.5;
    for (;;) {
        const long cut = z <= -1.0 ? lo[n - 1]
                                   : std::max(lo[n - 1], std::min(hi[n - 1],
                                     static_cast<long>(mean + z * std::sqrt(var))));
        // Lowest entry of column j that entries >= cut of the last column need.
        std::vector<long> need(n);
        need[n - 1] = cut;
        for (long j = n - 1; j > 0; --j)
            need[j - 1] = std::max(lo[j - 1], need[j] - (cmax[j] - min_v));
        std::fill(t0 + lo[0], t0 + hi[0] + 1, 0.0);
        for (int b = 0; b < 4; ++b) t0[mat[b] - min_v] += bg[b];
        for (long j = 1; j < n; ++j) {
            const long from = need[j], to = hi[j];
            std::fill(t1 + from, t1 + to + 1, 0.0);
            for (int b = 0; b < 4; ++b) {
                const long s = mat[4 * j + b] - min_v;
                const long r0 = std::max(from, need[j - 1] + s);
                const long r1 = std::min(to, hi[j - 1] + s);
                for (long r = r0; r <= r1; ++r) t1[r] += bg[b] * t0[r - s];
            }
            std::swap(t0, t1);
        }
        // MOODS walks down from R; entries above hi are zero.
        double sum = t0[R];
        if (sum > p) return detail::max_score(pssm) - detail::min_delta(pssm) / 2;
        for (long r = R - 1; r >= cut; --r) {
            sum += t0[r];
            if (sum > p) return static_cast<double>((r + n * min_v + 1) / kMult);
        }
        if (cut == lo[n - 1]) {
            // MOODS continues below the support with zeros: no crossing.
            return detail::min_score(pssm) - 1.0;
        }
        z -= 1.5;
    }
}

// ---------------------------------------------------------------- scanner
// One matrix as MOODS' Motif0: window position, lookahead order/scores.
struct ScanMotif {
    int m = 0, wp = 0;
    double T = 0;
    std::vector<double> v;          // 4 x m, as Matrix::v
    std::vector<int> order;         // columns outside the window
    std::vector<double> la;         // la[k] = sum of column maxima of order[k..]
};

struct WindowHit {
    double score;            // window score (the full score if m <= w)
    std::uint32_t matrix;    // k < n: forward, n + k: reverse complement
    std::uint32_t step;      // first lookahead step of the matrix
};

// Per-matrix facts the scan loop needs next to each table entry.
struct MatrixMeta {
    std::uint32_t m;         // width
    std::uint16_t wp;        // window position
    std::uint8_t full;       // m <= w
    std::uint32_t rounds;    // lookahead rounds of 4 after the first step
    double T;                // threshold
};

// One lookahead column, laid out for the scan loop: the bound before
// adding it, its column, its four scores.
struct LookaheadStep {
    double la;
    std::int64_t col;
    double v[4];
};

struct ScanOptions {
    int w = 7;             // MOODS window (lookahead) length, 1..12
    // true: MOODS' quirks (i) and (ii) above, as motifmatchr; false: every
    // hit of a motif shorter than w that fits in an ACGT interval.
    bool moods_quirks = true;
};

namespace detail {
inline ScanMotif make_scan_motif(const Matrix& mat, const Bg& bg, int l, double T) {
    ScanMotif s;
    s.m = mat.ncol;
    s.v = mat.v;
    s.T = T;
    const int m = s.m;
    std::vector<double> ed(m);
    for (int i = 0; i < m; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int b = 0; b < 4; ++b) mx = std::max(mx, mat(b, i));
        ed[i] = mx;
        for (int b = 0; b < 4; ++b) ed[i] -= bg[b] * mat(b, i);
    }
    if (l >= m) return s;
    double current = 0;
    for (int i = 0; i < l; ++i) current += ed[i];
    double mx = current;
    for (int i = 0; i < m - l; ++i) {
        current -= ed[i];
        current += ed[i + l];
        if (current > mx) {
            mx = current;
            s.wp = i + 1;
        }
    }
    s.order.assign(m - l, 0);
    for (int i = 0; i < s.wp; ++i) s.order[i] = i;
    for (int i = s.wp + l; i < m; ++i) s.order[i - l] = i;
    // std::sort, as MOODS: ties keep libstdc++'s (unstable) order.
    std::sort(s.order.begin(), s.order.end(),
              [&ed](int a, int b) { return ed[a] > ed[b]; });
    s.la.assign(m - l, 0);
    double total = 0;
    for (int i = m - l - 1; i >= 0; --i) {
        double cm = -std::numeric_limits<double>::infinity();
        for (int b = 0; b < 4; ++b) cm = std::max(cm, mat(b, s.order[i]));
        total += cm;
        s.la[i] = total;
    }
    return s;
}
}  // namespace detail

// Thresholds for p-value `p` under `bg`, one per matrix (the forward
// matrix's, used for both strands as motifmatchr does).
template <class Par>
std::vector<double> thresholds(const std::vector<Matrix>& mats, const Bg& bg, double p,
                               Par& par) {
    std::vector<double> t(mats.size());
    par.run(static_cast<index_t>(mats.size()),
            [&](index_t k) { t[k] = threshold_from_p(mats[k], bg, p); });
    return t;
}

class Scanner {
public:
    // `mats` are the forward matrices (already converted against bg) and
    // `thr` their thresholds; reverse complements are added as n + k.
    template <class Par>
    Scanner(const std::vector<Matrix>& mats, const std::vector<double>& thr, const Bg& bg,
            const ScanOptions& opt, Par& par)
        : n_(static_cast<std::uint32_t>(mats.size())), l_(opt.w), quirks_(opt.moods_quirks) {
        require(opt.w >= 1 && opt.w <= 12, "'w' must be between 1 and 12");
        for (const auto& m : mats)
            require(m.ncol >= 1 && m.ncol <= 60000, "motifs must have 1 to 60000 columns");
        motifs_.resize(2 * mats.size());
        par.run(static_cast<index_t>(mats.size()), [&](index_t k) {
            motifs_[k] = detail::make_scan_motif(mats[k], bg, l_, thr[k]);
            motifs_[n_ + k] = detail::make_scan_motif(reverse_complement(mats[k]), bg, l_, thr[k]);
        });
        for (const auto& mo : motifs_) {
            step_begin_.push_back(static_cast<std::uint32_t>(steps_.size()));
            const std::uint32_t rest = mo.m > l_ ? static_cast<std::uint32_t>(mo.m - l_) : 0;
            meta_.push_back({static_cast<std::uint32_t>(mo.m), static_cast<std::uint16_t>(mo.wp),
                             static_cast<std::uint8_t>(mo.m <= l_),
                             rest > 0 ? (rest - 1 + 3) / 4 : 0, mo.T});
            for (std::size_t k = 0; k < mo.order.size(); ++k) {
                const int col = mo.order[k];
                steps_.push_back({mo.la[k], col, {mo.v[4 * col], mo.v[4 * col + 1],
                                                 mo.v[4 * col + 2], mo.v[4 * col + 3]}});
            }
            // Pad steps 1.. to whole rounds of 4 with steps that never fail
            // (bound +inf) and add +0.0 (which leaves every sum unchanged).
            if (!mo.order.empty())
                while ((steps_.size() - step_begin_.back() - 1) % 4 != 0)
                    steps_.push_back({std::numeric_limits<double>::infinity(), 0,
                                      {0.0, 0.0, 0.0, 0.0}});
        }
        build_table(par);
    }

    std::uint32_t n_motifs() const { return n_; }
    const ScanMotif& motif(std::uint32_t k) const { return motifs_[k]; }
    index_t table_size() const { return static_cast<index_t>(hits_.size()); }

    // Scans one sequence. `handler.skip(k)` may veto matrix k (used once a
    // motif is known present); `handler.add(k, pos, score)` receives hits of
    // matrix k (k >= n: reverse strand) at 0-based leftmost position `pos`,
    // in MOODS' order. `codes` is scratch space.
    template <class Handler>
    void scan(std::string_view s, Handler& handler, std::vector<std::uint8_t>& codes) const {
        const auto& table = base_codes();
        const std::size_t len = s.size();
        codes.resize(len);
        for (std::size_t i = 0; i < len; ++i) codes[i] = table[static_cast<unsigned char>(s[i])];
        std::size_t i = 0;
        while (i < len) {
            while (i < len && codes[i] >= 4) ++i;
            if (i == len) break;
            std::size_t end = i;
            while (end < len && codes[end] < 4) ++end;
            scan_interval(codes.data(), i, end, handler);
            i = end;
        }
    }

private:
    using code_t = std::uint32_t;
    static constexpr double kPruneMargin = 1e-7;  // far above rounding error

    template <class Par>
    void build_table(Par& par) {
        const code_t n_codes = code_t(1) << (2 * l_);
        std::vector<std::vector<std::pair<code_t, double>>> per(motifs_.size());
        par.run(static_cast<index_t>(motifs_.size()),
                [&](index_t k) { per[k] = window_matches(motifs_[k]); });
        offsets_.assign(n_codes + 1, 0);
        for (const auto& v : per)
            for (const auto& e : v) ++offsets_[e.first + 1];
        for (code_t c = 0; c < n_codes; ++c) offsets_[c + 1] += offsets_[c];
        hits_.resize(offsets_[n_codes]);
        std::vector<index_t> fill(offsets_.begin(), offsets_.end() - 1);
        for (std::size_t k = 0; k < per.size(); ++k) {
            for (const auto& e : per[k])
                hits_[fill[e.first]++] = {e.second, static_cast<std::uint32_t>(k),
                                          step_begin_[k]};
            std::vector<std::pair<code_t, double>>().swap(per[k]);
        }
    }

    // All window codes that pass MOODS' window_match for `mo`, with the
    // window score. Prefix sums run left to right exactly as MOODS adds.
    std::vector<std::pair<code_t, double>> window_matches(const ScanMotif& mo) const {
        std::vector<std::pair<code_t, double>> out;
        const int depth = std::min(mo.m, l_);
        const double extra = mo.m > l_ ? mo.la[0] : 0.0;
        // best[d]: the largest score the window columns d.. can add.
        std::vector<double> best(depth + 1, 0.0);
        for (int d = depth - 1; d >= 0; --d) {
            double cm = -std::numeric_limits<double>::infinity();
            for (int b = 0; b < 4; ++b) cm = std::max(cm, mo.v[4 * (mo.wp + d) + b]);
            best[d] = best[d + 1] + cm;
        }
        const int free_bits = 2 * (l_ - depth);
        struct Frame { int d; code_t code; double score; };
        std::vector<Frame> stack{{0, 0, 0.0}};
        while (!stack.empty()) {
            const Frame f = stack.back();
            stack.pop_back();
            if (f.d == depth) {
                if (f.score + extra >= mo.T) {
                    const code_t base = f.code << free_bits;
                    for (code_t suf = 0; suf < (code_t(1) << free_bits); ++suf)
                        out.emplace_back(base | suf, f.score);
                }
                continue;
            }
            // Safe pruning: even the best completion falls short by a margin
            // far larger than any rounding difference.
            if (f.score + best[f.d] + extra < mo.T - kPruneMargin) continue;
            for (int b = 3; b >= 0; --b)
                stack.push_back({f.d + 1, (f.code << 2) | code_t(b),
                                 f.score + mo.v[4 * (mo.wp + f.d) + b]});
        }
        return out;
    }

    // MOODS' check_hit: the remaining columns in lookahead order, leaving as
    // soon as the best completion cannot reach the threshold.
    // Step 0's bound is the window test the table already passed, so
    // column order[0] is added at once. Then rounds of four steps: the same
    // bounds on the same partial sums as MOODS, tested together, so most
    // candidates leave on one well-predicted branch.
    bool check_hit(const WindowHit& y, const MatrixMeta& mm, const std::uint8_t* at,
                   double& score) const {
        const LookaheadStep* st = steps_.data() + y.step;
        const double T = mm.T;
        double sc = score + st[0].v[at[st[0].col]];
        for (std::uint32_t r = 0; r < mm.rounds; ++r) {
            const LookaheadStep* q = st + 1 + 4 * r;
            const double a1 = sc + q[0].v[at[q[0].col]];
            const double a2 = a1 + q[1].v[at[q[1].col]];
            const double a3 = a2 + q[2].v[at[q[2].col]];
            if ((sc + q[0].la < T) | (a1 + q[1].la < T) | (a2 + q[2].la < T) |
                (a3 + q[3].la < T))
                return false;
            sc = a3 + q[3].v[at[q[3].col]];
        }
        score = sc;
        return sc >= T;
    }

    template <class Handler>
    void scan_interval(const std::uint8_t* c, std::size_t start, std::size_t end,
                       Handler& h) const {
        const std::size_t l = static_cast<std::size_t>(l_);
        const code_t mask = (code_t(1) << (2 * l_)) - 1;
        code_t code = 0;
        if (end - start < l && !quirks_) {
            scan_short_interval(c, start, end, h);
            return;
        }
        if (end - start < l) {  // MOODS' branch for short intervals, verbatim
            for (std::size_t i = start; i < end; ++i) code = (code << 2) + c[i];
            for (std::size_t i = end - start; i < l - 1; ++i) code = (code << 2) & mask;
            for (std::size_t i = start; i < end; ++i) {
                if (offsets_[code] == offsets_[code + 1]) continue;
                code = (code << 2) & mask;
                for (index_t e = offsets_[code]; e < offsets_[code + 1]; ++e) {
                    const WindowHit& y = hits_[e];
                    const MatrixMeta& mm = meta_[y.matrix];
                    if (mm.full && mm.m <= end - i && !h.skip(y.matrix))
                        h.add(y.matrix, i, y.score);
                }
            }
            return;
        }
        for (std::size_t i = start; i < start + l - 1; ++i) code = (code << 2) + c[i];
        for (std::size_t i = start; i < end - l + 1; ++i) {
            code = ((code << 2) + c[i + l - 1]) & mask;
            if (i + l < end) {  // the next window's list is a likely cache miss
                const code_t next = ((code << 2) + c[i + l]) & mask;
                const WindowHit* p = hits_.data() + offsets_[next];
                __builtin_prefetch(p);
                __builtin_prefetch(reinterpret_cast<const char*>(p) + 64);
                __builtin_prefetch(reinterpret_cast<const char*>(p) + 128);
                __builtin_prefetch(reinterpret_cast<const char*>(p) + 192);
            }
            for (index_t e = offsets_[code], e1 = offsets_[code + 1]; e < e1; ++e) {
                const WindowHit& y = hits_[e];
                if (h.skip(y.matrix)) continue;
                const MatrixMeta& mm = meta_[y.matrix];
                if (mm.full) {
                    h.add(y.matrix, i, y.score);
                    continue;
                }
                const std::size_t wp = mm.wp;
                if (i - start >= wp && i + mm.m - wp <= end) {
                    double score = y.score;
                    if (check_hit(y, mm, c + (i - wp), score)) h.add(y.matrix, i - wp, score);
                }
            }
        }
        // Motifs shorter than w near the interval's end; '<' is quirk (i).
        const std::size_t room = quirks_ ? 0 : 1;
        for (std::size_t i = end - l + 1; i < end; ++i) {
            code = (code << 2) & mask;
            for (index_t e = offsets_[code]; e < offsets_[code + 1]; ++e) {
                const WindowHit& y = hits_[e];
                const MatrixMeta& mm = meta_[y.matrix];
                if (mm.full && mm.m < end - i + room && !h.skip(y.matrix))
                    h.add(y.matrix, i, y.score);
            }
        }
    }

    // An interval shorter than w without MOODS' quirk (ii): each start's
    // window is the rest of the interval padded with A; a window-table hit
    // of a motif of width m only depends on its first m bases, so it
    // counts when the motif fits.
    template <class Handler>
    void scan_short_interval(const std::uint8_t* c, std::size_t start, std::size_t end,
                             Handler& h) const {
        for (std::size_t i = start; i < end; ++i) {
            code_t code = 0;
            for (std::size_t k = 0; k < static_cast<std::size_t>(l_); ++k)
                code = (code << 2) + (i + k < end ? c[i + k] : 0);
            for (index_t e = offsets_[code]; e < offsets_[code + 1]; ++e) {
                const WindowHit& y = hits_[e];
                const MatrixMeta& mm = meta_[y.matrix];
                if (mm.full && mm.m <= end - i && !h.skip(y.matrix)) h.add(y.matrix, i, y.score);
            }
        }
    }

    std::uint32_t n_;
    int l_;
    bool quirks_ = true;
    std::vector<ScanMotif> motifs_;
    std::vector<index_t> offsets_;
    std::vector<WindowHit> hits_;
    std::vector<LookaheadStep> steps_;
    std::vector<std::uint32_t> step_begin_;
    std::vector<MatrixMeta> meta_;
};

// ---------------------------------------------------------------- drivers
// A source of sequences: `n()` and, per task, a reader with
// `std::string_view get(index_t i)` (valid until the next call).

// Borrowed C strings (e.g. an R character vector).
struct StringSource {
    std::vector<std::string_view> seqs;
    index_t n() const { return static_cast<index_t>(seqs.size()); }
    struct Reader {
        const StringSource* src;
        std::string_view get(index_t i) { return src->seqs[i]; }
    };
    Reader reader() const { return {this}; }
};

inline index_t n_blocks_for(index_t n) { return std::min<index_t>(n, 512); }

// A + C + G + T counts over every sequence (validating the letters).
template <class Source, class Par>
std::array<std::int64_t, 4> count_bases(const Source& src, Par& par) {
    const index_t n = src.n(), nb = n_blocks_for(n);
    std::vector<std::array<std::int64_t, 4>> part(nb, std::array<std::int64_t, 4>{});
    par.run(nb, [&](index_t b) {
        auto rd = src.reader();
        const auto r = block_range(n, nb, b);
        for (index_t i = r.begin; i < r.end; ++i) count_bases(rd.get(i), i, part[b]);
    });
    std::array<std::int64_t, 4> total{};
    for (const auto& p : part)
        for (int k = 0; k < 4; ++k) total[k] += p[k];
    return total;
}

// Sequence x motif results as triplets in sequence-major order.
struct MatchTable {
    index_t n_seqs = 0;
    std::uint32_t n_motifs = 0;
    std::vector<int> seq;              // 0-based
    std::vector<std::uint32_t> motif;  // 0-based
    std::vector<double> max_score;     // "scores" only
    std::vector<int> count;            // "scores" only
};

// All hits, ordered by motif, then sequence, then '+' before '-', then position.
struct Positions {
    std::vector<std::uint32_t> motif;
    std::vector<int> seq;
    std::vector<index_t> pos;          // 0-based leftmost base
    std::vector<char> strand;
    std::vector<double> score;
};

enum class Output { matches, scores, positions };

// The sequence x motif table in compressed-sparse-column layout (columns =
// motifs, rows ascending); `from[k]` is entry k's index in the table.
struct CscIndex {
    std::vector<index_t> p;
    std::vector<int> i;
    std::vector<index_t> from;
};
inline CscIndex to_csc(const MatchTable& t) {
    CscIndex c;
    c.p.assign(t.n_motifs + 1, 0);
    const index_t nnz = static_cast<index_t>(t.seq.size());
    for (index_t k = 0; k < nnz; ++k) ++c.p[t.motif[k] + 1];
    for (std::uint32_t j = 0; j < t.n_motifs; ++j) c.p[j + 1] += c.p[j];
    c.i.resize(nnz);
    c.from.resize(nnz);
    std::vector<index_t> at(c.p.begin(), c.p.end() - 1);
    for (index_t k = 0; k < nnz; ++k) {  // sequence-major input: rows stay sorted
        const index_t dst = at[t.motif[k]]++;
        c.i[dst] = t.seq[k];
        c.from[dst] = k;
    }
    return c;
}

namespace detail {
struct PresenceHandler {
    std::uint32_t n;
    std::vector<std::uint8_t>& found;
    std::vector<std::uint32_t>& touched;
    bool skip(std::uint32_t k) const { return found[k < n ? k : k - n] != 0; }
    void add(std::uint32_t k, std::size_t, double) {
        const std::uint32_t j = k < n ? k : k - n;
        found[j] = 1;
        touched.push_back(j);
    }
};
struct ScoreHandler {
    std::uint32_t n;
    std::vector<int>& count;           // per motif, both strands
    std::vector<double>& best;
    std::vector<std::uint32_t>& touched;
    const std::vector<double>& thr;
    bool skip(std::uint32_t) const { return false; }
    void add(std::uint32_t k, std::size_t, double score) {
        const std::uint32_t j = k < n ? k : k - n;
        if (count[j]++ == 0) {
            touched.push_back(j);
            best[j] = thr[j];  // motifmatchr starts the maximum at the threshold
        }
        if (score > best[j]) best[j] = score;
    }
};
struct HitRec {
    std::uint32_t matrix;
    index_t pos;
    double score;
};
struct PositionHandler {
    std::vector<HitRec>& hits;
    bool skip(std::uint32_t) const { return false; }
    void add(std::uint32_t k, std::size_t pos, double score) {
        hits.push_back({k, static_cast<index_t>(pos), score});
    }
};
}  // namespace detail

// Scans every sequence of `src`; tasks are fixed blocks of sequences and
// their results are concatenated in block order, so the output does not
// depend on the number of threads.
template <class Source, class Par, class Progress>
void scan_all(const Scanner& sc, const std::vector<double>& thr, const Source& src,
              Output what, Par& par, Progress& progress, MatchTable* table,
              Positions* positions) {
    const index_t n = src.n(), nb = n_blocks_for(n);
    const std::uint32_t nm = sc.n_motifs();
    std::vector<MatchTable> tparts(nb);
    std::vector<std::vector<std::pair<int, detail::HitRec>>> pparts(nb);
    par.run(nb, [&](index_t b) {
        auto rd = src.reader();
        const auto r = block_range(n, nb, b);
        std::vector<std::uint8_t> codes, found(nm, 0);
        std::vector<int> count(nm, 0);
        std::vector<double> best(nm, 0.0);
        std::vector<std::uint32_t> touched;
        std::vector<detail::HitRec> hits;
        MatchTable& out = tparts[b];
        for (index_t i = r.begin; i < r.end; ++i) {
            const std::string_view s = rd.get(i);
            std::array<std::int64_t, 4> dummy{};
            count_bases(s, i, dummy);  // rejects non-DNA letters
            touched.clear();
            if (what == Output::matches) {
                detail::PresenceHandler h{nm, found, touched};
                sc.scan(s, h, codes);
                std::sort(touched.begin(), touched.end());
                for (auto j : touched) {
                    out.seq.push_back(static_cast<int>(i));
                    out.motif.push_back(j);
                    found[j] = 0;
                }
            } else if (what == Output::scores) {
                detail::ScoreHandler h{nm, count, best, touched, thr};
                sc.scan(s, h, codes);
                std::sort(touched.begin(), touched.end());
                for (auto j : touched) {
                    out.seq.push_back(static_cast<int>(i));
                    out.motif.push_back(j);
                    out.max_score.push_back(best[j]);
                    out.count.push_back(count[j]);
                    count[j] = 0;
                }
            } else {
                hits.clear();
                detail::PositionHandler h{hits};
                sc.scan(s, h, codes);
                // motif, then '+' (k < n) before '-', scan order kept within.
                std::stable_sort(hits.begin(), hits.end(),
                                 [nm](const detail::HitRec& a, const detail::HitRec& c) {
                                     const auto ja = a.matrix % nm, jc = c.matrix % nm;
                                     if (ja != jc) return ja < jc;
                                     return a.matrix < c.matrix;
                                 });
                for (const auto& h2 : hits) pparts[b].push_back({static_cast<int>(i), h2});
            }
        }
        progress.tick(r.end - r.begin);
    });
    if (what != Output::positions) {
        table->n_seqs = n;
        table->n_motifs = nm;
        for (auto& t : tparts) {
            table->seq.insert(table->seq.end(), t.seq.begin(), t.seq.end());
            table->motif.insert(table->motif.end(), t.motif.begin(), t.motif.end());
            table->max_score.insert(table->max_score.end(), t.max_score.begin(), t.max_score.end());
            table->count.insert(table->count.end(), t.count.begin(), t.count.end());
            MatchTable().seq.swap(t.seq);
        }
        return;
    }
    // Group by motif (counting sort, stable in sequence order).
    std::vector<index_t> start(nm + 1, 0);
    for (const auto& part : pparts)
        for (const auto& e : part) ++start[e.second.matrix % nm + 1];
    for (std::uint32_t j = 0; j < nm; ++j) start[j + 1] += start[j];
    const index_t total = start[nm];
    positions->motif.resize(total);
    positions->seq.resize(total);
    positions->pos.resize(total);
    positions->strand.resize(total);
    positions->score.resize(total);
    for (const auto& part : pparts)
        for (const auto& e : part) {
            const std::uint32_t j = e.second.matrix % nm;
            const index_t at = start[j]++;
            positions->motif[at] = j;
            positions->seq[at] = e.first;
            positions->pos[at] = e.second.pos;
            positions->strand[at] = e.second.matrix < nm ? '+' : '-';
            positions->score[at] = e.second.score;
        }
}

}  // namespace motifs
}  // namespace epione
