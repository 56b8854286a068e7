# ArchR-style genome browser track from fragments (or precomputed group
# coverages): per-group coverage, peaks, link arcs and a UCSC-style gene
# model, stacked with patchwork. Layout and palettes follow ArchR 1.0.3's
# plotBrowserTrack (R/ArchRBrowser.R).

#' @importFrom ggplot2 .data
#' @importClassesFrom GenomicRanges GRangesList
NULL

# The loop track's grey-blue-purple ramp for correlations (ArchR
# ColorPalettes.R); group colours are .stallion (R/utils-palettes.R).
.loop_pal <- c("#E6E7E8", "#3A97FF", "#8816A7", "black")

#' ArchR-style browser track: coverage, peaks, links and genes
#'
#' @description Draws ArchR 1.0.3's `plotBrowserTrack()` layout for one
#' region: per-group pseudobulk insertion coverage (from [groupCoverages()]),
#' a peak track, half-ellipse arcs for loops coloured by their `value`
#' (ArchR's `getArchDF` geometry: depth proportional to span), and a gene
#' model with exons, introns and strand arrows.
#' @param ArchRProj A fragment file path (coverage is computed for `groups`
#'   in the region) or a GRangesList from [groupCoverages()]. Project methods
#'   are added by the project class.
#' @param region A GRanges of length 1 (or "chr:start-end"); or use
#'   `geneSymbol`.
#' @param geneSymbol A gene symbol of `geneAnnotation$genes`; the region is
#'   its TSS minus `upstream` to plus `downstream` (strand-aware).
#' @param groups Named vector of cell groups (see [groupCoverages()]), when
#'   `ArchRProj` is a fragment file.
#' @param geneAnnotation A list with `genes` (GRanges with a `symbol`
#'   column, strand set) and optionally `exons` (GRanges with `symbol`), as
#'   ArchR's `geneAnnotation`; `NULL` drops the gene track.
#' @param features Peaks (GRanges) for the feature track, or `NULL`.
#' @param loops Loops (GRanges with `value`, or the SimpleList returned by
#'   [getPeak2GeneLinks()] / [getCoAccessibility()]), or `NULL`.
#' @param upstream,downstream Bases around the TSS (default 50000 each).
#' @param tileSize Coverage resolution in bp (default 250, as ArchR's).
#' @param normMethod,normBy,maxCells Passed to [groupCoverages()].
#' @param threads Number of C++ threads for reading fragments.
#' @param ... Plot settings passed on to the drawing: `ylim` (coverage axis
#'   limits; default `c(0, max)`), `pal` (colours for the groups; default
#'   ArchR's "stallion"), `sizes` (relative heights of the coverage, peak,
#'   loop and gene tracks) and `baseSize` (base font size).
#' @return A patchwork (ggplot2) object; print it to draw.
#' @seealso [groupCoverages()], [peakToGeneLinks()], ArchR's
#'   `plotBrowserTrack()`.
#' @examples
#' ex <- p2gExampleData()
#' frags <- system.file("extdata", "multiome_loci_fragments.tsv.gz",
#'                      package = "epione")
#' links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 30,
#'                          threads = 1)
#' genes <- SummarizedExperiment::rowRanges(ex$rna)
#' genes$symbol <- rownames(ex$rna)
#' p <- plotBrowserTrack(frags, groups = ex$clusters, geneSymbol = "CD8A",
#'     geneAnnotation = list(genes = genes),
#'     features = SummarizedExperiment::rowRanges(ex$atac),
#'     loops = getPeak2GeneLinks(links), threads = 1)
#' # ArchR's project form
#' pr <- p2gExampleProject(file.path(tempdir(), "p2g-ex6"))
#' p <- plotBrowserTrack(pr$proj, geneSymbol = "CD8A", minCells = 10,
#'                       loops = NULL)
#' @export
setGeneric("plotBrowserTrack", function(ArchRProj, ...)
    standardGeneric("plotBrowserTrack"))

