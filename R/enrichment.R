# Motif (or any peak annotation) enrichment in a foreground peak set versus
# a background, as ArchR's peakAnnoEnrichment()/.computeEnrichment(). Counts
# are sparse mat-vec products (matches' x weights), O(nnz), never densified.

#' Enrichment of peak annotations (motif matches) in a set of peaks
#'
#' @description ArchR 1.0.3's `peakAnnoEnrichment()` statistics and column
#' names for one foreground peak set (`foreground` = logical or index
#' vector) or for every group of a marker-peak `SummarizedExperiment` (as
#' returned by `getMarkerFeatures()`, selected with `cutOff`).
#'
#' Tests (per annotation, over the 2 x 2 table match / no match by
#' foreground / background):
#' * `"hypergeometric"` (ArchR): P(X >= CompareFrequency) for X
#'   hypergeometric with `BackgroundFrequency` successes among `nBackground`
#'   peaks and `nCompare` draws; `foreground` must be part of the background
#'   (as with `background = "all"`).
#' * `"fisher"`: two-sided Fisher exact test of foreground against the
#'   background peaks outside the foreground (R's `fisher.test()` rule).
#' * `"chisq"`: Pearson chi-square (no continuity correction, 1 df) of the
#'   same table, as in the bulk ATAC tutorial; adds column `chisq`.
#'
#' `mlog10p` is `-log10(pvalue)` rounded to 4 digits as ArchR does.
#' `mlog10Padj = "bonferroni"` (default) gives `max(mlog10p - log10(n), 0)`
#' with `n` annotations tested, i.e. `-log10` of the Bonferroni p-value.
#' `mlog10Padj = "ArchR"` reproduces ArchR 1.0.3 exactly:
#' `max(mlog10p - log10(9), 0)`, because ArchR subtracts
#' `log10(ncol(pOut))`, the 9 columns of its result table at that point,
#' not the number of motifs.
#'
#' @param foreground Logical vector over peaks, integer peak indices, or a
#'   marker `SummarizedExperiment` (peaks x groups; assays such as `FDR`,
#'   `Log2FC` are used by `cutOff`).
#' @param matches Peaks x annotations matches: a `SummarizedExperiment`
#'   with an assay named like `"matches"` (motifmatchr, ArchR), or a
#'   logical/numeric matrix or sparse `Matrix` (non-zero = match).
#' @param background `"all"` (all peaks, ArchR's default), `"gc-matched"`
#'   (the foreground plus `nBackground` GC-matched peaks drawn for each
#'   foreground peak), a peaks x k integer matrix of background peak indices
#'   (from `getBackgroundPeaks()`: ArchR's `"bgdPeaks"` method), or a
#'   logical/index vector of background peaks.
#' @param test `"hypergeometric"` (default), `"fisher"` or `"chisq"`.
#' @param mlog10Padj `"bonferroni"` or `"ArchR"`, see Description.
#' @param gc Per-peak GC fraction for `"gc-matched"`; by default
#'   `rowData(matches)$GC` or `$bias`.
#' @param nBackground Background peaks drawn per foreground peak for
#'   `"gc-matched"` (R's random number generator; use `set.seed()`).
#' @param threads Number of C++ threads counting matches; results do not
#'   depend on it.
#' @param cutOff For a marker SummarizedExperiment: an expression over its
#'   assay names selecting each group's peaks, ArchR's default
#'   `"FDR <= 0.1 & Log2FC >= 0.5"`.
#' @param ... Passed to the `ANY` method.
#' @return For a vector `foreground`: a `DataFrame`, one row per annotation
#'   in the order of `matches`' columns, with columns `feature`,
#'   `CompareFrequency`, `nCompare`, `CompareProportion`,
#'   `BackgroundFrequency`, `nBackground`, `BackgroundProporition` (ArchR's
#'   spelling), `Enrichment`, `mlog10p`, `mlog10Padj`, `pvalue`, `FDR`
#'   (Benjamini-Hochberg) and, for `"chisq"`, `chisq`. For a marker
#'   SummarizedExperiment: a `SummarizedExperiment` (annotations x groups)
#'   with those columns as assays, as ArchR returns.
#' @seealso ArchR's `peakAnnoEnrichment()`, [plotEnrichHeatmap()],
#'   [plotEnrichRank()]
#' @examples
#' m <- Matrix::rsparsematrix(200, 3, 0.2) != 0
#' colnames(m) <- c("M1", "M2", "M3")
#' peakAnnoEnrichment(1:40, m)
#' @export
setGeneric("peakAnnoEnrichment",
    function(foreground, matches, ...) standardGeneric("peakAnnoEnrichment"))

