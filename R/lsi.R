# Iterative LSI (ArchR addIterativeLSI) on a features x cells matrix. The
# steps and their order follow ArchR 1.0.3 R/IterativeLSI.R (.computeLSI,
# .projectLSI, .LSICluster, .identifyVarFeatures); sums, TF-IDF and
# projection run in C++ (inst/include/epione/lsi.hpp). The truncated SVD is
# a block Lanczos in C++ (inst/include/epione/svd.hpp, svdMethod = "epione")
# or irlba::irlba(X, nDims, nDims) after set.seed(seed), exactly as ArchR
# (svdMethod = "irlba").

#' @include project.R
#' @importFrom methods setGeneric setMethod new as
#' @importClassesFrom SummarizedExperiment SummarizedExperiment
#' @importClassesFrom SingleCellExperiment SingleCellExperiment
#' @importFrom ggplot2 .data
NULL

#' Iterative latent semantic indexing (ArchR's addIterativeLSI)
#'
#' Reduces a binarized tile (or peak) matrix with ArchR's iterative LSI:
#' iteration 1 uses the most accessible features, later iterations the
#' features most variable across clusters of the previous iteration.
#' Arguments, defaults and results are those of ArchR 1.0.x
#' `addIterativeLSI()`, applied to a matrix or SummarizedExperiment instead
#' of an ArchR project.
#'
#' @param x A features x cells `dgCMatrix` (or any sparse matrix), a
#'   `SummarizedExperiment` or a `SingleCellExperiment`. Rows are tiles or
#'   peaks; their order breaks ties in the feature selection as in ArchR.
#' @param iterations Number of LSI iterations.
#' @param clusterParams List of arguments for the clustering between
#'   iterations (see [addClusters()]): `resolution`, `sampleCells`,
#'   `maxClusters`, `n.start`; an element of length > 1 gives one value
#'   per iteration.
#' @param firstSelection `"top"` (most accessible features; needs binary
#'   data) or `"var"` (most variable log2 counts; needs `binarize = FALSE`).
#' @param depthCol Column of `colData(x)` with the depth (ArchR: nFrags);
#'   `NULL` uses the column sums of `x` (ArchR's fallback).
#' @param depth For a matrix `x`: the depth per cell (fragments); `NULL`
#'   uses the column sums.
#' @param varFeatures Number of features per iteration (>= 1000, as ArchR).
#' @param dimsToUse LSI dimensions to compute (`max(dimsToUse)`) and use.
#' @param LSIMethod 1 `"tf-logidf"`, 2 `"log(tf-idf)"` or 3
#'   `"logtf-logidf"`.
#' @param scaleDims Row-wise z-score the dimensions before clustering.
#' @param corCutOff Dimensions whose |correlation| to log10(depth + 1)
#'   exceeds this are not used for clustering.
#' @param binarize Binarize the matrix first.
#' @param outlierQuantiles Cells outside these quantiles of the feature
#'   counts are left out of the SVD fit and projected afterwards.
#' @param filterBias Reassign small depth-biased clusters between iterations.
#' @param sampleCellsPre Cells sampled for the fit of all but the last
#'   iteration (`NULL`: all).
#' @param projectCellsPre Project all cells in every iteration.
#' @param sampleCellsFinal Cells sampled for the fit of the last iteration.
#' @param selectionMethod `"var"` or `"vmr"` for later iterations.
#' @param scaleTo Scale factor of the TF-IDF.
#' @param totalFeatures Candidate features (most accessible) for variable
#'   feature selection.
#' @param filterQuantile Quantile of the most accessible features dropped in
#'   iteration 1.
#' @param excludeChr Chromosomes to exclude (needs `rowRanges`).
#' @param keep0lsi Keep cells with no counts in the chosen features.
#' @param svdMethod `"epione"` (default): the truncated SVD runs in C++ (a
#'   thick-restarted block Lanczos, threaded, about 3 times faster than
#'   irlba) to a residual of 1e-7 of the largest singular value; singular
#'   values agree with ArchR's to ~1e-7 relative and vectors to |cor| >
#'   0.99999, but the sign of each LSI dimension is chosen by a rule (the
#'   cells' coordinates sum to >= 0), not by irlba's arbitrary one, so later
#'   iterations can differ slightly from ArchR's (scaleDims is not sign
#'   invariant). `"irlba"`: ArchR's own call `irlba::irlba(X, nDims, nDims)`,
#'   identical to ArchR bit for bit.
#' @param name Name of the `reducedDim` (and of the `metadata` entry).
#' @param seed Seed; the caller's RNG state is restored afterwards.
#' @param threads Threads for the C++ steps.
#' @param verbose Print progress messages.
#' @param assay.type Assay of a SummarizedExperiment to use.
#' @param ... Arguments passed on to the SummarizedExperiment method.
#' @return A `SingleCellExperiment` with `reducedDim(, name)` (the unscaled
#'   LSI coordinates, cells x dims, as ArchR stores them) and
#'   `metadata(, name)`: the final LSI model (`svd`, `rowSm`, `idx`, `nCol`,
#'   `corToDepth`, `LSIFeatures`, `outliers`, `exclude`), `iterations`
#'   (features, clusters and model of each iteration) and `params`. Cells
#'   dropped because they have no counts in the features are removed.
#' @examples
#' x <- Matrix::rsparsematrix(3000, 300, 0.05)
#' x@x[] <- 1
#' sce <- iterativeLSI(x, varFeatures = 1000, dimsToUse = 1:5,
#'                     totalFeatures = 20000, verbose = FALSE)
#' dim(SingleCellExperiment::reducedDim(sce, "IterativeLSI"))
#' @export
setGeneric("iterativeLSI", function(x, ...) standardGeneric("iterativeLSI"))