#' @rdname plotBrowserTrack
#' @export
setMethod("plotBrowserTrack", "character", function(ArchRProj, region = NULL,
        geneSymbol = NULL, groups, geneAnnotation = NULL, features = NULL,
        loops = NULL, upstream = 50000, downstream = 50000, tileSize = 250,
        normMethod = "nFrags", normBy = NULL, maxCells = 1000, ...,
        threads = getOption("epione.threads", 2L)) {
    region <- .track_region(region, geneSymbol, geneAnnotation, upstream,
                            downstream)
    cov <- groupCoverages(ArchRProj, groups, tileSize = tileSize,
        normMethod = normMethod, normBy = normBy, maxCells = maxCells,
        region = region, threads = threads)
    .browser_plot(cov, region, geneAnnotation, features, loops, ...)
})

#' @rdname plotBrowserTrack
#' @export
setMethod("plotBrowserTrack", "GRangesList", function(ArchRProj,
        region = NULL, geneSymbol = NULL, geneAnnotation = NULL,
        features = NULL, loops = NULL, upstream = 50000, downstream = 50000,
        ...) {
    region <- .track_region(region, geneSymbol, geneAnnotation, upstream,
                            downstream)
    .browser_plot(ArchRProj, region, geneAnnotation, features, loops, ...)
})

.track_region <- function(region, geneSymbol, geneAnnotation, upstream,
                          downstream) {
    if (!is.null(region)) {
        if (is.character(region)) region <- methods::as(region, "GRanges")
        if (!methods::is(region, "GRanges") || length(region) != 1L) {
            .abort("'region' must be one GRanges range or \"chr:start-end\".")
        }
        return(region)
    }
    genes <- geneAnnotation$genes
    hit <- if (is.null(genes) || is.null(geneSymbol)) integer() else
        which(genes$symbol == geneSymbol)
    if (length(hit) == 0L) {
        .abort("Give 'region', or a 'geneSymbol' found in ",
               "geneAnnotation$genes$symbol (", deparse1(geneSymbol),
               " is not).")
    }
    g <- genes[hit[1L]]
    minus <- as.character(GenomicRanges::strand(g)) == "-"
    tss <- if (minus) GenomicRanges::end(g) else GenomicRanges::start(g)
    lo <- if (minus) downstream else upstream
    hi <- if (minus) upstream else downstream
    GenomicRanges::GRanges(GenomicRanges::seqnames(g),
        IRanges::IRanges(max(1, tss - lo), tss + hi))
}

.browser_plot <- function(cov, region, geneAnnotation, features, loops,
                          ylim = NULL, pal = NULL, sizes = c(10, 1.5, 3, 4),
                          baseSize = 7) {
    xlim <- c(GenomicRanges::start(region), GenomicRanges::end(region))
    tracks <- list(.coverage_track(cov, region, ylim, pal, baseSize))
    heights <- sizes[1L]
    if (!is.null(features)) {
        tracks <- c(tracks, list(.feature_track(features, region, baseSize)))
        heights <- c(heights, sizes[2L])
    }
    if (!is.null(loops)) {
        tracks <- c(tracks, list(.loop_track(loops, region, baseSize)))
        heights <- c(heights, sizes[3L])
    }
    if (!is.null(geneAnnotation)) {
        tracks <- c(tracks, list(.gene_track(geneAnnotation, region,
                                             baseSize)))
        heights <- c(heights, sizes[4L])
    }
    n <- length(tracks)
    tracks <- lapply(seq_len(n), function(i) {
        p <- tracks[[i]] + ggplot2::scale_x_continuous(limits = xlim,
            expand = c(0, 0), labels = function(x) format(x, big.mark = ",",
                                                          scientific = FALSE))
        if (i < n) p <- p + ggplot2::theme(
            axis.text.x = ggplot2::element_blank(),
            axis.ticks.x = ggplot2::element_blank(),
            axis.title.x = ggplot2::element_blank())
        else p <- p + ggplot2::xlab(as.character(
            GenomicRanges::seqnames(region)))
        p
    })
    patchwork::wrap_plots(tracks, ncol = 1L, heights = heights) +
        patchwork::plot_annotation(title = paste0(GenomicRanges::seqnames(
            region), ":", xlim[1L], "-", xlim[2L]))
}

