# chromVAR: background peaks, expectations, deviations and variability with
# chromVAR 1.29's names, arguments and answers; the work is done by
# inst/include/epione/chromvar.hpp.

#' @importFrom ggplot2 .data
#' @importFrom methods new is as setClass setGeneric setMethod
#' @importClassesFrom SummarizedExperiment SummarizedExperiment
#'     RangedSummarizedExperiment
NULL

#' Deviations of chromatin accessibility per annotation
#'
#' A `SummarizedExperiment` (annotations x cells) with assays `deviations`
#' (bias-corrected deviations) and `z` (deviation z-scores), as returned by
#' [computeDeviations()]; same layout as chromVAR's class of that name.
#' @export
setClass("chromVARDeviations",
         contains = "SummarizedExperiment")

#' @rdname getBackgroundPeaks-ANY-method
#' @export
setGeneric("getBackgroundPeaks",
    function(object, ...) standardGeneric("getBackgroundPeaks"))
#' @rdname computeExpectations-ANY-method
#' @export
setGeneric("computeExpectations",
    function(object, ...) standardGeneric("computeExpectations"))
#' @rdname computeDeviations-ANY-method
#' @export
setGeneric("computeDeviations",
    function(object, annotations, ...) standardGeneric("computeDeviations"))
#' @rdname chromVARDeviations-class
#' @export
setGeneric("deviations", function(object) standardGeneric("deviations"))
#' @rdname chromVARDeviations-class
#' @export
setGeneric("deviationScores",
    function(object) standardGeneric("deviationScores"))
#' @rdname addGCBias-RangedSummarizedExperiment-method
#' @export
setGeneric("addGCBias", function(object, ...) standardGeneric("addGCBias"))

# ---- inputs -----------------------------------------------------------

# Counts as a numeric dgCMatrix (never densified), checked once.
.as_counts <- function(x, check = TRUE) {
    if (methods::is(x, "SummarizedExperiment")) {
        if (!"counts" %in% SummarizedExperiment::assayNames(x)) {
            .abort("'object' has no 'counts' assay; name the peak x cell ",
                   "count matrix 'counts' (assay(object, 'counts') <- m).")
        }
        x <- SummarizedExperiment::assay(x, "counts")
    }
    x <- tryCatch(methods::as(methods::as(x, "CsparseMatrix"), "dMatrix"),
        error = function(e) .abort("counts must be a matrix or sparse ",
            "Matrix, not ", class(x)[1L], "; convert it with ",
            "as(x, 'CsparseMatrix').", parent = e))
    x <- methods::as(x, "generalMatrix")
    if (check && (anyNA(x@x) || (length(x@x) && min(x@x) < 0))) .bad_counts()
    x
}

.bad_counts <- function() {
    .abort("counts contain NA or negative values; chromVAR needs ",
           "non-negative fragment counts (replace NA by 0).")
}

# Fragments per peak with the count checks of .as_counts() in one threaded
# C++ pass; Matrix::rowSums (chromVAR's sums, bit for bit) only when some
# count is fractional and the summation order could matter.
.peak_totals <- function(counts, threads) {
    s <- .core(epi_chromvar_peak_totals(counts, threads))
    if (s$invalid) .bad_counts()
    fpp <- if (s$whole) s$sums else Matrix::rowSums(counts)
    if (any(fpp <= 0)) .empty_peaks(fpp)
    fpp
}

.check_peaks_nonempty <- function(counts) {
    fpp <- Matrix::rowSums(counts)
    if (any(fpp <= 0)) .empty_peaks(fpp)
    fpp
}

.empty_peaks <- function(fpp) {
    .abort(sum(fpp <= 0), " peak(s) have no fragments (e.g. peak ",
           which(fpp <= 0)[1L], "); remove them first, e.g. ",
           "object[Matrix::rowSums(counts) > 0, ] (chromVAR: ",
           "filterPeaks()).")
}

.check_bias <- function(bias, n) {
    if (is.null(bias)) {
        .abort("no GC bias: rowData(object)$bias is missing; add it with ",
               "addGCBias(object, genome) or pass 'bias'.")
    }
    if (!is.numeric(bias) || length(bias) != n) {
        .abort("'bias' must be a numeric vector with one value per peak (",
               n, "), not length ", length(bias), ".")
    }
    bad <- which(!is.finite(bias) | bias < 0 | bias > 1)
    if (length(bad)) {
        .abort(length(bad), " peak(s) have a missing or out-of-range GC ",
               "bias (e.g. peak ", bad[1L], ": ", bias[bad[1L]], "); GC must ",
               "be in [0, 1]. Drop those peaks, e.g. ",
               "object[is.finite(rowData(object)$bias), ].")
    }
    as.numeric(bias)
}

# Annotations as a 0/1 dgCMatrix (peaks x annotations) plus their rowData.
.as_matches <- function(annotations, object, n_peaks) {
    info <- NULL
    if (methods::is(annotations, "SummarizedExperiment")) {
        an <- SummarizedExperiment::assayNames(annotations)
        pick <- intersect(c("motifMatches", "annotationMatches", "matches"),
                          an)
        info <- SummarizedExperiment::colData(annotations)
        annotations <- SummarizedExperiment::assay(annotations,
            if (length(pick)) pick[1L] else 1L)
        if (is.null(colnames(annotations))) colnames(annotations) <-
                rownames(info)
    } else if (methods::is(annotations, "GRangesList")) {
        annotations <- .ranges_to_matches(annotations, object)
    } else if (is.list(annotations)) {
        annotations <- .index_list_to_matches(annotations, n_peaks)
    }
    m <- tryCatch(methods::as(annotations, "CsparseMatrix"),
        error = function(e) .abort("'annotations' must be a ",
            "SummarizedExperiment of matches, a (sparse) peak x annotation ",
            "matrix, a list of peak indices or a GRangesList, not ",
            class(annotations)[1L], ".", parent = e))
    if (nrow(m) != n_peaks) {
        .abort("'annotations' has ", nrow(m), " rows but the counts have ",
               n_peaks, " peaks; match annotations to the same peak set ",
               "(e.g. matchMotifs(motifs, rowRanges(object))).")
    }
    m <- methods::as(methods::as(m, "dMatrix"), "generalMatrix")
    m@x[is.na(m@x)] <- 0
    m@x[m@x != 0] <- 1
    m <- Matrix::drop0(m)
    if (is.null(colnames(m))) colnames(m) <- as.character(seq_len(ncol(m)))
    list(matches = m, info = info)
}

.index_list_to_matches <- function(sets, n_peaks) {
    idx <- unlist(sets, use.names = FALSE)
    if (length(idx) && (anyNA(idx) || any(idx != round(idx)) ||
        min(idx) < 1 || max(idx) > n_peaks)) {
        .abort("'annotations' holds peak indices outside 1..", n_peaks,
               "; indices are 1-based rows of the counts.")
    }
    nm <- names(sets)
    if (is.null(nm)) nm <- as.character(seq_along(sets))
    Matrix::sparseMatrix(i = as.integer(idx),
        j = rep(seq_along(sets), lengths(sets)), x = 1,
        dims = c(n_peaks, length(sets)), dimnames = list(NULL, nm))
}

.ranges_to_matches <- function(grl, object) {
    if (!methods::is(object, "RangedSummarizedExperiment")) {
        .abort("a GRangesList annotation needs peak ranges: pass a ",
               "RangedSummarizedExperiment as 'object'.")
    }
    peaks <- SummarizedExperiment::rowRanges(object)
    hits <- lapply(grl, function(g)
        unique(S4Vectors::queryHits(GenomicRanges::findOverlaps(peaks, g))))
    names(hits) <- names(grl)
    .index_list_to_matches(hits, length(peaks))
}

