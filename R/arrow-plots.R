# QC plots of ArchR's createArrowFiles / plotTSSEnrichment /
# plotFragmentSizes, with ggplot2 and ArchR's "stallion" palette.

.group_colours <- function(groups) {
    g <- sort(unique(as.character(groups)))
    stats::setNames(rep_len(.stallion, length(g)), g)
}

#' TSS enrichment against log10 unique fragments per cell
#'
#' The QC scatter ArchR's createArrowFiles draws (`TSS_by_Unique_Frags`):
#' one point per cell, 2-D density contours, dashed lines at the filters.
#'
#' @param input An [EpioneProject-class], or a data.frame / `DataFrame` with
#'   `nFrags` and `TSSEnrichment` (e.g. the `*-Pre-Filter-Metadata.rds`
#'   that createArrowFiles saves, which holds failing barcodes too).
#' @param minTSS,minFrags Filter lines to draw.
#' @param title Plot title.
#' @return A ggplot.
#' @importFrom ggplot2 .data
#' @examples
#' qc <- data.frame(nFrags = 10^runif(200, 2.5, 4.5),
#'                  TSSEnrichment = rgamma(200, 4, 0.5))
#' plotTSSvsFrags(qc)
#' @export
plotTSSvsFrags <- function(input, minTSS = 4, minFrags = 1000,
                           title = "TSS enrichment by unique fragments") {
    df <- if (methods::is(input, "EpioneProject")) input@cellColData else input
    df <- as.data.frame(df)
    if (!all(c("nFrags", "TSSEnrichment") %in% names(df))) {
        .abort("'input' needs columns nFrags and TSSEnrichment.")
    }
    d <- data.frame(x = log10(pmax(df$nFrags, 1)), y = df$TSSEnrichment)
    ggplot2::ggplot(d, ggplot2::aes(x = .data$x, y = .data$y)) +
        ggplot2::geom_point(size = 0.6, colour = "#272E6A", alpha = 0.6) +
        ggplot2::geom_density_2d(colour = "#D51F26", linewidth = 0.3,
                                 bins = 8) +
        ggplot2::geom_hline(yintercept = minTSS, linetype = "dashed") +
        ggplot2::geom_vline(xintercept = log10(minFrags), linetype = "dashed") +
        ggplot2::labs(x = "Log10 unique fragments", y = "TSS enrichment",
                      title = paste0(title, "\nn = ", nrow(d))) +
        ggplot2::theme_bw()
}

# Fragment widths per cell group from the Arrow files (stored fragments).
.fragment_widths <- function(proj, groupBy, maxSize) {
    cc <- proj@cellColData
    grp <- as.character(cc[[groupBy]])
    names(grp) <- rownames(cc)
    out <- list()
    for (a in .input_arrows(proj)) {
        for (chr in .h5ls(a$file, "Fragments")) {
            g <- paste0("Fragments/", chr)
            r <- .h5read(a$file, paste0(g, "/Ranges"))
            n <- length(r) / 2
            if (!n) next
            rg <- rep.int(.h5read(a$file, paste0(g, "/RGValues")),
                          .h5read(a$file, paste0(g, "/RGLengths")))
            gg <- grp[paste0(a$sample, "#", rg)]
            w <- r[n + seq_len(n)]
            ok <- !is.na(gg) & w <= maxSize
            out[[length(out) + 1L]] <- data.frame(group = gg[ok], w = w[ok])
        }
    }
    do.call(rbind, out)
}

#' Fragment size distribution (ArchR's plotFragmentSizes)
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param groupBy A cellColData column to group cells by.
#' @param maxSize Largest fragment size shown.
#' @return A ggplot of the percentage of fragments per size and group.
#' @seealso [ArchR::plotFragmentSizes()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"),
#'     geneAnnotation = anno$geneAnnotation)
#' plotFragmentSizes(proj)
#' @export
plotFragmentSizes <- function(ArchRProj, groupBy = "Sample", maxSize = 750) {
    .check_project(ArchRProj)
    getCellColData(ArchRProj, groupBy)
    d <- .fragment_widths(ArchRProj, groupBy, maxSize)
    tab <- as.data.frame(table(group = d$group,
                               size = factor(d$w, levels = seq_len(maxSize))))
    tab$size <- as.integer(as.character(tab$size))
    tab$percent <- 100 * tab$Freq / stats::ave(tab$Freq, tab$group, FUN = sum)
    ggplot2::ggplot(tab, ggplot2::aes(x = .data$size, y = .data$percent,
                                      colour = .data$group)) +
        ggplot2::geom_line(linewidth = 0.5) +
        ggplot2::scale_colour_manual(values = .group_colours(tab$group)) +
        ggplot2::labs(x = "Size of fragments (bp)", y = "Fragments (%)",
                      colour = groupBy) +
        ggplot2::theme_bw()
}