.track_theme <- function(baseSize) {
    ggplot2::theme_classic(base_size = baseSize) +
        ggplot2::theme(strip.background = ggplot2::element_blank(),
            strip.text.y.left = ggplot2::element_text(angle = 0,
                                                      size = baseSize),
            panel.spacing = ggplot2::unit(0, "lines"),
            legend.key.size = ggplot2::unit(0.5, "lines"))
}

# Coverage with zero-filled tiles so each area returns to the baseline.
.coverage_track <- function(cov, region, ylim, pal, baseSize) {
    ts <- S4Vectors::metadata(cov)$tileSize
    if (is.null(ts)) ts <- 100
    s <- GenomicRanges::start(region)
    e <- GenomicRanges::end(region)
    x <- seq(floor(s / ts) * ts + 1, e, by = ts)
    groups <- names(cov)
    df <- do.call(rbind, lapply(groups, function(g) {
        gr <- IRanges::subsetByOverlaps(cov[[g]], region)
        y <- numeric(length(x))
        y[match(GenomicRanges::start(gr), x, nomatch = 0L)] <-
            gr$score[GenomicRanges::start(gr) %in% x]
        data.frame(x = pmin(pmax(x + ts / 2, s), e), y = y, group = g)
    }))
    df$group <- factor(df$group, levels = groups)
    if (is.null(pal)) pal <- rep(.stallion, length.out = length(groups))
    if (is.null(names(pal))) names(pal) <- groups
    if (is.null(ylim)) ylim <- c(0, max(c(df$y, 1e-9)))
    ggplot2::ggplot(df, ggplot2::aes(.data$x, .data$y, fill = .data$group)) +
        ggplot2::geom_area(stat = "identity") +
        ggplot2::facet_grid(group ~ ., switch = "y") +
        ggplot2::scale_fill_manual(values = pal, guide = "none") +
        ggplot2::coord_cartesian(ylim = ylim) +
        ggplot2::ylab(paste0("Coverage (range 0-", signif(ylim[2L], 3),
                             ")")) +
        .track_theme(baseSize) +
        ggplot2::theme(axis.text.y = ggplot2::element_blank(),
                       axis.ticks.y = ggplot2::element_blank())
}

.feature_track <- function(features, region, baseSize) {
    f <- IRanges::subsetByOverlaps(features, region, ignore.strand = TRUE)
    df <- data.frame(start = GenomicRanges::start(f),
                     end = GenomicRanges::end(f), facet = "Peaks")
    ggplot2::ggplot(df) +
        ggplot2::geom_rect(ggplot2::aes(xmin = .data$start, xmax = .data$end,
                                        ymin = 0, ymax = 1),
                           fill = "grey25", colour = NA) +
        ggplot2::facet_grid(facet ~ ., switch = "y") +
        .track_theme(baseSize) + .blank_y()
}

.blank_y <- function() {
    ggplot2::theme(axis.text.y = ggplot2::element_blank(),
                   axis.ticks.y = ggplot2::element_blank(),
                   axis.title.y = ggplot2::element_blank(),
                   axis.line.y = ggplot2::element_blank())
}

# ArchR's getArchDF: a lower half-ellipse per loop, x radius half its span,
# depth 100 * span / widest span.
.arch_df <- function(lp) {
    angles <- seq(pi, 2 * pi, length.out = 100)
    rx <- (GenomicRanges::end(lp) - GenomicRanges::start(lp)) / 2
    ry <- 100 * rx / max(rx)
    cx <- GenomicRanges::start(lp) + rx
    do.call(rbind, lapply(seq_along(lp), function(z) {
        data.frame(x = rx[z] * cos(angles) + cx[z], y = ry[z] * sin(angles),
                   id = z, value = lp$value[z])
    }))
}

