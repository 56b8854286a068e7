// Glue for the scBasset CNN (inst/include/epione/cnn.hpp): the model lives
// in an external pointer while R drives the epochs; weights travel back to
// R as numeric vectors and to disk as HDF5.
#include "glue.h"
#include <dlfcn.h>
#include <hdf5.h>
#include <htslib/faidx.h>
#include <epione/cnn.hpp>

namespace {

using NetF = epione::cnn::Net<float>;
using NetD = epione::cnn::Net<double>;

// OpenBLAS would start its own threads inside each TBB task; one BLAS
// thread per task keeps the machine's cores for the tasks and makes every
// GEMM's summation order independent of the thread count.
class BlasOneThread {
public:
    BlasOneThread() {
        set_ = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
        auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
        if (set_ && get) {
            old_ = get();
            set_(1);
        }
    }
    ~BlasOneThread() {
        if (set_ && old_ > 0) set_(old_);
    }

private:
    void (*set_)(int) = nullptr;
    int old_ = 0;
};

epione::cnn::Config config_from(Rcpp::List x) {
    epione::cnn::Config c;
    auto geti = [&](const char* n, int& v) {
        if (x.containsElementNamed(n)) v = Rcpp::as<int>(x[n]);
    };
    auto getd = [&](const char* n, double& v) {
        if (x.containsElementNamed(n)) v = Rcpp::as<double>(x[n]);
    };
    geti("seq_len", c.seq_len);
    geti("stem_filters", c.stem_filters);
    geti("stem_kernel", c.stem_kernel);
    geti("stem_pool", c.stem_pool);
    geti("tower_start", c.tower_start);
    geti("tower_end", c.tower_end);
    geti("tower_repeat", c.tower_repeat);
    geti("tower_kernel", c.tower_kernel);
    geti("tower_pool", c.tower_pool);
    geti("conv1x1", c.conv1x1);
    geti("bottleneck", c.bottleneck);
    geti("n_cells", c.n_cells);
    geti("n_batches", c.n_batches);
    geti("chunk", c.chunk);
    geti("augment_batch", c.augment_batch);
    getd("dropout", c.dropout);
    getd("bn_momentum", c.bn_momentum);
    getd("bn_eps", c.bn_eps);
    return c;
}

std::vector<std::int64_t> to_index(Rcpp::IntegerVector idx) {
    return std::vector<std::int64_t>(idx.begin(), idx.end());
}

const std::uint8_t* codes_ptr(Rcpp::RawVector codes) { return RAW(codes); }

template <class Net>
void set_cell_batch(Net& net, Rcpp::IntegerVector cell_batch) {
    if (cell_batch.size() == 0) return;
    if (cell_batch.size() != net.cfg.n_cells)
        throw epione::input_error("cell_batch must have one entry per cell");
    for (int k = 0; k < net.cfg.n_cells; ++k) {
        if (cell_batch[k] < 0 || cell_batch[k] >= std::max(1, net.cfg.n_batches))
            throw epione::input_error("cell_batch out of range");
        net.cell_batch[k] = cell_batch[k];
    }
}

}  // namespace

// [[Rcpp::export(rng = false)]]
Rcpp::RawVector epi_cnn_encode(Rcpp::CharacterVector seqs, int seq_len) {
    const std::int64_t n = seqs.size();
    Rcpp::RawVector out(static_cast<R_xlen_t>(n) * seq_len);
    std::string buf;
    epione::cnn::encode_sequences(n, seq_len, [&](std::int64_t s) -> const std::string& {
        buf.assign(CHAR(STRING_ELT(seqs, s)), LENGTH(STRING_ELT(seqs, s)));
        return buf;
    }, RAW(out));
    return out;
}

