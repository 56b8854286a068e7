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

# ---- project forms (ArchR's addGeneExpressionMatrix, addPeak2GeneLinks,
# ---- addCoAccessibility on an EpioneProject) ------------------------------

#' Add a GeneExpressionMatrix to a project (ArchR's addGeneExpressionMatrix)
#'
#' @description For true multiome data (RNA and ATAC measured in the same
#' cells, so `colnames(seRNA)` are the project's cell names
#' `Sample#barcode`): ArchR 1.0.3's `addGeneExpressionMatrix()`. Per-cell
#' RNA QC is computed on all genes (`Gex_nUMI`, `Gex_nGenes`,
#' `Gex_MitoRatio` = share of `^MT` genes, `Gex_RiboRatio` = share of `^RP`
#' genes); genes on chromosomes absent from `chromSizes` or in `excludeChr`
#' are dropped, duplicated gene names keep the copy with most counts, and
#' each cell is scaled to `scaleTo` over the remaining genes. The matrix is
#' written into each Arrow file as ArchR lays it out (`Sparse.Double.Matrix`,
#' units `NormCounts`, FeatureDF `seqnames, idx, start, end, name, strand` in
#' the order of `seRNA`), the `Gex_*` values go to the Arrow metadata (-1 for
#' cells without RNA, as ArchR) and to `cellColData`.
#'
#' @param input An [EpioneProject-class] (or Arrow file paths).
#' @param seRNA A RangedSummarizedExperiment of RNA counts, genes x cells,
#'   with `rowRanges` (gene coordinates) and cell names as colnames.
#' @param chromSizes GRanges of chromosome lengths (default: the project's
#'   genome annotation).
#' @param excludeChr Chromosomes whose genes are dropped.
#' @param scaleTo Depth each cell is scaled to (default 10000).
#' @param verbose Report the cell overlap.
#' @param threads Unused (kept for ArchR's signature).
#' @param strictMatch Error, instead of a warning, when some project cells
#'   have no RNA (ArchR's `strictMatch`).
#' @param force Replace an existing GeneExpressionMatrix; as in ArchR, with
#'   `force = TRUE` fewer than half of the RNA seqnames in `chromSizes` is
#'   an error (a message otherwise).
#' @return The project with `Gex_*` columns in cellColData (Arrow paths,
#'   invisibly, when `input` is paths). The matrix is read back with
#'   `getMatrixFromProject(proj, "GeneExpressionMatrix")`.
#' @seealso [addPeak2GeneLinks()], ArchR's `addGeneExpressionMatrix()`.
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex1"))
#' ex$proj <- addGeneExpressionMatrix(ex$proj, ex$seRNA, verbose = FALSE)
#' getMatrixFromProject(ex$proj, "GeneExpressionMatrix", verbose = FALSE)
#' summary(getCellColData(ex$proj, "Gex_nUMI", drop = TRUE))
#' @export
addGeneExpressionMatrix <- function(input, seRNA,
        chromSizes = .project_anno(input, "chromSizes"),
        excludeChr = c("chrM", "chrY"), scaleTo = 10000, verbose = TRUE,
        threads = getOption("epione.threads", 2L), strictMatch = FALSE,
        force = TRUE) {
    if (!methods::is(seRNA, "RangedSummarizedExperiment")) {
        .abort("'seRNA' must be a RangedSummarizedExperiment (genes x ",
               "cells) with rowRanges = gene coordinates.")
    }
    if (!methods::is(chromSizes, "GRanges")) {
        .abort("'chromSizes' must be a GRanges of chromosome lengths (the ",
               "project's genomeAnnotation$chromSizes).")
    }
    .check_number(scaleTo, "scaleTo", min = 0)
    .gex_check_seqnames(seRNA, chromSizes, force, verbose)
    arrows <- .input_arrows(input)
    cells <- unlist(lapply(arrows, function(a) paste0(a$sample, "#",
                                                      a$cells)))
    .gex_check_cells(cells, colnames(seRNA), strictMatch, verbose)
    counts <- .gex_counts(seRNA)
    qc <- .gex_qc(counts)
    se <- .gex_features(seRNA, counts, chromSizes, excludeChr)
    for (a in arrows) {
        .check_new_matrix(a$file, "GeneExpressionMatrix", force)
        .gex_write(a, se, qc, scaleTo, excludeChr)
    }
    if (!methods::is(input, "EpioneProject")) return(invisible(input))
    cc <- rownames(input@cellColData)
    for (nm in names(qc)) {
        input@cellColData[[nm]] <- unname(qc[[nm]][match(cc, rownames(qc))])
    }
    input
}

