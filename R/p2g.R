# Peak-to-gene links and co-accessibility at the matrix level: ArchR
# 1.0.3's addPeak2GeneLinks / addCoAccessibility procedure on
# SummarizedExperiments and an embedding. Project wrappers only have to
# fetch the peak matrix, gene matrix and reduced dimensions.

#' @importFrom methods setGeneric setMethod
#' @importClassesFrom S4Vectors DataFrame
NULL

#' Peak-to-gene links from kNN metacells (ArchR's addPeak2GeneLinks)
#'
#' @description Reimplements the statistics of ArchR 1.0.3's
#' `addPeak2GeneLinks()` for matrices: `knnIteration` cells are sampled with
#' R's `sample()` after `set.seed(seed)` (so the metacells are ArchR's), each
#' with its `k` nearest neighbours in `embedding` (itself included); a group
#' sharing more than `floor(overlapCutoff * k)` cells with an earlier kept
#' group is dropped. Peak and gene matrices are summed over the cells of each
#' metacell, scaled to `scaleTo` per metacell, `log2(x + 1)` transformed, and
#' every peak whose centre lies within `maxDist` of a gene's position is
#' correlated (Pearson) with that gene across metacells. P-values are
#' Student-t with `nGroups - 2` degrees of freedom, `FDR` is Benjamini-Hochberg
#' over all pairs; `VarQATAC` / `VarQRNA` are the quantiles of each feature's
#' metacell variance among all peaks / genes.
#'
#' @param atac A SummarizedExperiment (peaks x cells) whose `rowRanges` are
#'   the peaks; the assay holds counts (a dgCMatrix or anything coercible).
#' @param rna A SummarizedExperiment (genes x cells) over the same cells.
#'   Each gene is placed at `start(rowRanges(rna))`, which is what ArchR uses
#'   (the leftmost coordinate for a GeneExpressionMatrix, the TSS for a
#'   GeneIntegrationMatrix); resize the ranges to their TSS beforehand for a
#'   strand-aware anchor.
#' @param embedding A numeric matrix, cells x dimensions, rownames = cell
#'   names (e.g. the scaled IterativeLSI coordinates), or the name of a
#'   `reducedDim()` of `atac` when it is a SingleCellExperiment. Its row order
#'   decides which cells are sampled, as in ArchR.
#' @param k Number of cells per metacell (ArchR default 100).
#' @param knnIteration Number of sampled seed cells (default 500).
#' @param overlapCutoff Maximum fraction of cells shared with an earlier kept
#'   metacell (default 0.8).
#' @param maxDist Maximum distance (bp) between a gene's position and a peak
#'   centre (default 250000).
#' @param scaleTo Metacell depth after normalisation (default 10^4).
#' @param log2Norm Whether to take `log2(x + 1)` (default TRUE).
#' @param addEmpiricalPval Also compute ArchR's `EmpPval` / `EmpFDR`: each
#'   correlation against the mean and sd of null correlations between genes
#'   and up to 1000 random peaks on other chromosomes (drawn after the seed
#'   cells from the same seeded stream, as ArchR does).
#' @param seed Seed passed to `set.seed()` before sampling, as ArchR does;
#'   the caller's random number state is restored afterwards. `NULL` uses
#'   the current state.
#' @param atacAssay,rnaAssay Assay (name or index) of `atac` and `rna`.
#' @param threads Number of C++ threads. Results do not depend on it.
#' @param verbose Whether to report the steps.
#' @return A [S4Vectors::DataFrame] with one row per candidate pair, ordered by
#'   gene then peak as ArchR's: `idxATAC`, `idxRNA` (row indices into `atac`
#'   and `rna`), `Correlation` (NA for a constant feature), `FDR`,
#'   `VarQATAC`, `VarQRNA`, then `seqnames`, `peakStart`, `peakEnd`, `gene`,
#'   `geneStart` and `distance` (bp between gene position and peak), and
#'   with `addEmpiricalPval` `EmpPval` and `EmpFDR`. Its
#'   metadata holds `peakSet`, `geneSet` (as ArchR's), `KNNList` (cell names
#'   of each metacell) and `nGroups`.
#' @seealso [getPeak2GeneLinks()], [coAccessibility()], ArchR's
#'   `addPeak2GeneLinks()`.
#' @examples
#' ex <- p2gExampleData()
#' links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 10,
#'                          knnIteration = 60, threads = 1)
#' head(links[order(-links$Correlation), ])
#' @export
peakToGeneLinks <- function(atac, rna, embedding, k = 100,
        knnIteration = 500, overlapCutoff = 0.8, maxDist = 250000,
        scaleTo = 10^4, log2Norm = TRUE, addEmpiricalPval = FALSE, seed = 1,
        atacAssay = 1L, rnaAssay = 1L,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    threads <- .check_threads(threads)
    .check_p2g_numbers(k, knnIteration, overlapCutoff, maxDist, scaleTo)
    .check_flag(log2Norm, "log2Norm")
    .check_flag(addEmpiricalPval, "addEmpiricalPval")
    peaks <- .p2g_ranges(atac, "atac")
    genes <- .p2g_gene_ranges(rna)
    emb <- .p2g_embedding(embedding, atac)
    xa <- .p2g_assay(atac, atacAssay, "atac")
    xr <- .p2g_assay(rna, rnaAssay, "rna")
    cells <- .p2g_match_cells(emb, list(atac = xa, rna = xr))
    pairs <- .p2g_pairs(genes, peaks, maxDist)
    # one seeded stream, as ArchR: seed cells first, then null pairs
    draws <- .with_r_seed(seed, {
        idx <- .p2g_sample(nrow(emb), k, knnIteration)
        list(idx = idx, null = if (addEmpiricalPval)
            .p2g_null_pairs(pairs, peaks))
    })
    groups <- .p2g_groups(emb, draws$idx, k, overlapCutoff, threads)
    if (verbose) message(nrow(groups), " metacells, ", nrow(pairs),
                         " candidate pairs")
    res <- .core(epi_p2g_correlate(xa, xr, .p2g_cols(cells$atac, groups),
        .p2g_cols(cells$rna, groups), c(pairs$A, draws$null$A) - 1L,
        c(pairs$B, draws$null$B) - 1L, scaleTo, log2Norm, threads))
    dim(res$cor) <- NULL
    np <- nrow(pairs)
    null_cor <- res$cor[-seq_len(np)]
    res$cor <- res$cor[seq_len(np)]
    out <- .p2g_table(pairs, res, peaks, genes, nrow(groups),
                      .p2g_knn_list(groups, rownames(emb)))
    if (addEmpiricalPval) out <- .p2g_empirical(out, null_cor)
    out
}

