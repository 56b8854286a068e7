# differentialAccessibility() / DESeqFast() against DESeq2 1.38.3's saved
# outputs in shared/data/ref/deseq2 (tolerances from its README, Tier A).
ref_dir <- shared_path("data", "ref", "deseq2", "data")

deseq_ref <- function(ds, what = "default") {
    dd <- file.path(ref_dir, ds)
    ct <- utils::read.delim(gzfile(file.path(dd, "counts.tsv.gz")),
                            check.names = FALSE)
    y <- as.matrix(ct[, -1])
    rownames(y) <- ct$peak_id
    rd <- function(f) utils::read.delim(gzfile(file.path(dd, f)))
    ff <- file.path(dd, paste0("filter_", what, ".tsv"))
    list(y = y, cd = readRDS(file.path(dd, "colData.rds")),
         res = rd(paste0("results_", what, ".tsv.gz")),
         sf = utils::read.delim(file.path(dd, "sizeFactors.tsv"))$sizeFactor,
         filter = if (file.exists(ff)) utils::read.delim(ff), dir = dd)
}

# |a - b| / max(|b|, 1e-12) over rows finite in both; NA patterns must agree
expect_rel <- function(a, b, tol, abs_tol = 0) {
    expect_identical(is.na(a), is.na(b))
    ok <- is.finite(a) & is.finite(b)
    err <- abs(a[ok] - b[ok]) - abs_tol
    expect_lte(max(err / pmax(abs(b[ok]), 1e-12)), tol)
}

# pvalue criterion of the README: |d ln p| <= 1e-5 * max(1, stat^2)
expect_pvalue <- function(p, pref, stat) {
    expect_identical(is.na(p), is.na(pref))
    ok <- !is.na(p) & pref > 0
    expect_true(all(abs(log(p[ok]) - log(pref[ok])) <=
                        1e-5 * pmax(1, stat[ok]^2)))
}

da <- function(r, ...) {
    differentialAccessibility(r$y, ~ condition, colData = r$cd, ...)
}

test_that("p2k_s6 matches DESeq2 1.38 (Wald, parametric)", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("p2k_s6")
    got <- da(r, threads = 2, details = TRUE)
    g <- as.data.frame(SummarizedExperiment::rowData(got))
    w <- r$res
    expect_rel(got$sizeFactor, r$sf, 1e-10)
    expect_rel(g$baseMean, w$baseMean, 1e-10)
    for (v in c("dispGeneEst", "dispFit", "dispMAP", "dispersion", "lfcSE",
                "maxCooks", "deviance")) {
        expect_rel(g[[v]], w[[v]], 1e-6)
    }
    expect_rel(g$log2FoldChange, w$log2FoldChange, 1e-6, abs_tol = 1e-6)
    expect_rel(g$stat, w$stat, 1e-6, abs_tol = 1e-6)
    expect_pvalue(g$pvalue, w$pvalue, w$stat)
    expect_identical(g$dispOutlier, w$dispOutlier)
    expect_identical(g$betaConv, w$betaConv)
    expect_identical(which(g$padj < 0.1), which(w$padj < 0.1))
    meta <- S4Vectors::metadata(got)$differentialAccessibility
    expect_equal(unname(meta$filterThreshold), r$filter$filter_quantile_value[
        match(meta$filterTheta, r$filter$theta)], tolerance = 1e-10)
    expect_equal(as.numeric(meta$filterNumRej$numRej), r$filter$numRej)
    sc <- utils::read.delim(file.path(r$dir, "scalars_default.tsv"),
                            header = FALSE)
    sc <- stats::setNames(sc$V2, sc$V1)
    expect_equal(unname(attr(meta$dispersionFunction, "coefficients")),
                 as.numeric(sc[c("disp_coef_asymptDisp",
                                 "disp_coef_extraPois")]), tolerance = 1e-6)
    expect_equal(meta$varLogDispEsts, as.numeric(sc[["varLogDispEsts"]]),
                 tolerance = 1e-6)
})

test_that("results are identical for 1 and 2 threads", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("p2k_s6")
    expect_identical(da(r, threads = 1), da(r, threads = 2))
})