.loop_track <- function(loops, region, baseSize) {
    if (!methods::is(loops, "GRanges")) loops <- unlist(
        methods::as(loops, "GRangesList"), use.names = FALSE)
    lp <- IRanges::subsetByOverlaps(loops, region, ignore.strand = TRUE,
                                    type = "within")
    if (is.null(lp$value)) lp$value <- rep(1, length(lp))
    df <- if (length(lp)) .arch_df(lp) else
        data.frame(x = numeric(), y = numeric(), id = integer(),
                   value = numeric())
    df$facet <- rep("Links", nrow(df))
    lim <- if (length(loops)) range(loops$value) else c(0, 1)
    ggplot2::ggplot(df, ggplot2::aes(.data$x, .data$y, group = .data$id,
                                     colour = .data$value)) +
        ggplot2::geom_line() +
        ggplot2::facet_grid(facet ~ ., switch = "y") +
        ggplot2::coord_cartesian(ylim = c(-100, 0)) +
        ggplot2::scale_colour_gradientn(colours = grDevices::colorRampPalette(
            .loop_pal)(100), limits = lim, name = "r") +
        .track_theme(baseSize) + .blank_y()
}

# UCSC-style gene model: intron line, exon blocks, strand chevrons, label;
# overlapping genes go to separate rows. Colours are ArchR's geneTrack
# defaults (minus dodgerblue2, plus red).
.gene_track <- function(geneAnnotation, region, baseSize) {
    genes <- IRanges::subsetByOverlaps(geneAnnotation$genes, region,
                                       ignore.strand = TRUE)
    s <- GenomicRanges::start(region)
    e <- GenomicRanges::end(region)
    pad <- (e - s) * 0.04
    row <- if (length(genes)) IRanges::disjointBins(IRanges::IRanges(
        GenomicRanges::start(genes) - pad,
        GenomicRanges::end(genes) + pad)) else integer()
    st <- as.character(GenomicRanges::strand(genes))
    gdf <- data.frame(start = pmax(GenomicRanges::start(genes), s),
                      end = pmin(GenomicRanges::end(genes), e), y = -row,
                      strand = st, symbol = genes$symbol)
    ex <- geneAnnotation$exons
    edf <- gdf[0, c("start", "end", "y", "strand")]
    if (!is.null(ex) && nrow(gdf)) {
        ex <- IRanges::subsetByOverlaps(ex, region, ignore.strand = TRUE)
        m <- match(ex$symbol, gdf$symbol)
        ex <- ex[!is.na(m)]
        m <- m[!is.na(m)]
        edf <- data.frame(start = pmax(GenomicRanges::start(ex), s),
                          end = pmin(GenomicRanges::end(ex), e), y = gdf$y[m],
                          strand = gdf$strand[m])
    }
    adf <- .strand_arrows(gdf, (e - s) / 30)
    pal <- c("-" = "dodgerblue2", "+" = "red", "*" = "red")
    gdf$facet <- rep("Genes", nrow(gdf))
    p <- ggplot2::ggplot(gdf) +
        ggplot2::geom_segment(ggplot2::aes(x = .data$start, xend = .data$end,
            y = .data$y, yend = .data$y, colour = .data$strand),
            linewidth = 0.4) +
        ggplot2::geom_rect(data = edf, ggplot2::aes(xmin = .data$start,
            xmax = .data$end, ymin = .data$y - 0.2, ymax = .data$y + 0.2,
            fill = .data$strand), colour = NA) +
        ggplot2::geom_segment(data = adf, ggplot2::aes(x = .data$x,
            xend = .data$xend, y = .data$y, yend = .data$y,
            colour = .data$strand), linewidth = 0.3,
            arrow = grid::arrow(length = grid::unit(0.04, "inches"))) +
        ggplot2::geom_text(ggplot2::aes(x = (.data$start + .data$end) / 2,
            y = .data$y + 0.45, label = .data$symbol, colour = .data$strand),
            size = baseSize / 3) +
        ggplot2::scale_colour_manual(values = pal, guide = "none") +
        ggplot2::scale_fill_manual(values = pal, guide = "none") +
        ggplot2::facet_grid(facet ~ ., switch = "y") +
        ggplot2::coord_cartesian(ylim = c(-max(c(row, 1)) - 0.5, -0.3)) +
        .track_theme(baseSize) + .blank_y()
    p
}

