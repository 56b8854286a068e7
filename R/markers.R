# Marker features (ArchR getMarkerFeatures, R/MarkerFeatures.R): for each
# group, up to maxCells cells and as many bias-matched background cells
# (nearest neighbours in the quantiles of the bias columns, drawn from the
# other groups in proportion to their size: ArchR .matchBiasCellGroups with
# closest = FALSE), then a per-feature Wilcoxon test (C++ here; presto's
# wilcoxauc in ArchR) on normalised values.

#' @include project.R
NULL

#' Marker features per group (ArchR's getMarkerFeatures)
#'
#' For each group, up to `maxCells` cells and as many background cells
#' matched on the `bias` columns, then a per-feature test: Wilcoxon rank
#' sum (presto's `wilcoxauc`, as ArchR), a two-sample t-test with pooled
#' variance, or ArchR's binomial test (binarized data only). Statistics,
#' FDR (Benjamini-Hochberg over features with a non-zero mean) and assays
#' are ArchR 1.0.3's.
#'
#' @param ArchRProj A features x cells `SummarizedExperiment` (or
#'   SingleCellExperiment) whose colData has `groupBy` and the `bias`
#'   columns, or an [EpioneProject-class] (its `useMatrix` is read from the
#'   Arrow files, its colData is `cellColData`).
#' @param groupBy colData column with the groups.
#' @param useGroups,bgdGroups Groups to test and to draw backgrounds from
#'   (`NULL`: all).
#' @param useMatrix Matrix of the project's Arrow files.
#' @param testMethod `"wilcoxon"`, `"ttest"` or `"binomial"`.
#' @param bias Expressions over colData columns to match the background on,
#'   e.g. `c("TSSEnrichment", "log10(nFrags)")`.
#' @param normBy `NULL` (ArchR's default: scale each cell to `scaleTo` by
#'   its column sum; for a project's TileMatrix or PeakMatrix by
#'   `ReadsInTSS`; none for the binomial test), `"none"`, or a colData
#'   column (scale by median / value).
#' @param maxCells Cells per group (and per background).
#' @param scaleTo Normalisation target.
#' @param threads Threads for the tests.
#' @param k Neighbours searched for background matches.
#' @param bufferRatio Fraction of the group's cells used at most.
#' @param binarize Binarize the matrix first (required by the binomial
#'   test).
#' @param useSeqnames Project only: restrict to these seqnames of the
#'   matrix (`NULL`: all).
#' @param assay.type SummarizedExperiment only: the assay to test.
#' @param verbose Print messages.
#' @param ... Arguments of the methods (above).
#' @return A `SummarizedExperiment` (features x groups) with ArchR's
#'   assays: wilcoxon `Log2FC`, `Mean`, `FDR`, `Pval`, `MeanDiff`, `AUC`,
#'   `MeanBGD`; ttest `Log2FC`, `Mean`, `Variance`, `FDR`, `Pval`,
#'   `MeanDiff`, `MeanBGD`, `VarianceBGD`; binomial `Log2FC`, `Mean`, `FDR`,
#'   `Pval`, `MeanDiff`, `MeanBGD`. `metadata(, "MatchInfo")` holds the
#'   matched cells per group. rowData: the features (for a project ArchR's
#'   FeatureDF columns).
#' @seealso [ArchR::getMarkerFeatures()], [getMarkers()],
#'   [plotMarkerHeatmap()]
#' @examples
#' set.seed(1)
#' m <- Matrix::rsparsematrix(200, 120, 0.2)
#' m@x <- abs(m@x)
#' se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
#' se$Clusters <- rep(c("C1", "C2"), each = 60)
#' se$nFrags <- Matrix::colSums(m)
#' mk <- getMarkerFeatures(se, bias = "log10(nFrags)", verbose = FALSE)
#' dim(mk)
#' tt <- getMarkerFeatures(se, bias = "log10(nFrags)", testMethod = "ttest",
#'                         verbose = FALSE)
#' SummarizedExperiment::assayNames(tt)
#' @export
setGeneric("getMarkerFeatures", function(ArchRProj, ...)
    standardGeneric("getMarkerFeatures"))