#' Aggregate TSS insertion profile (ArchR's plotTSSEnrichment)
#'
#' Tn5 insertions (both fragment ends) around every unique TSS, strand
#' aware, per cell group; normalised by the mean of the outer `norm` bp at
#' both ends and smoothed by a centred rolling mean of `smooth` bp, as in
#' ArchR 1.0.3.
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param groupBy A cellColData column to group cells by.
#' @param TSS GRanges of TSSs (default: the project's geneAnnotation).
#' @param flank Distance shown on each side (bp).
#' @param norm Width of the normalising ends (bp).
#' @param smooth Rolling-mean window (bp).
#' @return A ggplot; the data are in its `data` element (`group`, `x`,
#'   `value`).
#' @seealso [ArchR::plotTSSEnrichment()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"),
#'     geneAnnotation = anno$geneAnnotation)
#' plotTSSEnrichment(proj)
#' @export
plotTSSEnrichment <- function(ArchRProj, groupBy = "Sample",
                              TSS = .project_anno(ArchRProj, "TSS"),
                              flank = 2000, norm = 100, smooth = 11) {
    .check_project(ArchRProj)
    if (!methods::is(TSS, "GRanges")) {
        .abort("'TSS' must be a GRanges (the project has no geneAnnotation).")
    }
    prof <- .tss_profile(ArchRProj, groupBy, TSS, flank)
    d <- do.call(rbind, lapply(names(prof), function(g) {
        x <- prof[[g]]
        x <- x / mean(c(utils::head(x, norm), utils::tail(x, norm)))
        x <- as.numeric(stats::filter(x, rep(1 / smooth, smooth), sides = 2))
        data.frame(group = g, x = seq(-flank, flank), value = x)
    }))
    ggplot2::ggplot(d[!is.na(d$value), ], ggplot2::aes(x = .data$x,
            y = .data$value, colour = .data$group)) +
        ggplot2::geom_line(linewidth = 0.5) +
        ggplot2::scale_colour_manual(values = .group_colours(d$group)) +
        ggplot2::labs(x = "Distance from TSS (bp)",
                      y = "Normalized insertion profile", colour = groupBy) +
        ggplot2::theme_bw()
}

.tss_profile <- function(proj, groupBy, TSS, flank) {
    tss <- unique(GenomicRanges::resize(TSS, 1L, "start"))
    win <- GenomicRanges::resize(tss, 2 * flank + 1, "center")
    groups <- sort(unique(as.character(proj@cellColData[[groupBy]])))
    prof <- stats::setNames(lapply(groups, function(g) numeric(2 * flank + 1)),
                            groups)
    grp <- stats::setNames(as.character(proj@cellColData[[groupBy]]),
                           rownames(proj@cellColData))
    for (f in getArrowFiles(proj)) {
        fr <- getFragmentsFromArrow(f, cellNames = names(grp))
        ins <- c(GenomicRanges::resize(fr, 1L, "start"),
                 GenomicRanges::resize(fr, 1L, "end"))
        o <- GenomicRanges::findOverlaps(ins, win, ignore.strand = TRUE)
        t <- tss[S4Vectors::subjectHits(o)]
        rel <- GenomicRanges::start(ins)[S4Vectors::queryHits(o)] -
            GenomicRanges::start(t)
        rel <- ifelse(as.logical(GenomicRanges::strand(t) == "-"), -rel, rel)
        g <- grp[ins$RG[S4Vectors::queryHits(o)]]
        for (k in groups) {
            prof[[k]] <- prof[[k]] + tabulate(rel[g == k] + flank + 1,
                                              nbins = 2 * flank + 1)
        }
    }
    prof
}