# Short arrows every `step` bp along each gene, pointing along its strand.
.strand_arrows <- function(gdf, step) {
    rows <- lapply(seq_len(nrow(gdf)), function(i) {
        if (gdf$strand[i] == "*" || gdf$end[i] - gdf$start[i] < step)
            return(NULL)
        x <- seq(gdf$start[i] + step / 2, gdf$end[i] - step / 2, by = step)
        d <- if (gdf$strand[i] == "-") -step / 4 else step / 4
        data.frame(x = x - d / 2, xend = x + d / 2, y = gdf$y[i],
                   strand = gdf$strand[i])
    })
    out <- do.call(rbind, rows)
    if (is.null(out)) data.frame(x = numeric(), xend = numeric(),
                                 y = numeric(), strand = character()) else out
}

#' Heatmap of peak-to-gene links over metacells
#'
#' @description ArchR 1.0.3's `plotPeak2GeneHeatmap()` at the matrix level:
#' links passing ArchR's cut-offs, their peaks' and genes' log-normalised
#' metacell values (recomputed from `atac`, `rna` and the metacells stored
#' in `links`), row z-scores clipped to the limits, rows k-means clustered
#' on the ATAC side (`kmeans(k)` after `set.seed(seed)`, the caller's random
#' state restored), metacells labelled by the majority group of their cells
#' and ordered by group. Rows are ordered by k-means cluster, clusters by
#' the metacell where their mean ATAC z-score peaks (a simpler order than
#' ArchR's binary sort).
#' @param links The table from [peakToGeneLinks()], or an
#'   [EpioneProject-class] after [addPeak2GeneLinks()] (ArchR's form: the
#'   matrices come from the project, groups from `groupBy`).
#' @param atac,rna The SummarizedExperiments given to [peakToGeneLinks()]
#'   (not needed with a project).
#' @param groups Named vector: group of each cell (names = cell names; not
#'   needed with a project).
#' @param groupBy With a project: the cellColData column labelling the
#'   metacells (default "Clusters").
#' @param corCutOff,FDRCutOff,varCutOffATAC,varCutOffRNA ArchR's link
#'   filters (see [getPeak2GeneLinks()]).
#' @param k Number of k-means clusters (default 25).
#' @param nPlot At most this many links are drawn (sampled per cluster).
#' @param limitsATAC,limitsRNA Z-score limits (default `c(-2, 2)`).
#' @param seed Seed for k-means and sampling (ArchR default 1).
#' @param returnMatrices Return the ordered matrices instead of a plot.
#' @inheritParams peakToGeneLinks
#' @return A patchwork (ggplot2) object, or with `returnMatrices = TRUE` a
#'   list with `ATAC`, `RNA` (z-score matrices, links x metacells),
#'   `kmeansId`, `colData` (metacell group) and `Peak2GeneLinks`.
#' @examples
#' ex <- p2gExampleData()
#' links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 30,
#'                          threads = 1)
#' p <- plotPeak2GeneHeatmap(links, ex$atac, ex$rna, ex$clusters, k = 5,
#'                           corCutOff = 0.3, FDRCutOff = 1e-3)
#' # ArchR's project form
#' pr <- p2gExampleProject(file.path(tempdir(), "p2g-ex7"))
#' proj <- addGeneExpressionMatrix(pr$proj, pr$seRNA, verbose = FALSE)
#' proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 20,
#'                           knnIteration = 100, threads = 1)
#' p <- plotPeak2GeneHeatmap(proj, k = 3, corCutOff = 0.2, FDRCutOff = 0.1)
#' @export
plotPeak2GeneHeatmap <- function(links, atac, rna, groups, corCutOff = 0.45,
        FDRCutOff = 1e-4, varCutOffATAC = 0.25, varCutOffRNA = 0.25,
        k = 25, nPlot = 25000, limitsATAC = c(-2, 2), limitsRNA = c(-2, 2),
        seed = 1, returnMatrices = FALSE, atacAssay = 1L, rnaAssay = 1L,
        threads = getOption("epione.threads", 2L), groupBy = "Clusters") {
    if (methods::is(links, "EpioneProject")) {
        proj <- links
        links <- .project_result(proj, "Peak2GeneLinks", "addPeak2GeneLinks")
        use <- S4Vectors::metadata(links)$useMatrix
        atac <- .project_peak_se(proj)
        rna <- .project_feature_se(proj, if (is.null(use))
            "GeneExpressionMatrix" else use)$se
        groups <- stats::setNames(as.character(getCellColData(proj, groupBy,
            drop = TRUE)), rownames(proj@cellColData))
        atacAssay <- rnaAssay <- 1L
    }
    p2g <- getPeak2GeneLinks(links, corCutOff = corCutOff,
        FDRCutOff = FDRCutOff, varCutOffATAC = varCutOffATAC,
        varCutOffRNA = varCutOffRNA, returnLoops = FALSE)
    if (nrow(p2g) <= k) {
        .abort(nrow(p2g), " links pass the cut-offs, not more than k = ", k,
               "; lower corCutOff / raise FDRCutOff or lower k.")
    }
    knn <- S4Vectors::metadata(links)$KNNList
    threads <- .check_threads(threads)
    # normalise over all features (ArchR's colSums), then keep linked rows
    meta <- function(se, assay, rows) {
        x <- .p2g_assay(se, assay, "matrix")
        g <- t(vapply(knn, function(cl) match(cl, colnames(x)) - 1L,
                      integer(length(knn[[1L]]))))
        m <- .core(epi_p2g_metacells(x, g, 1e4, TRUE, threads))
        .row_z(m[rows, , drop = FALSE])
    }
    mats <- list(ATAC = meta(atac, atacAssay, p2g$idxATAC),
                 RNA = meta(rna, rnaAssay, p2g$idxRNA))
    label <- vapply(knn, function(cl) names(sort(table(groups[cl]),
                                                 decreasing = TRUE))[1L], "")
    .p2g_heat_order(mats, p2g, label, k, nPlot, seed, limitsATAC, limitsRNA,
                    returnMatrices)
}

