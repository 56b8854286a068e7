# TF footprints: Tn5 insertions around motif sites from tabix-indexed
# fragment files, with ArchR's hexamer Tn5 bias model. Counting runs in the
# C++ core (inst/include/epione/footprints.hpp), one chromosome at a time.

#' Transcription factor footprints from fragment files
#'
#' @description ArchR 1.0.3's `getFootprints()` for fragment files: for each
#' set of motif positions, the Tn5 insertions (both ends of every fragment,
#' ArchR's 1-based `start0 + 1` and `end`) at each offset `-flank..flank`
#' from the site centres, summed over sites and oriented by site strand; and
#' the expected Tn5 bias at each offset, from the hexamer model ArchR uses:
#' per group, observed k-mers centred on its insertions over expected k-mers
#' of the genome (chromosomes present in the fragment files), summed over
#' the sites' k-mers at each offset and scaled to sum 1. Sites closer than
#' `flank + 50` bp to a chromosome end are dropped, as in ArchR.
#'
#' @param fragments Path(s) of tabix-indexed fragment files
#'   (`chrom start0 end barcode ...`). Several files without `groupBy`: one
#'   group per file (bulk samples), named by `names(fragments)` or the file
#'   names.
#' @param positions Motif sites: a named `GRangesList` or list of `GRanges`
#'   (as ArchR's `getPositions()` / `motifmatchr::matchMotifs(out =
#'   "positions")`), or one `GRanges`.
#' @param groupBy `NULL` or a named character vector mapping barcodes to
#'   groups (cells of other barcodes are ignored).
#' @param genome For the bias: a `BSgenome`, `FaFile`, indexed FASTA path or
#'   named `DNAStringSet`; `NULL` skips the bias (rows `bias` are `NA`).
#' @param flank Bases each side of the centre (window `2 * flank + 1`).
#' @param flankNorm,normMethod Defaults stored for [plotFootprints()] and
#'   used by [footprintProfiles()] (ArchR's plotFootprints arguments).
#' @param kmerLength Tn5 bias k-mer length (ArchR default 6).
#' @param verbose Report chromosomes as they are processed.
#' @return A `SummarizedExperiment` laid out as ArchR's: one assay per motif
#'   (named as `positions`), rows = `2 * (2 * flank + 1)` (rowData `x`
#'   offset and `type` `"footprint"` / `"bias"`), columns = groups (colData
#'   `Group`, `nInsertions`); metadata `Params`.
#' @seealso ArchR's `getFootprints()`, [plotFootprints()]
#' @examples
#' frag <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' sites <- GenomicRanges::GRanges("chr11", IRanges::IRanges(
#'     c(65190000, 65268000, 66104000), width = 10))
#' fp <- getFootprints(frag, list(demo = sites), flank = 100)
#' fp
#' @export
getFootprints <- function(fragments, positions, groupBy = NULL,
        genome = NULL, flank = 250, flankNorm = 50,
        normMethod = c("Subtract", "Divide", "None"), kmerLength = 6,
        verbose = FALSE) {
    normMethod <- match.arg(normMethod)
    flank <- as.integer(.check_number(flank, "flank", 1, 1e5, whole = TRUE))
    .check_number(flankNorm, "flankNorm", 1, whole = TRUE)
    k <- as.integer(.check_number(kmerLength, "kmerLength", 1, 8, whole = TRUE))
    files <- .check_fragment_files(fragments)
    grp <- .footprint_groups(files, groupBy)
    src <- if (!is.null(genome)) .as_genome(genome)
    positions <- .as_position_list(positions)
    sites <- .footprint_sites(positions, flank, k, src)
    chroms <- unique(unlist(lapply(files, tabixSeqnames)))
    if (!is.null(src)) chroms <- intersect(chroms, names(src$lengths))
    counts <- .count_footprints(files, grp, sites, chroms, src, flank, k,
                                length(positions), verbose)
    .footprint_se(counts, names(positions), grp$names, flank, k, flankNorm,
                  normMethod)
}

