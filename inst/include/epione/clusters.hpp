// Graph clustering as ArchR's addClusters(method = "Seurat") runs it:
// a shared-nearest-neighbour graph (Seurat ComputeSNN: Jaccard-like
// |shared| / (2k - |shared|), pruned below `prune`) and the Louvain
// algorithm of Waltman & van Eck's ModularityOptimizer (the one Seurat's
// FindClusters uses, algorithm = 1, modularity = 1), driven by the same
// java.util.Random linear congruential generator, so a given SNN graph and
// seed give Seurat's partition.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>
#include "error.hpp"
#include "span.hpp"

namespace epione {
namespace clusters {

// Symmetric weighted graph in compressed rows (both directions stored,
// neighbours ascending, no self loops).
struct Graph {
    int n = 0;
    std::vector<index_t> start;  // n + 1
    std::vector<int> nbr;
    std::vector<double> w;
};

// SNN from a kNN table (n x k, column-major, 0-based, self included as
// Seurat's annoy search returns it). Edge (i, j) for i != j when
// s / (2k - s) >= prune, s = number of shared entries of the two rows.
inline Graph snn_graph(const DenseView<const int>& knn, double prune) {
    const int n = static_cast<int>(knn.nrow);
    const int k = static_cast<int>(knn.ncol);
    // Inverted index: which rows list cell m.
    std::vector<index_t> ptr(n + 1, 0);
    for (int c = 0; c < k; ++c)
        for (int r = 0; r < n; ++r) {
            const int m = knn(r, c);
            require(m >= 0 && m < n, "kNN index out of range");
            ++ptr[m + 1];
        }
    for (int m = 0; m < n; ++m) ptr[m + 1] += ptr[m];
    std::vector<int> who(ptr[n]);
    std::vector<index_t> next(ptr.begin(), ptr.end() - 1);
    for (int r = 0; r < n; ++r)
        for (int c = 0; c < k; ++c) who[next[knn(r, c)]++] = r;
    Graph g;
    g.n = n;
    g.start.assign(n + 1, 0);
    std::vector<int> count(n, 0), touched;
    for (int i = 0; i < n; ++i) {
        touched.clear();
        for (int c = 0; c < k; ++c) {
            const int m = knn(i, c);
            for (index_t q = ptr[m]; q < ptr[m + 1]; ++q) {
                const int j = who[q];
                if (count[j]++ == 0) touched.push_back(j);
            }
        }
        std::sort(touched.begin(), touched.end());
        for (int j : touched) {
            const double s = count[j];
            const double v = s / (k + (k - s));
            count[j] = 0;
            if (j == i || v < prune) continue;
            g.nbr.push_back(j);
            g.w.push_back(v);
        }
        g.start[i + 1] = static_cast<index_t>(g.nbr.size());
    }
    return g;
}

// java.util.Random, as in the ModularityOptimizer.
class JavaRandom {
public:
    explicit JavaRandom(std::uint64_t seed)
        : seed_((seed ^ 0x5DEECE66DULL) & kMask) {}
    int next_int(int n) {
        if ((n & -n) == n)
            return static_cast<int>((static_cast<std::uint64_t>(n) *
                                     static_cast<std::uint64_t>(next(31))) >> 31);
        std::int64_t bits, val;
        do {
            bits = next(31);
            val = bits % n;
        } while (bits - val + (n - 1) > std::numeric_limits<int>::max());
        return static_cast<int>(val);
    }

private:
    static constexpr std::uint64_t kMask = (std::uint64_t(1) << 48) - 1;
    int next(int bits) {
        seed_ = (seed_ * 0x5DEECE66DULL + 0xBULL) & kMask;
        return static_cast<int>(seed_ >> (48 - bits));
    }
    std::uint64_t seed_;
};

// One level of the Louvain hierarchy: a network with node weights.
struct Network {
    int n = 0;
    std::vector<index_t> start;
    std::vector<int> nbr;
    std::vector<double> w;
    std::vector<double> node_w;
    double self_w = 0.0;
    double total_edge_weight() const {
        return std::accumulate(w.begin(), w.end(), 0.0) / 2.0;
    }
};

inline Network network_from_graph(const Graph& g) {
    Network net;
    net.n = g.n;
    net.start = g.start;
    net.nbr = g.nbr;
    net.w = g.w;
    net.node_w.assign(g.n, 0.0);
    for (int i = 0; i < g.n; ++i)
        net.node_w[i] = std::accumulate(g.w.begin() + g.start[i],
                                        g.w.begin() + g.start[i + 1], 0.0);
    return net;
}

// Random permutation drawn exactly as Arrays2.generateRandomPermutation.
inline std::vector<int> random_permutation(int n, JavaRandom& rnd) {
    std::vector<int> p(n);
    std::iota(p.begin(), p.end(), 0);
    for (int i = 0; i < n; ++i) std::swap(p[i], p[rnd.next_int(n)]);
    return p;
}

// Local moving of nodes between clusters; relabels clusters 0..n_clusters-1
// in label order; returns whether any node moved.
inline bool local_moving(const Network& net, double res, std::vector<int>& cl,
                         int& n_clusters, JavaRandom& rnd) {
    const int n = net.n;
    if (n == 1) return false;
    bool update = false;
    std::vector<double> cw(n, 0.0), ew(n, 0.0);
    std::vector<int> size(n, 0), unused, nb_cl(n);
    for (int i = 0; i < n; ++i) {
        cw[cl[i]] += net.node_w[i];
        ++size[cl[i]];
    }
    for (int i = 0; i < n; ++i)
        if (size[i] == 0) unused.push_back(i);
    const std::vector<int> perm = random_permutation(n, rnd);
    int stable = 0, i = 0;
    do {
        const int j = perm[i];
        int n_nb = 0;
        for (index_t e = net.start[j]; e < net.start[j + 1]; ++e) {
            const int l = cl[net.nbr[e]];
            if (ew[l] == 0) nb_cl[n_nb++] = l;
            ew[l] += net.w[e];
        }
        cw[cl[j]] -= net.node_w[j];
        if (--size[cl[j]] == 0) unused.push_back(cl[j]);
        int best = -1;
        double best_q = 0.0;
        for (int k = 0; k < n_nb; ++k) {
            const int l = nb_cl[k];
            const double q = ew[l] - net.node_w[j] * cw[l] * res;
            if (q > best_q || (q == best_q && l < best)) {
                best = l;
                best_q = q;
            }
            ew[l] = 0.0;
        }
        if (best_q == 0.0) {
            best = unused.back();
            unused.pop_back();
        }
        cw[best] += net.node_w[j];
        ++size[best];
        if (best == cl[j]) {
            ++stable;
        } else {
            cl[j] = best;
            stable = 1;
            update = true;
        }
        i = i < n - 1 ? i + 1 : 0;
    } while (stable < n);
    std::vector<int> relabel(n, 0);
    n_clusters = 0;
    for (int c = 0; c < n; ++c)
        if (size[c] > 0) relabel[c] = n_clusters++;
    for (int& c : cl) c = relabel[c];
    return update;
}

// Collapses each cluster to one node (neighbours in first-seen order).
inline Network reduce(const Network& net, const std::vector<int>& cl,
                      int n_clusters) {
    Network r;
    r.n = n_clusters;
    r.node_w.assign(n_clusters, 0.0);
    r.start.assign(n_clusters + 1, 0);
    r.self_w = net.self_w;
    std::vector<std::vector<int>> members(n_clusters);
    for (int i = 0; i < net.n; ++i) members[cl[i]].push_back(i);
    std::vector<double> acc(n_clusters, 0.0);
    std::vector<int> seen;
    for (int c = 0; c < n_clusters; ++c) {
        seen.clear();
        for (int l : members[c]) {
            r.node_w[c] += net.node_w[l];
            for (index_t e = net.start[l]; e < net.start[l + 1]; ++e) {
                const int m = cl[net.nbr[e]];
                if (m != c) {
                    if (acc[m] == 0) seen.push_back(m);
                    acc[m] += net.w[e];
                } else {
                    r.self_w += net.w[e];
                }
            }
        }
        for (int m : seen) {
            r.nbr.push_back(m);
            r.w.push_back(acc[m]);
            acc[m] = 0.0;
        }
        r.start[c + 1] = static_cast<index_t>(r.nbr.size());
    }
    return r;
}

// Recursive Louvain step (runLouvainAlgorithm).
inline bool louvain_step(const Network& net, double res, std::vector<int>& cl,
                         int& n_clusters, JavaRandom& rnd) {
    if (net.n == 1) return false;
    bool update = local_moving(net, res, cl, n_clusters, rnd);
    if (n_clusters < net.n) {
        const Network red = reduce(net, cl, n_clusters);
        std::vector<int> rcl(red.n);
        std::iota(rcl.begin(), rcl.end(), 0);
        int rn = red.n;
        if (louvain_step(red, res, rcl, rn, rnd)) {
            update = true;
            for (int& c : cl) c = rcl[c];
            n_clusters = rn;
        }
    }
    return update;
}

inline double modularity(const Network& net, const std::vector<int>& cl,
                         int n_clusters, double res) {
    double q = 0.0;
    for (int i = 0; i < net.n; ++i)
        for (index_t e = net.start[i]; e < net.start[i + 1]; ++e)
            if (cl[net.nbr[e]] == cl[i]) q += net.w[e];
    q += net.self_w;
    std::vector<double> cw(n_clusters, 0.0);
    for (int i = 0; i < net.n; ++i) cw[cl[i]] += net.node_w[i];
    for (int c = 0; c < n_clusters; ++c) q -= cw[c] * cw[c] * res;
    return q / (2 * net.total_edge_weight() + net.self_w);
}

struct LouvainOptions {
    double resolution = 0.8;
    int n_start = 10;
    int n_iter = 10;
    std::uint64_t seed = 0;
};

// Best of n_start Louvain runs; clusters numbered by decreasing size
// (stable), as Seurat returns them. Returns the modularity.
inline double louvain(const Graph& g, const LouvainOptions& opt,
                      std::vector<int>& out) {
    require(g.n > 0, "the graph has no nodes");
    require(!g.nbr.empty(), "the SNN graph has no edges; check the input");
    const Network net = network_from_graph(g);
    const double res = opt.resolution / (2 * net.total_edge_weight() + net.self_w);
    JavaRandom rnd(opt.seed);
    double best = -std::numeric_limits<double>::infinity();
    int best_n = 0;
    for (int s = 0; s < opt.n_start; ++s) {
        std::vector<int> cl(net.n);
        std::iota(cl.begin(), cl.end(), 0);
        int nc = net.n, it = 0;
        bool update = true;
        double q;
        do {
            update = louvain_step(net, res, cl, nc, rnd);
            ++it;
            q = modularity(net, cl, nc, res);
        } while (it < opt.n_iter && update);
        if (q > best) {
            best = q;
            out = cl;
            best_n = nc;
        }
    }
    // Order by size, descending, ties by label.
    std::vector<int> size(best_n, 0);
    for (int c : out) ++size[c];
    std::vector<int> order(best_n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return size[b] < size[a]; });
    std::vector<int> relabel(best_n);
    for (int r = 0; r < best_n; ++r) relabel[order[r]] = r;
    for (int& c : out) c = relabel[c];
    return best;
}

// Exact Euclidean k nearest neighbours of each query row among the data
// rows (ArchR .computeKNN via nabor); ties broken by the lower data index.
// One query per task; out is n_query x k, 0-based.
template <class Par>
void knn_exact(const DenseView<const double>& data,
               const DenseView<const double>& query, int k, Par& par,
               DenseView<int> out) {
    require(data.ncol == query.ncol, "kNN: data and query need the same columns");
    require(k >= 1 && k <= data.nrow, "kNN: k must be between 1 and nrow(data)");
    require(out.nrow == query.nrow && out.ncol == k, "kNN: output must be n_query x k");
    par.run(query.nrow, [&](index_t q) {
        std::vector<std::pair<double, int>> d(data.nrow);
        for (index_t r = 0; r < data.nrow; ++r) {
            double s = 0.0;
            for (index_t c = 0; c < data.ncol; ++c) {
                const double z = data(r, c) - query(q, c);
                s += z * z;
            }
            d[r] = {s, static_cast<int>(r)};
        }
        std::partial_sort(d.begin(), d.begin() + k, d.end());
        for (int j = 0; j < k; ++j) out(q, j) = d[j].second;
    });
}

}  // namespace clusters
}  // namespace epione