# ArchR's .rowZscores: (x - rowMeans) / rowSds.
.row_z <- function(m) {
    sds <- sqrt(rowSums((m - rowMeans(m))^2) / (ncol(m) - 1))
    (m - rowMeans(m)) / sds
}

.p2g_heat_order <- function(mats, p2g, label, k, nPlot, seed, limitsATAC,
                            limitsRNA, returnMatrices) {
    km <- .with_r_seed(seed, stats::kmeans(mats$ATAC, k))
    rows <- seq_len(nrow(mats$ATAC))
    if (length(rows) > nPlot) {
        rows <- .with_r_seed(seed, sort(unlist(lapply(split(rows,
            km$cluster), function(i) i[sample.int(length(i),
            floor(nPlot * length(i) / length(rows)))]))))
    }
    cols <- order(factor(label, levels = .mixed_levels(label)))
    peak_at <- apply(km$centers[, cols, drop = FALSE], 1L, which.max)
    kid <- match(km$cluster[rows], order(peak_at))
    rows <- rows[order(kid)]
    kid <- sort(kid)
    out <- list(ATAC = mats$ATAC[rows, cols, drop = FALSE],
                RNA = mats$RNA[rows, cols, drop = FALSE], kmeansId = kid,
                colData = S4Vectors::DataFrame(groupBy = label[cols]),
                Peak2GeneLinks = p2g[rows, , drop = FALSE])
    if (returnMatrices) return(out)
    .p2g_heat_plot(out, limitsATAC, limitsRNA)
}