.as_background <- function(bg, n_peaks) {
    if (methods::is(bg, "SummarizedExperiment")) {
        bg <- SummarizedExperiment::assay(bg, 1L)
    }
    bg <- as.matrix(bg)
    if (!is.numeric(bg) || nrow(bg) != n_peaks || ncol(bg) < 2L) {
        .abort("'background_peaks' must be a peak x iteration matrix with ",
               n_peaks, " rows and >= 2 columns (got ",
               paste(dim(bg), collapse = " x "), "); recompute it with ",
               "getBackgroundPeaks(object).")
    }
    if (anyNA(bg) || any(bg < 1) || any(bg > n_peaks) ||
        any(bg != round(bg))) {
        .abort("'background_peaks' holds values outside 1..", n_peaks,
               "; recompute it with getBackgroundPeaks(object).")
    }
    storage.mode(bg) <- "integer"
    bg
}

# ---- background peaks -------------------------------------------------

.background_peaks <- function(object, bias, niterations, w, bs, threads) {
    threads <- .check_threads(threads)
    counts <- .as_counts(object, check = FALSE)
    fpp <- .peak_totals(counts, threads)
    bias <- .check_bias(bias, nrow(counts))
    .check_number(niterations, "niterations", min = 2, whole = TRUE)
    .check_number(w, "w", min = .Machine$double.xmin)
    .check_number(bs, "bs", min = 3, max = 500, whole = TRUE)
    .core(epi_chromvar_background(as.numeric(fpp), bias,
        as.integer(niterations), w, as.integer(bs), threads))
}

#' Background peaks matched on GC content and accessibility
#'
#' For every peak, draws `niterations` peers with similar GC bias and
#' average accessibility, exactly as chromVAR 1.29's `getBackgroundPeaks`:
#' the same whitening of (log10 counts, bias) by a Cholesky factor, the
#' same `bs` x `bs` grid, Gaussian kernel of width `w` and Walker alias
#' sampling, drawing from R's own random number generator in the same order.
#' Under the same `set.seed()` the result is identical to chromVAR's, and
#' `.Random.seed` advances exactly as it does there.
#'
#' @param object A `SummarizedExperiment` with a `counts` assay (peaks x
#'   cells), or a peak x cell matrix / sparse `Matrix`.
#' @param bias GC content per peak in \[0, 1\] (default
#'   `rowData(object)$bias`, see [addGCBias()]).
#' @param niterations Number of background peaks per peak (default 50).
#' @param w Kernel width on the whitened grid (default 0.1).
#' @param bs Grid points per axis (default 50).
#' @param threads Number of C++ threads (building sampling tables); the
#'   result does not depend on it.
#' @param ... Unused.
#' @return An integer matrix, peaks x `niterations`, of 1-based peak
#'   indices (chromVAR returns the same numbers as a double matrix).
#' @seealso chromVAR::getBackgroundPeaks(), [computeDeviations()]
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' set.seed(2017)
#' bg <- getBackgroundPeaks(se, niterations = 10, threads = 1)
#' dim(bg)
#' @export
setMethod("getBackgroundPeaks", "ANY", function(object, bias,
        niterations = 50, w = 0.1, bs = 50,
        threads = getOption("epione.threads", 2L)) {
    if (missing(bias)) bias <- NULL
    .background_peaks(object, bias, niterations, w, bs, threads)
})

#' @rdname getBackgroundPeaks-ANY-method
#' @export
setMethod("getBackgroundPeaks", "SummarizedExperiment", function(object,
        bias = SummarizedExperiment::rowData(object)$bias, niterations = 50,
        w = 0.1, bs = 50, threads = getOption("epione.threads", 2L)) {
    .background_peaks(object, bias, niterations, w, bs, threads)
})

# ---- expectations -----------------------------------------------------

.expectations <- function(counts, norm, group) {
    .check_flag(norm, "norm")
    one <- function(x) {
        if (norm) {
            fps <- Matrix::colSums(x)
            x@x <- x@x / rep.int(fps, diff(x@p))
            Matrix::rowSums(x)
        } else {
            Matrix::rowSums(x) / sum(x)
        }
    }
    if (is.null(group)) return(one(counts))
    group <- as.factor(group)
    per <- vapply(levels(group), function(g)
        one(counts[, which(group == g), drop = FALSE]), numeric(nrow(counts)))
    rowMeans(matrix(per, nrow = nrow(counts)))
}

.check_group <- function(group, object, n_cells) {
    if (is.null(group)) return(NULL)
    if (length(group) == 1L && methods::is(object, "SummarizedExperiment") &&
        group %in% colnames(SummarizedExperiment::colData(object))) {
        group <- SummarizedExperiment::colData(object)[[group]]
    }
    if (length(group) != n_cells || anyNA(group)) {
        .abort("'group' must name a colData column or give one non-NA ",
               "group per cell (", n_cells, " values), not ",
               length(group), ".")
    }
    group
}

#' Expected fraction of fragments per peak
#'
#' chromVAR's `computeExpectations`: by default each peak's share of all
#' fragments; with `norm = TRUE` the sum over cells of each cell's share;
#' with `group` the mean over groups of the per-group expectations.
#'
#' @param object Counts (see [getBackgroundPeaks()]).
#' @param norm Normalise by each cell's total first (default `FALSE`).
#' @param group `NULL`, a colData column name, or one group per cell.
#' @param ... Unused.
#' @return A numeric vector, one value per peak.
#' @seealso chromVAR::computeExpectations()
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' head(computeExpectations(se))
#' @export
setMethod("computeExpectations", "ANY", function(object, norm = FALSE,
        group = NULL) {
    counts <- .as_counts(object)
    .expectations(counts, norm, .check_group(group, object, ncol(counts)))
})

# ---- deviations -------------------------------------------------------

.compute_deviations <- function(object, annotations, background_peaks,
        expectation, method, bias, w, bs, threads, verbose) {
    counts <- .as_counts(object)
    fpp <- .check_peaks_nonempty(counts)
    an <- .as_matches(annotations, object, nrow(counts))
    method <- match.arg(method, c("analytical", "sample"))
    threads <- .check_threads(threads)
    .check_flag(verbose, "verbose")
    if (!is.numeric(expectation) || length(expectation) != nrow(counts) ||
        anyNA(expectation)) {
        .abort("'expectation' must hold one number per peak (",
               nrow(counts), "); use computeExpectations(object).")
    }
    res <- if (method == "sample") {
        bg <- .as_background(background_peaks, nrow(counts))
        .core(epi_chromvar_sample(counts, an$matches, bg,
            as.numeric(expectation), 1, threads, verbose))
    } else {
        bias <- .check_bias(bias, nrow(counts))
        .check_number(w, "w", min = .Machine$double.xmin)
        .check_number(bs, "bs", min = 3, max = 500, whole = TRUE)
        .core(epi_chromvar_analytical(counts, an$matches, as.numeric(fpp),
            bias, as.numeric(expectation), w, as.integer(bs), 512L,
            threads, verbose))
    }
    .deviations_se(res, an, object, counts)
}