// Layer sizes, parameter slots and counts of a configuration.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_cnn_describe(Rcpp::List config) {
    const NetF net(config_from(config));
    Rcpp::CharacterVector names;
    Rcpp::NumericVector rows, cols, off;
    for (const auto& s : net.slots) {
        names.push_back(s.name);
        rows.push_back(double(s.rows));
        cols.push_back(double(s.cols));
        off.push_back(double(s.off));
    }
    Rcpp::IntegerVector cin, cout, k, pool, len;
    for (const auto& q : net.convs) {
        cin.push_back(q.cin);
        cout.push_back(q.cout);
        k.push_back(q.k);
        pool.push_back(q.pool);
        len.push_back(q.len_in);
    }
    return Rcpp::List::create(
        Rcpp::Named("slots") = Rcpp::DataFrame::create(Rcpp::Named("name") = names,
            Rcpp::Named("rows") = rows, Rcpp::Named("cols") = cols, Rcpp::Named("offset") = off),
        Rcpp::Named("convs") = Rcpp::DataFrame::create(Rcpp::Named("cin") = cin,
            Rcpp::Named("cout") = cout, Rcpp::Named("kernel") = k, Rcpp::Named("pool") = pool,
            Rcpp::Named("len_in") = len),
        Rcpp::Named("flat") = net.flat,
        Rcpp::Named("n_params") = double(net.n_params()),
        Rcpp::Named("n_state") = double(net.state.size()));
}

// [[Rcpp::export(rng = false)]]
SEXP epi_cnn_new(Rcpp::List config, double seed, Rcpp::IntegerVector cell_batch) {
    Rcpp::XPtr<NetF> ptr(new NetF(config_from(config)), true);
    ptr->init(static_cast<std::uint64_t>(seed));
    set_cell_batch(*ptr, cell_batch);
    return ptr;
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_cnn_get(SEXP model) {
    Rcpp::XPtr<NetF> net(model);
    return Rcpp::List::create(
        Rcpp::Named("theta") = Rcpp::NumericVector(net->theta.begin(), net->theta.end()),
        Rcpp::Named("state") = Rcpp::NumericVector(net->state.begin(), net->state.end()));
}

// [[Rcpp::export(rng = false)]]
SEXP epi_cnn_restore(Rcpp::List config, Rcpp::NumericVector theta, Rcpp::NumericVector state,
                     Rcpp::IntegerVector cell_batch) {
    Rcpp::XPtr<NetF> net(new NetF(config_from(config)), true);
    net->init(0);
    if (theta.size() != net->n_params() || state.size() != R_xlen_t(net->state.size()))
        throw epione::format_error("saved weights do not fit the saved configuration (" +
                                   std::to_string(theta.size()) + " weights, expected " +
                                   std::to_string(net->n_params()) + ")");
    std::copy(theta.begin(), theta.end(), net->theta.begin());
    std::copy(state.begin(), state.end(), net->state.begin());
    set_cell_batch(*net, cell_batch);
    return net;
}

// One epoch over `train_idx` (0-based regions) in shuffled minibatches;
// returns the mean training loss. p/ci: region -> cell lists (CSC of the
// cells x regions matrix).
// [[Rcpp::export(rng = false)]]
double epi_cnn_train_epoch(SEXP model, Rcpp::RawVector codes, Rcpp::NumericVector p,
                           Rcpp::IntegerVector ci, Rcpp::IntegerVector train_idx, int batch_size,
                           double seed, int epoch, double lr, bool augment, int threads) {
    Rcpp::XPtr<NetF> net(model);
    BlasOneThread blas;
    glue::StdPar par(threads);
    std::vector<std::int64_t> pp(p.begin(), p.end());
    std::vector<std::int64_t> order = to_index(train_idx);
    const auto s = static_cast<std::uint64_t>(seed);
    auto g = epione::rng::stream(s, 0x5eed0000ULL + std::uint64_t(epoch));
    for (std::size_t q = order.size(); q > 1; --q) std::swap(order[q - 1], order[g.below(q)]);
    epione::cnn::AdamOptions o;
    o.lr = lr;
    const std::int64_t n = order.size(), steps = (n + batch_size - 1) / batch_size;
    double total = 0;
    epione::cnn::Cache<float> cache;  // reused: no page faults per step
    for (std::int64_t b = 0; b < steps; ++b) {
        std::vector<std::int64_t> idx(order.begin() + b * batch_size,
                                      order.begin() + std::min(n, (b + 1) * batch_size));
        const std::uint64_t step = std::uint64_t(epoch) * std::uint64_t(steps) + b + 1;
        total += epione::cnn::train_step(*net, codes_ptr(codes), pp.data(), ci.begin(), idx,
                                         augment, s, step, o, par, cache) * idx.size();
        if (b % 4 == 3) Rcpp::checkUserInterrupt();
    }
    return total / double(n);
}

// Region embeddings (n x bottleneck) in inference mode.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_cnn_embed(SEXP model, Rcpp::RawVector codes, int threads) {
    Rcpp::XPtr<NetF> net(model);
    BlasOneThread blas;
    glue::StdPar par(threads);
    const std::int64_t n = codes.size() / net->cfg.seq_len;
    const arma::fmat e = epione::cnn::embed(*net, codes_ptr(codes), n, 128, par);
    Rcpp::NumericMatrix out(n, net->cfg.bottleneck);
    for (std::int64_t s = 0; s < n; ++s)
        for (int k = 0; k < net->cfg.bottleneck; ++k) out(s, k) = e(k, s);
    return out;
}