.mixed_levels <- function(x) {
    u <- unique(x)
    num <- suppressWarnings(as.numeric(gsub("\\D", "", u)))
    u[order(gsub("\\d", "", u), num, u)]
}

# ArchR palette "blueYellow" (RNA); "solarExtra" (ATAC) is .solar_extra.
.blue_yellow <- c("#352A86", "#343DAE", "#0262E0", "#1389D2", "#2DB7A3",
                  "#A5BE6A", "#F8BA43", "#F6DA23", "#F8FA0D")

.p2g_heat_plot <- function(out, limitsATAC, limitsRNA) {
    tile <- function(m, lim, pal, title) {
        df <- data.frame(x = rep(seq_len(ncol(m)), each = nrow(m)),
                         y = rep(rev(seq_len(nrow(m))), ncol(m)),
                         z = pmin(pmax(as.vector(m), lim[1L]), lim[2L]))
        ggplot2::ggplot(df, ggplot2::aes(.data$x, .data$y, fill = .data$z)) +
            ggplot2::geom_raster() +
            ggplot2::scale_fill_gradientn(colours = pal, limits = lim,
                                          name = paste(title, "Z")) +
            ggplot2::scale_x_continuous(expand = c(0, 0)) +
            ggplot2::scale_y_continuous(expand = c(0, 0)) +
            ggplot2::labs(x = "metacells", y = NULL, title = title) +
            ggplot2::theme_void(base_size = 7) +
            ggplot2::theme(legend.position = "bottom")
    }
    grp <- out$colData$groupBy
    lev <- unique(grp)
    bar <- ggplot2::ggplot(data.frame(x = seq_along(grp),
                                      g = factor(grp, levels = lev)),
                           ggplot2::aes(.data$x, 1, fill = .data$g)) +
        ggplot2::geom_raster() +
        ggplot2::scale_fill_manual(values = stats::setNames(rep(.stallion,
            length.out = length(lev)), lev), name = NULL) +
        ggplot2::scale_x_continuous(expand = c(0, 0)) +
        ggplot2::theme_void(base_size = 7) +
        ggplot2::theme(legend.position = "top")
    patchwork::wrap_plots(bar, bar, tile(out$ATAC, limitsATAC, .solar_extra,
        "ATAC"), tile(out$RNA, limitsRNA, .blue_yellow, "RNA"), ncol = 2L,
        heights = c(1, 12), guides = "collect")
}

# ---- project methods --------------------------------------------------------
# (kept in this file because it is collated after R/project.R, which
# defines the EpioneProject class)

#' @rdname getPeak2GeneLinks
#' @export
setMethod("getPeak2GeneLinks", "EpioneProject", function(ArchRProj,
        corCutOff = 0.45, FDRCutOff = 1e-4, varCutOffATAC = 0.25,
        varCutOffRNA = 0.25, resolution = 1, returnLoops = TRUE) {
    p2g <- .project_result(ArchRProj, "Peak2GeneLinks", "addPeak2GeneLinks")
    getPeak2GeneLinks(p2g, corCutOff = corCutOff, FDRCutOff = FDRCutOff,
        varCutOffATAC = varCutOffATAC, varCutOffRNA = varCutOffRNA,
        resolution = resolution, returnLoops = returnLoops)
})