.deviations_se <- function(res, an, object, counts) {
    names <- colnames(an$matches)
    dimnames(res$deviations) <- dimnames(res$z) <- list(names,
                                                       colnames(counts))
    rd <- if (is.null(an$info)) {
        S4Vectors::DataFrame(row.names = names)
    } else {
        an$info
    }
    rd$fractionMatches <- res$fractionMatches
    rd$fractionBackgroundOverlap <- res$fractionBackgroundOverlap
    cd <- if (methods::is(object, "SummarizedExperiment")) {
        SummarizedExperiment::colData(object)
    } else {
        cd <- S4Vectors::DataFrame(n = seq_len(ncol(counts)))[, FALSE]
        rownames(cd) <- colnames(counts)
        cd
    }
    se <- SummarizedExperiment::SummarizedExperiment(
        assays = list(deviations = res$deviations, z = res$z),
        rowData = rd, colData = cd)
    methods::new("chromVARDeviations", se)
}

#' Bias-corrected deviations in accessibility per annotation
#'
#' chromVAR's `computeDeviations`. For each annotation (e.g. the peaks
#' holding a motif) and cell, the deviation of the observed fragments in
#' the annotation's peaks from the expected number, minus the mean
#' deviation of background peak sets, and its z-score against them.
#'
#' `method = "sample"` is chromVAR's procedure: the background sets are the
#' rows of `background_peaks` (one per iteration); the answer equals
#' chromVAR 1.29's to ~1e-12 (same summation orders and long-double
#' reductions), including its NA rules: cells whose expected count is
#' below 1 get `NA`; annotations without peaks give an `NA` row.
#'
#' `method = "analytical"` (default) replaces the sampled null by its limit
#' as `niterations` goes to infinity. A peak's background peers are drawn
#' independently from the bias model of [getBackgroundPeaks()] (which
#' depends only on the peak's bin), so the mean and variance of the
#' background deviation are sums of per-bin moments of the counts: two
#' dense products of (annotations x bins) and (bins x bins) matrices with
#' bin-aggregated counts, the ratio expanded to second order. No Monte
#' Carlo noise; `background_peaks` is not used (the model is rebuilt from
#' `bias`, `w` and `bs`), and `fractionBackgroundOverlap` is `NA`.
#'
#' Counts are read from the sparse matrix as they are (never densified);
#' non-integer counts (e.g. normalised values) are accepted as in chromVAR.
#'
#' @param object A `SummarizedExperiment` with a `counts` assay or a peak x
#'   cell matrix / sparse `Matrix`.
#' @param annotations Peak x annotation matches: a `SummarizedExperiment`
#'   (assay `motifMatches`/`annotationMatches`, e.g. from `matchMotifs`), a
#'   logical or 0/1 (sparse) matrix, a list of peak index vectors, or a
#'   `GRangesList` (overlapped with `rowRanges(object)`).
#' @param background_peaks Background peak matrix from
#'   [getBackgroundPeaks()] (peaks x iterations); needed for
#'   `method = "sample"`.
#' @param expectation Expected fraction per peak ([computeExpectations()]).
#' @param method `"analytical"` (default) or `"sample"`.
#' @param bias,w,bs The background model for `method = "analytical"`
#'   (default `rowData(object)$bias`, 0.1, 50, as in
#'   [getBackgroundPeaks()]).
#' @param threads Number of C++ threads; results do not depend on it.
#' @param verbose Show a progress bar.
#' @param ... Passed on.
#' @return A `chromVARDeviations` object (a `SummarizedExperiment`,
#'   annotations x cells) with assays `deviations` and `z`, rowData
#'   `fractionMatches` and `fractionBackgroundOverlap` (plus the
#'   annotations' colData), colData of `object`.
#' @seealso chromVAR::computeDeviations(), [computeVariability()]
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
#'     package = "epione"))
#' set.seed(2017)
#' bg <- getBackgroundPeaks(se, threads = 1)
#' dev <- computeDeviations(se, ix, bg, method = "sample", threads = 1)
#' deviationScores(dev)[, 1:3]
#' @export
setMethod("computeDeviations", "ANY", function(object, annotations,
        background_peaks, expectation = computeExpectations(object),
        method = c("analytical", "sample"), bias, w = 0.1, bs = 50,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    method <- match.arg(method)
    if (method == "sample" && missing(background_peaks)) {
        .abort("method = 'sample' needs 'background_peaks' (from ",
               "getBackgroundPeaks(object, bias)).")
    }
    if (method == "analytical" && missing(bias)) {
        .abort("method = 'analytical' needs the GC 'bias' of each peak; ",
               "pass bias = or use method = 'sample'.")
    }
    .compute_deviations(object, annotations, background_peaks, expectation,
                        method, bias, w, bs, threads, verbose)
})

#' @rdname computeDeviations-ANY-method
#' @export
setMethod("computeDeviations", "SummarizedExperiment", function(object,
        annotations, background_peaks = getBackgroundPeaks(object,
            threads = threads),
        expectation = computeExpectations(object),
        method = c("analytical", "sample"),
        bias = SummarizedExperiment::rowData(object)$bias, w = 0.1, bs = 50,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    method <- match.arg(method)
    .compute_deviations(object, annotations, background_peaks, expectation,
                        method, bias, w, bs, threads, verbose)
})

#' @rdname chromVARDeviations-class
#' @param object A `chromVARDeviations` object.
#' @return `deviations()`: the bias-corrected deviations (annotations x
#'   cells); `deviationScores()`: the z-scores.
#' @export
setMethod("deviations", "chromVARDeviations", function(object) {
    SummarizedExperiment::assay(object, "deviations")
})

#' @rdname chromVARDeviations-class
#' @export
setMethod("deviationScores", "chromVARDeviations", function(object) {
    SummarizedExperiment::assay(object, "z")
})

# ---- variability ------------------------------------------------------

#' Variability of annotations across cells
#'
#' chromVAR's `computeVariability`: the standard deviation of each
#' annotation's z-scores across cells (finite values only), its p-value
#' `pchisq((ncol - 1) * sd^2, ncol - 1, lower.tail = FALSE)` and the
#' Benjamini-Hochberg adjusted p-value. With `bootstrap_error = TRUE`,
#' quantiles of the sd over `bootstrap_samples` resamplings of the cells
#' (with replacement). chromVAR draws those resamplings through
#' BiocParallel streams; epione draws them from one seed taken from R's RNG
#' (so `set.seed()` reproduces them, for any `threads`), hence the bounds
#' agree with chromVAR's statistically, not bit for bit.
#'
#' @param object A `chromVARDeviations` object ([computeDeviations()]).
#' @param bootstrap_error Compute bootstrap bounds (default `TRUE`).
#' @param bootstrap_samples Number of bootstrap resamplings (1000).
#' @param bootstrap_quantiles Lower and upper quantile (0.025, 0.975).
#' @param na.rm Ignore non-finite z-scores (default `TRUE`); otherwise an
#'   annotation with any non-finite z gets `NaN`.
#' @param threads Number of C++ threads; results do not depend on it.
#' @return A data.frame, one row per annotation: `name`, `variability`,
#'   (`bootstrap_lower_bound`, `bootstrap_upper_bound`), `p_value`,
#'   `p_value_adj`.
#' @seealso chromVAR::computeVariability(), [plotVariability()]
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
#'     package = "epione"))
#' dev <- computeDeviations(se, ix, threads = 1)
#' computeVariability(dev, bootstrap_samples = 100, threads = 1)
#' @export
computeVariability <- function(object, bootstrap_error = TRUE,
        bootstrap_samples = 1000, bootstrap_quantiles = c(0.025, 0.975),
        na.rm = TRUE, threads = getOption("epione.threads", 2L)) {
    if (!methods::is(object, "SummarizedExperiment") ||
        !"z" %in% SummarizedExperiment::assayNames(object)) {
        .abort("'object' must be the result of computeDeviations() ",
               "(a SummarizedExperiment with a 'z' assay).")
    }
    .check_flag(bootstrap_error, "bootstrap_error")
    .check_flag(na.rm, "na.rm")
    q <- bootstrap_quantiles
    if (!is.numeric(q) || length(q) != 2L || anyNA(q) || any(q <= 0) ||
        any(q >= 1) || q[2L] <= q[1L]) {
        .abort("'bootstrap_quantiles' must be two increasing numbers in ",
               "(0, 1), e.g. c(0.025, 0.975).")
    }
    n_boot <- if (bootstrap_error) .check_number(bootstrap_samples,
        "bootstrap_samples", min = 1, whole = TRUE) else 0
    z <- as.matrix(SummarizedExperiment::assay(object, "z"))
    storage.mode(z) <- "double"
    seed <- if (n_boot > 0) .draw_seed() else 0
    res <- .core(epi_chromvar_variability(z, as.integer(n_boot), seed,
                                          .check_threads(threads)))
    sds <- res$sd
    if (!na.rm) sds[rowSums(!is.finite(z)) > 0] <- NaN
    p <- stats::pchisq((ncol(z) - 1) * sds^2, df = ncol(z) - 1,
                       lower.tail = FALSE)
    nm <- SummarizedExperiment::rowData(object)$name
    if (is.null(nm)) nm <- rownames(object)
    out <- data.frame(name = if (is.null(nm)) seq_len(nrow(z)) else nm,
                      variability = sds, row.names = rownames(object))
    if (bootstrap_error) {
        b <- apply(res$boot, 1L, function(v) {
            if (!na.rm && anyNA(v)) return(c(NA_real_, NA_real_))
            stats::quantile(v, q, na.rm = TRUE, names = FALSE)
        })
        out$bootstrap_lower_bound <- b[1L, ]
        out$bootstrap_upper_bound <- b[2L, ]
    }
    out$p_value <- p
    out$p_value_adj <- stats::p.adjust(p, method = "BH")
    out
}