# ArchR's .getNullCorrelations pairs: per chromosome of the candidate
# pairs (in pair order), up to n random peaks on other chromosomes against
# every gene paired on that chromosome.
.p2g_null_pairs <- function(pairs, peaks, n = 1000L) {
    seq_a <- as.character(GenomicRanges::seqnames(peaks))
    pair_chr <- seq_a[pairs$A]
    out <- lapply(unique(pair_chr), function(chr) {
        id <- which(seq_a != chr)
        trans <- if (length(id) > n) sample(id, n) else id
        grid <- expand.grid(A = trans, B = unique(pairs$B[pair_chr == chr]))
        data.frame(A = grid$A, B = grid$B)
    })
    do.call(rbind, out)
}

# EmpPval: two-sided normal p of the correlation against the null
# correlations' mean and sd (ArchR 1.0.3); EmpFDR by BH.
.p2g_empirical <- function(out, null_cor) {
    null_cor <- null_cor[!is.na(null_cor)]
    z <- (out$Correlation - mean(null_cor)) / stats::sd(null_cor)
    out$EmpPval <- 2 * stats::pnorm(-abs(z))
    out$EmpFDR <- stats::p.adjust(out$EmpPval, method = "fdr")
    out
}

.check_p2g_numbers <- function(k, knnIteration, overlapCutoff, maxDist,
                               scaleTo) {
    .check_number(k, "k", min = 2, whole = TRUE)
    .check_number(knnIteration, "knnIteration", min = 1, whole = TRUE)
    .check_number(overlapCutoff, "overlapCutoff", min = 0, max = 1)
    .check_number(maxDist, "maxDist", min = 0)
    .check_number(scaleTo, "scaleTo", min = 0)
    invisible(TRUE)
}