#' @rdname iterativeLSI
#' @export
setMethod("iterativeLSI", "ANY", function(x, depth = NULL, ...) {
    x <- .as_dgc(x, "x")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = x))
    if (!is.null(depth)) {
        if (length(depth) != ncol(x))
            .abort("'depth' must have one value per cell (", ncol(x),
                   "), not ", length(depth), kind = "input")
        sce$nFrags <- depth
    }
    iterativeLSI(sce, depthCol = if (is.null(depth)) NULL else "nFrags",
                 ...)
})

#' @rdname iterativeLSI
#' @export
setMethod("iterativeLSI", "SummarizedExperiment", function(x,
        iterations = 2,
        clusterParams = list(resolution = 2, sampleCells = 10000,
                             maxClusters = 6, n.start = 10),
        firstSelection = "top", depthCol = "nFrags", varFeatures = 25000,
        dimsToUse = 1:30, LSIMethod = 2, scaleDims = TRUE, corCutOff = 0.75,
        binarize = TRUE, outlierQuantiles = c(0.02, 0.98), filterBias = TRUE,
        sampleCellsPre = 10000, projectCellsPre = FALSE,
        sampleCellsFinal = NULL, selectionMethod = "var", scaleTo = 10000,
        totalFeatures = 500000, filterQuantile = 0.995, excludeChr = c(),
        keep0lsi = FALSE, name = "IterativeLSI", seed = 1,
        threads = getOption("epione.threads", 2L), verbose = TRUE,
        assay.type = 1L, svdMethod = c("epione", "irlba")) {
    p <- .lsi_params(as.list(environment()))
    if (is.null(colnames(x))) colnames(x) <- paste0("cell", seq_len(ncol(x)))
    mat <- .as_dgc(SummarizedExperiment::assay(x, assay.type), "assay")
    .check_lsi_input(mat, p)
    depth <- .lsi_depth(x, mat, p$depthCol)
    samples <- .lsi_samples(x)
    feature_ok <- .lsi_feature_filter(x, p$excludeChr)
    out <- .with_seed(p$seed, .iterative_lsi(mat, depth, samples,
                                             feature_ok, p))
    .lsi_to_sce(x, out, p)
})

# Normalises and checks the arguments once; returns the parameter list.
.lsi_params <- function(a) {
    a$x <- NULL
    a$threads <- .check_threads(a$threads)
    .check_flag(a$verbose, "verbose")
    for (f in c("scaleDims", "binarize", "filterBias", "projectCellsPre",
                "keep0lsi")) .check_flag(a[[f]], f)
    a$iterations <- .lsi_whole(a$iterations, "iterations", 1)
    a$varFeatures <- .lsi_whole(a$varFeatures, "varFeatures", 1000,
        "ArchR refuses fewer than 1000 varFeatures; use varFeatures = 1000")
    .lsi_dims(a$dimsToUse)
    a$LSIMethod <- .lsi_method(a$LSIMethod)
    .check_number(a$corCutOff, "corCutOff")
    .check_number(a$scaleTo, "scaleTo")
    a$firstSelection <- match.arg(tolower(a$firstSelection),
                                  c("top", "var", "variable"))
    a$selectionMethod <- match.arg(tolower(a$selectionMethod),
                                   c("var", "vmr"))
    if (!is.list(a$clusterParams))
        .abort("'clusterParams' must be a list, e.g. list(resolution = 2)",
               kind = "input")
    a$svdMethod <- .lsi_svd_method(a$svdMethod)
    a
}

.lsi_svd_method <- function(m) {
    if (is.null(m)) return("epione")
    ok <- c("epione", "irlba")
    if (is.character(m) && length(m) >= 1L && all(m %in% ok)) return(m[1L])
    .abort("'svdMethod' must be \"epione\" or \"irlba\", not ", deparse1(m),
           kind = "input")
}