.check_fragment_files <- function(fragments) {
    if (!is.character(fragments) || !length(fragments)) {
        .abort("'fragments' must be the path(s) of tabix-indexed fragment ",
               "files.")
    }
    files <- vapply(fragments, .check_file, "", name = "fragments")
    names(files) <- if (is.null(names(fragments))) basename(fragments) else
        names(fragments)
    files
}

.footprint_groups <- function(files, groupBy) {
    if (is.null(groupBy)) {
        return(list(names = names(files), barcodes = character(),
                    code = integer(), per_file = TRUE))
    }
    if (!is.character(groupBy) || is.null(names(groupBy)) || anyNA(groupBy)) {
        .abort("'groupBy' must be a named character vector: names = ",
               "barcodes, values = groups (e.g. setNames(cellType, ",
               "barcode)).")
    }
    lv <- sort(unique(groupBy))
    list(names = lv, barcodes = names(groupBy),
         code = match(groupBy, lv), per_file = FALSE)
}

.as_position_list <- function(positions) {
    if (methods::is(positions, "GRanges")) positions <- list(positions)
    if (methods::is(positions, "GRangesList")) positions <- as.list(positions)
    if (!is.list(positions) || !length(positions) ||
        !all(vapply(positions, methods::is, TRUE, "GRanges"))) {
        .abort("'positions' must be a GRanges, a GRangesList or a list of ",
               "GRanges of motif sites (e.g. matchMotifs(..., out = ",
               "\"positions\")).")
    }
    if (is.null(names(positions)))
        names(positions) <- paste0("motif", seq_along(positions))
    positions
}

# Site table: chromosome, footprint window start (centre - flank, ArchR's
# resize(1, "center") then start - floor(width / 2)), k-mer window start
# (ArchR's resize(window + k, "center")), strand and motif (1-based).
.footprint_sites <- function(positions, flank, k, src) {
    window <- 2L * flank + 1L
    parts <- lapply(seq_along(positions), function(i) {
        p <- positions[[i]]
        if (!length(p)) return(NULL)
        keep <- BiocGenerics::start(p) > flank + 50L
        if (!is.null(src)) {
            len <- src$lengths[as.character(GenomicRanges::seqnames(p))]
            keep <- keep & !is.na(len) &
                BiocGenerics::end(p) + flank + 50L < len
        }
        p <- p[keep]
        data.frame(chr = as.character(GenomicRanges::seqnames(p)),
            fp = BiocGenerics::start(GenomicRanges::resize(p, 1L,
                                                           "center")) - flank,
            km = BiocGenerics::start(GenomicRanges::resize(p, window + k,
                                                           "center")),
            minus = as.integer(as.character(BiocGenerics::strand(p)) == "-"),
            motif = rep(i, length(p)))
    })
    sites <- do.call(rbind, parts)
    if (is.null(sites) || !nrow(sites)) {
        .abort("no motif site is more than flank + 50 bp from a ",
               "chromosome end; check 'positions' and the genome.")
    }
    sites[order(sites$chr, sites$fp), ]
}

.count_footprints <- function(files, grp, sites, chroms, src, flank, k,
                              n_motifs, verbose) {
    window <- 2L * flank + 1L
    ng <- length(grp$names)
    profile <- numeric(window * ng * n_motifs)
    observed <- matrix(0, 4^k, ng)
    expected <- numeric(4^k)
    inserts <- numeric(ng)
    for (chr in chroms) {
        if (verbose) message("getFootprints: counting ", chr)
        s <- sites[sites$chr == chr, ]
        seq <- if (is.null(src)) character() else .chrom_sequence(src, chr)
        if (length(seq)) expected <- expected + epi_footprints_kmers(seq, k)
        for (f in seq_along(files)) {
            r <- .core(epi_footprints_count(files[[f]], chr, seq, s$fp,
                s$minus, s$motif, n_motifs, grp$barcodes, grp$code,
                if (grp$per_file) f else 0L, ng, flank, k))
            profile <- profile + r$profile
            observed <- observed + r$observed
            inserts <- inserts + r$insertions
        }
    }
    bias <- if (is.null(src)) rep(NA_real_, length(profile)) else
        .bias_profiles(sites, src, observed, expected, flank, k, n_motifs)
    list(profile = array(profile, c(window, ng, n_motifs)),
         bias = array(bias, c(window, ng, n_motifs)),
         insertions = inserts, observed = observed,
         expected = expected)
}