#' @rdname peakAnnoEnrichment
#' @export
setMethod("peakAnnoEnrichment", "ANY", function(foreground, matches,
        background = "all",
        test = c("hypergeometric", "fisher", "chisq"),
        mlog10Padj = c("bonferroni", "ArchR"), gc = NULL,
        nBackground = 50L, threads = getOption("epione.threads", 2L)) {
    m <- .as_match_matrix(matches)
    test <- match.arg(test)
    mlog10Padj <- match.arg(mlog10Padj)
    fg <- .as_peak_index(foreground, nrow(m), "foreground")
    if (!length(fg)) {
        .abort("'foreground' selects no peaks; nothing to test. Loosen ",
               "the selection (or cutOff) so that it keeps some peaks.")
    }
    .enrich_one(fg, m, matches, background, test, mlog10Padj, gc,
                nBackground, threads)
})

.enrich_one <- function(fg, m, matches, background, test, padj, gc,
                        nBackground, threads) {
    wb <- .background_weights(background, fg, m, matches, gc, nBackground)
    .enrichment_table(m, fg, wb, test, padj, .check_threads(threads))
}

#' @rdname peakAnnoEnrichment
#' @export
setMethod("peakAnnoEnrichment", "SummarizedExperiment", function(foreground,
        matches, cutOff = "FDR <= 0.1 & Log2FC >= 0.5", ...) {
    if (methods::is(matches, "EpioneProject")) {
        return(.archr_anno_enrichment(foreground, matches, cutOff = cutOff,
                                      ...))
    }
    pass <- .eval_cutoff(foreground, cutOff)
    matches <- .align_matches(matches, foreground)
    tabs <- lapply(seq_len(ncol(pass)), function(j) {
        peakAnnoEnrichment(which(pass[, j]), matches, ...)
    })
    keep <- setdiff(names(tabs[[1L]]), "feature")
    assays <- lapply(rev(keep), function(col) {
        x <- vapply(tabs, function(t) as.numeric(t[[col]]),
                    numeric(nrow(tabs[[1L]])))
        x <- matrix(x, ncol = length(tabs))
        dimnames(x) <- list(tabs[[1L]]$feature, colnames(foreground))
        x
    })
    names(assays) <- rev(keep)
    SummarizedExperiment::SummarizedExperiment(assays = assays)
})

#' @rdname peakAnnoEnrichment
#' @param seMarker,ArchRProj,peakAnnotation ArchR's form:
#'   `peakAnnoEnrichment(seMarker = markers, ArchRProj = proj,
#'   peakAnnotation = "Motif")` (or positionally, a marker SE then an
#'   [EpioneProject-class]) takes the matches from
#'   `getMatches(ArchRProj, peakAnnotation)` unless `matches` is given, and
#'   returns ArchR's `SummarizedExperiment` exactly: assays `mlog10Padj`,
#'   `mlog10p`, `Enrichment`, `BackgroundProporition`, `nBackground`,
#'   `BackgroundFrequency`, `CompareProportion`, `nCompare`,
#'   `CompareFrequency` and `feature` (character), annotations x groups,
#'   with `mlog10Padj = "ArchR"` unless set. `background` is `"all"` or a
#'   background-peak matrix (ArchR's `"bgdPeaks"`).
#' @export
setMethod("peakAnnoEnrichment", "missing", function(foreground,
        matches = NULL, seMarker = NULL, ArchRProj = NULL,
        peakAnnotation = NULL, cutOff = "FDR <= 0.1 & Log2FC >= 0.5",
        background = "all", ...) {
    if (missing(matches)) matches <- NULL  # the generic passes it on unset
    .archr_anno_enrichment(seMarker, ArchRProj, peakAnnotation, matches,
                           cutOff, background, ...)
})