# Runs `expr` after set.seed(seed) and puts the caller's RNG state back:
# ArchR seeds R's RNG itself, and reproducing its metacells is the spec.
.with_r_seed <- function(seed, expr) {
    if (is.null(seed)) return(expr)
    .check_number(seed, "seed", whole = TRUE)
    env <- globalenv()
    had <- exists(".Random.seed", envir = env, inherits = FALSE)
    if (had) old <- get(".Random.seed", envir = env, inherits = FALSE)
    on.exit(if (had) assign(".Random.seed", old, envir = env)
            else rm(".Random.seed", envir = env))
    set.seed(seed)
    expr
}

# ArchR's seed cells: sample(seq_len(n), knnIteration, replace = n <
# knnIteration), drawn from the caller's (or the seeded) R stream.
.p2g_sample <- function(n, k, knnIteration) {
    if (n < k) {
        .abort("There are fewer cells (", n, ") than k = ", k,
               "; lower k to at most ", n, " (ArchR uses k = 100).")
    }
    sample(seq_len(n), knnIteration, replace = n < knnIteration)
}

# Metacells as a G x k integer matrix of embedding rows (1-based): kNN of
# the seed cells, then ArchR's determineOverlapCpp filter.
.p2g_groups <- function(emb, idx, k, overlapCutoff, threads) {
    kn <- .core(epi_p2g_knn_groups(emb, idx - 1L, as.integer(k),
        as.integer(floor(overlapCutoff * k)), threads))
    groups <- kn$knn[kn$keep == 1L, , drop = FALSE] + 1L
    if (nrow(groups) < 3L) {
        .abort("Only ", nrow(groups), " metacell(s) survived the overlap ",
               "filter; correlations need at least 3. Lower k or raise ",
               "overlapCutoff / knnIteration.", kind = "numeric")
    }
    groups
}

.p2g_knn_list <- function(groups, cell_names) {
    lapply(seq_len(nrow(groups)), function(g) cell_names[groups[g, ]])
}

# Metacell cells as 0-based column indices of one matrix (G x k).
.p2g_cols <- function(col_of_row, groups) {
    matrix(col_of_row[groups] - 1L, nrow(groups), ncol(groups))
}

# ---- inputs ---------------------------------------------------------------

.p2g_check_se <- function(se, name) {
    if (!methods::is(se, "SummarizedExperiment")) {
        .abort("'", name, "' must be a SummarizedExperiment (features x ",
               "cells), not a ", class(se)[1L], "; wrap a matrix with ",
               "SummarizedExperiment(assays = list(counts = x), ",
               "rowRanges = gr).")
    }
    invisible(se)
}

.p2g_ranges <- function(se, name) {
    .p2g_check_se(se, name)
    gr <- SummarizedExperiment::rowRanges(se)
    if (!methods::is(gr, "GRanges")) {
        .abort("'", name, "' has no genomic coordinates: give it ",
               "rowRanges(", name, ") <- a GRanges with one range per row.")
    }
    S4Vectors::mcols(gr) <- NULL
    names(gr) <- NULL
    gr
}

