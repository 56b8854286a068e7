// Shared glue between R and the epione core: views over R memory, the TBB
// thread adapter and the progress adapter. Only src/ includes this file.
#pragma once
#include <RcppArmadillo.h>
// RcppParallel's RMatrix.h derives from std::iterator, deprecated in C++17;
// the warning is theirs, not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <RcppParallel.h>
#pragma GCC diagnostic pop
#include <progress.hpp>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>
#include <epione/error.hpp>
#include <epione/sparse.hpp>
#include <epione/span.hpp>
#include <epione/threads.hpp>

namespace glue {

using epione::index_t;

// Borrowed spans over R vectors (no copy).
inline epione::Span<double> span(Rcpp::NumericVector v) { return {REAL(v), XLENGTH(v)}; }
inline epione::Span<int> span(Rcpp::IntegerVector v) { return {INTEGER(v), XLENGTH(v)}; }
inline epione::DenseView<double> dense(Rcpp::NumericMatrix m) {
    return {REAL(m), m.nrow(), m.ncol()};
}
inline epione::DenseView<const double> cdense(Rcpp::NumericMatrix m) {
    return {REAL(m), m.nrow(), m.ncol()};
}

// A CSC view over a dgCMatrix (or lgCMatrix / ngCMatrix: pattern or 0/1
// values). @p is widened to 64 bits into `p64`, which must outlive the view.
struct CscHolder {
    std::vector<index_t> p64;
    Rcpp::IntegerVector i;
    Rcpp::RObject x;
    Rcpp::IntegerVector dim;
};
inline epione::CscView<double> csc_view(Rcpp::S4 m, CscHolder& h) {
    h.dim = m.slot("Dim");
    Rcpp::IntegerVector p = m.slot("p");
    h.p64.assign(p.begin(), p.end());
    h.i = m.slot("i");
    epione::CscView<double> v;
    v.nrow = h.dim[0];
    v.ncol = h.dim[1];
    v.p = h.p64.data();
    v.i = INTEGER(h.i);
    if (m.hasSlot("x")) {
        h.x = Rcpp::as<Rcpp::NumericVector>(m.slot("x"));  // copies only if not double
        v.x = REAL(h.x);
    }
    return v;
}

// Keeps the exception of the lowest failing task, so the error reported
// after a parallel run does not depend on thread timing.
class FirstError {
public:
    void keep(std::int64_t task) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_ || task < task_) {
            error_ = std::current_exception();
            task_ = task;
        }
    }
    void rethrow() const {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::mutex mu_;
    std::exception_ptr error_;
    std::int64_t task_ = std::numeric_limits<std::int64_t>::max();
};

// Runs `fn(task)` for task in [0, n) on up to `threads` TBB threads. Work is
// split into fixed tasks, so results never depend on the thread count. An
// exception in a worker is rethrown on the calling thread (the one from the
// lowest task, so the reported error is deterministic too).
class TbbPar {
public:
    // More threads than cores only makes TBB warn; results are the same.
    explicit TbbPar(int threads)
        : threads_(std::max(1, std::min(threads, hardware_threads()))) {}
    int threads() const { return threads_; }
    template <class F>
    void run(std::int64_t n_tasks, F&& fn) {
        if (threads_ == 1 || n_tasks < 2) {
            for (std::int64_t t = 0; t < n_tasks; ++t) fn(t);
            return;
        }
        Worker<F> w(fn);
        RcppParallel::parallelFor(0, static_cast<std::size_t>(n_tasks), w, 1, threads_);
        w.error.rethrow();
    }

private:
    static int hardware_threads() {
        return std::max(1, tbb::this_task_arena::max_concurrency());
    }
    template <class F>
    struct Worker : RcppParallel::Worker {
        explicit Worker(F& f) : fn(f) {}
        void operator()(std::size_t begin, std::size_t end) override {
            for (std::size_t t = begin; t < end; ++t) {
                try {
                    fn(static_cast<std::int64_t>(t));
                } catch (...) {
                    error.keep(static_cast<std::int64_t>(t));
                }
            }
        }
        F& fn;
        FirstError error;
    };
    int threads_;
};

// Plain std::thread fan-out with an atomic task counter, for code with many
// short parallel regions (the scBasset CNN runs ~50 per step): there, TBB's
// worker was seen spinning without picking up tasks, leaving the main thread
// nearly all the work. Threads started per call cost microseconds; tasks
// stay indexed, so results are the same for any thread count.
class StdPar {
public:
    explicit StdPar(int threads)
        : threads_(std::max(1, std::min(threads,
              static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))))) {}
    int threads() const { return threads_; }
    template <class F>
    void run(std::int64_t n_tasks, F&& fn) {
        if (threads_ == 1 || n_tasks < 2) {
            for (std::int64_t t = 0; t < n_tasks; ++t) fn(t);
            return;
        }
        std::atomic<std::int64_t> next{0};
        FirstError error;
        auto work = [&]() {
            for (std::int64_t t = next++; t < n_tasks; t = next++) {
                try {
                    fn(t);
                } catch (...) {
                    error.keep(t);
                }
            }
        };
        const int extra = static_cast<int>(std::min<std::int64_t>(threads_, n_tasks)) - 1;
        std::vector<std::thread> pool;
        pool.reserve(extra);
        for (int k = 0; k < extra; ++k) pool.emplace_back(work);
        work();
        for (auto& th : pool) th.join();
        error.rethrow();
    }

private:
    int threads_;
};

// Progress bar over RcppProgress. Worker threads only bump an atomic
// counter; the bar is drawn and interrupts are checked on the main thread,
// because the R API must never be called from another thread.
class Progress {
public:
    Progress(std::int64_t total, bool verbose)
        : bar_(static_cast<unsigned long>(std::max<std::int64_t>(total, 1)), verbose),
          verbose_(verbose),
          step_(std::max<std::int64_t>(total / 100, 1)),
          main_(std::this_thread::get_id()) {}
    // Finish the bar the throttled ticks may have left short of 100%.
    ~Progress() {
        if (verbose_) bar_.update(static_cast<unsigned long>(count_.load()));
    }
    // Cheap enough to call per item: the bar is redrawn at most ~100 times,
    // and never when verbose = FALSE.
    void tick(std::int64_t n = 1) {
        const auto done = count_.fetch_add(n) + n;
        if (!verbose_ || done < next_ || std::this_thread::get_id() != main_) return;
        next_ = done + step_;
        bar_.update(static_cast<unsigned long>(done));
    }
    bool aborted() {
        return std::this_thread::get_id() == main_ && ::Progress::check_abort();
    }

private:
    ::Progress bar_;
    bool verbose_;
    std::int64_t step_;
    std::int64_t next_ = 0;   // touched by the main thread only
    std::atomic<std::int64_t> count_{0};
    std::thread::id main_;
};

}  // namespace glue