.gex_check_seqnames <- function(seRNA, chromSizes, force, verbose) {
    seq_rna <- unique(as.character(GenomicRanges::seqnames(seRNA)))
    ok <- sum(seq_rna %in% as.character(GenomicRanges::seqnames(chromSizes)))
    if (ok <= 0.5 * length(seq_rna)) {
        msg <- paste0("only ", ok, " of ", length(seq_rna), " seqnames of ",
            "seRNA (e.g. ", paste(utils::head(seq_rna, 3), collapse = ", "),
            ") are in chromSizes; use the same chromosome style (see ",
            "GenomeInfoDb::seqlevelsStyle).")
        if (force) .abort(msg) else if (verbose) message(msg)
    }
}

# ArchR stops only when no cell overlaps; a partial overlap is a warning
# unless strictMatch.
.gex_check_cells <- function(cells, rna_cells, strictMatch, verbose) {
    n <- sum(cells %in% rna_cells)
    if (n == 0L || (strictMatch && n < length(cells))) {
        .abort(n, " of ", length(cells), " project cells (e.g. ", cells[1],
               ") are colnames of seRNA (e.g. ", rna_cells[1], "); name ",
               "the RNA cells 'Sample#barcode' like the project, or ",
               "subset the project to the RNA cells.")
    }
    if (n < length(cells)) {
        .warn(length(cells) - n, " of ", length(cells), " project cells ",
              "have no RNA in seRNA; their GeneExpressionMatrix columns are ",
              "absent. Subset the project to the RNA cells to avoid this.")
    }
    if (verbose) message("Overlap w/ scATAC = ", round(n / length(cells), 3))
}

.gex_counts <- function(seRNA) {
    x <- SummarizedExperiment::assay(seRNA, withDimnames = TRUE)
    if (!methods::is(x, "dgCMatrix")) {
        x <- methods::as(methods::as(methods::as(Matrix::Matrix(x,
            sparse = TRUE), "CsparseMatrix"), "generalMatrix"), "dMatrix")
    }
    x
}

# ArchR's Gex_* QC, on all genes before any filtering.
.gex_qc <- function(x) {
    n_umi <- Matrix::colSums(x)
    ratio <- function(pat) Matrix::colSums(x[grep(pat, rownames(x)), ,
                                             drop = FALSE]) / n_umi
    qc <- data.frame(Gex_nUMI = n_umi, Gex_nGenes = Matrix::colSums(x > 0),
                     Gex_MitoRatio = ratio("^MT"),
                     Gex_RiboRatio = ratio("^RP"))
    rownames(qc) <- colnames(x)
    qc
}

# Genes kept as ArchR keeps them, each with `idx` = rank within its
# chromosome in sorted order; the counts travel as the assay.
.gex_features <- function(seRNA, counts, chromSizes, excludeChr) {
    SummarizedExperiment::assay(seRNA, withDimnames = FALSE) <- counts
    chr <- as.character(GenomicRanges::seqnames(seRNA))
    se <- seRNA[chr %in% as.character(GenomicRanges::seqnames(chromSizes)) &
                !chr %in% excludeChr, ]
    if (!nrow(se)) .abort("no gene of seRNA is on a chromosome of ",
                          "chromSizes outside excludeChr.")
    nm <- rownames(se)
    dup <- which(nm %in% nm[duplicated(nm)])
    if (length(dup)) {
        rs <- Matrix::rowSums(SummarizedExperiment::assay(se)[dup, ,
                                                             drop = FALSE])
        best <- dup[order(rs, decreasing = TRUE)]
        best <- best[!duplicated(nm[best])]
        se <- se[-setdiff(dup, best), ]
    }
    gr <- GenomeInfoDb::sortSeqlevels(SummarizedExperiment::rowRanges(se))
    GenomicRanges::strand(gr) <- "*"   # ArchR sorts with ignore.strand
    ord <- order(gr)
    sc <- as.character(GenomicRanges::seqnames(gr))[ord]
    idx <- integer(length(gr))
    idx[ord] <- stats::ave(seq_along(ord), sc, FUN = seq_along)
    SummarizedExperiment::rowData(se)$idx <- idx
    se
}