# ---- plots ------------------------------------------------------------

#' Plot annotation variability by rank
#'
#' chromVAR's `plotVariability`: annotations sorted by variability, with
#' bootstrap error bars when present and the top `n` labelled.
#'
#' @param variability A data.frame from [computeVariability()].
#' @param xlab x-axis label.
#' @param n Number of top annotations to label.
#' @param labels Labels (default `variability$name`).
#' @return A ggplot object.
#' @examples
#' v <- data.frame(name = letters[1:5], variability = c(1, 3, 2, 5, 4))
#' plotVariability(v, n = 2)
#' @export
plotVariability <- function(variability, xlab = "Sorted TFs", n = 3,
                            labels = variability$name) {
    df <- data.frame(variability,
        rank = rank(-variability$variability, ties.method = "first"),
        annotation = as.character(labels))
    has_ci <- "bootstrap_upper_bound" %in% colnames(variability)
    top <- if (has_ci) df$bootstrap_upper_bound else df$variability
    p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$rank,
                                          y = .data$variability)) +
        ggplot2::geom_point() +
        ggplot2::xlab(xlab) + ggplot2::ylab("Variability") +
        ggplot2::scale_y_continuous(expand = c(0, 0),
            limits = c(0, max(top, na.rm = TRUE) * 1.05)) +
        ggplot2::theme_bw()
    if (has_ci) {
        p <- p + ggplot2::geom_errorbar(ggplot2::aes(
            ymin = .data$bootstrap_lower_bound,
            ymax = .data$bootstrap_upper_bound))
    }
    if (n >= 1) {
        p <- p + ggplot2::geom_text(data = df[df$rank <= n, ],
            ggplot2::aes(label = .data$annotation), size = 3, hjust = -0.45)
    }
    p
}

#' Rank plot of deviation variability, ArchR style
#'
#' ArchR's `plotVarDev`: annotations ranked by the variance of their
#' z-scores across cells, coloured by it (solarExtra), top `n` labelled.
#'
#' @param object A `chromVARDeviations` object, or a data.frame with
#'   columns `name` and `combinedVars` (as ArchR's `getVarDeviations`).
#' @param n Number of top annotations to label (default 25).
#' @return A ggplot object; its data holds `name`, `combinedVars`,
#'   `combinedMeans` and `rank`.
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
#'     package = "epione"))
#' plotVarDev(computeDeviations(se, ix, threads = 1), n = 3)
#' @export
plotVarDev <- function(object, n = 25) {
    df <- if (methods::is(object, "SummarizedExperiment")) {
        z <- as.matrix(SummarizedExperiment::assay(object, "z"))
        z[!is.finite(z)] <- NA
        nm <- SummarizedExperiment::rowData(object)$name
        data.frame(name = if (is.null(nm)) rownames(object) else nm,
            combinedVars = apply(z, 1L, stats::var, na.rm = TRUE),
            combinedMeans = rowMeans(z, na.rm = TRUE))
    } else {
        as.data.frame(object)
    }
    df <- df[order(-df$combinedVars), , drop = FALSE]
    df$rank <- seq_len(nrow(df))
    ggplot2::ggplot(df, ggplot2::aes(x = .data$rank,
                                     y = .data$combinedVars,
                                     colour = .data$combinedVars)) +
        ggplot2::geom_point(size = 1.5) +
        ggplot2::scale_colour_gradientn(colours = .solar_extra) +
        ggplot2::geom_text(data = utils::head(df, n),
            ggplot2::aes(label = .data$name), size = 2.5, hjust = -0.15,
            colour = "black", check_overlap = TRUE) +
        ggplot2::xlab("Rank Sorted Annotations") +
        ggplot2::ylab("Variability") +
        ggplot2::theme_bw() +
        ggplot2::theme(legend.position = "none")
}

# ---- GC bias ----------------------------------------------------------

.gc_from_genome <- function(peaks, genome) {
    if (methods::is(genome, "FaFile")) genome <- as.character(genome$path)
    if (is.character(genome)) {
        fasta <- .check_file(genome, "genome")
        return(.core(epi_chromvar_gc(fasta,
            as.character(GenomeInfoDb::seqnames(peaks)),
            as.integer(BiocGenerics::start(peaks)),
            as.integer(BiocGenerics::end(peaks)))))
    }
    if (!requireNamespace("Biostrings", quietly = TRUE)) {
        .abort("a BSgenome or DNAStringSet 'genome' needs the Biostrings ",
               "package; install it or pass the path of an indexed FASTA.")
    }
    seqs <- if (methods::is(genome, "XStringSet")) {
        chrom <- as.character(GenomeInfoDb::seqnames(peaks))
        if (!all(chrom %in% names(genome))) {
            .abort("'genome' lacks sequence(s) ",
                   paste(utils::head(setdiff(chrom, names(genome)), 3),
                         collapse = ", "), " named by the peaks.")
        }
        Biostrings::subseq(genome[chrom], BiocGenerics::start(peaks),
                           BiocGenerics::end(peaks))
    } else {
        Biostrings::getSeq(genome, peaks)
    }
    f <- Biostrings::letterFrequency(seqs, c("A", "C", "G", "T"))
    rowSums(f[, 2:3, drop = FALSE]) / rowSums(f)
}

