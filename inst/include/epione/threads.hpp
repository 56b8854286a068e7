// Threading and progress as template parameters: the core is written against
// `par.run(n_tasks, fn)` and `progress.tick()`. Serial versions live here (for
// core-only tests); the TBB and RcppProgress adapters live in src/glue.h.
// Tasks are indexed, never keyed by thread, and partial results combine in
// task order, so any thread count gives bit-identical output.
#pragma once
#include <cstdint>

namespace epione {

struct Serial {
    int threads() const { return 1; }
    template <class F>
    void run(std::int64_t n_tasks, F&& fn) {
        for (std::int64_t t = 0; t < n_tasks; ++t) fn(t);
    }
};

struct NoProgress {
    void tick(std::int64_t = 1) {}
    bool aborted() const { return false; }
};

// Splits [0, n) into `n_blocks` contiguous blocks of near-equal size; the
// split depends only on n and n_blocks, never on the thread count.
struct BlockRange {
    std::int64_t begin, end;
};
inline BlockRange block_range(std::int64_t n, std::int64_t n_blocks, std::int64_t b) {
    const std::int64_t base = n / n_blocks, extra = n % n_blocks;
    const std::int64_t begin = b * base + (b < extra ? b : extra);
    return {begin, begin + base + (b < extra ? 1 : 0)};
}

}  // namespace epione