#' @rdname getMarkerFeatures
#' @export
setMethod("getMarkerFeatures", "SummarizedExperiment", function(ArchRProj,
        groupBy = "Clusters", useGroups = NULL, bgdGroups = NULL,
        testMethod = "wilcoxon", bias = c("TSSEnrichment", "log10(nFrags)"),
        normBy = NULL, maxCells = 500, scaleTo = 10^4, k = 100,
        bufferRatio = 0.8, binarize = FALSE,
        threads = getOption("epione.threads", 2L), assay.type = 1L,
        verbose = TRUE) {
    mat <- .as_dgc(SummarizedExperiment::assay(ArchRProj, assay.type),
                   "assay")
    cd <- as.data.frame(SummarizedExperiment::colData(ArchRProj))
    se <- .marker_features(mat, cd, groupBy, useGroups, bgdGroups,
        testMethod, bias, normBy, maxCells, scaleTo, k, bufferRatio,
        binarize, threads, tile_like = FALSE)
    SummarizedExperiment::rowData(se) <-
        SummarizedExperiment::rowData(ArchRProj)
    rownames(se) <- rownames(ArchRProj)
    se
})

#' @rdname getMarkerFeatures
#' @export
setMethod("getMarkerFeatures", "EpioneProject", function(ArchRProj,
        groupBy = "Clusters", useGroups = NULL, bgdGroups = NULL,
        useMatrix = "GeneScoreMatrix",
        bias = c("TSSEnrichment", "log10(nFrags)"), normBy = NULL,
        testMethod = "wilcoxon", maxCells = 500, scaleTo = 10^4,
        threads = getOption("epione.threads", 2L), k = 100,
        bufferRatio = 0.8, binarize = FALSE, useSeqnames = NULL,
        verbose = TRUE) {
    .check_project_matrix(ArchRProj, useMatrix, "the matching add*Matrix()")
    fdf <- .marker_feature_df(ArchRProj, useMatrix, useSeqnames)
    se <- getMatrixFromProject(ArchRProj, useMatrix,
                               useSeqnames = unique(fdf$seqnames),
                               verbose = FALSE)
    rr <- SummarizedExperiment::rowRanges(se)
    key <- paste(GenomicRanges::seqnames(rr), rr$idx)
    rows <- match(paste(fdf$seqnames, fdf$idx), key)
    if (anyNA(rows))
        .abort("the FeatureDF of ", useMatrix, " does not match its stored ",
               "matrix; recreate the matrix", kind = "format")
    mat <- SummarizedExperiment::assay(se)[rows, , drop = FALSE]
    cd <- as.data.frame(ArchRProj@cellColData)
    out <- .marker_features(mat, cd, groupBy, useGroups, bgdGroups,
        testMethod, bias, normBy, maxCells, scaleTo, k, bufferRatio,
        binarize, threads,
        tile_like = tolower(useMatrix) %in% c("tilematrix", "peakmatrix"))
    SummarizedExperiment::rowData(out) <- S4Vectors::DataFrame(fdf)
    S4Vectors::metadata(out)$Params <- list(groupBy = groupBy,
        useMatrix = useMatrix, testMethod = testMethod, bias = bias,
        normBy = normBy, maxCells = maxCells, scaleTo = scaleTo, k = k,
        bufferRatio = bufferRatio, binarize = binarize,
        useSeqnames = useSeqnames)
    out
})