#' Add the GC content of each peak
#'
#' chromVAR's `addGCBias`: the fraction of G and C among the A/C/G/T bases
#' of each peak, stored as `rowData(object)$bias` for
#' [getBackgroundPeaks()]. A FASTA path is read with HTSlib's faidx in C++
#' (plain or bgzip-compressed; a missing `.fai` index is built next to it);
#' `BSgenome` and `DNAStringSet` genomes go through Biostrings.
#'
#' @param object A `RangedSummarizedExperiment` of peaks.
#' @param genome Path to an indexed FASTA, an `Rsamtools::FaFile`, a
#'   `BSgenome` or a named `DNAStringSet` with the peaks' sequence names.
#' @param ... Unused.
#' @return `object` with `rowData(object)$bias` set (`NaN` for a peak
#'   without A/C/G/T).
#' @seealso chromVAR::addGCBias()
#' @examples
#' fa <- tempfile(fileext = ".fa")
#' writeLines(c(">chr1", "ACGTGGCCAATT"), fa)
#' se <- SummarizedExperiment::SummarizedExperiment(
#'     assays = list(counts = matrix(1:4, 2)),
#'     rowRanges = GenomicRanges::GRanges("chr1", IRanges::IRanges(c(1, 5),
#'         c(4, 8))))
#' SummarizedExperiment::rowData(addGCBias(se, fa))$bias
#' @export
setMethod("addGCBias", "RangedSummarizedExperiment", function(object,
        genome) {
    gc <- .gc_from_genome(SummarizedExperiment::rowRanges(object), genome)
    SummarizedExperiment::rowData(object)$bias <- gc
    object
})

# ---- embedding and heatmap plots (seed 000, ArchR palettes) -----------

.top_variable <- function(z, n) {
    v <- apply(z, 1L, stats::var, na.rm = TRUE)
    order(-v)[seq_len(min(n, nrow(z)))]
}

.z_matrix <- function(object) {
    if (!methods::is(object, "SummarizedExperiment") ||
        !"z" %in% SummarizedExperiment::assayNames(object)) {
        .abort("'object' must be the result of computeDeviations().")
    }
    z <- as.matrix(SummarizedExperiment::assay(object, "z"))
    z[!is.finite(z)] <- NA
    if (is.null(rownames(z))) rownames(z) <- seq_len(nrow(z))
    z
}

#' Cells on an embedding coloured by deviation z-scores
#'
#' One panel per annotation (default: the `n` most variable), cells placed
#' by a 2-D embedding (e.g. UMAP) and coloured by z with ArchR's
#' solarExtra palette, clipped to the 1st-99th percentile per panel.
#'
#' @param object A `chromVARDeviations` object.
#' @param embedding A cells x 2 matrix (rows in the order of the cells).
#' @param annotations Annotation names to show; `NULL` for the top `n`.
#' @param n Number of most variable annotations when `annotations` is NULL.
#' @return A ggplot object.
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
#'     package = "epione"))
#' dev <- computeDeviations(se, ix, threads = 1)
#' xy <- cbind(seq_len(ncol(se)), sin(seq_len(ncol(se))))
#' plotDeviationsEmbedding(dev, xy, n = 2)
#' @export
plotDeviationsEmbedding <- function(object, embedding, annotations = NULL,
                                    n = 6) {
    z <- .z_matrix(object)
    embedding <- as.matrix(embedding)
    if (nrow(embedding) != ncol(z) || ncol(embedding) < 2L) {
        .abort("'embedding' must have one row per cell (", ncol(z),
               ") and 2 columns, e.g. reducedDim(sce, 'UMAP').")
    }
    pick <- if (is.null(annotations)) .top_variable(z, n) else
        match(annotations, rownames(z))
    if (anyNA(pick)) .abort("unknown annotation(s) in 'annotations'.")
    df <- do.call(rbind, lapply(pick, function(i) {
        v <- z[i, ]
        lim <- stats::quantile(v, c(0.01, 0.99), na.rm = TRUE)
        data.frame(x = embedding[, 1L], y = embedding[, 2L],
                   z = pmin(pmax(v, lim[1L]), lim[2L]),
                   annotation = rownames(z)[i])
    }))
    df$annotation <- factor(df$annotation, levels = rownames(z)[pick])
    ggplot2::ggplot(df, ggplot2::aes(x = .data$x, y = .data$y,
                                     colour = .data$z)) +
        ggplot2::geom_point(size = 0.6) +
        ggplot2::scale_colour_gradientn(colours = .solar_extra) +
        ggplot2::facet_wrap(~annotation) +
        ggplot2::theme_bw() +
        ggplot2::labs(x = colnames(embedding)[1L],
                      y = colnames(embedding)[2L])
}

#' Mean deviation z-score per cell group, biclustered
#'
#' Mean z per (group, annotation) for the `n` most variable annotations,
#' rows and columns ordered by Ward clustering, drawn with ArchR's
#' solarExtra palette centred at 0.
#'
#' @param object A `chromVARDeviations` object.
#' @param groups One group label per cell (e.g. clusters).
#' @param n Number of most variable annotations.
#' @return A ggplot object (its data holds the group means).
#' @examples
#' se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
#'     package = "epione"))
#' ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
#'     package = "epione"))
#' dev <- computeDeviations(se, ix, threads = 1)
#' plotDeviationsHeatmap(dev, se$Cell_Type)
#' @export
plotDeviationsHeatmap <- function(object, groups, n = 30) {
    z <- .z_matrix(object)
    if (length(groups) != ncol(z) || anyNA(groups)) {
        .abort("'groups' must give one non-NA label per cell (", ncol(z),
               " cells).")
    }
    groups <- as.factor(groups)
    z <- z[.top_variable(z, n), , drop = FALSE]
    h <- vapply(levels(groups), function(g)
        rowMeans(z[, groups == g, drop = FALSE], na.rm = TRUE),
        numeric(nrow(z)))
    h <- matrix(h, nrow(z), dimnames = list(rownames(z), levels(groups)))
    ord <- function(m) if (nrow(m) > 2L) stats::hclust(stats::dist(m),
        method = "ward.D2")$order else seq_len(nrow(m))
    ra <- rownames(h)[ord(h)]
    cg <- colnames(h)[ord(t(h))]
    df <- data.frame(annotation = factor(rep(rownames(h), ncol(h)), ra),
                     group = factor(rep(colnames(h), each = nrow(h)), cg),
                     z = as.vector(h))
    lim <- max(abs(df$z), na.rm = TRUE)
    ggplot2::ggplot(df, ggplot2::aes(x = .data$annotation, y = .data$group,
                                     fill = .data$z)) +
        ggplot2::geom_tile() +
        ggplot2::scale_fill_gradientn(colours = .solar_extra,
                                      limits = c(-lim, lim)) +
        ggplot2::theme_minimal() +
        ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 60,
                                                           hjust = 1)) +
        ggplot2::labs(x = NULL, y = NULL, fill = "mean z")
}

# ---- ArchR project wrappers -------------------------------------------
# addBgdPeaks / getBgdPeaks / addDeviationsMatrix / getVarDeviations run the
# engines above on a project's peak set and Arrow files, as ArchR 1.0.3.

.peak_keys <- function(chr, start, end) paste0(chr, "_", start, "_", end)

.gr_keys <- function(gr) {
    .peak_keys(as.character(GenomicRanges::seqnames(gr)),
               GenomicRanges::start(gr), GenomicRanges::end(gr))
}