test_that("the engine's vectorised log and exp are within 2 ulp of R's", {
    withr::local_seed(5)
    ulps <- function(a, b) {
        max(abs(a - b) / pmax(abs(b) * .Machine$double.eps,
                              .Machine$double.xmin))
    }
    x <- c(exp(runif(3000, -700, 700)), runif(3000, 0.5, 2),
           1 + 10^runif(500, -15, -1), 1:1000)
    v <- epione:::epi_vm_log_exp(x)
    expect_lte(ulps(v$log, log(x)), 2)
    e <- c(runif(5000, -700, 700), runif(1000, -1e-3, 1e-3))
    expect_lte(ulps(epione:::epi_vm_log_exp(e)$exp, exp(e)), 2)
    # outside the polynomials' ranges: R's own answers
    odd <- c(0, -1, Inf, -Inf, NaN, 5e-320, -800, 800, 710, -745.2)
    w <- epione:::epi_vm_log_exp(odd)
    expect_identical(suppressWarnings(log(odd)), w$log)
    expect_identical(exp(odd), w$exp)
})

test_that("the portable kernels (EPIONE_SIMD=baseline) agree as closely", {
    # the AVX2 copy of the vectorised loops is picked once per process, so
    # the portable one runs in a child R with EPIONE_SIMD=baseline
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("p2k_s6")
    f_in <- tempfile(fileext = ".rds")
    f_out <- tempfile(fileext = ".rds")
    on.exit(unlink(c(f_in, f_out)))
    saveRDS(list(y = r$y, cd = r$cd), f_in)
    code <- sprintf(paste0("d <- readRDS('%s'); x <- epione::",
        "differentialAccessibility(d$y, ~ condition, colData = d$cd, ",
        "threads = 2); saveRDS(as.data.frame(SummarizedExperiment::",
        "rowData(x)), '%s')"), f_in, f_out)
    status <- system2(file.path(R.home("bin"), "Rscript"),
                      c("-e", shQuote(code)), env = "EPIONE_SIMD=baseline",
                      stdout = FALSE, stderr = FALSE)
    expect_identical(status, 0L)
    base <- readRDS(f_out)
    w <- r$res
    for (v in c("dispGeneEst", "dispMAP", "lfcSE")) {
        expect_rel(base[[v]], w[[v]], 1e-6)
    }
    expect_rel(base$log2FoldChange, w$log2FoldChange, 1e-6, abs_tol = 1e-6)
    expect_identical(which(base$padj < 0.1), which(w$padj < 0.1))
})

test_that("details = TRUE adds mcols(dds) columns, the rest unchanged", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("x5k_s4_zero")  # all-zero rows: NA-filled columns
    lean <- as.data.frame(SummarizedExperiment::rowData(da(r, threads = 2)))
    full <- as.data.frame(SummarizedExperiment::rowData(
        da(r, threads = 2, details = TRUE)))
    expect_identical(names(lean), c("baseMean", "log2FoldChange", "lfcSE",
        "stat", "pvalue", "padj", "allZero", "dispGeneEst", "dispFit",
        "dispersion", "dispOutlier", "dispMAP", "maxCooks"))
    expect_identical(full[names(lean)], lean)
    expect_true(all(c("baseVar", "Intercept", "SE_Intercept", "betaConv",
                      "deviance", "WaldPvalue_Intercept") %in% names(full)))
    # the Wald columns made in C++ are R's beta / se and 2 * pnorm(-|z|)
    z <- full$condition_B_vs_A / full$SE_condition_B_vs_A
    expect_identical(full$WaldStatistic_condition_B_vs_A, z)
    expect_identical(full$WaldPvalue_condition_B_vs_A,
                     2 * stats::pnorm(abs(z), lower.tail = FALSE))
    expect_error(da(r, details = NA), class = "epione_error_input")
})

test_that("x5k_s4_zero: all-zero rows are NA, zero groups converge", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("x5k_s4_zero")
    g <- as.data.frame(SummarizedExperiment::rowData(da(r, threads = 2)))
    w <- r$res
    expect_true(all(is.na(g$log2FoldChange[g$allZero])))
    expect_identical(g$allZero, w$allZero)
    for (v in c("dispGeneEst", "dispMAP", "dispersion", "lfcSE")) {
        expect_rel(g[[v]], w[[v]], 1e-6)
    }
    expect_rel(g$log2FoldChange, w$log2FoldChange, 1e-6, abs_tol = 1e-6)
    expect_pvalue(g$pvalue, w$pvalue, w$stat)
    expect_true(all(is.na(g$maxCooks)))
    expect_identical(which(g$padj < 0.1), which(w$padj < 0.1))
})