# ArchR's peakAnnoEnrichment(seMarker, ArchRProj, peakAnnotation, matches,
# cutOff, background): one enrichment table per marker group, stacked into
# an SE with ArchR's assays in ArchR's (reversed column) order.
.archr_anno_enrichment <- function(seMarker, ArchRProj = NULL,
        peakAnnotation = NULL, matches = NULL,
        cutOff = "FDR <= 0.1 & Log2FC >= 0.5", background = "all",
        mlog10Padj = c("ArchR", "bonferroni"),
        threads = getOption("epione.threads", 2L), logFile = NULL) {
    mlog10Padj <- match.arg(mlog10Padj)
    if (!methods::is(seMarker, "SummarizedExperiment")) {
        .abort("'seMarker' must be the marker SummarizedExperiment of ",
               "getMarkerFeatures(useMatrix = \"PeakMatrix\").")
    }
    um <- S4Vectors::metadata(seMarker)$Params$useMatrix
    if (!is.null(um) && !identical(um, "PeakMatrix")) {
        .abort("only markers from the PeakMatrix can be tested, not from ",
               "the ", um, "; rerun getMarkerFeatures(useMatrix = ",
               "\"PeakMatrix\").")
    }
    if (is.null(matches)) {
        if (is.null(ArchRProj)) {
            .abort("give 'ArchRProj' (with 'peakAnnotation') or 'matches'.")
        }
        matches <- getMatches(ArchRProj, peakAnnotation)
    }
    if (is.character(background) && length(background) == 1L &&
        tolower(background) %in% c("backgroundpeaks", "bgdpeaks",
                                   "background", "bgd")) {
        .abort("background = \"", background, "\" needs background peaks: ",
               "pass background = getBackgroundPeaks(...) (a peaks x k ",
               "index matrix) instead.")
    }
    pass <- .eval_cutoff(seMarker, cutOff)
    matches <- .align_matches(matches, seMarker)
    m <- .as_match_matrix(matches)
    # a group without passing peaks gives ArchR's NaN/0 column, no error
    tabs <- lapply(seq_len(ncol(pass)), function(j) {
        .enrich_one(which(pass[, j]), m, matches, background,
                    "hypergeometric", mlog10Padj, NULL, 50L, threads)
    })
    cols <- c("mlog10Padj", "mlog10p", "Enrichment", "BackgroundProporition",
              "nBackground", "BackgroundFrequency", "CompareProportion",
              "nCompare", "CompareFrequency", "feature")
    # ArchR's Matrix::colSums() counts logical matches as integers
    whole <- if (methods::is(m, "dMatrix")) character() else
        c("BackgroundFrequency", "CompareFrequency")
    assays <- lapply(cols, function(col) {
        x <- do.call(cbind, lapply(tabs, function(t) t[[col]]))
        if (col %in% whole) storage.mode(x) <- "integer"
        dimnames(x) <- list(tabs[[1L]]$feature, colnames(seMarker))
        x
    })
    names(assays) <- cols
    SummarizedExperiment::SummarizedExperiment(assays = assays)
}

# Binary dgCMatrix (peaks x annotations) from an SE, matrix or Matrix.
.as_match_matrix <- function(matches) {
    if (methods::is(matches, "SummarizedExperiment")) {
        an <- SummarizedExperiment::assayNames(matches)
        hit <- grep("matches", an, ignore.case = TRUE, value = TRUE)
        matches <- SummarizedExperiment::assay(matches,
            if (length(hit)) hit[1L] else 1L)
    }
    if (!(is.matrix(matches) || methods::is(matches, "Matrix"))) {
        .abort("'matches' must be a peaks x motifs matrix, sparse Matrix or ",
               "SummarizedExperiment with a 'matches' assay (e.g. from ",
               "matchMotifs()), not ", class(matches)[1L], ".")
    }
    m <- if (is.matrix(matches)) Matrix::Matrix(matches != 0, sparse = TRUE)
        else matches
    if (!methods::is(m, "CsparseMatrix")) m <- methods::as(m, "CsparseMatrix")
    if (!methods::is(m, "generalMatrix")) m <- methods::as(m, "generalMatrix")
    if (!class(m)[1L] %in% c("dgCMatrix", "lgCMatrix", "ngCMatrix"))
        m <- methods::as(m, "dMatrix")
    if (is.null(colnames(m)))
        colnames(m) <- paste0("annotation", seq_len(ncol(m)))
    m
}

# 1-based, unique, sorted peak indices from logical or numeric selections.
.as_peak_index <- function(x, n, name) {
    if (is.logical(x)) {
        if (length(x) != n) {
            .abort("logical '", name, "' has length ", length(x), " but ",
                   "there are ", n, " peaks (rows of 'matches').")
        }
        return(which(x))
    }
    if (!is.numeric(x) || anyNA(x) || any(x < 1 | x > n | x != round(x))) {
        .abort("'", name, "' must be a logical vector over the ", n,
               " peaks or whole peak indices in 1..", n, ".")
    }
    sort(unique(as.integer(x)))
}