# PeakMatrix row sums over every cell of every Arrow file, in peak-set
# order (ArchR .getRowSums: the rowSums stored per chromosome, summed over
# files).
.peak_row_sums <- function(ArchRProj) {
    ps <- .project_peaks(ArchRProj)
    files <- getArrowFiles(ArchRProj)
    if (!length(files) || !"PeakMatrix" %in% getAvailableMatrices(files)) {
        .abort("the project's Arrow files have no PeakMatrix; add one with ",
               "addPeakMatrix().", kind = "input")
    }
    total <- 0
    for (f in files) {
        fdf <- as.data.frame(.h5read(f, "PeakMatrix/Info/FeatureDF"),
                             stringsAsFactors = FALSE)
        s <- numeric(nrow(fdf))
        for (chr in unique(fdf$seqnames)) {
            rows <- which(fdf$seqnames == chr)
            s[rows] <- .block_row_sums(f, paste0("PeakMatrix/", chr),
                                       max(fdf$idx[rows]))[fdf$idx[rows]]
        }
        at <- match(.gr_keys(ps), .peak_keys(fdf$seqnames, fdf$start, fdf$end))
        if (anyNA(at)) {
            .abort("the PeakMatrix of '", f, "' does not hold the project's ",
                   "peak set; run addPeakMatrix(ArchRProj, force = TRUE).",
                   kind = "input")
        }
        total <- total + s[at]
    }
    total
}

.block_row_sums <- function(file, group, nrow) {
    if ("rowSums" %in% .h5ls(file, group)) {
        return(as.numeric(.h5read(file, paste0(group, "/rowSums"))))
    }
    n <- length(.h5read(file, "PeakMatrix/Info/CellNames"))
    Matrix::rowSums(.read_block(file, group, nrow, n))
}

# GC per peak: the peak set's GC column (ArchR's addPeakSet adds it), else
# computed from the genome.
.project_peak_gc <- function(ArchRProj, genome) {
    ps <- .project_peaks(ArchRProj)
    if (!is.null(ps$GC)) return(as.numeric(ps$GC))
    genome <- .project_genome(ArchRProj, genome, required = FALSE)
    if (is.null(genome)) {
        .abort("the peak set has no GC column; pass genome = (an indexed ",
               "FASTA path, FaFile, BSgenome or DNAStringSet) so it can be ",
               "computed, or set it with peakSet$GC before addPeakSet().",
               kind = "input")
    }
    .gc_from_genome(ps, genome)
}

# ArchR's seed handling: addArchRThreads() switches R to L'Ecuyer-CMRG
# and .computeBgdPeaks() calls set.seed(1); chromVAR then draws with R's
# RNG. Evaluates `expr` in that state and restores the caller's RNG.
.with_archr_seed <- function(seed, expr) {
    env <- globalenv()
    kind <- RNGkind()
    old <- if (exists(".Random.seed", envir = env, inherits = FALSE))
        get(".Random.seed", envir = env) else NULL
    on.exit({
        suppressWarnings(RNGkind(kind[1L], kind[2L], kind[3L]))
        if (is.null(old)) {
            if (exists(".Random.seed", envir = env, inherits = FALSE))
                rm(".Random.seed", envir = env)
        } else {
            assign(".Random.seed", old, envir = env)
        }
    }, add = TRUE)
    RNGkind("L'Ecuyer-CMRG")
    set.seed(seed)
    expr
}

# ArchR's Background-Peaks object: chromVAR background on counts
# cbind(rowSums, 1) (so accessibility = rowSums + 1) and the GC bias, as a
# RangedSummarizedExperiment with assay bgdPeaks and ArchR's summary
# columns, rows sorted.
.bgd_peaks_se <- function(ranges, rowSums, gc, nIterations, w, binSize,
                          seed, threads) {
    .check_number(seed, "seed", whole = TRUE)
    counts <- cbind(rowSums, 1)
    bg <- .with_archr_seed(seed, .background_peaks(counts, gc, nIterations,
                                                   w, binSize, threads))
    gr <- GenomicRanges::GRanges(GenomicRanges::seqnames(ranges),
        IRanges::IRanges(GenomicRanges::start(ranges),
                         GenomicRanges::end(ranges)),
        value = rowSums, GC = gc)
    se <- SummarizedExperiment::SummarizedExperiment(
        assays = list(bgdPeaks = bg), rowRanges = gr)
    stat <- cbind(rowSums + 1, gc, GenomicRanges::end(ranges) -
                      GenomicRanges::start(ranges))
    rd <- SummarizedExperiment::rowData(se)
    for (k in 1:3) {
        v <- matrix(stat[bg, k], nrow = nrow(bg))
        nm <- c("bgdSum", "bgdGC", "bgdLength")[k]
        rd[[paste0(nm, "Mean")]] <- round(rowMeans(v), 3)
        rd[[paste0(nm, "Sd")]] <- round(matrixStats::rowSds(v), 3)
    }
    SummarizedExperiment::rowData(se) <- rd
    sort(GenomeInfoDb::sortSeqlevels(se))
}

.compute_bgd_peaks <- function(ArchRProj, nIterations, w, binSize, seed,
                               method, gc, threads) {
    .check_string(method, "method")
    if (tolower(method) != "chromvar") {
        .abort("method = '", method, "' (ArchR's nearest-neighbour ",
               "background) is not implemented; use method = \"chromVAR\".",
               kind = "input")
    }
    ps <- .project_peaks(ArchRProj)
    if (length(unique(GenomicRanges::width(ps))) > 1L) {
        .abort("the peaks have different widths; ArchR's chromVAR ",
               "background needs fixed-width peaks (e.g. ",
               "GenomicRanges::resize(peaks, 501, 'center')).", kind = "input")
    }
    .bgd_peaks_se(ps, .peak_row_sums(ArchRProj), gc, nIterations, w,
                  binSize, seed, threads)
}

.bgd_path <- function(ArchRProj) {
    p <- S4Vectors::metadata(ArchRProj@peakSet)$bgdPeaks
    if (is.null(p)) p <- ArchRProj@projectMetadata$bgdPeaks
    p
}

