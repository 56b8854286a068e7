# The `threads` argument: a whole number >= 1; the default of every exported
# threaded function is getOption("epione.threads", 2L).

.default_threads <- function() getOption("epione.threads", 2L)

.check_threads <- function(threads) {
    ok <- length(threads) == 1L && is.numeric(threads) &&
        isTRUE(is.finite(threads) && threads >= 1 && threads == round(threads))
    if (!ok) {
        .abort("'threads' must be one whole number >= 1, not ",
               deparse1(threads), "; use threads = 1 to run serially or ",
               "set options(epione.threads = n).", kind = "input")
    }
    as.integer(threads)
}