.lsi_whole <- function(v, name, min, hint = NULL) {
    ok <- length(v) >= 1L && is.numeric(v) && all(is.finite(v)) &&
        all(v == round(v)) && all(v >= min)
    if (!ok) .abort("'", name, "' must be whole number(s) >= ", min, ", not ",
                    deparse1(v), if (!is.null(hint)) paste0("; ", hint),
                    kind = "input")
    as.integer(v)
}

.lsi_dims <- function(d) {
    ok <- length(d) >= 2L && is.numeric(d) && all(is.finite(d)) &&
        all(d >= 1) && all(d == round(d))
    if (!ok) .abort("'dimsToUse' must be at least two whole numbers >= 1 ",
                    "(e.g. 1:30), not ", deparse1(d), kind = "input")
}

.lsi_method <- function(m) {
    names <- c("tf-logidf", "log(tf-idf)", "logtf-logidf")
    if (is.character(m) && length(m) == 1L && tolower(m) %in% names)
        return(match(tolower(m), names))
    if (is.numeric(m) && length(m) == 1L && m %in% 1:3) return(as.integer(m))
    .abort("'LSIMethod' must be 1, 2, 3 or one of ",
           paste(dQuote(names, FALSE), collapse = ", "), ", not ",
           deparse1(m), kind = "input")
}

# Any sparse or dense numeric matrix -> dgCMatrix (a dense input is the
# caller's; sparse inputs are never densified).
.as_dgc <- function(x, what) {
    if (inherits(x, "dgCMatrix")) return(x)
    if (inherits(x, "sparseMatrix") || is.matrix(x)) {
        x <- methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix")
        return(methods::as(x, "dMatrix"))
    }
    .abort("'", what, "' must be a features x cells sparse matrix ",
           "(dgCMatrix), SummarizedExperiment or SingleCellExperiment, ",
           "not a ", class(x)[1L], kind = "input")
}

.check_lsi_input <- function(mat, p) {
    # min/max instead of elementwise tests: no nnz-long logical copies.
    r <- if (length(mat@x)) range(mat@x) else c(1, 1)
    if (anyNA(r) || any(!is.finite(r)))
        .abort("the matrix contains NA or infinite values; replace them ",
               "(e.g. x[is.na(x)] <- 0) before iterativeLSI()",
               kind = "input")
    if (r[1L] < 0)
        .abort("the matrix has negative values; iterativeLSI() needs ",
               "counts (not log or scaled values)", kind = "input")
    if (ncol(mat) <= max(p$dimsToUse))
        .abort("only ", ncol(mat), " cells for max(dimsToUse) = ",
               max(p$dimsToUse), " dimensions; use fewer dimsToUse",
               kind = "input")
    if (anyDuplicated(colnames(mat)))
        .abort("cells (columns) need unique names; fix colnames(x)",
               kind = "input")
    if (!p$binarize && p$firstSelection == "top" && any(r != 1))
        .abort("firstSelection = \"top\" needs binary data; set ",
               "binarize = TRUE", kind = "input")
    if (p$binarize && p$firstSelection != "top")
        .abort("variable first selection needs raw counts; set ",
               "binarize = FALSE or firstSelection = \"top\"", kind = "input")
}

.lsi_depth <- function(x, mat, depthCol) {
    cd <- SummarizedExperiment::colData(x)
    if (!is.null(depthCol) && !depthCol %in% colnames(cd))
        .abort("colData(x) has no depth column '", depthCol, "'; add it ",
               "(e.g. x$", depthCol, " <- fragments per cell) or set ",
               "depthCol = NULL to use the column sums", kind = "input")
    d <- if (!is.null(depthCol)) cd[[depthCol]] else Matrix::colSums(mat)
    if (!is.numeric(d) || anyNA(d) || any(d < 0))
        .abort("depth column '", depthCol, "' must be non-negative numbers ",
               "without NA", kind = "input")
    stats::setNames(log10(as.numeric(d) + 1), colnames(mat))
}

.lsi_samples <- function(x) {
    cd <- SummarizedExperiment::colData(x)
    if ("Sample" %in% colnames(cd)) as.character(cd$Sample)
    else rep("Sample1", ncol(x))
}

.lsi_feature_filter <- function(x, excludeChr) {
    if (!length(excludeChr)) return(rep(TRUE, nrow(x)))
    rr <- SummarizedExperiment::rowRanges(x)
    if (is.null(rr) || !length(rr))
        .abort("'excludeChr' needs rowRanges (tile coordinates) on x",
               kind = "input")
    !(as.character(GenomicRanges::seqnames(rr)) %in% excludeChr)
}

# ---------------------------------------------------------------------------
# The iteration loop (ArchR addIterativeLSI body).
.iterative_lsi <- function(mat, depth, samples, feature_ok, p) {
    set.seed(p$seed)
    p <- .lsi_small_data(p, ncol(mat))
    total <- .lsi_total(mat, feature_ok, p)
    .lsi_loop(.lsi_first_features(total, p), depth, p,
        function(feats, j) .lsi_partial(mat, feats, depth, samples, p, j),
        function(cl, feats, j) .lsi_var_features(mat, cl, total, feats, p,
                                                 j))
}