#' Background peaks of a project (ArchR's addBgdPeaks and getBgdPeaks)
#'
#' For every peak of the project's peak set, `nIterations` background
#' peaks with similar GC content and accessibility, as ArchR 1.0.3 computes
#' them: chromVAR's `getBackgroundPeaks` ([getBackgroundPeaks()],
#' bit-exact) on the peaks' `GC` and their PeakMatrix row sums over all
#' cells of all Arrow files (plus one, as ArchR's two-column count
#' matrix), under ArchR's random state: R's `L'Ecuyer-CMRG` generator
#' (which ArchR's `addArchRThreads()` selects) seeded with `seed`. ArchR
#' 1.0.3 always seeds with 1 whatever `seed` says; the default `seed = 1`
#' gives ArchR's indices. The caller's random state is restored afterwards.
#'
#' `addBgdPeaks()` saves them like ArchR (an RDS of a
#' `RangedSummarizedExperiment` with assay `bgdPeaks` and rowData `value`,
#' `GC`, `bgdSumMean`, `bgdSumSd`, `bgdGCMean`, `bgdGCSd`,
#' `bgdLengthMean`, `bgdLengthSd`) and records the path in
#' `metadata(peakSet)$bgdPeaks` and `projectMetadata$bgdPeaks`.
#' `getBgdPeaks()` reads them back (or computes them without saving when
#' none were added, or with `force = TRUE`).
#'
#' The GC content comes from the peak set's `GC` column; without it,
#' `genome` (or the project's genome) is used to compute it (and
#' `addBgdPeaks()` then adds the column to the peak set).
#'
#' @param ArchRProj An [EpioneProject-class] with a peak set and a
#'   PeakMatrix ([addPeakMatrix()]).
#' @param nIterations Background peaks per peak (default 50).
#' @param w,binSize chromVAR's kernel width and grid size (0.1, 50).
#' @param seed Seed of the L'Ecuyer-CMRG generator (default 1, ArchR's).
#' @param method `"chromVAR"` (the only one implemented).
#' @param outFile Where to save the RDS (default
#'   `<outputDirectory>/Background-Peaks.rds`).
#' @param force `addBgdPeaks()`: replace existing background peaks;
#'   `getBgdPeaks()`: recompute instead of reading the saved ones.
#' @param genome Genome for the GC content when the peak set has no `GC`
#'   column (see [addMotifAnnotations()]).
#' @param threads Number of C++ threads; results do not depend on it.
#' @return `addBgdPeaks()`: the project; `getBgdPeaks()`: the
#'   `RangedSummarizedExperiment` described above, rows in peak-set order.
#' @seealso [ArchR::addBgdPeaks()], [getBackgroundPeaks()],
#'   [addDeviationsMatrix()]
#' @examples
#' \donttest{
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "bgdproj"))
#' peaks <- unique(GenomicRanges::resize(anno$geneAnnotation$TSS[1:400],
#'     501, "center"))
#' set.seed(1)
#' peaks$GC <- runif(length(peaks), 0.3, 0.7)   # normally from the genome
#' proj <- addPeakMatrix(addPeakSet(proj, peaks))
#' proj <- addBgdPeaks(proj, force = TRUE, threads = 1)
#' bgd <- getBgdPeaks(proj)
#' dim(bgd)
#' }
#' @export
addBgdPeaks <- function(ArchRProj, nIterations = 50, w = 0.1, binSize = 50,
        seed = 1, method = "chromVAR",
        outFile = file.path(ArchRProj@projectMetadata$outputDirectory,
                            "Background-Peaks.rds"),
        force = FALSE, genome = NULL,
        threads = getOption("epione.threads", 2L)) {
    .project_peaks(ArchRProj)
    .check_flag(force, "force")
    old <- .bgd_path(ArchRProj)
    if (!is.null(old) && file.exists(old) && !force) {
        .abort("background peaks already exist ('", old, "'); use ",
               "force = TRUE to recompute them.", kind = "input")
    }
    gc <- .project_peak_gc(ArchRProj, genome)
    bgd <- .compute_bgd_peaks(ArchRProj, nIterations, w, binSize, seed,
                              method, gc, threads)
    .check_string(outFile, "outFile")
    dir.create(dirname(outFile), recursive = TRUE, showWarnings = FALSE)
    saveRDS(bgd, outFile)
    outFile <- normalizePath(outFile)
    if (is.null(ArchRProj@peakSet$GC)) ArchRProj@peakSet$GC <- gc
    S4Vectors::metadata(ArchRProj@peakSet)$bgdPeaks <- outFile
    ArchRProj@projectMetadata$bgdPeaks <- outFile
    ArchRProj
}

#' @rdname addBgdPeaks
#' @export
getBgdPeaks <- function(ArchRProj, nIterations = 50, w = 0.1, binSize = 50,
        seed = 1, method = "chromVAR", force = FALSE, genome = NULL,
        threads = getOption("epione.threads", 2L)) {
    ps <- .project_peaks(ArchRProj)
    path <- .bgd_path(ArchRProj)
    bgd <- if (!is.null(path) && !.check_flag(force, "force")) {
        if (!file.exists(path)) {
            .abort("the background peaks file '", path, "' is missing; ",
                   "run addBgdPeaks(ArchRProj, force = TRUE).", kind = "file")
        }
        readRDS(path)
    } else {
        .compute_bgd_peaks(ArchRProj, nIterations, w, binSize, seed, method,
                           .project_peak_gc(ArchRProj, genome), threads)
    }
    .in_peak_order(bgd, ps, "background peaks",
                   "addBgdPeaks(ArchRProj, force = TRUE)")
}

# Rows of a peak-indexed SummarizedExperiment in the order of `peaks`.
.in_peak_order <- function(se, peaks, what, fix) {
    at <- match(.gr_keys(peaks), .gr_keys(SummarizedExperiment::rowRanges(se)))
    if (nrow(se) != length(peaks) || anyNA(at)) {
        .abort("the ", what, " do not match the project's peak set; run ",
               fix, ".", kind = "input")
    }
    se[at, ]
}

#' Add a chromVAR deviations matrix to a project (ArchR's
#' addDeviationsMatrix)
#'
#' chromVAR deviations and z-scores of a peak annotation (e.g. motifs from
#' [addMotifAnnotations()]) for every cell, computed and stored per Arrow
#' file as ArchR 1.0.3 does: the expectation is each peak's share of the
#' PeakMatrix row sums over all Arrow files, the counts are the file's
#' PeakMatrix for the project's cells, the null comes from the background
#' peaks `bgdPeaks` (chromVAR's sampled method,
#' `computeDeviations(method = "sample")` with ArchR's NA rule: a value is
#' `NA` only where it is not a number (`NaN`, e.g. an expected count of 0),
#' where chromVAR also drops expected counts below 1). The result is
#' written into each Arrow file as ArchR's `Sparse.Assays.Matrix`: one
#' group `matrixName` whose
#' "seqnames" `deviations` and `z` hold the two assays (with `rowMeans` and
#' `rowVars`, used by [getVarDeviations()]). Read it with
#' `getMatrixFromProject(proj, matrixName)`.
#'
#' @param ArchRProj An [EpioneProject-class] with a peak set, a PeakMatrix
#'   and a peak annotation.
#' @param peakAnnotation Name of the peak annotation (default: the first).
#' @param matches Optional `RangedSummarizedExperiment` of peak x
#'   annotation matches instead of `peakAnnotation`.
#' @param bgdPeaks Background peaks ([getBgdPeaks()]).
#' @param matrixName Matrix name (default `"<annotation name>Matrix"`, e.g.
#'   `"MotifMatrix"`; `"MotifMatrix"` with `matches`).
#' @param out Assays to store: `"z"` and/or `"deviations"`.
#' @param binarize Binarize the PeakMatrix counts first.
#' @param threads Number of C++ threads; results do not depend on it.
#' @param verbose Print progress.
#' @param force Replace an existing matrix of that name.
#' @return The project (the Arrow files gain the matrix).
#' @seealso [ArchR::addDeviationsMatrix()], [computeDeviations()],
#'   [getVarDeviations()], [getMatrixFromProject()]
#' @examples
#' \donttest{
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "devproj"))
#' peaks <- unique(GenomicRanges::resize(anno$geneAnnotation$TSS[1:400],
#'     501, "center"))
#' set.seed(1)
#' peaks$GC <- runif(length(peaks), 0.3, 0.7)   # normally from the genome
#' proj <- addPeakMatrix(addPeakSet(proj, peaks))
#' # a toy annotation: random peak sets
#' m <- Matrix::sparseMatrix(i = sample(length(peaks), 150),
#'     j = rep(1:3, 50), x = TRUE, dims = c(length(peaks), 3),
#'     dimnames = list(NULL, c("A_1", "B_2", "C_3")))
#' se <- SummarizedExperiment::SummarizedExperiment(list(matches = m),
#'     rowRanges = getPeakSet(proj))
#' proj <- addBgdPeaks(proj, force = TRUE, threads = 1)
#' proj <- addDeviationsMatrix(proj, matches = se, threads = 1,
#'     verbose = FALSE, force = TRUE)
#' getMatrixFromProject(proj, "MotifMatrix", verbose = FALSE)
#' getVarDeviations(proj, plot = FALSE)
#' }
#' @export
addDeviationsMatrix <- function(ArchRProj, peakAnnotation = NULL,
        matches = NULL, bgdPeaks = getBgdPeaks(ArchRProj, method = "chromVAR"),
        matrixName = NULL, out = c("z", "deviations"), binarize = FALSE,
        threads = getOption("epione.threads", 2L), verbose = TRUE,
        force = FALSE) {
    ps <- .project_peaks(ArchRProj)
    .check_flag(force, "force")
    .check_flag(binarize, "binarize")
    .check_flag(verbose, "verbose")
    threads <- .check_threads(threads)
    if (!length(out) || !all(out %in% c("z", "deviations")) ||
        anyDuplicated(out)) {
        .abort("'out' must be \"z\", \"deviations\" or both.", kind = "input")
    }
    if (is.null(matches)) {
        anno <- getPeakAnnotation(ArchRProj, peakAnnotation)
        matches <- .read_annotation_part(anno$Matches, "Matches")
        if (is.null(matrixName)) matrixName <- paste0(anno$Name, "Matrix")
    } else if (is.null(matrixName)) {
        matrixName <- "MotifMatrix"
    }
    .check_string(matrixName, "matrixName")
    if (!methods::is(matches, "RangedSummarizedExperiment")) {
        .abort("'matches' must be a RangedSummarizedExperiment of peak x ",
               "annotation matches (see getMatches()).", kind = "input")
    }
    matches <- .in_peak_order(matches, ps, "annotation matches",
                              "addMotifAnnotations(ArchRProj, force = TRUE)")
    an <- .as_matches(matches, NULL, length(ps))
    bg <- .as_background(.in_peak_order(bgdPeaks, ps, "background peaks",
        "addBgdPeaks(ArchRProj, force = TRUE)"), length(ps))
    rs <- .peak_row_sums(ArchRProj)
    for (a in .input_arrows(ArchRProj)) {
        if (!length(a$cells)) next
        .check_new_matrix(a$file, matrixName, force)
        if (verbose) message("chromVAR deviations: ", a$sample)
        counts <- .peak_counts(a, ps, binarize)
        # ArchR keeps cells whose expected count is below chromVAR's
        # threshold of 1, so no threshold here (min_expected = 0).
        res <- .core(epi_chromvar_sample(counts, an$matches, bg, rs / sum(rs),
                                         0, threads, verbose))
        # ArchR turns NaN (e.g. 0 / 0 when no background peak has a count)
        # into NA.
        for (k in c("deviations", "z")) res[[k]][is.nan(res[[k]])] <- NA
        .write_deviations(a$file, matrixName, res, colnames(an$matches),
                          a$cells, out)
    }
    ArchRProj
}