.gex_write <- function(a, se, qc, scaleTo, excludeChr) {
    all_cells <- paste0(a$sample, "#", a$cells)
    use <- a$cells[all_cells %in% colnames(se)]
    x <- SummarizedExperiment::assay(se)[, paste0(a$sample, "#", use),
                                         drop = FALSE]
    x@x <- scaleTo * x@x / rep.int(Matrix::colSums(x), diff(x@p))
    gr <- SummarizedExperiment::rowRanges(se)
    fdf <- data.frame(seqnames = as.character(GenomicRanges::seqnames(gr)),
        idx = as.integer(SummarizedExperiment::rowData(se)$idx),
        start = GenomicRanges::start(gr), end = GenomicRanges::end(gr),
        name = rownames(se), strand = as.integer(GenomicRanges::strand(gr)),
        stringsAsFactors = FALSE)
    params <- data.frame(scaleTo = scaleTo, exclude = if (length(excludeChr))
        excludeChr else NA_character_, stringsAsFactors = FALSE)
    .write_matrix_info(a$file, "GeneExpressionMatrix", "Sparse.Double.Matrix",
                       "NormCounts", use, fdf, params)
    # blocks are written in idx order so that row idx of a block is the
    # gene with that idx, whatever the order of seRNA
    for (chr in unique(fdf$seqnames)) {
        rows <- which(fdf$seqnames == chr)
        rows <- rows[order(fdf$idx[rows])]
        .core(epi_arrow_write_sparse(a$file, paste0("GeneExpressionMatrix/",
                                                    chr), x[rows, ,
                                                            drop = FALSE]))
    }
    md_cells <- .h5read(a$file, "Metadata/CellNames")
    key <- paste0(a$sample, "#", md_cells)
    for (nm in names(qc)) {
        v <- qc[[nm]][match(key, rownames(qc))]
        v[is.na(v)] <- -1
        .arrow_h5write(a$file, paste0("Metadata/", nm), as.numeric(v))
    }
}

# ArchR's getReducedDims for a project slot: row z-scores when scaleDims
# (default: the reduction's own setting), dims correlated to depth above
# corCutOff dropped, project cells only (ArchR 1.0.3 ProjectMethods.R).
.project_dims <- function(proj, reducedDims, dimsToUse, scaleDims,
                          corCutOff) {
    rd <- proj@reducedDims[[reducedDims]]
    if (is.null(rd)) {
        .abort("the project has no reducedDims '", reducedDims, "' (has: ",
               paste(names(proj@reducedDims), collapse = ", "), "); run ",
               "addIterativeLSI() first or set ArchRProj@reducedDims[[\"",
               reducedDims, "\"]] <- list(matSVD = cells x dims).")
    }
    m <- if (is.list(rd) && !is.null(rd$matSVD)) rd$matSVD else rd[[1L]]
    m <- as.matrix(m)
    own <- if (is.list(rd)) rd$scaleDims else NULL
    if (length(own) && is.na(own[1L])) scaleDims <- FALSE
    if (is.null(scaleDims)) scaleDims <- isTRUE(own)
    ctd <- if (is.list(rd)) rd$corToDepth else NULL
    cor_d <- if (is.null(ctd) || (!is.list(ctd) && is.na(ctd[1L])))
        rep(0, ncol(m)) else if (scaleDims) ctd$scaled else ctd$none
    if (scaleDims) m <- .scale_dims(m)
    use <- if (is.null(dimsToUse)) seq_along(cor_d) else
        intersect(dimsToUse, seq_along(cor_d))
    kept <- use[which(abs(cor_d[use]) <= corCutOff)]
    if (!length(kept)) {
        .abort("no dimension of '", reducedDims, "' is left among ",
               "dimsToUse after the corCutOff = ", corCutOff, " depth ",
               "filter; raise corCutOff or widen dimsToUse.")
    }
    m[rownames(m) %in% rownames(proj@cellColData), kept, drop = FALSE]
}