# ArchR's iterations from the first features: fit, cluster, pick variable
# features, refit. `fit_on(feats, j)` and `var_features(cl, feats, j)` read
# the matrix in memory or stream it from the Arrow files.
.lsi_loop <- function(feats, depth, p, fit_on, var_features) {
    force(feats)   # before any fit draws from the RNG, as ArchR orders it
    .lsi_msg(p, "Running LSI (1 of ", p$iterations, ") on ", length(feats),
             " top features")
    fit <- fit_on(feats, 1L)
    iters <- list(list(features = feats, lsi = fit))
    j <- 1L
    while (j < p$iterations) {
        cl <- .lsi_cluster(fit, depth, p, j)
        iters[[j]]$clusters <- cl
        .lsi_msg(p, "Identified ", length(unique(cl$clusters)), " clusters")
        j <- j + 1L
        feats <- var_features(cl, feats, j)
        .lsi_msg(p, "Running LSI (", j, " of ", p$iterations, ") on ",
                 length(feats), " variable features")
        fit <- fit_on(feats, j)
        iters[[j]] <- list(features = feats, lsi = fit)
    }
    list(lsi = fit, iterations = iters, params = p)
}

.lsi_msg <- function(p, ...) if (p$verbose) message("iterativeLSI: ", ...)

# ArchR switches these off below 500 cells; do the same, so small data sets
# give ArchR's answer.
.lsi_small_data <- function(p, n) {
    if (n < 500) {
        .lsi_msg(p, "fewer than 500 cells: filterBias, outlierQuantiles, ",
                 "sampleCellsPre and testBias disabled (as ArchR)")
        p$filterBias <- FALSE
        p$outlierQuantiles <- c(0, 1)
        p["sampleCellsPre"] <- list(NULL)
        p$clusterParams$testBias <- FALSE
    }
    if (!is.null(p$sampleCellsPre) && n < p$sampleCellsPre)
        p["sampleCellsPre"] <- list(NULL)
    if (!is.null(p$sampleCellsFinal) && n < p$sampleCellsFinal)
        p["sampleCellsFinal"] <- list(NULL)
    p
}

# Total accessibility (top) or log2 variance (var) per feature; NA for
# features on excluded chromosomes (ArchR removes those rows).
.lsi_total <- function(mat, feature_ok, p) {
    all_rows <- seq_len(nrow(mat)) - 1L
    all_cols <- seq_len(ncol(mat)) - 1L
    if (p$firstSelection == "top") {
        s <- .core(epi_lsi_row_sums(mat, all_rows, nrow(mat), all_cols,
                                    p$binarize))
    } else {
        l <- mat
        l@x <- log2(l@x + 1)
        n <- ncol(mat)
        m <- Matrix::rowSums(l) / n
        l@x <- l@x^2
        s <- (Matrix::rowSums(l) - n * m^2) / (n - 1)
        s[m <= 0] <- NA
    }
    s[!feature_ok] <- NA
    s
}

.lsi_first_features <- function(total, p) {
    cand <- which(!is.na(total))
    v <- total[cand]
    n <- p$varFeatures[1L]
    if (p$firstSelection == "top") {
        rm_top <- floor((1 - p$filterQuantile) * p$totalFeatures)
        if (sum(v > 0) > 2.25 * n) {
            top <- utils::head(order(v, decreasing = TRUE), n + rm_top)
            top <- top[-seq_len(rm_top)]
        } else {
            message("Not Enough Non-Zero Features to Filter!")
            top <- utils::head(order(v, decreasing = TRUE), n)
        }
        top <- sort(top)
        top <- top[v[top] > 0]
    } else {
        if (n > 0.5 * length(v))
            .abort("varFeatures must be less than half of the features for ",
                   "firstSelection = \"var\"", kind = "input")
        top <- sort(utils::head(order(v, decreasing = TRUE), n))
    }
    if (length(top) < n)
        .abort("not enough features with counts (", length(top), ") for ",
               "varFeatures = ", n, "; lower varFeatures", kind = "input")
    cand[top]
}

# One LSI iteration (ArchR .LSIPartialMatrix): fit on all or sampled cells,
# project the others when asked.
.lsi_partial <- function(mat, feats, depth, samples, p, j) {
    last <- j == p$iterations
    n_sample <- if (!last) p$sampleCellsPre else p$sampleCellsFinal
    cells <- colnames(mat)
    if (is.null(n_sample)) {
        fit <- .compute_lsi(mat, feats, seq_len(ncol(mat)), p)
    } else {
        picked <- .sample_by_sample(cells, samples, depth, n_sample,
                                    p$outlierQuantiles)
        fit <- .compute_lsi(mat, feats, match(picked, cells), p)
        if (.lsi_project_all(p, j)) {
            fit <- .lsi_projected(fit,
                .project_lsi(mat, fit, seq_len(ncol(mat)), p), cells)
        }
    }
    .lsi_depth_cor(fit, feats, depth)
}