# ArchR .getFeatureDF: the stored FeatureDF, grouped by seqnames in sorted
# order (its split()), restricted to useSeqnames when any are present.
.marker_feature_df <- function(proj, useMatrix, useSeqnames) {
    fdf <- as.data.frame(.h5read(getArrowFiles(proj)[1L],
        paste0(useMatrix, "/Info/FeatureDF")), stringsAsFactors = FALSE)
    fdf$seqnames <- as.character(fdf$seqnames)
    fdf <- fdf[unlist(split(seq_len(nrow(fdf)), fdf$seqnames),
                      use.names = FALSE), , drop = FALSE]
    use <- useSeqnames[useSeqnames %in% fdf$seqnames]
    if (length(use)) fdf <- fdf[fdf$seqnames %in% use, , drop = FALSE]
    if (nrow(fdf) < 2L)
        .abort("fewer than 2 features left in ", useMatrix, "; check ",
               "useSeqnames", kind = "input")
    rownames(fdf) <- NULL
    fdf
}

# The engine shared by both methods: match, normalise, test each group.
.marker_features <- function(mat, cd, groupBy, useGroups, bgdGroups,
                             testMethod, bias, normBy, maxCells, scaleTo, k,
                             bufferRatio, binarize, threads, tile_like) {
    threads <- .check_threads(threads)
    method <- .marker_method(testMethod)
    if (!groupBy %in% colnames(cd))
        .abort("colData has no column '", groupBy, "'; run ",
               "addClusters() or set groupBy", kind = "input")
    if (anyNA(mat@x))
        .abort("the matrix contains NA values", kind = "input")
    if (binarize) mat@x[mat@x > 0] <- 1
    groups <- as.character(cd[[groupBy]])
    match_obj <- .with_seed(1, .match_bias_groups(cd, groups, useGroups,
        bgdGroups, bias, k, maxCells, bufferRatio, groupBy))
    nf <- .marker_norm(mat, cd, normBy, scaleTo, method, tile_like)
    if (method == "binomial") {
        if (!is.null(nf))
            .abort("the binomial test takes raw binarized values; set ",
                   "normBy = \"none\" (or NULL)", kind = "input")
        if (!binarize)
            .abort("the binomial test needs binarize = TRUE",
                   kind = "input")
    }
    xt <- Matrix::t(mat)
    res <- lapply(match_obj, function(mo) {
        r <- .marker_test(method, mat, xt, mo$cells, mo$bgd, nf, threads)
        r$fdr <- .marker_fdr(r)
        r
    })
    .marker_se(res, match_obj, method)
}

.marker_method <- function(testMethod) {
    m <- tolower(testMethod)
    if (length(m) != 1L || !m %in% c("wilcoxon", "ttest", "binomial"))
        .abort("testMethod must be \"wilcoxon\", \"ttest\" or ",
               "\"binomial\", not ", deparse1(testMethod), kind = "input")
    m
}

# ArchR: normFactors = scaleTo / colSums, median / ReadsInTSS (tile and
# peak matrices) or median / normBy column, then rescaled so the median
# normalised depth is scaleTo; none for the binomial test by default.
.marker_norm <- function(mat, cd, norm_by, scale_to, method = "wilcoxon",
                         tile_like = FALSE) {
    cs <- Matrix::colSums(mat)
    if (is.null(norm_by)) {
        if (method == "binomial") return(NULL)
        if (tile_like) norm_by <- "ReadsInTSS"
    } else if (tolower(norm_by) == "none") {
        return(NULL)
    }
    nf <- if (is.null(norm_by)) scale_to / cs else {
        if (!norm_by %in% colnames(cd))
            .abort("colData has no normBy column '", norm_by, "'; set ",
                   "normBy to a column or \"none\"", kind = "input")
        stats::median(cd[[norm_by]]) / cd[[norm_by]]
    }
    nf * (scale_to / stats::median(nf * cs))
}

