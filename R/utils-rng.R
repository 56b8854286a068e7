# Seeds for the C++ core are drawn from R's RNG on the main thread, so
# set.seed() reproduces a run; the core derives one stream per block of
# work from this seed (see inst/include/epione/rng.hpp).

.draw_seed <- function() {
    # Two 31-bit draws make a seed below 2^52, which a double holds exactly.
    halves <- sample.int(.Machine$integer.max, 2L) - 1
    halves[1L] * 2^21 + (halves[2L] %% 2^21)
}
