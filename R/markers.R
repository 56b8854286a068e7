# Marker features (ArchR getMarkerFeatures, R/MarkerFeatures.R): for each
# group, up to maxCells cells and as many bias-matched background cells
# (nearest neighbours in the quantiles of the bias columns, drawn from the
# other groups in proportion to their size: ArchR .matchBiasCellGroups with
# closest = FALSE), then a per-feature Wilcoxon test (C++ here; presto's
# wilcoxauc in ArchR) on normalised values.

#' Marker features per group (ArchR's getMarkerFeatures, Wilcoxon)
#'
#' @param x A features x cells `SummarizedExperiment` (or
#'   SingleCellExperiment) whose colData has `groupBy` and the `bias`
#'   columns.
#' @param groupBy colData column with the groups.
#' @param useGroups,bgdGroups Groups to test and to draw backgrounds from
#'   (`NULL`: all).
#' @param testMethod Only `"wilcoxon"`.
#' @param bias Expressions over colData columns to match the background on,
#'   e.g. `c("TSSEnrichment", "log10(nFrags)")`.
#' @param normBy `NULL` (scale each cell to `scaleTo` by its column sum),
#'   `"none"`, or a colData column (scale by median / value).
#' @param maxCells Cells per group (and per background).
#' @param scaleTo Normalisation target.
#' @param k Neighbours searched for background matches.
#' @param bufferRatio Fraction of the group's cells used at most.
#' @param binarize Binarize the matrix first.
#' @param threads Threads for the tests.
#' @param assay.type Assay to test.
#' @param verbose Print messages.
#' @return A `SummarizedExperiment` (features x groups) with assays Log2FC,
#'   Mean, FDR, Pval, MeanDiff, AUC, MeanBGD and the matching in
#'   `metadata(, "MatchInfo")`, as ArchR.
#' @examples
#' set.seed(1)
#' m <- Matrix::rsparsematrix(200, 120, 0.2)
#' m@x <- abs(m@x)
#' se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
#' se$Clusters <- rep(c("C1", "C2"), each = 60)
#' se$nFrags <- Matrix::colSums(m)
#' mk <- getMarkerFeatures(se, bias = "log10(nFrags)", verbose = FALSE)
#' dim(mk)
#' @export
getMarkerFeatures <- function(x, groupBy = "Clusters", useGroups = NULL,
        bgdGroups = NULL, testMethod = "wilcoxon",
        bias = c("TSSEnrichment", "log10(nFrags)"), normBy = NULL,
        maxCells = 500, scaleTo = 10^4, k = 100, bufferRatio = 0.8,
        binarize = FALSE, threads = getOption("epione.threads", 2L),
        assay.type = 1L, verbose = TRUE) {
    threads <- .check_threads(threads)
    if (!inherits(x, "SummarizedExperiment"))
        .abort("'x' must be a SummarizedExperiment with colData(x)$",
               groupBy, kind = "input")
    if (!identical(tolower(testMethod), "wilcoxon"))
        .abort("only testMethod = \"wilcoxon\" is implemented",
               kind = "input")
    cd <- as.data.frame(SummarizedExperiment::colData(x))
    if (!groupBy %in% colnames(cd))
        .abort("colData(x) has no column '", groupBy, "'; run ",
               "addClusters() or set groupBy", kind = "input")
    mat <- .as_dgc(SummarizedExperiment::assay(x, assay.type), "assay")
    if (anyNA(mat@x))
        .abort("the matrix contains NA values", kind = "input")
    if (binarize) mat@x[mat@x > 0] <- 1
    groups <- as.character(cd[[groupBy]])
    match_obj <- .with_seed(1, .match_bias_groups(cd, groups, useGroups,
        bgdGroups, bias, k, maxCells, bufferRatio))
    nf <- .marker_norm(mat, cd, normBy, scaleTo)
    xt <- Matrix::t(mat)
    res <- lapply(match_obj, function(mo)
        .marker_wilcoxon(mat, xt, mo$cells, mo$bgd, nf, threads))
    .marker_se(x, res, match_obj)
}

# ArchR: normFactors = scaleTo / colSums (or median / normBy column), then
# rescaled so the median normalised depth is scaleTo.
.marker_norm <- function(mat, cd, norm_by, scale_to) {
    cs <- Matrix::colSums(mat)
    if (!is.null(norm_by) && tolower(norm_by) == "none") return(NULL)
    nf <- if (is.null(norm_by)) scale_to / cs else {
        if (!norm_by %in% colnames(cd))
            .abort("colData has no normBy column '", norm_by, "'",
                   kind = "input")
        stats::median(cd[[norm_by]]) / cd[[norm_by]]
    }
    nf * (scale_to / stats::median(nf * cs))
}

.marker_wilcoxon <- function(mat, xt, fg, bg, nf, threads) {
    f1 <- if (is.null(nf)) rep(1, length(fg)) else nf[fg]
    f2 <- if (is.null(nf)) rep(1, length(bg)) else nf[bg]
    w <- .core(epi_markers_wilcoxon(xt, fg - 1L, bg - 1L, f1, f2, threads))
    m1 <- as.vector(mat[, fg, drop = FALSE] %*% f1)
    m2 <- as.vector(mat[, bg, drop = FALSE] %*% f2)
    data.frame(log2FC = log2((m1 + 1) / (m2 + 1)),
               fdr = stats::p.adjust(w$pval, "fdr"), pval = w$pval,
               mean1 = m1 / length(fg), mean2 = m2 / length(bg),
               auc = w$auc)
}

.marker_se <- function(x, res, match_obj) {
    a <- function(f) do.call(cbind, lapply(res, f))
    se <- SummarizedExperiment::SummarizedExperiment(
        assays = list(Log2FC = a(function(r) r$log2FC),
                      Mean = a(function(r) r$mean1),
                      FDR = a(function(r) r$fdr),
                      Pval = a(function(r) r$pval),
                      MeanDiff = a(function(r) r$mean1 - r$mean2),
                      AUC = a(function(r) r$auc),
                      MeanBGD = a(function(r) r$mean2)),
        rowData = SummarizedExperiment::rowData(x))
    colnames(se) <- names(match_obj)
    rownames(se) <- rownames(x)
    S4Vectors::metadata(se)$MatchInfo <- match_obj
    se
}

# ArchR .matchBiasCellGroups (closest = FALSE), RNG as ArchR's after
# set.seed(1): sample the group's cells in random order, give each an
# unused background cell among its k nearest (bias quantiles), keeping the
# background groups' shares.
.match_bias_groups <- function(cd, groups, use, bgd, bias, k, n, buffer) {
    q <- .bias_quantiles(cd, bias)
    lev <- .mixed_sort(unique(groups))
    use <- if (is.null(use)) lev else use
    bgd <- if (is.null(bgd)) lev else bgd
    if (!all(c(use, bgd) %in% lev))
        .abort("useGroups/bgdGroups must be groups in '", "groupBy", "'",
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