# A project matrix as a SummarizedExperiment whose rows follow ArchR's
# .getFeatureDF order (the rows of its .getGroupMatrix and geneSet).
.project_feature_se <- function(proj, useMatrix) {
    avail <- getAvailableMatrices(proj)
    if (!useMatrix %in% avail) {
        fix <- if (useMatrix == "PeakMatrix") "addPeakMatrix()" else
            if (useMatrix == "GeneExpressionMatrix")
                "addGeneExpressionMatrix()" else paste0("add", useMatrix)
        .abort(useMatrix, " is not in the project's Arrow files (has: ",
               paste(avail, collapse = ", "), "); add it with ", fix, ".")
    }
    se <- getMatrixFromProject(proj, useMatrix, verbose = FALSE)
    fdf <- as.data.frame(.h5read(getArrowFiles(proj)[[1L]],
        paste0(useMatrix, "/Info/FeatureDF")), stringsAsFactors = FALSE)
    # ArchR's .getFeatureDF re-orders by split(): chromosomes in sorted
    # (character) order, stored order within each
    fdf <- fdf[unlist(split(seq_len(nrow(fdf)), fdf$seqnames),
                      use.names = FALSE), , drop = FALSE]
    rr <- SummarizedExperiment::rowRanges(se)
    key <- paste(GenomicRanges::seqnames(rr), rr$idx)
    se <- se[match(paste(fdf$seqnames, fdf$idx), key), ]
    list(se = se, fdf = fdf)
}

.project_peak_se <- function(proj) {
    ps <- proj@peakSet
    if (is.null(ps)) {
        .abort("the project has no peak set; add one with addPeakSet() ",
               "and then addPeakMatrix().")
    }
    x <- .project_feature_se(proj, "PeakMatrix")$se
    rr <- SummarizedExperiment::rowRanges(x)
    m <- match(paste(GenomicRanges::seqnames(ps), ps$idx),
               paste(GenomicRanges::seqnames(rr), rr$idx))
    if (anyNA(m)) {
        .abort("the PeakMatrix does not hold the project's peak set; ",
               "rerun addPeakMatrix(force = TRUE) after addPeakSet().")
    }
    x <- x[m, ]
    gr <- ps
    S4Vectors::mcols(gr) <- NULL
    names(gr) <- NULL
    SummarizedExperiment::rowRanges(x) <- gr
    x
}

.check_cells_k <- function(rd, k) {
    if (nrow(rd) < k) {
        .abort("There are fewer cells (", nrow(rd), ") than k = ", k,
               "; lower k to at most ", nrow(rd), " (ArchR uses k = 100).")
    }
}

