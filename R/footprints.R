# TF footprints: Tn5 insertions around motif sites from tabix-indexed
# fragment files, with ArchR's hexamer Tn5 bias model. Counting runs in the
# C++ core (inst/include/epione/footprints.hpp), one chromosome at a time.

#' Transcription factor footprints from a project or fragment files
#'
#' @description ArchR 1.0.3's `getFootprints()`: for each set of motif
#' positions, the Tn5 insertions (both ends of every fragment, ArchR's
#' 1-based `start0 + 1` and `end`) at each offset `-flank..flank` from the
#' site centres, summed over sites and oriented by site strand; and the
#' expected Tn5 bias at each offset, from the hexamer model ArchR uses: per
#' group, observed k-mers centred on its insertions over expected k-mers of
#' the genome (chromosomes holding fragments), summed over the sites' k-mers
#' at each offset and scaled to sum 1. Sites closer than `flank + 50` bp to
#' a chromosome end are dropped, as in ArchR.
#'
#' With a project the fragments are read from its Arrow files and grouped
#' by `cellColData[[groupBy]]`, one column per group (ArchR sums pseudo-bulk
#' replicates made by `addGroupCoverages()`; epione counts every cell of the
#' group, which is what those coverages approximate). With fragment files
#' they are read through HTSlib's tabix index.
#'
#' @param ArchRProj An [EpioneProject-class], or the path(s) of tabix-indexed
#'   fragment files (`chrom start0 end barcode ...`) or indexed BAM files of
#'   paired reads (bulk ATAC-seq). Several files without `groupBy`: one
#'   group per file (bulk samples), named by `names()` or the file names.
#'   A BAM is read as Tn5 fragments the way 10x and sinto make them: one per
#'   properly paired, primary, non-duplicate pair with MAPQ >= 30, from the
#'   leftmost mate, start0 = its start + 4, end = start0 - 4 + TLEN - 5;
#'   the barcode (for `groupBy`) is the `CB` tag.
#' @param positions Motif sites: a named `GRangesList` or list of `GRanges`
#'   (as [getPositions()] / `motifmatchr::matchMotifs(out = "positions")`),
#'   or one `GRanges`.
#' @param groupBy For a project: a `cellColData` column (default
#'   `"Clusters"`). For files: `NULL` or a named character vector mapping
#'   barcodes to groups (cells of other barcodes are ignored).
#' @param useGroups Groups to keep (default all).
#' @param flank Bases each side of the centre (window `2 * flank + 1`).
#' @param minCells For a project: groups with fewer cells are dropped
#'   (ArchR's default 25).
#' @param nTop `NULL` or the number of sites per motif to use, those with
#'   the highest `score` column (ArchR documents this argument but 1.0.3
#'   ignores it).
#' @param threads C++ threads counting a project's fragments; the result
#'   does not depend on it.
#' @param verbose Report chromosomes as they are processed.
#' @param genome For the bias: a `BSgenome`, `FaFile`, indexed FASTA path or
#'   named `DNAStringSet`; for a project, `NULL` takes
#'   `genomeAnnotation$genome` when it is one of those (or the name of an
#'   installed BSgenome package). Without a genome the `bias` rows are `NA`.
#' @param flankNorm,normMethod Defaults stored for [plotFootprints()] and
#'   used by [footprintProfiles()] (ArchR's plotFootprints arguments).
#' @param kmerLength Tn5 bias k-mer length (ArchR default 6).
#' @param logFile Ignored (ArchR compatibility).
#' @return A `SummarizedExperiment` laid out as ArchR's: one assay per motif
#'   (named as `positions`), rows = `2 * (2 * flank + 1)` (rowData `x`
#'   offset and `type` `"footprint"` / `"bias"`), columns = groups (colData
#'   `Group`, `Name`, `nInsertions`, and `nCells` for a project); metadata
#'   `Params`.
#' @seealso ArchR's `getFootprints()`, [plotFootprints()]
#' @examples
#' frag <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' sites <- GenomicRanges::GRanges("chr11", IRanges::IRanges(
#'     c(65190000, 65268000, 66104000), width = 10))
#' fp <- getFootprints(frag, list(demo = sites), flank = 100)
#' fp
#' # from a project: fragments in its Arrow file, grouped by a cellColData
#' # column (here the cell type in the PBSmall barcodes)
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frag, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "footprint-proj"))
#' proj@cellColData$CellType <- substr(sub(".*#", "",
#'     rownames(proj@cellColData)), 1, 1)
#' fpp <- getFootprints(proj, list(demo = sites), groupBy = "CellType",
#'                      minCells = 10, flank = 100, threads = 1)
#' SummarizedExperiment::colData(fpp)
#' @export
getFootprints <- function(ArchRProj = NULL, positions = NULL,
        groupBy = NULL, useGroups = NULL, flank = 250, minCells = 25,
        nTop = NULL, threads = getOption("epione.threads", 2L),
        verbose = FALSE, genome = NULL, flankNorm = 50,
        normMethod = c("Subtract", "Divide", "None"), kmerLength = 6,
        logFile = NULL) {
    normMethod <- match.arg(normMethod)
    flank <- as.integer(.check_number(flank, "flank", 1, 1e5, whole = TRUE))
    .check_number(flankNorm, "flankNorm", 1, whole = TRUE)
    k <- as.integer(.check_number(kmerLength, "kmerLength", 1, 8, whole = TRUE))
    threads <- .check_threads(threads)
    positions <- .top_sites(.as_position_list(positions), nTop)
    if (methods::is(ArchRProj, "EpioneProject")) {
        # No genome: footprints without the Tn5 bias rows (NA).
        src <- .project_genome(ArchRProj, genome, required = FALSE)
        if (!is.null(src)) src <- .as_genome(src)
        grp <- .project_groups(ArchRProj, if (is.null(groupBy)) "Clusters"
                               else groupBy, useGroups, minCells)
        lens <- if (!is.null(src)) src$lengths else
            .project_chrom_lengths(ArchRProj)
        sites <- .footprint_sites(positions, flank, k, lens)
        counts <- .count_footprints_arrow(getArrowFiles(ArchRProj), grp,
            sites, src, flank, k, length(positions), threads, verbose)
    } else {
        files <- .check_fragment_files(ArchRProj)
        grp <- .footprint_groups(files, groupBy)
        src <- if (!is.null(genome)) .as_genome(genome)
        sites <- .footprint_sites(positions, flank, k, src$lengths)
        chroms <- unique(unlist(lapply(files, function(f)
            .core(epi_footprints_seqnames(f)))))
        if (!is.null(src)) chroms <- intersect(chroms, names(src$lengths))
        counts <- .count_footprints(files, grp, sites, chroms, src, flank, k,
                                    length(positions), verbose)
    }
    se <- .footprint_se(counts, names(positions), grp$names, flank, k,
                        flankNorm, normMethod)
    if (!is.null(grp$n_cells)) se$nCells <- grp$n_cells
    if (!is.null(useGroups)) se <- .use_groups(se, useGroups)
    se
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
.footprint_sites <- function(positions, flank, k, lengths) {
    window <- 2L * flank + 1L
    parts <- lapply(seq_along(positions), function(i) {
        p <- positions[[i]]
        if (!length(p)) return(NULL)
        keep <- BiocGenerics::start(p) > flank + 50L
        if (!is.null(lengths)) {
            len <- lengths[as.character(GenomicRanges::seqnames(p))]
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

# ArchR documents nTop (top sites by score) but 1.0.3 ignores it.
.top_sites <- function(positions, nTop) {
    if (is.null(nTop)) return(positions)
    .check_number(nTop, "nTop", 1, whole = TRUE)
    lapply(positions, function(p) {
        sc <- S4Vectors::mcols(p)$score
        if (is.null(sc)) {
            .abort("nTop needs a 'score' column in the positions (as from ",
                   "matchMotifs(out = \"positions\")); use nTop = NULL.")
        }
        p[utils::head(order(sc, decreasing = TRUE), nTop)]
    })
}

.project_chrom_lengths <- function(proj) {
    cs <- proj@genomeAnnotation$chromSizes
    if (!methods::is(cs, "GRanges")) return(NULL)
    stats::setNames(as.numeric(BiocGenerics::end(cs)),
                    as.character(GenomicRanges::seqnames(cs)))
}

# Groups of cells from cellColData[[groupBy]] (ArchR's coverage groups):
# useGroups kept, groups with fewer than minCells cells dropped.
.project_groups <- function(proj, groupBy, useGroups, minCells) {
    .check_string(groupBy, "groupBy")
    cd <- proj@cellColData
    if (!groupBy %in% names(cd)) {
        .abort("'groupBy' = '", groupBy, "' is not a cellColData column; ",
               "add it first (e.g. addClusters()) or choose one of: ",
               paste(utils::head(names(cd), 10L), collapse = ", "), ".")
    }
    .check_number(minCells, "minCells", 0, whole = TRUE)
    g <- as.character(cd[[groupBy]])
    n <- table(g[!is.na(g)])
    lv <- names(n)[n >= minCells]
    if (!is.null(useGroups)) lv <- intersect(lv, useGroups)
    if (!length(lv)) {
        .abort("no group of '", groupBy, "' has >= minCells = ", minCells,
               " cells", if (!is.null(useGroups)) " among useGroups",
               "; lower minCells or check useGroups.")
    }
    list(names = lv, cells = stats::setNames(match(g, lv), rownames(cd)),
         n_cells = as.integer(n[lv]))
}

# Footprint counts from the fragments of a project's Arrow files, one
# chromosome at a time (all chromosomes count towards the k-mer bias).
.count_footprints_arrow <- function(arrows, grp, sites, src, flank, k,
                                    n_motifs, threads, verbose) {
    window <- 2L * flank + 1L
    ng <- length(grp$names)
    acc <- list(profile = numeric(window * ng * n_motifs),
                observed = matrix(0, 4^k, ng), expected = numeric(4^k),
                insertions = numeric(ng))
    chroms <- sort(unique(unlist(lapply(arrows, .h5ls, "Fragments"))))
    if (!is.null(src)) chroms <- intersect(chroms, names(src$lengths))
    for (chr in chroms) {
        if (verbose) message("getFootprints: counting ", chr)
        s <- sites[sites$chr == chr, ]
        seq <- if (is.null(src)) character() else .chrom_sequence(src, chr)
        if (length(seq)) acc$expected <- acc$expected +
            epi_footprints_kmers(seq, k)
        for (f in arrows) {
            fr <- .arrow_chrom_fragments(f, chr, grp$cells)
            if (is.null(fr)) next
            r <- .core(epi_footprints_count_table(seq, s$fp, s$minus,
                s$motif, n_motifs, fr$start0, fr$end, fr$group, ng, flank, k,
                threads))
            acc$profile <- acc$profile + r$profile
            acc$observed <- acc$observed + r$observed
            acc$insertions <- acc$insertions + r$insertions
        }
    }
    bias <- if (is.null(src)) rep(NA_real_, length(acc$profile)) else
        .bias_profiles(sites, src, acc$observed, acc$expected, flank, k,
                       n_motifs)
    list(profile = array(acc$profile, c(window, ng, n_motifs)),
         bias = array(bias, c(window, ng, n_motifs)),
         insertions = acc$insertions, observed = acc$observed,
         expected = acc$expected)
}

# One chromosome of an Arrow file (ARROW_LAYOUT: Ranges = 1-based starts
# then widths; cells run-length coded in RGValues/RGLengths) as 0-based
# starts, ends and group codes (NA = cell not in a kept group).
.arrow_chrom_fragments <- function(file, chr, cells) {
    if (!chr %in% .h5ls(file, "Fragments")) return(NULL)
    g <- paste0("Fragments/", chr)
    r <- .h5read(file, paste0(g, "/Ranges"))
    n <- length(r) %/% 2L
    if (!n) return(NULL)
    sample <- .h5read(file, "Metadata/Sample")
    code <- unname(cells[paste0(sample, "#", .h5read(file,
                                                     paste0(g, "/RGValues")))])
    list(start0 = as.integer(r[seq_len(n)] - 1L),
         end = as.integer(r[seq_len(n)] + r[n + seq_len(n)] - 1L),
         group = rep.int(as.integer(code),
                         .h5read(file, paste0(g, "/RGLengths"))))
}

.use_groups <- function(se, useGroups) {
    keep <- colnames(se) %in% useGroups
    if (!any(keep)) {
        .abort("no group matches useGroups (groups: ",
               paste(colnames(se), collapse = ", "), ").")
    }
    se[, keep]
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
    cd <- S4Vectors::DataFrame(Group = groups, Name = groups,
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