# Background as a count per peak (ArchR's bgdPeaks background repeats peaks,
# which counts them more than once).
.background_weights <- function(background, fg, m, matches, gc, nBackground) {
    n <- nrow(m)
    if (is.matrix(background) && is.numeric(background)) {
        if (nrow(background) != n || anyNA(background) ||
            any(background < 1 | background > n)) {
            .abort("a background matrix must have one row per peak (", n,
                   ") of peak indices in 1..", n, ", as from ",
                   "getBackgroundPeaks().")
        }
        return(tabulate(c(fg, as.vector(background[fg, ])), n))
    }
    if (is.character(background) && length(background) == 1L) {
        bg <- match.arg(background, c("all", "gc-matched"))
        if (bg == "all") return(rep(1L, n))
        drawn <- .gc_matched(fg, .peak_gc(gc, matches, n),
                             .check_number(nBackground, "nBackground", 1,
                                           whole = TRUE))
        return(tabulate(c(fg, drawn), n))
    }
    w <- tabulate(.as_peak_index(background, n, "background"), n)
    if (any(w[fg] == 0L)) {
        .abort(sum(w[fg] == 0L), " foreground peak(s) are not in ",
               "'background'; the foreground must be part of the ",
               "background (use union(foreground, background)).")
    }
    w
}

.peak_gc <- function(gc, matches, n) {
    if (is.null(gc) && methods::is(matches, "SummarizedExperiment")) {
        rd <- SummarizedExperiment::rowData(matches)
        gc <- if (!is.null(rd$GC)) rd$GC else rd$bias
    }
    if (!is.numeric(gc) || length(gc) != n || anyNA(gc)) {
        .abort("background = \"gc-matched\" needs the GC fraction of each ",
               "of the ", n, " peaks: pass gc = ... (e.g. from ",
               "getPeakSequences() + letterFrequency) or rowData(matches)$GC.")
    }
    gc
}

# For each foreground peak, nBackground non-foreground peaks from the same
# GC bin (50 equal-count bins over all peaks), drawn with R's RNG.
.gc_matched <- function(fg, gc, k) {
    n <- length(gc)
    bin <- findInterval(rank(gc, ties.method = "first"),
                        seq(0, n, length.out = 51L), left.open = TRUE)
    pool <- split(setdiff(seq_len(n), fg), bin[setdiff(seq_len(n), fg)])
    unlist(lapply(fg, function(p) {
        cand <- pool[[as.character(bin[p])]]
        if (!length(cand)) cand <- setdiff(seq_len(n), fg)
        cand[sample.int(length(cand), k, replace = TRUE)]
    }), use.names = FALSE)
}

.enrichment_table <- function(m, fg, wb, test, padj, threads) {
    wf <- tabulate(fg, nrow(m))
    cnt <- .core(epi_annotation_match_counts(m, cbind(as.numeric(wf),
        as.numeric(wb)), threads))
    out <- S4Vectors::DataFrame(feature = colnames(m),
        CompareFrequency = cnt[, 1L], nCompare = length(fg),
        CompareProportion = cnt[, 1L] / length(fg),
        BackgroundFrequency = cnt[, 2L], nBackground = sum(wb),
        BackgroundProporition = cnt[, 2L] / sum(wb))
    out$Enrichment <- out$CompareProportion / out$BackgroundProporition
    if (test != "hypergeometric" && any(wb < wf)) {
        .abort("'fisher'/'chisq' compare the foreground with the background ",
               "outside it, so the background must contain the foreground.")
    }
    # other = background peaks outside the foreground
    a <- cnt[, 1L]; n1 <- length(fg)
    c2 <- cnt[, 2L] - a; n2 <- sum(wb) - n1
    lp <- switch(test,
        hypergeometric = stats::phyper(a - 1, cnt[, 2L], sum(wb) - cnt[, 2L],
                                       n1, lower.tail = FALSE, log.p = TRUE),
        fisher = log(.fisher_two_sided(a, n1, c2, n2)),
        chisq = {
            out$chisq <- .pearson_chisq(a, n1, c2, n2)
            stats::pchisq(out$chisq, 1, lower.tail = FALSE, log.p = TRUE)
        })
    out$mlog10p <- round(-lp / log(10), 4)
    k <- if (padj == "ArchR") 9 else ncol(m)
    out$mlog10Padj <- pmax(out$mlog10p - log10(k), 0)
    out$pvalue <- exp(lp)
    out$FDR <- stats::p.adjust(out$pvalue, "BH")
    rownames(out) <- out$feature
    out
}