# The fit's coordinates become the projection of every cell; cells that
# could not be projected (no counts in the features) are excluded.
.lsi_projected <- function(fit, proj, cells) {
    keep <- !is.na(proj[, 1L])
    fit$exclude <- cells[!keep]
    fit$matSVD <- proj[keep, , drop = FALSE]
    fit
}

# The iteration's features and the correlation of every LSI dimension with
# log10 depth (scaled as ArchR's filter sees it, and raw).
.lsi_depth_cor <- function(fit, feats, depth) {
    fit$LSIFeatures <- feats
    d <- depth[rownames(fit$matSVD)]
    fit$corToDepth <- list(
        scaled = abs(stats::cor(.scale_dims(fit$matSVD), d))[, 1L],
        none = abs(stats::cor(fit$matSVD, d))[, 1L])
    fit
}

.lsi_project_all <- function(p, j) {
    sc <- p$clusterParams$sampleCells
    sample_j <- if (is.null(sc)) p$sampleCellsPre
        else if (!is.na(sc[j])) sc[j]
        else if (!is.na(sc[1L])) sc[1L] else p$sampleCellsPre
    bigger <- !is.null(sample_j) && !is.null(p$sampleCellsPre) &&
        sample_j > p$sampleCellsPre
    j == p$iterations || p$projectCellsPre || bigger
}

# ArchR .sampleBySample / .filterSample: per sample, cells within the
# halved outlier quantiles of depth, sampled with R's RNG; sorted names.
.sample_by_sample <- function(cells, samples, depth, n, oq, factor = 2) {
    if (n >= length(cells)) return(cells)
    n_per <- ceiling((n / length(samples)) * table(samples))
    split_cells <- split(cells, samples)
    split_depth <- split(depth, samples)
    out <- lapply(seq_along(split_cells), function(k) {
        x <- split_cells[[k]]
        v <- split_depth[[k]]
        size <- n_per[names(split_cells)[k]]
        idx <- seq_along(x)
        if (!is.null(oq)) {
            q <- stats::quantile(v, probs = c(min(oq) / factor,
                                              1 - ((1 - max(oq)) / factor)))
            idx <- which(v >= q[1L] & v <= q[2L])
        }
        if (length(idx) >= size) sample(x = x[idx], size = size)
        else sample(x = x, size = size)
    })
    sort(unlist(out))
}

# ArchR .computeLSI on the columns `cols` (1-based) and rows `feats`.
.compute_lsi <- function(mat, feats, cols, p) {
    set.seed(p$seed)
    n_dim <- max(p$dimsToUse)
    map <- .row_map(nrow(mat), feats)
    col_sm <- .core(epi_lsi_col_sums(mat, map, cols - 1L, p$binarize,
                                     p$threads))
    if (p$keep0lsi) col_sm[col_sm == 0] <- 1
    zero <- col_sm == 0
    exclude <- colnames(mat)[cols[zero]]
    if (any(zero)) {
        .warn("Filtering ", sum(zero), " of ", length(cols), " cells with 0 ",
              "counts in the LSI features; increase varFeatures or set ",
              "keep0lsi = TRUE", kind = "data")
        cols <- cols[!zero]
        col_sm <- col_sm[!zero]
    }
    all_cols <- cols
    out <- integer(0)
    if (!is.null(p$outlierQuantiles)) {
        q <- stats::quantile(col_sm, probs = c(min(p$outlierQuantiles),
                                               max(p$outlierQuantiles)))
        out <- which(col_sm <= q[1L] | col_sm >= q[2L])
    }
    fit_cols <- if (length(out)) cols[-out] else cols
    fit_sm <- if (length(out)) col_sm[-out] else col_sm
    if (length(fit_cols) <= n_dim)
        .abort("only ", length(fit_cols), " cells left for the SVD after ",
               "removing empty and outlier cells; need more than ", n_dim,
               " (lower dimsToUse or widen outlierQuantiles)", kind = "data")
    row_sm <- .core(epi_lsi_row_sums(mat, map, length(feats), fit_cols - 1L,
                                     p$binarize))
    idx <- which(row_sm > 0)
    row_sm <- row_sm[idx]
    map2 <- .row_map(nrow(mat), feats[idx])
    X <- .lsi_tfidf_matrix(mat, map2, length(idx), fit_cols, fit_sm, row_sm,
                           p)
    svd <- .lsi_svd(X, n_dim, p)
    mat_svd <- .lsi_coords(svd$v, svd$d, colnames(mat)[fit_cols])
    fit <- list(matSVD = mat_svd, rowSm = row_sm, nCol = length(fit_cols),
                exclude = exclude, idx = idx, svd = svd,
                binarize = p$binarize, scaleTo = p$scaleTo,
                nDimensions = n_dim, LSIMethod = p$LSIMethod,
                keep0lsi = p$keep0lsi, outliers = NA, seed = p$seed,
                rows = feats[idx])
    if (length(out)) {
        fit$outliers <- colnames(mat)[cols[out]]
        proj <- .project_lsi(mat, fit, cols[out], p)
        fit$matSVD <- rbind(fit$matSVD, proj)[colnames(mat)[all_cols], ,
                                              drop = FALSE]
    }
    fit
}