# Gene anchors: start(rowRanges(rna)) as a width-1 GRanges with a `name`
# column, as ArchR's geneStart. Genes without coordinates are an error.
.p2g_gene_ranges <- function(rna) {
    .p2g_check_se(rna, "rna")
    gr <- SummarizedExperiment::rowRanges(rna)
    if (methods::is(gr, "GRangesList")) {
        n <- S4Vectors::elementNROWS(gr)
        if (any(n == 0L)) {
            bad <- which(n == 0L)
            .abort(length(bad), " of ", length(n), " genes in 'rna' have no ",
                   "coordinates (e.g. ", .p2g_examples(rownames(rna), bad),
                   "); set rowRanges(rna) to a GRanges with each gene's ",
                   "TSS, or drop them: rna[lengths(rowRanges(rna)) > 0, ].")
        }
        gr <- unlist(range(gr), use.names = FALSE)
    }
    if (!methods::is(gr, "GRanges")) {
        .abort("'rna' has no gene coordinates (TSS); set rowRanges(rna) to ",
               "a GRanges with each gene's TSS, e.g. from the gene ",
               "annotation, matched by gene name.")
    }
    nm <- rownames(rna)
    if (is.null(nm)) nm <- if (!is.null(gr$name)) gr$name else
        paste0("gene", seq_along(gr))
    GenomicRanges::GRanges(GenomicRanges::seqnames(gr),
        IRanges::IRanges(GenomicRanges::start(gr), width = 1L),
        name = nm, idx = seq_along(gr))
}

.p2g_examples <- function(names, idx, n = 3L) {
    lab <- if (is.null(names)) paste0("row ", idx) else names[idx]
    paste(utils::head(lab, n), collapse = ", ")
}

.p2g_assay <- function(se, which, name) {
    x <- SummarizedExperiment::assay(se, which, withDimnames = TRUE)
    if (!methods::is(x, "dgCMatrix")) {
        x <- tryCatch(methods::as(methods::as(methods::as(x,
            "CsparseMatrix"), "generalMatrix"), "dMatrix"),
            error = function(e) methods::as(x, "dgCMatrix"))
    }
    if (anyNA(x@x)) {
        .abort("assay of '", name, "' contains NA; replace NAs by 0 or ",
               "drop the affected features first.")
    }
    x
}

.p2g_embedding <- function(embedding, se) {
    if (is.character(embedding) && length(embedding) == 1L) {
        if (!methods::is(se, "SingleCellExperiment")) {
            .abort("embedding = \"", embedding, "\" names a reducedDim, ",
                   "which needs 'atac' to be a SingleCellExperiment; pass ",
                   "the cells x dims matrix itself instead.")
        }
        embedding <- SingleCellExperiment::reducedDim(se, embedding)
    }
    emb <- as.matrix(embedding)
    if (!is.numeric(emb) || length(dim(emb)) != 2L || ncol(emb) < 1L) {
        .abort("'embedding' must be a numeric matrix (cells x dims), not a ",
               class(embedding)[1L], ".")
    }
    if (anyDuplicated(rownames(emb))) {
        .abort("'embedding' repeats cell names (e.g. ",
               rownames(emb)[anyDuplicated(rownames(emb))], "); give each ",
               "cell one row.")
    }
    bad <- which(!stats::complete.cases(emb))
    if (length(bad)) {
        .abort("'embedding' has NA/NaN values in ", length(bad), " cells ",
               "(e.g. ", .p2g_examples(rownames(emb), bad), "); drop those ",
               "cells or recompute the embedding without them.")
    }
    storage.mode(emb) <- "double"
    emb
}

# For each matrix, the column of every embedding row (1-based). The
# embedding decides the cells; each must be present in both matrices.
.p2g_match_cells <- function(emb, mats) {
    if (is.null(rownames(emb))) {
        n <- vapply(mats, ncol, 1L)
        if (any(n != nrow(emb))) {
            .abort("'embedding' has no rownames and ", nrow(emb), " rows, ",
                   "but the matrices have ", paste(n, collapse = " / "),
                   " cells; set rownames(embedding) to the cell names.")
        }
        return(lapply(mats, function(x) seq_len(ncol(x))))
    }
    out <- lapply(names(mats), function(nm) {
        cn <- colnames(mats[[nm]])
        m <- if (is.null(cn)) rep(NA_integer_, nrow(emb)) else
            match(rownames(emb), cn)
        if (anyNA(m)) {
            bad <- which(is.na(m))
            .abort(length(bad), " of ", nrow(emb), " embedding cells are ",
                   "not columns of '", nm, "' (e.g. ",
                   .p2g_examples(rownames(emb), bad), "); use the same ",
                   "barcodes, e.g. cells <- intersect(colnames(atac), ",
                   "colnames(rna)) and subset all three inputs to them.")
        }
        m
    })
    stats::setNames(out, names(mats))
}