// Mean BCE and AUROC over regions `idx` x all cells in inference mode.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector epi_cnn_evaluate(SEXP model, Rcpp::RawVector codes, Rcpp::NumericVector p,
                                     Rcpp::IntegerVector ci, Rcpp::IntegerVector idx, int threads) {
    Rcpp::XPtr<NetF> net(model);
    BlasOneThread blas;
    glue::StdPar par(threads);
    std::vector<std::int64_t> pp(p.begin(), p.end());
    const std::vector<std::int64_t> all = to_index(idx);
    const int nc = net->cfg.n_cells;
    std::vector<float> score;
    std::vector<std::uint8_t> label;
    score.reserve(all.size() * nc);
    label.reserve(all.size() * nc);
    double loss = 0;
    for (std::size_t s0 = 0; s0 < all.size(); s0 += 128) {
        std::vector<std::int64_t> b(all.begin() + s0,
                                    all.begin() + std::min(all.size(), s0 + 128));
        epione::cnn::Cache<float> c;
        net->load_input(codes_ptr(codes), b, false, 0, 0, par, c);
        net->forward(static_cast<int>(b.size()), false, 0, 0, par, c);
        arma::fmat y;
        epione::cnn::fill_targets(pp.data(), ci.begin(), b, y, nc);
        loss += net->loss_backward(y, par, c, false) * b.size();
        score.insert(score.end(), c.logits.begin(), c.logits.end());
        for (float v : y) label.push_back(v > 0.5f);
    }
    return Rcpp::NumericVector::create(loss / std::max<double>(1, all.size()),
                                       epione::cnn::auroc(score, label));
}

// Gradient check hook: loss and gradient of one training step in double
// precision for the given weights (no optimizer step).
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_cnn_loss_grad(Rcpp::List config, Rcpp::NumericVector theta, Rcpp::RawVector codes,
                             Rcpp::NumericVector p, Rcpp::IntegerVector ci, Rcpp::IntegerVector idx,
                             Rcpp::IntegerVector cell_batch, double seed, bool augment, bool train,
                             int threads) {
    NetD net(config_from(config));
    net.init(0);
    if (theta.size() != net.n_params()) throw epione::input_error("theta has the wrong length");
    std::copy(theta.begin(), theta.end(), net.theta.begin());
    set_cell_batch(net, cell_batch);
    BlasOneThread blas;
    glue::StdPar par(threads);
    std::vector<std::int64_t> pp(p.begin(), p.end());
    const auto b = to_index(idx);
    epione::cnn::Cache<double> c;
    net.load_input(codes_ptr(codes), b, augment, std::uint64_t(seed), 1, par, c);
    net.forward(static_cast<int>(b.size()), train, std::uint64_t(seed), 1, par, c);
    arma::mat y;
    epione::cnn::fill_targets(pp.data(), ci.begin(), b, y, net.cfg.n_cells);
    const double loss = net.loss_backward(y, par, c, train);
    return Rcpp::List::create(Rcpp::Named("loss") = loss,
                              Rcpp::Named("grad") = Rcpp::NumericVector(net.grad.begin(), net.grad.end()),
                              Rcpp::Named("logits") = Rcpp::wrap(c.logits),
                              Rcpp::Named("embedding") = Rcpp::wrap(c.e));
}