test_that("LRT against ~ 1 matches DESeq2", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("p2k_s6", "LRT_reduced_1")
    g <- as.data.frame(SummarizedExperiment::rowData(
        da(r, test = "LRT", reduced = ~ 1, threads = 2, details = TRUE)))
    w <- r$res
    expect_rel(g$stat, w$stat, 1e-6, abs_tol = 1e-6)
    expect_pvalue(g$pvalue, w$pvalue, sqrt(w$stat))
    expect_rel(g$maxCooks, w$maxCooks, 1e-6)
    expect_identical(g$fullBetaConv, w$fullBetaConv)
    expect_identical(which(g$padj < 0.1), which(w$padj < 0.1))
})

test_that("fitType local and mean match DESeq2", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    skip_if_not_installed("locfit")
    for (ft in c("local", "mean")) {
        r <- deseq_ref("p2k_s6", paste0("fitType_", ft))
        g <- as.data.frame(SummarizedExperiment::rowData(
            da(r, fitType = ft, threads = 2)))
        for (v in intersect(c("dispFit", "dispersion", "dispMAP"),
                            names(r$res))) {
            expect_rel(g[[v]], r$res[[v]], 1e-6)
        }
        expect_identical(which(g$padj < 0.1), which(r$res$padj < 0.1))
    }
})

test_that("shrink = \"normal\" matches lfcShrink(type = \"normal\")", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    for (ds in c("p2k_s6", "x5k_s4_zero")) {
        r <- deseq_ref(ds, "lfcShrink_normal")
        g <- as.data.frame(SummarizedExperiment::rowData(
            da(r, shrink = "normal", threads = 2)))
        expect_rel(g$log2FoldChange, r$res$log2FoldChange, 1e-6,
                   abs_tol = 1e-6)
        expect_rel(g$lfcSE, r$res$lfcSE, 1e-6)
    }
})

test_that("DESeqFast() gives a DESeqDataSet DESeq2 can read", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    skip_if_not_installed("DESeq2")
    r <- deseq_ref("p2k_s6")
    dds <- DESeq2::DESeqDataSetFromMatrix(r$y, r$cd, ~ condition)
    dds <- DESeqFast(dds, quiet = TRUE, threads = 2)
    res <- DESeq2::results(dds)
    expect_rel(res$log2FoldChange, r$res$log2FoldChange, 1e-6, 1e-6)
    expect_identical(which(res$padj < 0.1), which(r$res$padj < 0.1))
    expect_rel(DESeq2::dispersions(dds), r$res$dispersion, 1e-6)
    expect_rel(unname(DESeq2::sizeFactors(dds)), r$sf, 1e-10)
    cooks <- utils::read.delim(gzfile(file.path(r$dir, "cooks_default.tsv.gz")))
    expect_rel(unname(SummarizedExperiment::assays(dds)$cooks),
               unname(as.matrix(cooks[, -1])), 1e-6)
    hat <- utils::read.delim(gzfile(file.path(r$dir, "hat_default.tsv.gz")))
    expect_rel(unname(SummarizedExperiment::assays(dds)$H),
               unname(as.matrix(hat[, -1])), 1e-6)
    shr <- deseq_ref("p2k_s6", "lfcShrink_normal")$res
    s <- DESeq2::lfcShrink(dds, coef = "condition_B_vs_A", type = "normal",
                           quiet = TRUE)
    expect_rel(s$log2FoldChange, shr$log2FoldChange, 1e-6, 1e-6)
})