# One Arrow file's PeakMatrix (project cells) with rows in peak-set order.
.peak_counts <- function(a, peaks, binarize) {
    se <- getMatrixFromArrow(a$file, "PeakMatrix", cellNames = paste0(
        a$sample, "#", a$cells), binarize = binarize, verbose = FALSE)
    at <- match(.gr_keys(peaks), .gr_keys(SummarizedExperiment::rowRanges(se)))
    if (anyNA(at)) {
        .abort("the PeakMatrix of '", a$file, "' does not hold the ",
               "project's peak set; run addPeakMatrix(ArchRProj, ",
               "force = TRUE).", kind = "input")
    }
    methods::as(SummarizedExperiment::assay(se)[at, , drop = FALSE],
                "generalMatrix")
}

# ArchR's layout (.addDeviationsMatrix): FeatureDF rows ordered by
# "seqnames" (deviations before z), Units "DeviationScores"/"Deviations",
# one sparse block per assay with rowMeans and rowVars.
.write_deviations <- function(file, group, res, names, cells, out) {
    out <- sort(out)
    n <- length(names)
    fdf <- data.frame(seqnames = rep(out, each = n),
                      idx = rep(seq_len(n), length(out)),
                      name = rep(names, length(out)), stringsAsFactors = FALSE)
    units <- c(if ("z" %in% out) "DeviationScores",
               if ("deviations" %in% out) "Deviations")
    .write_matrix_info(file, group, "Sparse.Assays.Matrix", units, cells, fdf,
                       data.frame(params = "chromVAR"))
    for (a in out) {
        m <- res[[a]]
        g <- paste0(group, "/", a)
        .core(epi_arrow_write_sparse(file, g, methods::as(m, "CsparseMatrix")))
        .arrow_h5write(file, paste0(g, "/rowMeans"), rowMeans(m), c(1, n))
        .arrow_h5write(file, paste0(g, "/rowVars"),
                       matrixStats::rowVars(m), c(1, n))
    }
    .arrow_h5write(file, paste0(group, "/Info/Completed"), "Finished")
}

#' Variability of deviations across a project's cells (ArchR's
#' getVarDeviations)
#'
#' Combines the per-Arrow-file means and variances of the z-scores stored
#' by [addDeviationsMatrix()] (or ArchR) into the variance over all cells
#' (ArchR's pooled formula, an `NA` variance counted as 0), ranks the
#' annotations by it.
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param name Deviations matrix name (default `"MotifMatrix"`).
#' @param plot Return the ArchR-style rank plot ([plotVarDev()]) instead of
#'   the table.
#' @param n Number of top annotations labelled in the plot.
#' @return With `plot = FALSE`, a `DataFrame` ordered by decreasing
#'   variability with columns `seqnames` (`"z"`), `idx`, `name`,
#'   `combinedVars`, `combinedMeans`, `rank`; else a ggplot.
#' @seealso [ArchR::getVarDeviations()], [addDeviationsMatrix()]
#' @examples
#' \donttest{
#' example(addDeviationsMatrix, run.donttest = TRUE)
#' getVarDeviations(proj, plot = TRUE, n = 2)
#' }
#' @export
getVarDeviations <- function(ArchRProj, name = "MotifMatrix", plot = TRUE,
                             n = 25) {
    .check_project(ArchRProj)
    .check_string(name, "name")
    .check_flag(plot, "plot")
    files <- getArrowFiles(ArchRProj)
    if (!length(files) || !name %in% getAvailableMatrices(files)) {
        .abort("the project has no matrix '", name, "'; add it with ",
               "addDeviationsMatrix().", kind = "input")
    }
    fdf <- as.data.frame(.h5read(files[[1]], paste0(name, "/Info/FeatureDF")),
                         stringsAsFactors = FALSE)
    fdf <- fdf[fdf$seqnames == "z", , drop = FALSE]
    if (!nrow(fdf)) {
        .abort("matrix '", name, "' has no z-scores; run ",
               "addDeviationsMatrix(out = c(\"z\", \"deviations\")).")
    }
    read <- function(what) vapply(files, function(f) as.numeric(.h5read(f,
        paste0(name, "/z/", what)))[fdf$idx], numeric(nrow(fdf)))
    ns <- vapply(files, function(f) length(.h5read(f,
        paste0(name, "/Info/CellNames"))), 1)
    comb <- .combine_variances(matrix(read("rowMeans"), nrow(fdf)),
                               matrix(read("rowVars"), nrow(fdf)), ns)
    df <- S4Vectors::DataFrame(seqnames = S4Vectors::Rle(fdf$seqnames),
        idx = fdf$idx, name = fdf$name, comb)
    df <- df[order(df$combinedVars, decreasing = TRUE), , drop = FALSE]
    df$rank <- seq_len(nrow(df))
    if (plot) return(plotVarDev(as.data.frame(df), n = n))
    df
}

# ArchR .combineVariances: pooled variance of groups with means m, sample
# variances v and sizes ns (columns).
.combine_variances <- function(m, v, ns) {
    v[is.na(v)] <- 0
    mean <- rowSums(t(t(m) * ns)) / sum(ns)
    ss <- rowSums(t(t(v) * (ns - 1)) + t(t(m^2) * ns))
    data.frame(combinedVars = (ss - sum(ns) * mean^2) / (sum(ns) - 1),
               combinedMeans = mean)
}