.row_map <- function(n, rows) {
    map <- rep(-1L, n)
    map[rows] <- seq_along(rows) - 1L
    map
}

.lsi_tfidf_matrix <- function(mat, map, n_rows, cols, col_sm, row_sm, p) {
    s <- .core(epi_lsi_tfidf(mat, map, n_rows, cols - 1L, col_sm, row_sm,
                             length(cols), p$LSIMethod, p$scaleTo,
                             p$binarize, p$threads))
    methods::new("dgCMatrix", p = s$p, i = s$i, x = s$x, Dim = s$Dim,
                 Dimnames = list(NULL, colnames(mat)[cols]))
}

# Truncated SVD of the TF-IDF matrix. "irlba" is ArchR's exact call (bit
# parity). "epione" (inst/include/epione/svd.hpp) starts from the vector
# irlba would draw, rnorm(ncol(X)), so R's RNG stream after the SVD (and
# every later sample() / clustering start) is the one ArchR sees.
.lsi_svd <- function(X, n_dim, p) {
    if (identical(p$svdMethod, "irlba")) return(irlba::irlba(X, n_dim, n_dim))
    if (n_dim >= min(dim(X)))
        .abort("the LSI matrix is ", nrow(X), " x ", ncol(X), "; ",
               "max(dimsToUse) = ", n_dim, " must be below both; lower ",
               "dimsToUse or raise varFeatures", kind = "input")
    v0 <- stats::rnorm(ncol(X))
    s <- .core(epi_lsi_svd(X, n_dim, v0, 1e-7, c(0L, 0L, 0L), 1000L,
                           p$threads))
    if (!s$converged)
        .warn("the truncated SVD stopped at residual ", signif(s$residual, 2),
              " (wanted 1e-7); results may be inaccurate; try ",
              "svdMethod = \"irlba\"", kind = "numeric")
    s[c("d", "u", "v", "iter", "mprod")]
}

# v %*% diag(d) with ArchR's names (LSI1..n).
.lsi_coords <- function(v, d, cells) {
    m <- v * rep(d, each = nrow(v))
    dimnames(m) <- list(cells, paste0("LSI", seq_along(d)))
    m
}

# ArchR .projectLSI: coordinates t(X) %*% u %*% diag(1/d) %*% diag(d);
# cells without counts in the fitted rows get NA rows (unless keep0lsi).
.project_lsi <- function(mat, fit, cols, p) {
    map <- .row_map(nrow(mat), fit$rows)
    tu <- .core(epi_lsi_project(mat, map, cols - 1L, fit$rowSm, fit$nCol,
                                fit$svd$u, fit$keep0lsi, fit$LSIMethod,
                                fit$scaleTo, fit$binarize, p$threads))
    v <- tu * rep(1 / fit$svd$d, each = nrow(tu))
    .lsi_coords(v, fit$svd$d, colnames(mat)[cols])
}

# ArchR .scaleDims: per-cell (row) z-score over the dimensions.
.scale_dims <- function(m) {
    sweep(m - rowMeans(m), 1, matrixStats::rowSds(m), `/`)
}

# ArchR .LSICluster: cluster the (scaled) depth-filtered dimensions.
.lsi_cluster <- function(fit, depth, p, j) {
    cor_d <- if (p$scaleDims) fit$corToDepth$scaled else fit$corToDepth$none
    dims <- p$dimsToUse[which(cor_d[p$dimsToUse] <= p$corCutOff)]
    if (length(dims) != length(p$dimsToUse))
        .lsi_msg(p, "Filtering ", length(p$dimsToUse) - length(dims),
                 " dims correlated > ", p$corCutOff, " to log10(depth + 1)")
    if (length(dims) < 2L)
        .abort("fewer than 2 LSI dimensions left after removing those ",
               "correlated to depth; raise corCutOff or dimsToUse",
               kind = "data")
    par <- lapply(p$clusterParams, function(v)
        if (length(v) > 1L) v[[j]] else v[[1L]])
    input <- if (p$scaleDims) .scale_dims(fit$matSVD)[, dims, drop = FALSE]
        else fit$matSVD[, dims, drop = FALSE]
    if (p$filterBias) {
        par$testBias <- TRUE
        par$filterBias <- TRUE
    }
    par$biasVals <- unname(depth[rownames(fit$matSVD)])
    par$input <- input
    par$verbose <- FALSE
    par$threads <- p$threads
    clusters <- do.call(.cluster_matrix, par)
    par$input <- NULL
    list(cellNames = rownames(fit$matSVD), clusters = clusters,
         params = par, dims = dims)
}