.chrom_sequence <- function(src, chr) {
    gr <- GenomicRanges::GRanges(chr, IRanges::IRanges(1L, src$lengths[[chr]]))
    as.character(src$get(gr))
}

# ArchR: oe = observed / expected k-mers; bias at each offset = sum over
# sites of oe[k-mer], scaled to sum 1 per motif and group. A k-mer absent
# from the genome gets oe = 0 (ArchR would give NaN).
.bias_profiles <- function(sites, src, observed, expected, flank, k,
                           n_motifs) {
    oe <- observed / expected
    oe[!is.finite(oe)] <- 0
    window <- 2L * flank + 1L
    bias <- numeric(window * ncol(oe) * n_motifs)
    for (chr in unique(sites$chr)) {
        if (is.na(src$lengths[chr])) next
        s <- sites[sites$chr == chr, ]
        bias <- bias + .core(epi_footprints_bias(.chrom_sequence(src, chr),
            s$km, s$minus, s$motif, n_motifs, oe, flank, k))
    }
    b <- array(bias, c(window, ncol(oe), n_motifs))
    sweep(b, c(2L, 3L), apply(b, c(2L, 3L), sum), "/")
}

.footprint_se <- function(counts, motifs, groups, flank, k, flankNorm,
                          normMethod) {
    assays <- lapply(seq_along(motifs), function(m) {
        x <- rbind(matrix(counts$profile[, , m], ncol = length(groups)),
                   matrix(counts$bias[, , m], ncol = length(groups)))
        colnames(x) <- groups
        x
    })
    names(assays) <- motifs
    rd <- S4Vectors::DataFrame(x = rep(seq(-flank, flank), 2L),
        type = rep(c("footprint", "bias"), each = 2L * flank + 1L))
    cd <- S4Vectors::DataFrame(Group = groups,
                               nInsertions = counts$insertions,
                               row.names = groups)
    se <- SummarizedExperiment::SummarizedExperiment(assays = assays,
        rowData = rd, colData = cd)
    S4Vectors::metadata(se)$Params <- list(kmerLength = k, flank = flank,
        flankNorm = flankNorm, normMethod = normMethod)
    se
}