#' Peak-to-gene links of a project (ArchR's addPeak2GeneLinks)
#'
#' @description ArchR 1.0.3's `addPeak2GeneLinks()`: reads the PeakMatrix
#' and the gene matrix (`useMatrix`) from the project's Arrow files and the
#' reduced dimensions from `ArchRProj@reducedDims[[reducedDims]]$matSVD`
#' (as ArchR's `getReducedDims()` returns them: row z-scored when
#' `scaleDims`, dimensions correlated to depth above `corCutOff` removed),
#' then runs [peakToGeneLinks()] (kNN metacells seeded with `set.seed(seed)`
#' as ArchR, Pearson correlations, t-test FDR, variance quantiles). Genes are
#' placed at the `start` of the matrix's FeatureDF, as ArchR does. As in
#' ArchR 1.0.3, `predictionCutoff` filters nothing (ArchR computes the
#' prediction scores of a GeneIntegrationMatrix but does not use them).
#'
#' @param ArchRProj An [EpioneProject-class] with a peak set, a PeakMatrix,
#'   the gene matrix and the reduced dimensions.
#' @param reducedDims Name of the reduced dimensions (default
#'   "IterativeLSI").
#' @param useMatrix Gene matrix (default "GeneExpressionMatrix";
#'   "GeneIntegrationMatrix" works the same way).
#' @param dimsToUse,scaleDims,corCutOff Which dimensions, ArchR's
#'   `getReducedDims()` arguments.
#' @param cellsToUse Optional cell names to use.
#' @param predictionCutoff Kept for ArchR's signature (no effect, see
#'   above).
#' @inheritParams peakToGeneLinks
#' @return The project, with the links table (ArchR's columns `idxATAC`,
#'   `idxRNA`, `Correlation`, `FDR`, `VarQATAC`, `VarQRNA`, plus `EmpPval`,
#'   `EmpFDR` with `addEmpiricalPval`) stored as ArchR stores it:
#'   `metadata(ArchRProj@peakSet)$Peak2GeneLinks`, whose own metadata holds
#'   `peakSet`, `geneSet` (gene starts with `name` and `idx`), `KNNList`
#'   and `nGroups`. Read it with [getPeak2GeneLinks()].
#' @seealso [peakToGeneLinks()], [getPeak2GeneLinks()],
#'   [addCoAccessibility()], ArchR's `addPeak2GeneLinks()`.
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex2"))
#' proj <- addGeneExpressionMatrix(ex$proj, ex$seRNA, verbose = FALSE)
#' proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 20,
#'                           knnIteration = 100, threads = 1)
#' getPeak2GeneLinks(proj, corCutOff = 0.2, FDRCutOff = 0.1,
#'                   returnLoops = FALSE)
#' @export
addPeak2GeneLinks <- function(ArchRProj, reducedDims = "IterativeLSI",
        useMatrix = "GeneExpressionMatrix", dimsToUse = 1:30,
        scaleDims = NULL, corCutOff = 0.75, cellsToUse = NULL, k = 100,
        knnIteration = 500, overlapCutoff = 0.8, maxDist = 250000,
        scaleTo = 10^4, log2Norm = TRUE, predictionCutoff = 0.4,
        addEmpiricalPval = FALSE, seed = 1,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    .check_project(ArchRProj)
    atac <- .project_peak_se(ArchRProj)
    g <- .project_feature_se(ArchRProj, useMatrix)
    rd <- .project_dims(ArchRProj, reducedDims, dimsToUse, scaleDims,
                        corCutOff)
    if (!is.null(cellsToUse)) rd <- rd[cellsToUse, , drop = FALSE]
    .check_cells_k(rd, k)
    fdf <- g$fdf
    rna <- g$se
    SummarizedExperiment::rowRanges(rna) <- GenomicRanges::GRanges(
        fdf$seqnames, IRanges::IRanges(fdf$start, width = 1L))
    rownames(rna) <- fdf$name
    links <- peakToGeneLinks(atac, rna, rd, k = k,
        knnIteration = knnIteration, overlapCutoff = overlapCutoff,
        maxDist = maxDist, scaleTo = scaleTo, log2Norm = log2Norm,
        addEmpiricalPval = addEmpiricalPval, seed = seed, threads = threads,
        verbose = verbose)
    keep <- c("idxATAC", "idxRNA", "Correlation", "FDR", "VarQATAC",
              "VarQRNA", if (addEmpiricalPval) c("EmpPval", "EmpFDR"))
    out <- links[, keep]
    md <- S4Vectors::metadata(links)
    md$geneSet <- GenomicRanges::GRanges(fdf$seqnames,
        IRanges::IRanges(fdf$start, width = 1L), name = fdf$name,
        idx = fdf$idx)
    md$useMatrix <- useMatrix
    S4Vectors::metadata(out) <- md
    S4Vectors::metadata(ArchRProj@peakSet)$Peak2GeneLinks <- out
    ArchRProj
}

.project_result <- function(proj, name, fun) {
    ps <- proj@peakSet
    x <- if (is.null(ps)) NULL else S4Vectors::metadata(ps)[[name]]
    if (is.null(x)) {
        .abort("the project has no ", name, "; run ", fun, "() first.")
    }
    x
}

#' Co-accessibility of a project's peaks (ArchR's addCoAccessibility)
#'
#' @description ArchR 1.0.3's `addCoAccessibility()`: the PeakMatrix of the
#' project's Arrow files and its reduced dimensions (as in
#' [addPeak2GeneLinks()]) given to [coAccessibility()].
#' @inheritParams addPeak2GeneLinks
#' @param maxDist Maximum distance (bp) between peak centres (default 1e5).
#' @return The project, with the table of [coAccessibility()] (ArchR's
#'   columns; metadata `peakSet`, `KNNList`, `nGroups`) stored as
#'   `metadata(ArchRProj@peakSet)$CoAccessibility`, as ArchR does. Read it
#'   with [getCoAccessibility()].
#' @seealso [coAccessibility()], [getCoAccessibility()], ArchR's
#'   `addCoAccessibility()`.
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex3"))
#' proj <- addCoAccessibility(ex$proj, dimsToUse = 1:10, k = 20,
#'                            knnIteration = 100, threads = 1)
#' getCoAccessibility(proj, returnLoops = FALSE)
#' @export
addCoAccessibility <- function(ArchRProj, reducedDims = "IterativeLSI",
        dimsToUse = 1:30, scaleDims = NULL, corCutOff = 0.75,
        cellsToUse = NULL, k = 100, knnIteration = 500, overlapCutoff = 0.8,
        maxDist = 100000, scaleTo = 10^4, log2Norm = TRUE, seed = 1,
        threads = getOption("epione.threads", 2L), verbose = FALSE) {
    .check_project(ArchRProj)
    atac <- .project_peak_se(ArchRProj)
    rd <- .project_dims(ArchRProj, reducedDims, dimsToUse, scaleDims,
                        corCutOff)
    if (!is.null(cellsToUse)) rd <- rd[cellsToUse, , drop = FALSE]
    .check_cells_k(rd, k)
    coa <- coAccessibility(atac, rd, k = k, knnIteration = knnIteration,
        overlapCutoff = overlapCutoff, maxDist = maxDist, scaleTo = scaleTo,
        log2Norm = log2Norm, seed = seed, threads = threads,
        verbose = verbose)
    S4Vectors::metadata(ArchRProj@peakSet)$CoAccessibility <- coa
    ArchRProj
}