# Candidate pairs as ArchR finds them: peak centres inside gene position
# +- maxDist; ordered by gene, then peak (findOverlaps order).
.p2g_pairs <- function(genes, peaks, maxDist) {
    win <- suppressWarnings(GenomicRanges::resize(genes, 2 * maxDist + 1,
                                                  fix = "center"))
    cen <- GenomicRanges::resize(peaks, 1L, fix = "center")
    # no common seqlevels only warns; the error below says what to do
    o <- suppressWarnings(GenomicRanges::findOverlaps(win, cen,
                                                      ignore.strand = TRUE))
    if (length(o) == 0L) {
        .abort("No peak centre lies within maxDist = ", maxDist, " bp of ",
               "any gene. Check that peaks and genes use the same ",
               "chromosome names (peaks: ", .p2g_seqs(peaks), "; genes: ",
               .p2g_seqs(genes), "; see GenomeInfoDb::seqlevelsStyle) ",
               "or raise maxDist.")
    }
    b <- S4Vectors::queryHits(o)
    a <- S4Vectors::subjectHits(o)
    # GenomicRanges::distance() for a width-1 gene anchor, without its
    # per-pair S4 overhead: bases strictly between the two ranges.
    g <- GenomicRanges::start(genes)[b]
    dist <- pmax(0L, GenomicRanges::start(peaks)[a] - g - 1L,
                 g - GenomicRanges::end(peaks)[a] - 1L)
    data.frame(B = b, A = a, distance = dist)
}

.p2g_seqs <- function(gr) {
    paste(utils::head(unique(as.character(GenomicRanges::seqnames(gr))),
                      3L), collapse = ", ")
}

# ---- statistics -------------------------------------------------------------

# ArchR's .getQuantiles: trunc(rank(v)) / length(v).
.get_quantiles <- function(v) trunc(rank(v)) / length(v)

# Student t test of a Pearson correlation over n metacells and BH FDR, as in
# ArchR 1.0.3 (IntegrativeAnalysis.R): 1 - r^2 is floored at 1e-17.
.cor_stats <- function(r, n) {
    tstat <- r / sqrt(pmax(1 - r^2, 1e-17, na.rm = TRUE) / (n - 2))
    pval <- 2 * stats::pt(-abs(tstat), n - 2)
    list(TStat = tstat, Pval = pval, FDR = stats::p.adjust(pval, "fdr"))
}

.p2g_table <- function(pairs, res, peaks, genes, n_groups, knn) {
    r <- res$cor
    r[is.nan(r)] <- NA_real_
    a <- pairs$A
    b <- pairs$B
    out <- S4Vectors::DataFrame(idxATAC = a, idxRNA = b, Correlation = r,
        FDR = .cor_stats(r, n_groups)$FDR,
        VarQATAC = .get_quantiles(res$varA)[a],
        VarQRNA = .get_quantiles(res$varB)[b],
        seqnames = as.character(GenomicRanges::seqnames(peaks))[a],
        peakStart = GenomicRanges::start(peaks)[a],
        peakEnd = GenomicRanges::end(peaks)[a],
        gene = genes$name[b], geneStart = GenomicRanges::start(genes)[b],
        distance = pairs$distance)
    S4Vectors::metadata(out) <- list(peakSet = peaks, geneSet = genes,
        KNNList = knn, nGroups = n_groups)
    out
}

# ---- co-accessibility -----------------------------------------------------