# The features .identifyVarFeatures ranks: all, or the totalFeatures most
# accessible ("top"), in row order.
.lsi_var_candidates <- function(cl, total, p) {
    sc <- cl$params$sampleCells
    n <- length(cl$cellNames)
    # ArchR draws (and never uses) this subsample; drawing keeps the
    # RNG stream of later iterations identical to ArchR's.
    if (is.numeric(sc) && floor(sc) < n) sample(seq_len(n), floor(sc))
    cand <- which(!is.na(total))
    if (p$firstSelection == "top") {
        cand <- cand[sort(utils::head(order(total[cand], decreasing = TRUE),
                                      p$totalFeatures))]
    }
    cand
}

# The varFeatures[j] candidates whose cluster pseudo-bulks `gm` vary most
# (selectionMethod "var": log2 of scaleTo-normalised sums; else
# variance / mean), in row order.
.lsi_pick_var <- function(gm, cand, p, j) {
    n_feat <- p$varFeatures[min(j, length(p$varFeatures))]
    if (p$selectionMethod == "var") {
        gm <- log2(t(t(gm) / colSums(gm)) * p$scaleTo + 1)
        score <- matrixStats::rowVars(gm)
    } else {
        score <- matrixStats::rowVars(gm) / rowMeans(gm)
    }
    cand[sort(utils::head(order(score, decreasing = TRUE), n_feat))]
}

# ArchR .identifyVarFeatures: features most variable across cluster
# pseudo-bulks (log2 CPM-like with scaleTo), among the totalFeatures most
# accessible; returned in row order.
.lsi_var_features <- function(mat, cl, total, prev, p, j) {
    groups <- unique(cl$clusters)
    if (length(groups) == 1L) return(prev)
    cand <- .lsi_var_candidates(cl, total, p)
    grp <- rep(-1L, ncol(mat))
    lev <- sort(groups)
    grp[match(cl$cellNames, colnames(mat))] <- match(cl$clusters, lev) - 1L
    gm <- .core(epi_lsi_group_sums(mat, .row_map(nrow(mat), cand),
                                   length(cand), grp, length(lev),
                                   p$threads))
    .lsi_pick_var(gm, cand, p, j)
}

# Puts the final LSI and the per-iteration record on a SingleCellExperiment.
.lsi_to_sce <- function(x, out, p) {
    sce <- methods::as(x, "SingleCellExperiment")
    fit <- out$lsi
    # Subsetting copies the whole features x cells assay; skip it when every
    # cell is kept in order (the usual case).
    if (!identical(rownames(fit$matSVD), colnames(sce)))
        sce <- sce[, rownames(fit$matSVD)]
    SingleCellExperiment::reducedDim(sce, p$name) <- fit$matSVD
    fit$matSVD <- NULL
    fit$scaleDims <- p$scaleDims
    fit$iterations <- out$iterations
    fit$params <- out$params
    S4Vectors::metadata(sce)[[p$name]] <- fit
    sce
}

# ---------------------------------------------------------------------------
# Project wrapper (ArchR addIterativeLSI on an ArchRProject).