// First-order Markov (dinucleotide) model of the sequences: 5 x 4 counts,
// row 5 the first base, rows 1-4 the transitions from A, C, G, T.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_cnn_dinuc(Rcpp::RawVector codes, int seq_len) {
    Rcpp::NumericMatrix m(5, 4);
    const std::int64_t n = codes.size() / seq_len;
    const std::uint8_t* c = RAW(codes);
    for (std::int64_t s = 0; s < n; ++s) {
        const std::uint8_t* q = c + s * seq_len;
        if (q[0] < 4) m(4, q[0]) += 1;
        for (int l = 1; l < seq_len; ++l)
            if (q[l - 1] < 4 && q[l] < 4) m(q[l - 1], q[l]) += 1;
    }
    return m;
}

// `n` background sequences drawn from the dinucleotide model; with a
// motif (4 x w probabilities) a fresh instance is sampled into each one
// at the centre, so motif and background sets share the same flanks.
// [[Rcpp::export(rng = false)]]
Rcpp::RawVector epi_cnn_background(Rcpp::NumericMatrix dinuc, int n, int seq_len, double seed,
                                   Rcpp::NumericMatrix motif) {
    Rcpp::RawVector out(static_cast<R_xlen_t>(n) * seq_len);
    std::uint8_t* o = RAW(out);
    auto draw = [](epione::rng::Xoshiro256pp& g, const double* pr, int stride) {
        double tot = 0;
        for (int b = 0; b < 4; ++b) tot += pr[b * stride];
        double u = g.uniform() * tot;
        for (int b = 0; b < 3; ++b) {
            u -= pr[b * stride];
            if (u < 0) return std::uint8_t(b);
        }
        return std::uint8_t(3);
    };
    for (int s = 0; s < n; ++s) {
        auto g = epione::rng::stream(std::uint64_t(seed), std::uint64_t(s));
        std::uint8_t* q = o + std::int64_t(s) * seq_len;
        q[0] = draw(g, &dinuc(4, 0), 5);
        for (int l = 1; l < seq_len; ++l) q[l] = draw(g, &dinuc(q[l - 1], 0), 5);
        if (motif.ncol() > 0 && motif.nrow() == 4) {
            auto gm = epione::rng::stream(std::uint64_t(seed) ^ 0x6d6f746966ULL, std::uint64_t(s));
            const int w = motif.ncol(), start = (seq_len - w) / 2;
            for (int j = 0; j < w && start + j < seq_len; ++j)
                q[start + j] = draw(gm, &motif(0, j), 1);
        }
    }
    return out;
}

// Sequences of the windows [start0, end) on `chrom` from an indexed FASTA.
// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_cnn_fasta_windows(std::string path, Rcpp::CharacterVector chrom,
                                            Rcpp::NumericVector start0, Rcpp::NumericVector end) {
    faidx_t* fai = fai_load(path.c_str());
    if (!fai)
        throw epione::format_error("cannot open the FASTA index of '" + path +
                                   "'; index it with `samtools faidx " + path + "`");
    Rcpp::CharacterVector out(chrom.size());
    for (R_xlen_t r = 0; r < chrom.size(); ++r) {
        const std::string ch = Rcpp::as<std::string>(chrom[r]);
        const hts_pos_t b = hts_pos_t(start0[r]), e = hts_pos_t(end[r]);
        const hts_pos_t clen = faidx_seq_len(fai, ch.c_str());
        if (clen < 0 || b < 0 || e > clen) {
            fai_destroy(fai);
            throw epione::input_error("region " + std::to_string(r + 1) + " (" + ch + ":" +
                                      std::to_string(b + 1) + "-" + std::to_string(e) +
                                      ") lies outside the FASTA '" + path +
                                      "'; drop peaks near chromosome ends or check the genome build");
        }
        hts_pos_t len = 0;
        char* s = faidx_fetch_seq64(fai, ch.c_str(), b, e - 1, &len);
        out[r] = std::string(s ? s : "", s ? len : 0);
        free(s);
    }
    fai_destroy(fai);
    return out;
}