#' Peak co-accessibility from kNN metacells (ArchR's addCoAccessibility)
#'
#' @description ArchR 1.0.3's `addCoAccessibility()` on a peak matrix: the
#' same metacells as [peakToGeneLinks()] (same `seed`, same groups), peak
#' matrices summed per metacell, scaled by the metacell's total counts to
#' `scaleTo`, `log2(x + 1)`, and the Pearson correlation of every pair of
#' peaks whose centres lie within `maxDist` of each other (both orientations,
#' no self pairs). Pairs with an undefined correlation are dropped before the
#' t statistics and BH FDR, and `VarQuantile1/2` rank the metacell variances
#' among the remaining pairs, as ArchR does.
#'
#' @inheritParams peakToGeneLinks
#' @param maxDist Maximum distance (bp) between peak centres (default 1e5).
#' @param atacAssay Assay (name or index) of `atac`.
#' @return A [S4Vectors::DataFrame] with ArchR's columns `queryHits`,
#'   `subjectHits` (row indices into `atac`), `seqnames`, `correlation`,
#'   `Variability1`, `Variability2`, `TStat`, `Pval`, `FDR`, `VarQuantile1`,
#'   `VarQuantile2`; metadata `peakSet`, `KNNList` and `nGroups`.
#' @seealso [getCoAccessibility()], ArchR's `addCoAccessibility()`.
#' @examples
#' ex <- p2gExampleData()
#' coa <- coAccessibility(ex$atac, ex$embedding, k = 10, knnIteration = 60,
#'                        threads = 1)
#' getCoAccessibility(coa, corCutOff = 0.5, returnLoops = FALSE)
#' @export
coAccessibility <- function(atac, embedding, k = 100, knnIteration = 500,
        overlapCutoff = 0.8, maxDist = 100000, scaleTo = 10^4,
        log2Norm = TRUE, seed = 1, atacAssay = 1L,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    threads <- .check_threads(threads)
    .check_p2g_numbers(k, knnIteration, overlapCutoff, maxDist, scaleTo)
    .check_flag(log2Norm, "log2Norm")
    peaks <- .p2g_ranges(atac, "atac")
    emb <- .p2g_embedding(embedding, atac)
    xa <- .p2g_assay(atac, atacAssay, "atac")
    cells <- .p2g_match_cells(emb, list(atac = xa))
    idx <- .with_r_seed(seed, .p2g_sample(nrow(emb), k, knnIteration))
    groups <- .p2g_groups(emb, idx, k, overlapCutoff, threads)
    summits <- GenomicRanges::resize(peaks, 1L, fix = "center")
    o <- GenomicRanges::findOverlaps(summits, suppressWarnings(
        GenomicRanges::resize(summits, 2 * maxDist + 1, fix = "center")),
        ignore.strand = TRUE)
    q <- S4Vectors::queryHits(o)
    s <- S4Vectors::subjectHits(o)
    keep <- q != s
    q <- q[keep]
    s <- s[keep]
    if (verbose) message(nrow(groups), " metacells, ", length(q), " pairs")
    cg <- .p2g_cols(cells$atac, groups)
    res <- .core(epi_p2g_correlate(xa, NULL, cg, cg, q - 1L, s - 1L,
                                   scaleTo, log2Norm, threads))
    .coa_table(q, s, res, peaks, nrow(groups),
               .p2g_knn_list(groups, rownames(emb)))
}

.coa_table <- function(q, s, res, peaks, n_groups, knn) {
    r <- as.numeric(res$cor)
    ok <- !is.na(r)
    q <- q[ok]
    s <- s[ok]
    r <- r[ok]
    st <- .cor_stats(r, n_groups)
    out <- S4Vectors::DataFrame(queryHits = q, subjectHits = s,
        seqnames = GenomicRanges::seqnames(peaks)[q], correlation = r,
        Variability1 = res$varA[q], Variability2 = res$varA[s],
        TStat = st$TStat, Pval = st$Pval, FDR = st$FDR)
    out$VarQuantile1 <- .get_quantiles(out$Variability1)
    out$VarQuantile2 <- .get_quantiles(out$Variability2)
    S4Vectors::metadata(out) <- list(peakSet = peaks, KNNList = knn,
                                     nGroups = n_groups)
    out
}