.marker_test <- function(method, mat, xt, fg, bg, nf, threads) {
    f1 <- if (is.null(nf)) rep(1, length(fg)) else nf[fg]
    f2 <- if (is.null(nf)) rep(1, length(bg)) else nf[bg]
    s1 <- as.vector(mat[, fg, drop = FALSE] %*% f1)
    s2 <- as.vector(mat[, bg, drop = FALSE] %*% f2)
    n1 <- length(fg)
    n2 <- length(bg)
    # ArchR's offset of 1 on the sums
    out <- data.frame(log2FC = log2((s1 + 1) / (s2 + 1)), mean1 = s1 / n1,
                      mean2 = s2 / n2)
    if (method == "wilcoxon") {
        w <- .core(epi_markers_wilcoxon(xt, fg - 1L, bg - 1L, f1, f2,
                                        threads))
        out$pval <- w$pval
        out$auc <- w$auc
    } else if (method == "ttest") {
        mo <- .core(epi_markers_moments(xt, fg - 1L, bg - 1L, f1, f2,
                                        threads))
        # ArchR .sparseMatTTest: pooled variance, n1 + n2 - 2 df
        se <- sqrt((1 / n1 + 1 / n2) * ((n1 - 1) * mo$var1 +
                   (n2 - 1) * mo$var2) / (n1 + n2 - 2))
        out$pval <- 2 * stats::pt(-abs((mo$mean1 - mo$mean2) / se),
                                  n1 + n2 - 2)
        # ArchR 1.0.3 stores the background variance in both columns
        # (var1 = v2 in .sparseMatTTest); kept for parity.
        out$var1 <- mo$var2
        out$var2 <- mo$var2
    } else {
        out$pval <- .binomial_pval(s1, s2, n1, n2)
    }
    out
}

# ArchR .sparseMatBinomTest: one-sided upper tail of the larger group's
# count given the other group's rate (at least 1 / n), doubled.
.binomial_pval <- function(s1, s2, n1, n2) {
    up <- s1 / n1 >= s2 / n2
    lp <- ifelse(up,
        stats::pbinom(s1 - 1, n1, pmax(s2, 1) / n2, lower.tail = FALSE,
                      log.p = TRUE),
        stats::pbinom(s2 - 1, n2, pmax(s1, 1) / n1, lower.tail = FALSE,
                      log.p = TRUE))
    pmin(2 * exp(lp), 1)
}

# ArchR .testMarkerSC: BH over features whose means are not both zero (and
# not NA); NA elsewhere.
.marker_fdr <- function(r) {
    ok <- (r$mean1 + r$mean2) != 0 & !is.na(r$mean1) & !is.na(r$mean2)
    fdr <- rep(NA_real_, nrow(r))
    fdr[ok] <- stats::p.adjust(r$pval[ok], method = "fdr")
    fdr
}

.marker_assays <- list(
    wilcoxon = c(Log2FC = "log2FC", Mean = "mean1", FDR = "fdr",
                 Pval = "pval", MeanDiff = "diff", AUC = "auc",
                 MeanBGD = "mean2"),
    ttest = c(Log2FC = "log2FC", Mean = "mean1", Variance = "var1",
              FDR = "fdr", Pval = "pval", MeanDiff = "diff",
              MeanBGD = "mean2", VarianceBGD = "var2"),
    binomial = c(Log2FC = "log2FC", Mean = "mean1", FDR = "fdr",
                 Pval = "pval", MeanDiff = "diff", MeanBGD = "mean2"))

.marker_se <- function(res, match_obj, method) {
    res <- lapply(res, function(r) { r$diff <- r$mean1 - r$mean2; r })
    cols <- .marker_assays[[method]]
    assays <- lapply(cols, function(f) {
        m <- do.call(cbind, lapply(res, function(r) r[[f]]))
        colnames(m) <- names(match_obj)
        m
    })
    se <- SummarizedExperiment::SummarizedExperiment(assays = assays)
    S4Vectors::metadata(se)$MatchInfo <- match_obj
    se
}

