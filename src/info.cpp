// Link proofs: each function below calls into one linked library, so a
// broken link fails loudly at load or in test-info.R.
#include "glue.h"
#include <hdf5.h>
#include <htslib/hts.h>
#include <htslib/tbx.h>
#include <epione/rng.hpp>
#include <epione/tabix.hpp>

// [[Rcpp::export(rng = false)]]
std::string epi_info_htslib_version() { return hts_version(); }

// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_info_tabix_seqnames(std::string path) {
    tbx_t* idx = tbx_index_load(path.c_str());
    if (!idx)
        throw epione::format_error("cannot load the tabix index of '" + path +
                                   "'; create it with `tabix -p bed " + path + "`");
    const auto out = epione::tabix_seqnames(idx);
    tbx_destroy(idx);
    return Rcpp::wrap(out);
}

// Writes `values` to a dataset in a new HDF5 file and reads it back.
// [[Rcpp::export(rng = false)]]
Rcpp::IntegerVector epi_info_hdf5_roundtrip(std::string path, Rcpp::IntegerVector values) {
    const hsize_t n = values.size();
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) throw epione::input_error("cannot create HDF5 file '" + path + "'");
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t dset = H5Dcreate2(file, "values", H5T_STD_I32LE, space, H5P_DEFAULT,
                            H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, INTEGER(values));
    Rcpp::IntegerVector out(n);
    H5Dread(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, INTEGER(out));
    H5Dclose(dset);
    H5Sclose(space);
    H5Fclose(file);
    return out;
}

// [[Rcpp::export(rng = false)]]
std::string epi_info_hdf5_version() {
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

// Dense product through Armadillo, i.e. through the BLAS R links.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericMatrix epi_info_blas_crossprod(Rcpp::NumericMatrix a) {
    const arma::mat m(REAL(a), a.nrow(), a.ncol(), false, true);
    const arma::mat out = m.t() * m;
    return Rcpp::wrap(out);
}

// Number of distinct OS threads TBB used for `n_tasks` tasks. On a loaded
// machine the calling thread could finish every short task before a worker
// wakes up, so each task waits (up to 5 s) until a second thread has joined
// whenever more than one was asked for.
// [[Rcpp::export(rng = false)]]
int epi_info_tbb_threads_used(int threads, int n_tasks) {
    glue::TbbPar par(threads);
    std::vector<std::thread::id> ids(n_tasks);
    std::mutex mu;
    std::vector<std::thread::id> seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    par.run(n_tasks, [&](std::int64_t t) {
        const auto me = std::this_thread::get_id();
        ids[t] = me;
        {
            std::lock_guard<std::mutex> lock(mu);
            if (std::find(seen.begin(), seen.end(), me) == seen.end()) seen.push_back(me);
        }
        while (par.threads() > 1 && std::chrono::steady_clock::now() < deadline) {
            {
                std::lock_guard<std::mutex> lock(mu);
                if (seen.size() > 1) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::sort(ids.begin(), ids.end());
    return static_cast<int>(std::unique(ids.begin(), ids.end()) - ids.begin());
}