# ---- filters and loops (ArchR's getPeak2GeneLinks / getCoAccessibility) ----

#' Filter peak-to-gene links and turn them into loops
#'
#' @description ArchR 1.0.3's `getPeak2GeneLinks()` applied to a table from
#' [peakToGeneLinks()]. As in ArchR, a negative `corCutOff` keeps
#' `Correlation <= corCutOff` (negative links) instead of `>=`.
#' @param ArchRProj The links table (a DataFrame from [peakToGeneLinks()]);
#'   project methods are added by the project class.
#' @param corCutOff,FDRCutOff,varCutOffATAC,varCutOffRNA ArchR's cut-offs
#'   (defaults 0.45, 1e-4, 0.25, 0.25; `NULL` skips a variance filter).
#' @param resolution Bin size (bp) to which loop anchors are rounded, or
#'   `NULL` for exact summit / gene positions.
#' @param returnLoops Whether to return loops (GRanges in a SimpleList named
#'   `Peak2GeneLinks`, metadata columns `value` = correlation and `FDR`)
#'   instead of the filtered table.
#' @param ... Unused.
#' @return The filtered DataFrame, or a `SimpleList(Peak2GeneLinks = GRanges)`.
#' @examples
#' ex <- p2gExampleData()
#' links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 10,
#'                          knnIteration = 60, threads = 1)
#' getPeak2GeneLinks(links, corCutOff = 0.3, FDRCutOff = 0.05)
#' @export
setGeneric("getPeak2GeneLinks", function(ArchRProj, ...)
    standardGeneric("getPeak2GeneLinks"))

#' @rdname getPeak2GeneLinks
#' @export
setMethod("getPeak2GeneLinks", "DataFrame", function(ArchRProj,
        corCutOff = 0.45, FDRCutOff = 1e-4, varCutOffATAC = 0.25,
        varCutOffRNA = 0.25, resolution = 1, returnLoops = TRUE) {
    p2g <- ArchRProj
    sel <- if (corCutOff >= 0) p2g$Correlation >= corCutOff else
        p2g$Correlation <= corCutOff
    p2g <- p2g[which(sel & p2g$FDR <= FDRCutOff), , drop = FALSE]
    if (!is.null(varCutOffATAC))
        p2g <- p2g[which(p2g$VarQATAC > varCutOffATAC), , drop = FALSE]
    if (!is.null(varCutOffRNA))
        p2g <- p2g[which(p2g$VarQRNA > varCutOffRNA), , drop = FALSE]
    if (!returnLoops) return(p2g)
    md <- S4Vectors::metadata(p2g)
    summit <- .loop_anchor(GenomicRanges::resize(md$peakSet, 1L, "center"),
                           resolution)
    gene <- .loop_anchor(md$geneSet, resolution)
    loops <- .loops(md$peakSet, p2g$idxATAC, summit[p2g$idxATAC],
        gene[p2g$idxRNA], S4Vectors::DataFrame(value = p2g$Correlation,
                                               FDR = p2g$FDR))
    S4Vectors::SimpleList(Peak2GeneLinks = loops)
})

#' Filter co-accessibility pairs and turn them into loops
#'
#' @description ArchR 1.0.3's `getCoAccessibility()` on a table from
#' [coAccessibility()]: keeps `correlation >= corCutOff`.
#' @param ArchRProj The table from [coAccessibility()].
#' @param corCutOff Minimum correlation (default 0.5).
#' @inheritParams getPeak2GeneLinks
#' @return The filtered DataFrame, or `SimpleList(CoAccessibility = GRanges)`
#'   with metadata column `value` (the correlation) and the table's columns.
#' @examples
#' ex <- p2gExampleData()
#' coa <- coAccessibility(ex$atac, ex$embedding, k = 10, knnIteration = 60,
#'                        threads = 1)
#' getCoAccessibility(coa)
#' @export
setGeneric("getCoAccessibility", function(ArchRProj, ...)
    standardGeneric("getCoAccessibility"))