# ArchR .matchBiasCellGroups (closest = FALSE), RNG as ArchR's after
# set.seed(1): sample the group's cells in random order, give each an
# unused background cell among its k nearest (bias quantiles), keeping the
# background groups' shares.
.match_bias_groups <- function(cd, groups, use, bgd, bias, k, n, buffer,
                               groupBy = "groupBy") {
    q <- .bias_quantiles(cd, bias)
    lev <- .mixed_sort(unique(groups))
    use <- if (is.null(use)) lev else use
    bgd <- if (is.null(bgd)) lev else bgd
    if (!all(c(use, bgd) %in% lev))
        .abort("useGroups/bgdGroups must be groups in '", groupBy, "'",
               kind = "input")
    prob <- table(groups) / length(groups)
    bprob <- prob[names(prob) %in% bgd] / sum(prob[names(prob) %in% bgd])
    out <- lapply(use, function(g)
        .match_one_group(g, groups, q, bprob, k, n, buffer))
    stats::setNames(out, use)
}

.bias_quantiles <- function(cd, bias) {
    vals <- lapply(bias, function(b) {
        v <- tryCatch(eval(parse(text = b), envir = cd),
                      error = function(e) NULL)
        if (is.null(v) || length(v) != nrow(cd))
            .abort("bias '", b, "' is not computable from colData columns ",
                   "(e.g. add x$nFrags); pass bias = c(...) that exist",
                   kind = "input")
        trunc(rank(v)) / length(v)
    })
    do.call(cbind, vals)
}

.mixed_sort <- function(v) {
    num <- suppressWarnings(as.numeric(gsub("\\D", "", v)))
    v[order(gsub("\\d", "", v), num, v)]
}

.match_one_group <- function(g, groups, q, bprob, k, n, buffer) {
    idx <- which(names(bprob) == g)
    bp <- if (length(idx) > 0 && length(idx) != length(bprob))
        bprob[-idx] / sum(bprob[-idx]) else bprob
    id_f <- which(groups == g)
    if (all(length(id_f) * bp < 1) && length(id_f) < length(bp)) {
        bp <- bp[sample(names(bp), floor(length(id_f) * buffer))]
        bp[] <- 1 / length(bp)
    }
    id_b <- which(groups %in% names(bp))
    k2 <- min(k, length(id_b))
    knn <- .knn(q[id_b, , drop = FALSE], q[id_f, , drop = FALSE], k2, 1L)
    sx <- sample(seq_len(nrow(knn)), nrow(knn))
    min_total <- min(n, length(sx) * buffer)
    nx <- sort(floor(min_total * bp))
    sel <- .greedy_match(knn, sx, groups[id_b], nx, k2, min_total)
    list(cells = id_f[sel$x], bgd = id_b[sel$y], group = g, k = k2)
}

.greedy_match <- function(knn, sx, bgroups, nx, k2, min_total) {
    fix <- function(nx) {
        if (any(nx <= 0)) { nx[nx <= 0] <- Inf; nx <- sort(nx) }
        nx
    }
    nx <- fix(nx)
    id_x <- integer(0)
    id_y <- integer(0)
    it <- 0
    while (it < length(sx) && length(id_x) < min_total) {
        it <- it + 1
        cand <- knn[sx[it], ]
        grp <- match(bgroups[cand], names(nx))
        pick <- NA
        # ArchR never takes the k-th neighbour (its loop sets NA there)
        for (s in seq_len(k2 - 1L)) {
            if (!is.infinite(nx[grp[s]]) && !(cand[s] %in% id_y)) {
                pick <- s
                break
            }
        }
        if (!is.na(pick)) {
            id_x <- c(id_x, sx[it])
            id_y <- c(id_y, cand[pick])
            nx[grp[pick]] <- nx[grp[pick]] - 1
            nx <- fix(nx)
        }
        if (all(is.infinite(nx))) it <- length(sx)
    }
    list(x = id_x, y = id_y)
}