.pearson_chisq <- function(a, n1, c2, n2) {
    b <- n1 - a; d <- n2 - c2; n <- n1 + n2
    num <- n * (a * d - b * c2)^2
    den <- as.numeric(n1) * n2 * (a + c2) * (b + d)
    ifelse(den > 0, num / den, NaN)
}

# Two-sided Fisher exact p-value per row: the total probability of tables
# no more likely than the observed one, with fisher.test()'s 1e-7 relative
# tolerance.
.fisher_two_sided <- function(a, n1, c2, n2) {
    vapply(seq_along(a), function(i) {
        m <- a[i] + c2[i]
        x <- max(0, n1 - (n1 + n2 - m)):min(n1, m)
        d <- stats::dhyper(x, m, n1 + n2 - m, n1, log = TRUE)
        obs <- stats::dhyper(a[i], m, n1 + n2 - m, n1, log = TRUE)
        min(1, sum(exp(d[d <= obs + log1p(1e-7)])))
    }, numeric(1))
}

# ArchR: the assays of the marker SE are variables of the cutOff expression.
.eval_cutoff <- function(se, cutOff) {
    .check_string(cutOff, "cutOff")
    env <- as.list(SummarizedExperiment::assays(se))
    pass <- tryCatch(eval(parse(text = cutOff)[[1L]], env, baseenv()),
        error = function(e) .abort("cutOff '", cutOff, "' could not be ",
            "evaluated on the assays (", paste(names(env), collapse = ", "),
            "): ", conditionMessage(e), kind = "input"))
    pass <- as.matrix(pass)
    if (!is.logical(pass) || !identical(dim(pass), dim(se))) {
        .abort("cutOff must give TRUE/FALSE per peak and group, e.g. ",
               "\"FDR <= 0.1 & Log2FC >= 0.5\".")
    }
    pass[is.na(pass)] <- FALSE
    pass
}

# Marker SE rows and match rows must be the same peaks: by coordinates
# where both have them (ArchR pastes seqnames_start_end), else by count.
.align_matches <- function(matches, se) {
    n <- if (is.null(dim(matches))) NA else nrow(matches)
    key <- function(x) {
        if (methods::is(x, "RangedSummarizedExperiment")) {
            r <- SummarizedExperiment::rowRanges(x)
            return(paste(GenomicRanges::seqnames(r), BiocGenerics::start(r),
                         BiocGenerics::end(r), sep = "_"))
        }
        rd <- SummarizedExperiment::rowData(x)
        if (all(c("seqnames", "start", "end") %in% names(rd)))
            return(paste(rd$seqnames, rd$start, rd$end, sep = "_"))
        NULL
    }
    km <- if (methods::is(matches, "SummarizedExperiment")) key(matches)
    ks <- key(se)
    if (!is.null(km) && !is.null(ks)) {
        i <- match(ks, km)
        if (anyNA(i)) {
            .abort(sum(is.na(i)), " marker peak(s) are not among the peaks ",
                   "of 'matches' (e.g. ", ks[is.na(i)][1L], "); match motifs ",
                   "on the same peak set.")
        }
        return(matches[i, ])
    }
    if (!identical(n, nrow(se))) {
        .abort("'matches' has ", n, " rows but the marker SE has ", nrow(se),
               " peaks; they must be the same peaks in the same order.")
    }
    matches
}