#' Iterative LSI of a project's tile matrix (ArchR's addIterativeLSI)
#'
#' Streams `useMatrix` from the Arrow files as ArchR does, never holding the
#' whole features x cells matrix: one pass over all cells, `chunkSize` at a
#' time, gives the feature totals; each iteration reads only its features
#' (the top or variable ones) for the sampled cells of the fit, and
#' projects the other cells chunk by chunk. The depth is
#' `cellColData[[depthCol]]`. The fit is [iterativeLSI()]'s, so the result
#' equals `iterativeLSI()` on `getMatrixFromProject(ArchRProj, useMatrix)`.
#' Memory grows with the features read, not with all tiles: set
#' `sampleCellsFinal` on large projects so the last fit is sampled too.
#' Arguments and defaults are ArchR 1.0.3's; the result is stored where
#' ArchR stores it.
#'
#' @inheritParams iterativeLSI
#' @param ArchRProj An [EpioneProject-class].
#' @param useMatrix Matrix in the Arrow files (see
#'   [getAvailableMatrices()]), normally `"TileMatrix"`.
#' @param name Name of the reduction in `ArchRProj@reducedDims`.
#' @param depthCol Column of `cellColData` with the depth (fragments).
#' @param force Replace an existing reduction called `name`.
#' @param chunkSize Cells (consecutive in an Arrow file) read at a time;
#'   memory per chunk is about `chunkSize` x the cell's stored values x
#'   36 bytes (not an ArchR argument).
#' @param ... ArchR arguments that do not apply here (`saveIterations`,
#'   `UMAPParams`, `nPlot`, `outDir`, `logFile`) are accepted and ignored;
#'   any other name is an error.
#' @return The project with `ArchRProj@reducedDims[[name]]`: a `SimpleList`
#'   in ArchR's shape, `matSVD` (cells x dims, unscaled, LSI1..n) first,
#'   then `rowSm`, `nCol`, `exclude`, `idx`, `svd`, `binarize`, `scaleTo`,
#'   `nDimensions`, `LSIMethod`, `keep0lsi`, `outliers`, `date`, `seed`,
#'   `LSIFeatures` (DataFrame `seqnames`, `idx`, `start`, `rowSums`),
#'   `corToDepth` (`scaled`, `none`), `scaleDims`, `useMatrix`, `tileSize`,
#'   and the per-iteration record `iterations` and `params`.
#' @seealso [ArchR::addIterativeLSI()], [getReducedDims()], [addClusters()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmallLSI"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addGeneScoreMatrix = FALSE, QCDir = NULL, threads = 1,
#'     verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "projLSI"))
#' proj <- addIterativeLSI(proj, iterations = 1, varFeatures = 1000,
#'                         dimsToUse = 1:5, threads = 1, verbose = FALSE)
#' dim(proj@reducedDims$IterativeLSI$matSVD)
#' @export
setGeneric("addIterativeLSI", function(ArchRProj, ...)
    standardGeneric("addIterativeLSI"))

#' @rdname addIterativeLSI
#' @export
setMethod("addIterativeLSI", "EpioneProject", function(ArchRProj,
        useMatrix = "TileMatrix", name = "IterativeLSI", iterations = 2,
        clusterParams = list(resolution = 2, sampleCells = 10000,
                             maxClusters = 6, n.start = 10),
        firstSelection = "top", depthCol = "nFrags", varFeatures = 25000,
        dimsToUse = 1:30, LSIMethod = 2, scaleDims = TRUE, corCutOff = 0.75,
        binarize = TRUE, outlierQuantiles = c(0.02, 0.98), filterBias = TRUE,
        sampleCellsPre = 10000, projectCellsPre = FALSE,
        sampleCellsFinal = NULL, selectionMethod = "var", scaleTo = 10000,
        totalFeatures = 500000, filterQuantile = 0.995, excludeChr = c(),
        keep0lsi = FALSE, seed = 1, threads = getOption("epione.threads", 2L),
        verbose = TRUE, force = FALSE, chunkSize = 5000,
        svdMethod = c("epione", "irlba"), ...) {
    args <- as.list(environment())
    .ignore_archr_args(list(...), c("saveIterations", "UMAPParams", "nPlot",
                                    "outDir", "logFile"))
    .check_string(name, "name")
    .check_flag(force, "force")
    if (name %in% names(ArchRProj@reducedDims) && !force)
        .abort("reducedDims '", name, "' exists; set force = TRUE or pick ",
               "another name", kind = "input")
    .check_project_matrix(ArchRProj, useMatrix, "addTileMatrix()")
    if (!depthCol %in% names(ArchRProj@cellColData))
        .abort("cellColData has no depth column '", depthCol, "'; set ",
               "depthCol to a column of getCellColData(proj) (ArchR: ",
               "\"nFrags\")", kind = "input")
    .check_number(chunkSize, "chunkSize", 1, whole = TRUE)
    args[c("ArchRProj", "useMatrix", "force", "chunkSize")] <- NULL
    args["excludeChr"] <- list(NULL)   # dropped by the reader
    ArchRProj@reducedDims[[name]] <- .add_lsi_stream(ArchRProj, useMatrix,
        excludeChr, as.integer(chunkSize), args)
    ArchRProj
})

.ignore_archr_args <- function(dots, ok) {
    bad <- setdiff(names(dots), ok)
    if (length(bad) || (length(dots) && is.null(names(dots))))
        .abort("unknown argument(s) ", paste(bad, collapse = ", "),
               "; see ?addIterativeLSI for the arguments", kind = "input")
}

# Errors early (classed) when the Arrow files lack the matrix or store it
# log-transformed (ArchR refuses log units for LSI).
.check_project_matrix <- function(proj, useMatrix, hint) {
    .check_project(proj)
    .check_string(useMatrix, "useMatrix")
    avail <- getAvailableMatrices(proj)
    if (!useMatrix %in% avail)
        .abort("matrix '", useMatrix, "' is not in the project's Arrow ",
               "files (available: ", paste(avail, collapse = ", "), "); ",
               "add it with ", hint, kind = "input")
    invisible(useMatrix)
}

.tile_size <- function(proj) {
    f <- getArrowFiles(proj)[1L]
    tryCatch(.h5read(f, "TileMatrix/Info/Params")$tileSize[1L],
             epione_error = function(e) NA)
}