#' Markers passing a cut-off (ArchR's getMarkers)
#'
#' @param seMarker Output of [getMarkerFeatures()].
#' @param cutOff An expression over the assay names (e.g. `"FDR <= 0.01 &
#'   Log2FC >= 1.25"`).
#' @param n Keep at most this many per group (ordered by Log2FC).
#' @return A named list (one data.frame per group) of the passing features
#'   with their rowData and statistics, ordered by decreasing Log2FC.
#' @examples
#' set.seed(1)
#' m <- Matrix::rsparsematrix(200, 120, 0.2)
#' m@x <- abs(m@x)
#' se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
#' se$Clusters <- rep(c("C1", "C2"), each = 60)
#' se$nFrags <- Matrix::colSums(m)
#' mk <- getMarkerFeatures(se, bias = "log10(nFrags)", verbose = FALSE)
#' lengths(getMarkers(mk, cutOff = "Pval <= 0.5"))
#' @export
getMarkers <- function(seMarker, cutOff = "FDR <= 0.01 & Log2FC >= 1.25",
                       n = NULL) {
    a <- SummarizedExperiment::assays(seMarker)
    rd <- as.data.frame(SummarizedExperiment::rowData(seMarker))
    out <- lapply(colnames(seMarker), function(g) {
        stats_g <- as.data.frame(lapply(a, function(m) m[, g]))
        keep <- tryCatch(eval(parse(text = cutOff), envir = stats_g),
            error = function(e) .abort("cutOff '", cutOff, "' must use ",
                "assay names: ", paste(names(a), collapse = ", "),
                kind = "input"))
        keep <- which(keep %in% TRUE)
        df <- cbind(rd[keep, , drop = FALSE], stats_g[keep, , drop = FALSE])
        if (!is.null(rownames(seMarker)))
            df <- cbind(name = rownames(seMarker)[keep], df)
        df <- df[order(df$Log2FC, decreasing = TRUE), , drop = FALSE]
        if (!is.null(n)) df <- utils::head(df, n)
        df
    })
    stats::setNames(out, colnames(seMarker))
}