#' Heatmap of enrichment across groups
#'
#' @description ArchR's `plotEnrichHeatmap()` selection in ggplot2: per
#' group the `n` annotations with the highest `mlog10Padj` above `cutOff`;
#' values capped at `pMax` and scaled to 0-100 by each row's maximum (row
#' labels show that maximum); rows ordered by the first group where they
#' reach 90% of their maximum, then by value; groups by hierarchical
#' clustering when `clusterCols`.
#' @param seEnrich Result of `peakAnnoEnrichment()` on a marker SE.
#' @param n,cutOff,pMax,clusterCols,transpose,returnMatrix As in ArchR.
#' @return A ggplot, or the scaled matrix when `returnMatrix = TRUE`.
#' @seealso ArchR's `plotEnrichHeatmap()`
#' @examples
#' mat <- matrix(c(50, 10, 0, 30, 60, 0, 5, 5, 25), 3,
#'     dimnames = list(c("m1", "m2", "m3"), c("A", "B", "C")))
#' se <- SummarizedExperiment::SummarizedExperiment(list(mlog10Padj = mat))
#' plotEnrichHeatmap(se, n = 1, cutOff = 20, returnMatrix = TRUE)
#' @export
plotEnrichHeatmap <- function(seEnrich, n = 10, cutOff = 20, pMax = Inf,
        clusterCols = TRUE, transpose = FALSE, returnMatrix = FALSE) {
    mat <- SummarizedExperiment::assay(seEnrich, "mlog10Padj")
    keep <- unique(unlist(lapply(seq_len(ncol(mat)), function(j) {
        idx <- utils::head(order(mat[, j], decreasing = TRUE), n)
        rownames(mat)[idx[mat[idx, j] > cutOff]]
    })))
    if (!length(keep)) {
        .abort("no annotation has mlog10Padj > cutOff = ", cutOff,
               "; lower cutOff.")
    }
    mat <- pmin(mat[keep, , drop = FALSE], pMax)
    mx <- apply(mat, 1L, max)
    sc <- mat / mx * 100
    first <- apply(sc >= 90, 1L, function(r) which(r)[1L])
    ord <- order(first, -apply(sc, 1L, max), -rowSums(sc))
    sc <- sc[ord, , drop = FALSE]
    rownames(sc) <- paste0(rownames(sc), " (", round(mx[ord]), ")")
    if (clusterCols && ncol(sc) > 2L)
        sc <- sc[, stats::hclust(stats::dist(t(sc)))$order, drop = FALSE]
    if (transpose) sc <- t(sc)
    if (returnMatrix) return(sc)
    d <- data.frame(row = factor(rep(rownames(sc), ncol(sc)),
                                 levels = rev(rownames(sc))),
                    col = factor(rep(colnames(sc), each = nrow(sc)),
                                 levels = colnames(sc)),
                    value = as.vector(sc))
    ggplot2::ggplot(d, ggplot2::aes(.data$col, .data$row, fill = .data$value)) +
        ggplot2::geom_tile(colour = "white") +
        ggplot2::scale_fill_viridis_c(
            name = "Norm. enrichment\n-log10(P-adj)\n[0-max]") +
        ggplot2::labs(x = NULL, y = NULL) +
        ggplot2::theme_minimal(base_size = 9) +
        ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 90,
                                                           hjust = 1))
}

#' Ranked enrichment dot plot
#'
#' @description Annotations ranked by an enrichment column, the top `n`
#' labelled (ArchR tutorial's motif-enrichment plot).
#' @param enrich A `DataFrame` from `peakAnnoEnrichment()` or its SE result
#'   (then `group` picks the column).
#' @param column Column (or assay) to rank by, default `"mlog10Padj"`.
#' @param n Number of labelled top annotations.
#' @param group For an SE: the group (column name) to plot.
#' @return A ggplot.
#' @examples
#' m <- Matrix::rsparsematrix(200, 30, 0.2) != 0
#' colnames(m) <- paste0("M", 1:30)
#' plotEnrichRank(peakAnnoEnrichment(1:60, m), n = 5)
#' @export
plotEnrichRank <- function(enrich, column = "mlog10Padj", n = 10,
                           group = NULL) {
    if (methods::is(enrich, "SummarizedExperiment")) {
        a <- SummarizedExperiment::assay(enrich, column)
        group <- if (is.null(group)) colnames(a)[1L] else group
        v <- a[, group]
    } else {
        if (!column %in% names(enrich))
            .abort("'enrich' has no column '", column, "'.")
        v <- stats::setNames(enrich[[column]], rownames(enrich))
    }
    d <- data.frame(feature = names(v), value = as.numeric(v))
    d <- d[order(d$value, decreasing = TRUE), ]
    d$rank <- seq_len(nrow(d))
    top <- utils::head(d, n)
    ggplot2::ggplot(d, ggplot2::aes(.data$rank, .data$value,
                                    colour = .data$value)) +
        ggplot2::geom_point(size = 1) +
        ggplot2::geom_text(data = top, ggplot2::aes(label = .data$feature),
                           hjust = -0.1, size = 2.5, colour = "black",
                           check_overlap = TRUE) +
        ggplot2::scale_colour_viridis_c(guide = "none") +
        ggplot2::labs(x = "Rank", y = column, title = group) +
        ggplot2::theme_bw(base_size = 10)
}
