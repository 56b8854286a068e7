test_that("the CSC view sums, transposes and multiplies like Matrix", {
    x <- random_dgc(300, 120, density = 0.05)
    s <- epione:::epi_utils_csc_summaries(x)
    expect_equal(s$colSums, Matrix::colSums(x))
    expect_equal(s$rowSums, Matrix::rowSums(x))
    expect_equal(s$nnz, length(x@x))
    tx <- methods::as(Matrix::t(x), "CsparseMatrix")
    expect_equal(s$t_p, as.numeric(tx@p))
    expect_identical(s$t_i, tx@i)
    expect_equal(s$t_x, tx@x)
    b <- matrix(rnorm(300 * 4), 300, 4)
    want <- as.matrix(Matrix::crossprod(x, b))
    got1 <- epione:::epi_utils_csc_crossprod(x, b, 1L)
    expect_equal(got1, unname(want), tolerance = 1e-12)
    expect_identical(epione:::epi_utils_csc_crossprod(x, b, 2L), got1)
})

test_that("the CSC view handles empty columns, empty matrices, patterns", {
    x <- Matrix::sparseMatrix(i = c(1, 3), j = c(2, 2), x = c(2, 5),
                              dims = c(4, 3))
    s <- epione:::epi_utils_csc_summaries(x)
    expect_equal(s$colSums, c(0, 7, 0))
    expect_equal(s$rowSums, c(2, 0, 5, 0))
    e <- Matrix::Matrix(0, 0, 3, sparse = TRUE)
    expect_equal(epione:::epi_utils_csc_summaries(e)$colSums, c(0, 0, 0))
    lg <- methods::as(x > 0, "CsparseMatrix")
    expect_equal(epione:::epi_utils_csc_summaries(lg)$colSums, c(0, 2, 0))
})

test_that("a corrupt dgCMatrix is an input error, not a crash", {
    x <- Matrix::sparseMatrix(i = c(1, 3), j = c(1, 1), x = c(1, 1),
                              dims = c(4, 2))
    x@i <- c(3L, 1L)   # unsorted rows: bypasses Matrix's validity check
    expect_error(epione:::.core(epione:::epi_utils_csc_summaries(x)),
                 class = "epione_error_input", regexp = "increasing")
})

test_that("RNG streams are reproducible and independent of threads", {
    set.seed(42)
    s1 <- epione:::.draw_seed()
    set.seed(42)
    s2 <- epione:::.draw_seed()
    expect_identical(s1, s2)
    expect_true(s1 >= 0 && s1 < 2^52 && s1 == round(s1))
    u1 <- epione:::epi_utils_rng_uniform(s1, 50L, 200L, 1L)
    expect_identical(epione:::epi_utils_rng_uniform(s1, 50L, 200L, 2L), u1)
    expect_identical(epione:::epi_utils_rng_uniform(s1, 50L, 200L, 4L), u1)
    # Different blocks and different seeds give different streams.
    expect_false(any(u1[, 1] == u1[, 2]))
    u2 <- epione:::epi_utils_rng_uniform(s1 + 1, 50L, 200L, 1L)
    expect_false(any(u1 == u2))
})

test_that("RNG streams have the right distributions", {
    u <- as.vector(epione:::epi_utils_rng_uniform(7, 20L, 5000L, 2L))
    expect_true(all(u >= 0 & u < 1))
    expect_gt(suppressWarnings(ks.test(u, "punif")$p.value), 1e-4)
    z <- epione:::epi_utils_rng_normal(11, 20000L)
    expect_gt(suppressWarnings(ks.test(z, "pnorm")$p.value), 1e-4)
    k <- epione:::epi_utils_rng_below(3, 6, 60000L)
    expect_true(all(k %in% 0:5))
    expect_gt(chisq.test(table(k))$p.value, 1e-4)
})

test_that("worker exceptions reach R as classed errors", {
    for (t in 1:2) {
        expect_error(epione:::.core(epione:::epi_utils_parallel_error(
            1000L, 123L, t)), class = "epione_error_input",
            regexp = "task 123 failed")
    }
    expect_equal(epione:::epi_utils_parallel_error(10L, -1L, 2L), 10L)
})

test_that("progress is silent when verbose = FALSE and totals are exact", {
    out <- capture.output(type = "message",
        total <- epione:::epi_utils_progress_demo(500L, 2L, FALSE))
    expect_identical(out, character(0))
    expect_equal(total, sum(0:499))
    msg <- capture.output(type = "message",
        invisible(epione:::epi_utils_progress_demo(500L, 2L, TRUE)))
    expect_true(length(msg) > 0)
})

test_that("the error helper builds classed conditions", {
    e <- tryCatch(epione:::.abort("bad ", "thing; do X.", kind = "format"),
                  error = identity)
    expect_s3_class(e, c("epione_error_format", "epione_error", "error"))
    expect_identical(conditionMessage(e), "bad thing; do X.")
    expect_error(epione:::.check_flag(NA, "verbose"),
                 class = "epione_error_input", regexp = "TRUE or FALSE")
    expect_error(epione:::.check_number(-1, "k", min = 0),
                 class = "epione_error_input", regexp = "'k'")
    expect_warning(epione:::.warn("dropped 2 rows"),
                   class = "epione_warning_input")
})