#' Heatmap of marker features (ArchR's plotMarkerHeatmap)
#'
#' ArchR's marker heatmap: features passing `cutOff` in any group, their
#' group `Mean` normalised (`log2(mean / colSum * scaleTo + 1)`), row
#' z-scored and clipped to `limits`, rows in ArchR's binary sort (by the
#' pattern of groups they pass) and groups clustered. Drawn with ggplot2
#' in the solarExtra palette.
#'
#' @param seMarker Output of [getMarkerFeatures()].
#' @param cutOff Expression over the assay names selecting markers.
#' @param log2Norm Normalise group means to `scaleTo` and take log2(x + 1).
#' @param scaleTo Normalisation target.
#' @param scaleRows Z-score each feature across groups.
#' @param plotLog2FC Plot `Log2FC` instead of the normalised means.
#' @param limits Values are clipped to this range.
#' @param grepExclude Regular expression of feature names to drop.
#' @param pal Colours (default solarExtra).
#' @param binaryClusterRows Order features by the binary pattern of groups
#'   they pass (ArchR), else by hierarchical clustering.
#' @param clusterCols Cluster the groups (display order).
#' @param subsetMarkers Row indices of `seMarker` to show instead of those
#'   passing `cutOff`.
#' @param labelMarkers Feature names to label (default: the `nLabel` top
#'   markers of each group).
#' @param nLabel Markers labelled per group by default.
#' @param labelRows Label every feature.
#' @param returnMatrix Return the matrix ArchR would plot instead.
#' @param transpose Features as columns.
#' @param invert Invert the binary sort and the palette (ArchR).
#' @return A ggplot, or with `returnMatrix = TRUE` the features x groups
#'   matrix (groups x features when `transpose`) in ArchR's row order and
#'   the groups' original order, rownames the feature names.
#' @seealso [ArchR::plotMarkerHeatmap()]
#' @examples
#' set.seed(1)
#' m <- Matrix::rsparsematrix(200, 180, 0.2)
#' m@x <- abs(m@x)
#' m[1:10, 1:60] <- m[1:10, 1:60] + 3
#' m[11:20, 61:120] <- m[11:20, 61:120] + 3
#' se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
#' rownames(se) <- paste0("f", 1:200)
#' se$Clusters <- rep(c("C1", "C2", "C3"), each = 60)
#' se$nFrags <- Matrix::colSums(m)
#' mk <- getMarkerFeatures(se, bias = "log10(nFrags)", verbose = FALSE)
#' head(plotMarkerHeatmap(mk, returnMatrix = TRUE))
#' plotMarkerHeatmap(mk)
#' @export
plotMarkerHeatmap <- function(seMarker, cutOff = "FDR <= 0.01 & Log2FC >= 0.5",
        log2Norm = TRUE, scaleTo = 10^4, scaleRows = TRUE, plotLog2FC = FALSE,
        limits = c(-2, 2), grepExclude = NULL, pal = NULL,
        binaryClusterRows = TRUE, clusterCols = TRUE, subsetMarkers = NULL,
        labelMarkers = NULL, nLabel = 15, labelRows = FALSE,
        returnMatrix = FALSE, transpose = FALSE, invert = FALSE) {
    pass <- .marker_pass(seMarker, cutOff)
    mat <- .heatmap_values(seMarker, plotLog2FC, log2Norm, scaleTo,
                           scaleRows, limits)
    v <- matrixStats::rowVars(mat)
    idx <- if (ncol(mat) == 1L) which(rowSums(pass, na.rm = TRUE) > 0)
        else which(rowSums(pass, na.rm = TRUE) > 0 & v != 0 & !is.na(v))
    if (!is.null(subsetMarkers)) {
        if (!all(subsetMarkers %in% seq_len(nrow(mat))))
            .abort("subsetMarkers must be row indices of seMarker (1..",
                   nrow(mat), ")", kind = "input")
        idx <- subsetMarkers
    }
    mat <- mat[idx, , drop = FALSE]
    pass <- pass[idx, , drop = FALSE]
    rownames(mat) <- rownames(pass) <- .marker_names(seMarker, idx)
    if (!is.null(grepExclude)) {
        keep <- !grepl(grepExclude, rownames(mat))
        mat <- mat[keep, , drop = FALSE]
        pass <- pass[keep, , drop = FALSE]
    }
    if (!nrow(mat))
        .abort("no markers pass cutOff '", cutOff, "'; loosen it",
               kind = "data")
    if (is.null(labelMarkers)) labelMarkers <- .top_markers(pass, nLabel)
    col_order <- seq_len(ncol(mat))
    if (ncol(mat) > 1L && binaryClusterRows) {
        bs <- .binary_sort(if (invert) -mat else mat, pass, clusterCols)
        mat <- bs$mat[, colnames(mat), drop = FALSE]
        if (invert) mat <- -mat
        if (clusterCols) col_order <- bs$hclust$order
    } else if (nrow(mat) > 1L) {
        mat <- mat[stats::hclust(stats::dist(mat))$order, , drop = FALSE]
        if (ncol(mat) > 1L && clusterCols)
            col_order <- stats::hclust(stats::dist(t(mat)))$order
    }
    if (transpose) mat <- t(mat)
    if (returnMatrix) return(mat)
    if (is.null(pal)) pal <- .solar_extra
    if (invert) pal <- rev(pal)
    .heatmap_plot(mat, col_order, transpose, labelMarkers, labelRows, pal,
                  if (scaleRows && !plotLog2FC) "Row Z-Scores" else "Value")
}

.marker_pass <- function(se, cutOff) {
    a <- SummarizedExperiment::assays(se)
    env <- lapply(a, as.matrix)
    pass <- tryCatch(eval(parse(text = cutOff), envir = env),
        error = function(e) .abort("cutOff '", cutOff, "' must use assay ",
            "names: ", paste(names(a), collapse = ", "), kind = "input"))
    if (!is.matrix(pass) || !identical(dim(pass), dim(se)))
        .abort("cutOff '", cutOff, "' must give one value per feature and ",
               "group", kind = "input")
    pass
}