#' @rdname getCoAccessibility
#' @export
setMethod("getCoAccessibility", "EpioneProject", function(ArchRProj,
        corCutOff = 0.5, resolution = 1, returnLoops = TRUE) {
    coa <- .project_result(ArchRProj, "CoAccessibility", "addCoAccessibility")
    getCoAccessibility(coa, corCutOff = corCutOff, resolution = resolution,
                       returnLoops = returnLoops)
})

#' @rdname plotBrowserTrack
#' @param groupBy,useGroups A discrete cellColData column and, optionally,
#'   the groups to draw (project method).
#' @param plotSummary Tracks to draw: any of "bulkTrack", "featureTrack",
#'   "loopTrack", "geneTrack".
#' @param sizes Relative heights of those tracks.
#' @param minCells Groups with fewer cells are left out (default 25).
#' @export
setMethod("plotBrowserTrack", "EpioneProject", function(ArchRProj,
        region = NULL, groupBy = "Clusters", useGroups = NULL,
        plotSummary = c("bulkTrack", "featureTrack", "loopTrack",
                        "geneTrack"), sizes = c(10, 1.5, 3, 4),
        features = getPeakSet(ArchRProj),
        loops = getCoAccessibility(ArchRProj), geneSymbol = NULL,
        upstream = 50000, downstream = 50000, tileSize = 250,
        maxCells = 500, minCells = 25, normMethod = "ReadsInTSS",
        geneAnnotation = ArchRProj@geneAnnotation, ...,
        threads = getOption("epione.threads", 2L)) {
    loops <- tryCatch(loops, epione_error = function(e) NULL)
    if (!"featureTrack" %in% plotSummary) features <- NULL
    if (!"loopTrack" %in% plotSummary) loops <- NULL
    gene_anno <- if ("geneTrack" %in% plotSummary &&
                     length(geneAnnotation)) as.list(geneAnnotation)
    cg <- .track_cell_groups(ArchRProj, groupBy, useGroups, minCells,
                             maxCells)
    one <- function(reg) {
        cov <- .arrow_coverage(ArchRProj, cg, tileSize, NULL, normMethod,
                               region = reg)
        .browser_plot(cov, reg, gene_anno, features, loops, sizes = sizes,
                      ...)
    }
    if (!is.null(region)) {
        if (is.character(region)) region <- methods::as(region, "GRanges")
        if (length(region) == 1L) return(one(region))
        return(lapply(seq_along(region), function(i) one(region[i])))
    }
    if (length(geneSymbol) == 0L) .abort("Give 'region' or 'geneSymbol'.")
    out <- lapply(geneSymbol, function(s) one(.track_region(NULL, s,
        as.list(ArchRProj@geneAnnotation), upstream, downstream)))
    if (length(out) == 1L) out[[1L]] else stats::setNames(out, geneSymbol)
})

# ArchR's .groupRegionSumArrows cell selection: groups with >= minCells,
# optionally only useGroups, at most maxCells each (sample()), groups in
# mixedsort order.
.track_cell_groups <- function(proj, groupBy, useGroups, minCells,
                               maxCells) {
    g <- as.character(getCellColData(proj, groupBy, drop = TRUE))
    cells <- rownames(proj@cellColData)
    tab <- table(g)
    keep <- !is.na(g)
    if (!is.null(minCells)) keep <- keep & g %in% names(tab)[tab >= minCells]
    if (!is.null(useGroups)) keep <- keep & g %in% useGroups
    if (!any(keep)) {
        .abort("no group of '", groupBy, "' has at least minCells = ",
               minCells, " cells", if (!is.null(useGroups))
               " among useGroups", "; lower minCells.")
    }
    cg <- split(cells[keep], g[keep])
    if (!is.null(maxCells)) cg <- lapply(cg, function(x)
        if (length(x) > maxCells) sample(x, maxCells) else x)
    cg[.mixed_sort(names(cg))]
}