#' @rdname getCoAccessibility
#' @export
setMethod("getCoAccessibility", "DataFrame", function(ArchRProj,
        corCutOff = 0.5, resolution = 1, returnLoops = TRUE) {
    coa <- ArchRProj[which(ArchRProj$correlation >= corCutOff), ,
                     drop = FALSE]
    if (!returnLoops) return(coa)
    peaks <- S4Vectors::metadata(coa)$peakSet
    summit <- .loop_anchor(GenomicRanges::resize(peaks, 1L, "center"),
                           resolution)
    mc <- coa[, -(1:3), drop = FALSE]
    S4Vectors::metadata(mc) <- list()
    mc$value <- coa$correlation
    loops <- .loops(peaks, coa$queryHits, summit[coa$queryHits],
                    summit[coa$subjectHits], mc)
    S4Vectors::SimpleList(CoAccessibility = loops)
})

.loop_anchor <- function(gr, resolution) {
    s <- GenomicRanges::start(gr)
    if (is.null(resolution)) return(s)
    floor(s / resolution) * resolution + floor(resolution / 2)
}

# ArchR's loop construction: anchors ordered left to right, sorted by value
# before unique() so duplicates keep the strongest, zero-width dropped.
.loops <- function(peaks, idx, from, to, mc) {
    gr <- GenomicRanges::GRanges(GenomicRanges::seqnames(peaks)[idx],
                                 IRanges::IRanges(pmin(from, to),
                                                  pmax(from, to)))
    S4Vectors::mcols(gr) <- mc
    gr <- gr[order(mc$value, decreasing = TRUE)]
    gr <- unique(gr)
    gr <- gr[IRanges::width(gr) > 0]
    sort(GenomeInfoDb::sortSeqlevels(gr))
}

# ---- bundled example ------------------------------------------------------

#' Small true-multiome example for peak-to-gene functions
#'
#' @description ArchR 1.0.3 outputs on muon's 10x Multiome PBMC test set
#' (565 cells, GRCh38; BSD-3 muon / CC BY 4.0 10x Genomics): the Tiles
#' PeakMatrix (1,587 peaks), the GeneExpressionMatrix (45 genes, ArchR's
#' depth-normalised values), the IterativeLSI coordinates (10 dims) and the
#' Seurat clusters.
#' @return A list: `atac` and `rna` (SummarizedExperiments with rowRanges,
#'   columns = cells), `embedding` (cells x 10, each cell's LSI coordinates
#'   z-scored as ArchR's `getReducedDims(scaleDims = TRUE)` does) and
#'   `clusters` (named character vector).
#' @examples
#' ex <- p2gExampleData()
#' dim(ex$atac); dim(ex$rna); dim(ex$embedding)
#' @export
p2gExampleData <- function() {
    x <- readRDS(system.file("extdata", "p2g_multiome.rds",
                             package = "epione", mustWork = TRUE))
    pr <- x$peakRanges
    gr <- x$geneRanges
    atac <- SummarizedExperiment::SummarizedExperiment(
        list(counts = x$peaks), rowRanges = GenomicRanges::GRanges(
            pr$seqnames, IRanges::IRanges(pr$start, pr$end)))
    rna <- SummarizedExperiment::SummarizedExperiment(
        list(normalized = x$genes), rowRanges = GenomicRanges::GRanges(
            gr$seqnames, IRanges::IRanges(gr$start, gr$end),
            strand = ifelse(is.na(gr$strand), "*", gr$strand)))
    emb <- x$lsi
    emb <- (emb - rowMeans(emb)) / apply(emb, 1L, stats::sd)
    list(atac = atac, rna = rna, embedding = emb, clusters = x$clusters)
}