.heatmap_values <- function(se, plotLog2FC, log2Norm, scaleTo, scaleRows,
                            limits) {
    if (ncol(se) <= 2L && !plotLog2FC)
        .abort("with 2 or fewer groups use plotLog2FC = TRUE (as ArchR)",
               kind = "input")
    if (plotLog2FC) {
        mat <- as.matrix(SummarizedExperiment::assay(se, "Log2FC"))
    } else {
        mat <- as.matrix(SummarizedExperiment::assay(se, "Mean"))
        if (log2Norm) mat <- log2(t(t(mat) / colSums(mat)) * scaleTo + 1)
        if (scaleRows)
            mat <- sweep(mat - rowMeans(mat), 1, matrixStats::rowSds(mat),
                         `/`)
    }
    mat[mat > max(limits)] <- max(limits)
    mat[mat < min(limits)] <- min(limits)
    mat
}

# ArchR's row names: name, seqnames:name when names repeat, else ranges.
.marker_names <- function(se, idx) {
    rd <- SummarizedExperiment::rowData(se)[idx, , drop = FALSE]
    if (is.null(rd$name)) {
        if (!is.null(rownames(se))) return(rownames(se)[idx])
        return(paste0(rd$seqnames, ":", rd$start, "-", rd$end))
    }
    if (anyDuplicated(rd$name)) paste0(rd$seqnames, ":", rd$name)
    else as.character(rd$name)
}

.top_markers <- function(pass, n) {
    sp <- pass / rowSums(pass)
    unique(unlist(lapply(seq_len(ncol(sp)), function(x)
        rownames(sp)[utils::head(order(sp[, x], decreasing = TRUE), n)])))
}

# ArchR .binarySort: groups ordered by hclust, features by the decreasing
# binary pattern of the groups they pass (in that group order).
.binary_sort <- function(m, lmat, clusterCols) {
    hc <- NULL
    cols <- seq_len(ncol(m))
    if (clusterCols) {
        hc <- stats::hclust(stats::dist(t(m)))
        cols <- hc$order
    }
    l <- as.data.frame(lmat[, cols, drop = FALSE])
    rows <- do.call(order, c(unname(as.list(l)), list(decreasing = TRUE)))
    list(mat = m[rows, cols, drop = FALSE], hclust = hc)
}

.heatmap_plot <- function(mat, col_order, transpose, labels, labelRows, pal,
                          title) {
    feats <- if (transpose) colnames(mat) else rownames(mat)
    groups <- if (transpose) rownames(mat) else colnames(mat)
    df <- as.data.frame(as.table(if (transpose) t(mat) else mat))
    names(df) <- c("feature", "group", "value")
    df$feature <- factor(df$feature, levels = unique(rev(feats)))
    df$group <- factor(df$group, levels = groups[col_order])
    shown <- if (labelRows) feats else feats[tolower(feats) %in%
                                                 tolower(labels)]
    if (transpose)
        p <- ggplot2::ggplot(df, ggplot2::aes(.data$feature, .data$group,
                                              fill = .data$value)) +
            ggplot2::scale_x_discrete(breaks = shown)
    else
        p <- ggplot2::ggplot(df, ggplot2::aes(.data$group, .data$feature,
                                              fill = .data$value)) +
            ggplot2::scale_y_discrete(breaks = shown)
    p + ggplot2::geom_tile() +
        ggplot2::scale_fill_gradientn(colours = pal, name = title) +
        ggplot2::labs(x = NULL, y = NULL,
                      title = paste(length(feats), "features")) +
        ggplot2::theme_minimal() +
        ggplot2::theme(panel.grid = ggplot2::element_blank(),
                       axis.text.x = ggplot2::element_text(angle = 90,
                                                           hjust = 1))
}