test_that("integer and double counts agree; Cook's filter reads kept rows", {
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    r <- deseq_ref("p2k_s6")
    yi <- r$y
    storage.mode(yi) <- "integer"
    yd <- yi
    storage.mode(yd) <- "double"
    gi <- da(list(y = yi, cd = r$cd), threads = 2, cooksCutoff = 1)
    gd <- da(list(y = yd, cd = r$cd), threads = 2, cooksCutoff = 1)
    expect_identical(SummarizedExperiment::rowData(gi),
                     SummarizedExperiment::rowData(gd))
    # results()' rule in plain R on DESeq2's own Cook's distances: p-value
    # NA where maxCooks > 1, unless >= 3 counts exceed the outlier's count
    ck <- as.matrix(utils::read.delim(gzfile(file.path(r$dir,
        "cooks_default.tsv.gz")))[, -1])
    mx <- apply(ck, 1, max)
    out <- which(!is.na(mx) & mx > 1)
    keep <- vapply(out, function(i) {
        sum(yi[i, ] > yi[i, which.max(ck[i, ])]) >= 3
    }, logical(1))
    g <- SummarizedExperiment::rowData(gi)
    na_want <- is.na(r$res$pvalue) & !is.na(r$res$baseMean) &
        r$res$baseMean == 0
    na_want[out[!keep]] <- TRUE
    expect_identical(is.na(g$pvalue), na_want)
})

test_that("outliers are replaced by the trimmed mean times the size factor", {
    withr::local_seed(7)
    mu <- rgamma(300, 2, 0.02)
    y <- matrix(rnbinom(300 * 16, mu = mu, size = 10), ncol = 16)
    y[5, 3] <- y[5, 3] * 30 + 500
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 8)))
    got <- differentialAccessibility(y, ~ g, colData = cd, threads = 1)
    rd <- SummarizedExperiment::rowData(got)
    expect_true(rd$replace[5])
    sf <- got$sizeFactor
    # plain R: trimmed mean (20 %) of the normalized counts, times sf
    want <- as.integer(mean(y[5, ] / sf, trim = 0.2) * sf[3])
    yr <- y[5, ]
    yr[3] <- want
    expect_equal(rd$baseMean[5], mean(yr / sf))
    expect_true(all(is.na(rd$maxCooks)))  # every sample is replaceable
    # the refit rows of the lean table agree with details = TRUE
    full <- SummarizedExperiment::rowData(differentialAccessibility(y, ~ g,
        colData = cd, threads = 1, details = TRUE))
    expect_false("baseVar" %in% names(rd))
    expect_identical(as.data.frame(full[names(rd)]), as.data.frame(rd))
})

test_that("Cook's bounds: exact where kept, upper bounds elsewhere", {
    # every sample replaceable (8 per group): the fused fit may return the
    # distances at the robust dispersion's floor (0.04) instead of the
    # exact ones for rows whose bounds stay below the keep threshold
    withr::local_seed(11)
    mu <- rgamma(400, 2, 0.02)
    y <- matrix(rnbinom(400 * 16, mu = mu, size = 10), ncol = 16)
    y[7, 2] <- y[7, 2] * 40 + 800
    X <- cbind(1, rep(0:1, each = 8))
    sf <- rep(1, 16)
    spec <- epione:::.cooks_spec(X, 7, TRUE)
    expect_true(spec$bound)
    fit <- function(bound) {
        epione:::epi_deseq_fit_glm(y, sf, X, 1:400, rep(0.1, 400),
            rep(1e-6, 2), backsolve(qr.R(qr(X)), t(qr.Q(qr(X)))), FALSE,
            1e-8, 100L, 0.5, 1L, FALSE, epione:::.cells(X), spec$masks,
            spec$keep_above, 0, bound)
    }
    exact <- fit(FALSE)
    bnd <- fit(TRUE)
    b <- bnd$bounded
    expect_gt(length(b), 350)
    expect_false(7L %in% b)  # the outlier row keeps its exact distances
    expect_identical(bnd$cooks_max[-b, ], exact$cooks_max[-b, ])
    expect_identical(bnd$kept, exact$kept)
    expect_true(all(bnd$cooks_max[b, ] >= exact$cooks_max[b, ]))
    expect_true(all(bnd$cooks_max[b, 1] <= spec$keep_above))
})