#' Normalised footprint and bias profiles
#'
#' @description ArchR's plotFootprints() normalisation: optional centred
#' rolling-mean smoothing, division of footprint and bias by their mean over
#' the outer offsets (`|x| >= flank - flankNorm`), then the bias is
#' subtracted from (`"Subtract"`) or divided into (`"Divide"`) the
#' footprint, or left (`"None"`).
#' @param seFoot The result of [getFootprints()].
#' @param name One motif (assay) name.
#' @param flankNorm,normMethod As in ArchR; default from `seFoot`'s Params.
#' @param smoothWindow `NULL` or an odd window for smoothing.
#' @return A `data.frame` with columns `x`, `group`, `footprint` (normalised,
#'   bias-corrected) and `bias` (normalised).
#' @seealso ArchR's `plotFootprints()`
#' @examples
#' frag <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' sites <- GenomicRanges::GRanges("chr11", IRanges::IRanges(
#'     c(65190000, 65268000, 66104000), width = 10))
#' fp <- getFootprints(frag, list(demo = sites), flank = 100)
#' head(footprintProfiles(fp, "demo", normMethod = "None", smoothWindow = 11))
#' @export
footprintProfiles <- function(seFoot, name = names(
        SummarizedExperiment::assays(seFoot))[1L], flankNorm = NULL,
        normMethod = NULL, smoothWindow = NULL) {
    par <- S4Vectors::metadata(seFoot)$Params
    flankNorm <- if (is.null(flankNorm)) par$flankNorm else flankNorm
    normMethod <- if (is.null(normMethod)) par$normMethod else normMethod
    normMethod <- match.arg(tolower(normMethod), c("subtract", "divide",
                                                   "none"))
    if (!name %in% SummarizedExperiment::assayNames(seFoot))
        .abort("no footprint named '", name, "'; choose one of ",
               paste(SummarizedExperiment::assayNames(seFoot), collapse = ", "))
    rd <- SummarizedExperiment::rowData(seFoot)
    a <- SummarizedExperiment::assay(seFoot, name)
    foot <- a[rd$type == "footprint", , drop = FALSE]
    bias <- a[rd$type == "bias", , drop = FALSE]
    if (!is.null(smoothWindow)) {
        foot <- apply(foot, 2L, .center_roll_mean, smoothWindow)
        bias <- apply(bias, 2L, .center_roll_mean, smoothWindow)
    }
    x <- rd$x[rd$type == "footprint"]
    edge <- abs(x) >= par$flank - flankNorm
    foot <- sweep(foot, 2L, colMeans(foot[edge, , drop = FALSE]), "/")
    bias <- sweep(bias, 2L, colMeans(bias[edge, , drop = FALSE]), "/")
    if (normMethod == "subtract") foot <- foot - bias
    if (normMethod == "divide") foot <- foot / bias
    data.frame(x = rep(x, ncol(foot)),
               group = rep(colnames(a), each = length(x)),
               footprint = as.vector(foot), bias = as.vector(bias))
}

# ArchR .centerRollMean: mean over a centred window, shrinking at the ends.
.center_roll_mean <- function(v, k) {
    h <- (k - 1L) %/% 2L
    cs <- c(0, cumsum(v))
    lo <- pmax(seq_along(v) - h, 1L)
    hi <- pmin(seq_along(v) + h, length(v))
    (cs[hi + 1L] - cs[lo]) / (hi - lo + 1L)
}

#' Plot footprints
#'
#' @description ggplot2 version of ArchR's `plotFootprints()`: the
#' normalised, bias-corrected footprint of each group (top) and the
#' normalised Tn5 bias (bottom) for one or more motifs.
#' @inheritParams footprintProfiles
#' @param names Motif (assay) names to plot; default all.
#' @param baseSize Base font size.
#' @return A named list of ggplot objects (one per motif; the bias panel is
#'   a facet).
#' @seealso [getFootprints()]
#' @examples
#' frag <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' sites <- GenomicRanges::GRanges("chr11", IRanges::IRanges(
#'     c(65190000, 65268000, 66104000), width = 10))
#' fp <- getFootprints(frag, list(demo = sites), flank = 100,
#'                     normMethod = "None")
#' plotFootprints(fp, smoothWindow = 11)[[1]]
#' @export
plotFootprints <- function(seFoot, names = NULL, flankNorm = NULL,
        normMethod = NULL, smoothWindow = NULL, baseSize = 10) {
    if (is.null(names)) names <- SummarizedExperiment::assayNames(seFoot)
    plots <- lapply(names, function(nm) {
        d <- footprintProfiles(seFoot, nm, flankNorm, normMethod, smoothWindow)
        long <- rbind(
            data.frame(x = d$x, group = d$group, value = d$footprint,
                       panel = "footprint"),
            data.frame(x = d$x, group = d$group, value = d$bias,
                       panel = "Tn5 bias"))
        long <- long[is.finite(long$value), ]
        ggplot2::ggplot(long, ggplot2::aes(.data$x, .data$value,
                                           colour = .data$group)) +
            ggplot2::geom_line() +
            ggplot2::facet_grid(panel ~ ., scales = "free_y") +
            ggplot2::labs(title = nm, x = "Distance to motif centre (bp)",
                          y = "Normalised insertions", colour = NULL) +
            ggplot2::theme_bw(base_size = baseSize)
    })
    stats::setNames(plots, names)
}

#' @importFrom rlang .data
NULL