#' A small multiome EpioneProject for examples
#'
#' @description Builds an [EpioneProject-class] from bundled data: the
#' fragments of three loci (on chr2, chr4 and chr14) of muon's 10x
#' Multiome PBMC test set (`multiome_loci_fragments.tsv.gz`) for the 565
#' cells of [p2gExampleData()], with ArchR's IterativeLSI in `reducedDims`
#' (`scaleDims = TRUE`), ArchR's Seurat clusters as `Clusters`, the peaks of
#' [p2gExampleData()] inside those loci as the peak set and its
#' PeakMatrix.
#' @param outputDirectory Folder for the project (created).
#' @return A list: `proj` (the project) and `seRNA` (a
#'   RangedSummarizedExperiment of the 45 genes x the project's cells, for
#'   [addGeneExpressionMatrix()]; ArchR's depth-normalised values, which
#'   normalise again to themselves).
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex0"))
#' ex$proj
#' @export
p2gExampleProject <- function(outputDirectory = tempfile("p2gExample")) {
    ex <- p2gExampleData()
    frags <- system.file("extdata", "multiome_loci_fragments.tsv.gz",
                         package = "epione", mustWork = TRUE)
    genes <- SummarizedExperiment::rowRanges(ex$rna)
    genes$symbol <- rownames(ex$rna)
    gn <- createGenomeAnnotation(.grch38_lengths)
    ga <- createGeneAnnotation(genes)
    dir.create(outputDirectory, recursive = TRUE, showWarnings = FALSE)
    arrow <- createArrowFiles(frags, "MO", file.path(outputDirectory, "MO"),
        ga, gn, minTSS = 0, minFrags = 1, addTileMatrix = FALSE,
        addGeneScoreMatrix = FALSE, QCDir = NULL,
        validBarcodes = sub("^MO#", "", names(ex$clusters)), threads = 1,
        verbose = FALSE, force = TRUE)
    proj <- ArchRProject(arrow, outputDirectory, copyArrows = FALSE,
                         geneAnnotation = ga, genomeAnnotation = gn)
    cells <- rownames(proj@cellColData)
    proj@cellColData$Clusters <- unname(ex$clusters[cells])
    lsi <- readRDS(system.file("extdata", "p2g_multiome.rds",
                               package = "epione"))$lsi
    proj@reducedDims$IterativeLSI <- list(matSVD = lsi[cells, ],
                                          scaleDims = TRUE)
    # the peaks inside the three bundled loci
    fr <- utils::read.delim(gzfile(frags), header = FALSE)
    loci <- range(GenomicRanges::GRanges(fr$V1, IRanges::IRanges(fr$V2 + 1L,
                                                                 fr$V3)))
    peaks <- IRanges::subsetByOverlaps(
        SummarizedExperiment::rowRanges(ex$atac), loci)
    proj <- addPeakMatrix(addPeakSet(proj, peaks))
    list(proj = proj, seRNA = ex$rna[, cells])
}

# GRCh38 chromosome lengths (Genome Reference Consortium), for the example.
.grch38_lengths <- c(chr1 = 248956422, chr2 = 242193529, chr3 = 198295559,
    chr4 = 190214555, chr5 = 181538259, chr6 = 170805979, chr7 = 159345973,
    chr8 = 145138636, chr9 = 138394717, chr10 = 133797422,
    chr11 = 135086622, chr12 = 133275309, chr13 = 114364328,
    chr14 = 107043718, chr15 = 101991189, chr16 = 90338345,
    chr17 = 83257441, chr18 = 80373285, chr19 = 58617616, chr20 = 64444167,
    chr21 = 46709983, chr22 = 50818468, chrX = 156040895)