test_that("maxCooks is exact when every sample is replaceable but none is", {
    # no peak refitted: DESeq2 keeps maxCooks, so the bounds are resolved
    withr::local_seed(12)
    mu <- rgamma(300, 3, 0.03)
    y <- matrix(rnbinom(300 * 16, mu = mu, size = 20), ncol = 16)
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 8)))
    got <- SummarizedExperiment::rowData(differentialAccessibility(y, ~ g,
        colData = cd, threads = 2))
    expect_false(any(got$replace))
    expect_false(anyNA(got$maxCooks))
    # the unfused path: Cook's matrix from the kept mu and hat assays
    dds <- SummarizedExperiment::SummarizedExperiment(list(counts = y),
        colData = cd)
    a <- epione:::.da_args("Wald", "parametric", "ratio", "none", 0.1, 0, TRUE,
        7, TRUE, 1L, FALSE)
    a$keep_assays <- TRUE
    full <- epione:::.da_fit(y, cd, ~ g, NULL, a)
    expect_identical(got$maxCooks, apply(full$cooks, 1, max))
    skip_if_not_installed("DESeq2")
    d2 <- DESeq2::DESeqDataSetFromMatrix(y, cd, ~ g)
    d2 <- suppressMessages(DESeq2::DESeq(d2, quiet = TRUE))
    expect_rel(got$maxCooks, S4Vectors::mcols(d2)$maxCooks, 1e-6)
})

test_that("all-zero peaks with >= 7 replicates (Cook's maxima) match DESeq2", {
    # per-row vectors stay nrow long through the pipeline (NA for all-zero
    # peaks); with replaceable samples the Cook's maxima kept their column
    # names only there (an all-zero peak used to stop the run)
    skip_if_not_installed("DESeq2")
    withr::local_seed(17)
    mu <- rgamma(800, 2, 0.02)
    y <- matrix(rnbinom(800 * 14, mu = mu, size = 8), ncol = 14)
    y[c(3, 250, 799), ] <- 0L
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 7)))
    for (outlier in c(FALSE, TRUE)) {
        if (outlier) y[c(10, 20), 2] <- 5000L  # replaced and refitted
        got <- SummarizedExperiment::rowData(differentialAccessibility(y,
            ~ g, colData = cd, threads = 2, details = TRUE))
        dds <- DESeq2::DESeqDataSetFromMatrix(y, cd, ~ g)
        dds <- suppressMessages(DESeq2::DESeq(dds, quiet = TRUE))
        mc <- S4Vectors::mcols(dds)
        res <- DESeq2::results(dds)
        expect_identical(got$allZero, mc$allZero)
        expect_identical(got$replace, mc$replace)
        expect_identical(which(got$padj < 0.1), which(res$padj < 0.1))
        for (v in c("dispGeneEst", "dispFit", "dispersion")) {
            expect_rel(got[[v]], mc[[v]], 1e-6, 1e-12)
        }
        # once a peak is refitted DESeq2 reports no maxCooks at all
        expect_identical(is.na(got$maxCooks), is.na(mc$maxCooks))
        expect_identical(all(is.na(got$maxCooks)), outlier)
        if (!outlier) expect_rel(got$maxCooks, mc$maxCooks, 1e-6, 1e-12)
        for (v in c("log2FoldChange", "lfcSE", "pvalue", "padj")) {
            expect_rel(got[[v]], res[[v]], 1e-6, 1e-12)
        }
        expect_true(all(is.na(got$log2FoldChange[c(3, 250, 799)])))
    }
})

test_that("bad input gives classed errors naming the fix", {
    withr::local_seed(2)
    y <- matrix(rnbinom(600, mu = 30, size = 4), ncol = 6)
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 3)))
    run <- function(x, ...) differentialAccessibility(x, ~ g, colData = cd,
                                                      threads = 1, ...)
    expect_error(run(y + 0.5), class = "epione_error_input",
                 regexp = "integer")
    expect_error(run(-y), class = "epione_error_input", regexp = "negative")
    y_na <- y
    y_na[1, 1] <- NA
    expect_error(run(y_na), class = "epione_error_input",
                 regexp = "complete.cases")
    expect_error(run(y * 0), class = "epione_error_input",
                 regexp = "poscounts")
    expect_error(differentialAccessibility(y[, 1, drop = FALSE], ~ g,
        colData = cd[1, , drop = FALSE]), class = "epione_error_input",
        regexp = "at least two samples")
    expect_error(differentialAccessibility(y[, 1:2], ~ g,
        colData = cd[c(1, 4), , drop = FALSE]), class = "epione_error_input",
        regexp = "no replicates")
    cd2 <- data.frame(g = cd$g, b = cd$g)
    expect_error(differentialAccessibility(y, ~ b + g, colData = cd2),
                 class = "epione_error_input", regexp = "not full rank")
    expect_error(run(y, contrast = c("g", "c", "a")),
                 class = "epione_error_input", regexp = "levels are: a, b")
    expect_error(differentialAccessibility(y, ~ h, colData = cd),
                 class = "epione_error_input", regexp = "colData")
    expect_error(run(y, test = "LRT"), class = "epione_error_input",
                 regexp = "reduced = ~ 1")
})