// ---- HDF5: a flat list of named numeric / integer / character vectors ----

// [[Rcpp::export(rng = false)]]
void epi_cnn_h5_write(std::string path, Rcpp::List x) {
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) throw epione::input_error("cannot create the HDF5 file '" + path + "'");
    Rcpp::CharacterVector names = x.names();
    for (R_xlen_t k = 0; k < x.size(); ++k) {
        const std::string nm = Rcpp::as<std::string>(names[k]);
        SEXP v = x[k];
        const hsize_t n = XLENGTH(v);
        hid_t space = H5Screate_simple(1, &n, nullptr);
        hid_t dset = -1;
        if (TYPEOF(v) == REALSXP) {
            // weights are float32 in the model: store them as such
            const bool f32 = nm == "theta";
            dset = H5Dcreate2(file, nm.c_str(), f32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, space,
                              H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (f32) {
                std::vector<float> tmp(REAL(v), REAL(v) + n);
                H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp.data());
            } else {
                H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, REAL(v));
            }
        } else if (TYPEOF(v) == INTSXP) {
            dset = H5Dcreate2(file, nm.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
            H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, INTEGER(v));
        } else if (TYPEOF(v) == STRSXP) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5T_CSET_UTF8);
            std::vector<const char*> p(n);
            for (hsize_t q = 0; q < n; ++q) p[q] = CHAR(STRING_ELT(v, q));
            dset = H5Dcreate2(file, nm.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            H5Dwrite(dset, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data());
            H5Tclose(t);
        }
        if (dset >= 0) H5Dclose(dset);
        H5Sclose(space);
    }
    H5Fclose(file);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_cnn_h5_read(std::string path, Rcpp::CharacterVector names) {
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) throw epione::format_error("cannot open '" + path + "' as HDF5");
    Rcpp::List out(names.size());
    for (R_xlen_t k = 0; k < names.size(); ++k) {
        const std::string nm = Rcpp::as<std::string>(names[k]);
        if (H5Lexists(file, nm.c_str(), H5P_DEFAULT) <= 0) {
            H5Fclose(file);
            throw epione::format_error("'" + path + "' has no dataset '" + nm +
                                       "'; it was not written by saveModel()");
        }
        hid_t dset = H5Dopen2(file, nm.c_str(), H5P_DEFAULT);
        hid_t space = H5Dget_space(dset);
        hsize_t n = 0;
        H5Sget_simple_extent_dims(space, &n, nullptr);
        hid_t type = H5Dget_type(dset);
        const H5T_class_t cls = H5Tget_class(type);
        if (cls == H5T_FLOAT) {
            Rcpp::NumericVector v(n);
            H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, REAL(v));
            out[k] = v;
        } else if (cls == H5T_INTEGER) {
            Rcpp::IntegerVector v(n);
            H5Dread(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, INTEGER(v));
            out[k] = v;
        } else if (n == 0) {
            out[k] = Rcpp::CharacterVector(0);  // nothing to read or reclaim
        } else {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5Tget_cset(type));
            std::vector<char*> p(n);
            H5Dread(dset, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data());
            Rcpp::CharacterVector v(n);
            for (hsize_t q = 0; q < n; ++q) v[q] = p[q] ? p[q] : "";
            H5Dvlen_reclaim(t, space, H5P_DEFAULT, p.data());
            H5Tclose(t);
            out[k] = v;
        }
        H5Tclose(type);
        H5Sclose(space);
        H5Dclose(dset);
    }
    H5Fclose(file);
    out.names() = names;
    return out;
}

// A permutation of 0..n-1 from the run's seed (the train/validation/test
// split), so the split follows `seed` without touching R's RNG state.
// [[Rcpp::export(rng = false)]]
Rcpp::IntegerVector epi_cnn_permutation(int n, double seed) {
    Rcpp::IntegerVector out(n);
    for (int k = 0; k < n; ++k) out[k] = k;
    auto g = epione::rng::stream(static_cast<std::uint64_t>(seed), 0x5b117ULL);
    for (int k = n; k > 1; --k) std::swap(out[k - 1], out[static_cast<int>(g.below(k))]);
    return out;
}