test_that("contrasts by level pair and numeric vector agree", {
    withr::local_seed(3)
    y <- matrix(rnbinom(400 * 6, mu = 40, size = 5), ncol = 6)
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 3)))
    run <- function(ct) SummarizedExperiment::rowData(differentialAccessibility(
        y, ~ g, colData = cd, contrast = ct, threads = 1))
    ab <- run(c("g", "b", "a"))
    ba <- run(c("g", "a", "b"))
    expect_equal(ba$log2FoldChange, -ab$log2FoldChange)
    expect_equal(ba$pvalue, ab$pvalue)
    num <- run(c(0, 1))
    expect_equal(num$log2FoldChange, ab$log2FoldChange)
    expect_equal(num$lfcSE, ab$lfcSE, tolerance = 1e-8)
})

test_that("volcano and MA plots label the top peaks", {
    withr::local_seed(1)
    y <- matrix(rnbinom(300 * 6, mu = 50, size = 5), ncol = 6,
                dimnames = list(paste0("peak", 1:300), NULL))
    y[1:15, 4:6] <- y[1:15, 4:6] * 5
    cd <- data.frame(g = factor(rep(c("a", "b"), each = 3)))
    res <- differentialAccessibility(y, ~ g, colData = cd, threads = 1)
    p <- volcanoPlot(res, n_labels = 5)
    expect_s3_class(p, "ggplot")
    labs <- ggplot2::layer_data(p, 2)$label
    expect_length(labs, 5)
    expect_true(all(labs %in% paste0("peak", 1:15)))
    expect_s3_class(maPlot(res), "ggplot")
})

test_that("normalizationFactors match DESeq2 run on the same factors", {
    # DESeq2 itself is the independent computation here (no saved output
    # exists for per-count normalization factors).
    skip_if_not(has_shared(), "shared DESeq2 reference absent")
    skip_if_not_installed("DESeq2")
    r <- deseq_ref("p2k_s6")
    withr::local_seed(3)
    n <- nrow(r$y)
    m <- ncol(r$y)
    nf <- exp(outer(rnorm(n, 0, 0.3), rnorm(m, 0, 0.2)))
    nf <- nf * rep(exp(runif(m, -0.5, 0.5)), each = n)
    nf <- nf / exp(rowMeans(log(nf)))
    dds <- DESeq2::DESeqDataSetFromMatrix(r$y, r$cd, ~ condition)
    DESeq2::normalizationFactors(dds) <- nf
    ref <- suppressMessages(DESeq2::DESeq(dds, quiet = TRUE))
    w <- DESeq2::results(ref)
    mc <- S4Vectors::mcols(ref)
    g <- SummarizedExperiment::rowData(da(r, normalizationFactors = nf,
                                          threads = 2))
    expect_rel(g$baseMean, mc$baseMean, 1e-10)
    for (v in c("dispGeneEst", "dispersion")) expect_rel(g[[v]], mc[[v]], 1e-6)
    expect_rel(g$log2FoldChange, w$log2FoldChange, 1e-6, abs_tol = 1e-6)
    expect_rel(g$lfcSE, w$lfcSE, 1e-6)
    expect_identical(which(g$padj < 0.1), which(w$padj < 0.1))
    fast <- DESeqFast(dds, threads = 2, quiet = TRUE)
    expect_equal(DESeq2::normalizationFactors(fast), nf,
                 ignore_attr = TRUE)
    expect_identical(which(DESeq2::results(fast)$padj < 0.1),
                     which(w$padj < 0.1))
    expect_error(da(r, normalizationFactors = nf[-1, ]),
                 class = "epione_error_input", regexp = "one value per count")
})

test_that("rows refitted by optim (Cook's kept as maxima) agree with DESeq2", {
    skip_if_not_installed("DESeq2")
    set.seed(3)
    y <- matrix(rnbinom(2000 * 8, mu = 50, size = 5), 2000, 8)
    # one huge count against zeros: IRLS does not converge, DESeq2 refits
    # these rows with optim and flags them by Cook's distance
    y[1, ] <- c(0, 0, 0, 0, 0, 0, 0, 100000)
    y[2, ] <- c(1e6, 0, 0, 0, 0, 0, 0, 1)
    y[3, ] <- c(0, 0, 0, 5e5, 0, 0, 0, 0)
    cd <- data.frame(group = factor(rep(c("a", "b"), each = 4)))
    got <- SummarizedExperiment::rowData(suppressMessages(
        differentialAccessibility(y, ~ group, colData = cd, threads = 2)))
    dds <- DESeq2::DESeqDataSetFromMatrix(y, cd, ~ group)
    dds <- suppressMessages(DESeq2::DESeq(dds, quiet = TRUE))
    want <- DESeq2::results(dds)
    expect_identical(is.na(got$pvalue), is.na(want$pvalue))
    expect_true(all(is.na(got$pvalue[1:3])))
    expect_rel(got$log2FoldChange, want$log2FoldChange, 1e-6)
    expect_rel(got$maxCooks, S4Vectors::mcols(dds)$maxCooks, 1e-6)
    expect_identical(which(got$padj < 0.1), which(want$padj < 0.1))
})

test_that("IRLS by normal equations (p <= 6) and by QR (p > 6) match DESeq2", {
    # DESeq2 solves every IRLS step by QR; epione uses the normal equations
    # up to 6 coefficients and DESeq2's QR above, so a 3-coefficient and an
    # 8-coefficient design check both against DESeq2 itself.
    skip_if_not_installed("DESeq2")
    withr::local_seed(11)
    for (k in c(3L, 8L)) {
        g <- factor(rep(letters[seq_len(k)], each = 3))
        # a mean per peak times a fold change per group, 3 samples a group
        mu <- outer(rgamma(400, 2, 0.02), exp(rnorm(k, 0, 0.4)))
        y <- matrix(rnbinom(400 * 3 * k, mu = mu[, rep(seq_len(k), each = 3)],
                            size = 8), 400)
        cd <- data.frame(g = g)
        dds <- DESeq2::DESeqDataSetFromMatrix(y, cd, ~ g)
        dds <- suppressMessages(DESeq2::DESeq(dds, quiet = TRUE))
        want <- DESeq2::results(dds)
        got <- SummarizedExperiment::rowData(differentialAccessibility(y, ~ g,
            colData = cd, threads = 2, details = TRUE))
        mc <- S4Vectors::mcols(dds)
        for (v in c("dispersion", "deviance")) {
            expect_rel(got[[v]], mc[[v]], 1e-6)
        }
        expect_rel(got$log2FoldChange, want$log2FoldChange, 1e-6, 1e-6)
        expect_rel(got$lfcSE, want$lfcSE, 1e-6)
        expect_identical(got$betaConv, mc$betaConv)
        expect_identical(which(got$padj < 0.1), which(want$padj < 0.1))
    }
})

test_that("dispersions match DESeq2 with rows or samples in vector lanes", {
    # up to 24 samples the line searches run 4 peaks at a time
    # (nblanes.hpp), above that one peak with its samples in the lanes
    # and the count terms once per distinct count (nbvec.hpp); both
    # against DESeq2 itself, with the README's Tier A
    # rule (rel 1e-6 for >= 99.9 % of rows, 5e-2 for all: a search that
    # stops on a flat posterior may take another path in other rounding)
    skip_if_not_installed("DESeq2")
    withr::local_seed(21)
    tier_a <- function(a, b) {
        expect_identical(is.na(a), is.na(b))
        e <- abs(a - b) / pmax(abs(b), 1e-12)
        expect_lte(mean(e > 1e-6, na.rm = TRUE), 1e-3)
        expect_lte(max(e, na.rm = TRUE), 5e-2)
    }
    for (m in c(10L, 30L)) {
        g <- factor(rep(c("a", "b"), each = m / 2))
        mu <- outer(rgamma(2000, 2, 0.03), c(1, 1.5))[, as.integer(g)]
        mu[1:20, ] <- mu[1:20, ] * 300  # counts beyond the table of 4096
        y <- matrix(rnbinom(2000 * m, mu = mu, size = 6), 2000)
        cd <- data.frame(g = g)
        dds <- DESeq2::DESeqDataSetFromMatrix(y, cd, ~ g)
        dds <- suppressMessages(DESeq2::DESeq(dds, quiet = TRUE))
        got <- SummarizedExperiment::rowData(differentialAccessibility(y, ~ g,
            colData = cd, threads = 2, details = TRUE))
        mc <- S4Vectors::mcols(dds)
        for (v in c("dispGeneEst", "dispMAP", "dispersion")) {
            tier_a(got[[v]], mc[[v]])
        }
        expect_gte(mean(got$dispIter == mc$dispIter), 0.99)
        expect_rel(got$log2FoldChange, mc$g_b_vs_a, 1e-6, 1e-6)
        expect_identical(which(got$padj < 0.1),
                         which(DESeq2::results(dds)$padj < 0.1))
        one <- SummarizedExperiment::rowData(differentialAccessibility(y,
            ~ g, colData = cd, threads = 1, details = TRUE))
        expect_identical(one, got)
    }
})

test_that("independent filtering's BH steps are p.adjust's on each subset", {
    # p-values ordered as order(decreasing = TRUE) (ties, NA, 0 and 1)
    withr::local_seed(5)
    p <- c(runif(300), rep(c(0, 1, 0.5, 1e-300), 30))[sample(420)]
    p[sample(420, 30)] <- NA
    p[1:40] <- p[1:40] / 1e4  # some rejections at alpha = 0.1
    f <- rexp(420)
    f[sample(420, 5)] <- NA
    cutoffs <- unname(stats::quantile(f, seq(0, 0.95, length = 50),
                                      na.rm = TRUE))
    bh <- function(cut) {
        out <- rep(NA_real_, length(p))
        use <- which(f >= cut)
        out[use] <- stats::p.adjust(p[use], method = "BH")
        out
    }
    for (cut in cutoffs[c(1, 20, 50)]) {
        expect_identical(epione:::epi_deseq_bh_subset(p, f, cut), bh(cut))
    }
    rej <- vapply(cutoffs, function(cut) {
        as.numeric(sum(bh(cut) < 0.1, na.rm = TRUE))
    }, 0)
    expect_identical(epione:::epi_deseq_num_rej(p, f, cutoffs, 0.1), rej)
    expect_gt(max(rej), 0)
})

test_that("the Wald columns are results()' arithmetic", {
    withr::local_seed(6)
    beta <- matrix(rnorm(60), 30)
    se <- matrix(rexp(60), 30)
    beta[3, ] <- NA
    se[4, 2] <- 0
    got <- epione:::epi_deseq_wald(beta, se, 2L, -1)
    lfc <- -1 * beta[, 2]
    stat <- lfc / se[, 2]
    expect_identical(got, list(lfc = lfc, se = se[, 2], stat = stat,
        pvalue = 2 * stats::pnorm(abs(stat), lower.tail = FALSE)))
})

test_that("independent filtering's quantiles are stats::quantile's", {
    withr::local_seed(4)
    draws <- list(rnorm(7), round(rexp(1000) * 3), rep(0, 5),
                  c(rep(0, 500), rexp(501)), rpois(2001, 2) / 7, 3)
    for (x in draws) {
        lowerQ <- mean(x == 0)
        theta <- seq(lowerQ, if (lowerQ < 0.95) 0.95 else 1, length = 50)
        expect_identical(epione:::epi_deseq_quantile(x, theta),
                         unname(stats::quantile(x, theta)))
    }
})

test_that("varLogDispEsts is stats::mad of the log residuals, squared", {
    withr::local_seed(8)
    for (n in c(2, 3, 10, 11, 1000, 1001)) {
        g <- stats::rexp(n) * 10^stats::runif(n, -9, 0)
        f <- stats::rexp(n) / 10
        use <- g >= 1e-6
        expect_identical(epione:::epi_deseq_var_log_disp(g, f, 1e-6),
                         stats::mad((log(g) - log(f))[use])^2)
    }
})
