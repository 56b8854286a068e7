# Pseudobulk coverage per cell group from a fragment file, and BigWig
# export (ArchR 1.0.3 getGroupBW counting, without an Arrow project).

#' Pseudobulk insertion coverage per cell group from a fragment file
#'
#' @description Counts Tn5 insertions (both ends of each fragment) of the
#' cells of each group in tiles of `tileSize` bp, straight from a
#' tabix-indexed fragment file (C++, HTSlib; one task per chromosome), as
#' ArchR 1.0.3's `getGroupBW()` does: each cell contributes at most
#' `ceiling` insertions per tile, a fragment's start is taken 1-based
#' (`start + 1`, ArchR's Arrow convention) and positions are binned as
#' `trunc(pos / tileSize)`, tile `b` being reported as
#' `[b * tileSize + 1, (b + 1) * tileSize]` (ArchR's off-by-one included).
#' Scores are `reads * 10^4 / sum(normBy)` over the group's cells
#' (`normMethod` "nFrags", "ReadsInTSS", "ReadsInPromoter"), `reads / nCells`
#' ("nCells") or `reads` ("None").
#'
#' @param fragments Path to a bgzipped, tabix-indexed fragment file
#'   (`chrom, start (0-based), end, barcode, ...`).
#' @param groups Named character (or factor) vector: names are cell
#'   barcodes (a `Sample#` prefix, as in ArchR cell names, is dropped), values
#'   the group of each cell.
#' @param tileSize Tile width in bp (default 100).
#' @param ceiling Maximum insertions counted per cell and tile (default 4;
#'   `NULL` for none).
#' @param normMethod One of "nFrags" (default here; fragments of the cell in
#'   the file, or `normBy`), "ReadsInTSS", "ReadsInPromoter" (these two need
#'   `normBy`), "nCells" or "None".
#' @param normBy Optional named numeric vector per cell (e.g. the project's
#'   ReadsInTSS) used instead of counting fragments.
#' @param maxCells At most this many cells per group, drawn with `sample()`
#'   from the caller's random stream as ArchR does (default 1000; `NULL`
#'   keeps all).
#' @param region Optional GRanges (or "chr:start-end" strings) to read
#'   instead of the whole file; with "nFrags" and no `normBy`, only the
#'   fragments in the region are counted for the scaling.
#' @param threads Number of C++ threads (one chromosome or region each).
#' @return A [GenomicRanges::GRangesList] with one GRanges per group: the
#'   nonzero tiles, with metadata columns `reads` (capped insertion counts)
#'   and `score` (normalised). `metadata()` holds `nCells`, `normFactor`
#'   (the per-group sum of `normBy`), `tileSize` and `normMethod`.
#' @seealso [exportGroupBW()], ArchR's `getGroupBW()`.
#' @examples
#' ex <- p2gExampleData()
#' frags <- system.file("extdata", "multiome_loci_fragments.tsv.gz",
#'                      package = "epione")
#' cov <- groupCoverages(frags, ex$clusters, threads = 1)
#' cov
#' @export
groupCoverages <- function(fragments, groups, tileSize = 100, ceiling = 4,
        normMethod = "nFrags", normBy = NULL, maxCells = 1000,
        region = NULL, threads = getOption("epione.threads", 2L)) {
    fragments <- .check_file(fragments, "fragments")
    if (!any(file.exists(paste0(fragments, c(".tbi", ".csi"))))) {
        .abort("no tabix index for '", fragments, "'; create it with ",
               "`tabix -p bed ", fragments, "` or Rsamtools::indexTabix(",
               "path, format = \"bed\").", kind = "format")
    }
    threads <- .check_threads(threads)
    .check_number(tileSize, "tileSize", min = 1, whole = TRUE)
    if (!is.null(ceiling)) .check_number(ceiling, "ceiling", min = 1)
    norm <- .cov_norm_method(normMethod, normBy)
    cells <- .cov_groups(groups, maxCells)
    regions <- .cov_regions(fragments, region)
    res <- .core(epi_coverage_groups(fragments, regions, names(cells$group),
        as.integer(cells$group) - 1L, as.integer(tileSize),
        if (is.null(ceiling)) 0L else as.integer(ceiling), threads))
    names(res$nFrags) <- names(cells$group)
    .cov_granges(res, regions, cells, norm, normBy, tileSize)
}

.cov_norm_method <- function(normMethod, normBy) {
    methods <- c("None", "ReadsInTSS", "nCells", "ReadsInPromoter", "nFrags")
    m <- methods[match(tolower(normMethod), tolower(methods))]
    if (length(normMethod) != 1L || is.na(m)) {
        .abort("normMethod must be one of ", paste(methods, collapse = ", "),
               ", not ", deparse1(normMethod), ".")
    }
    if (m %in% c("ReadsInTSS", "ReadsInPromoter") && is.null(normBy)) {
        .abort("normMethod = \"", m, "\" needs normBy: a named numeric ",
               "vector with each cell's ", m, " (ArchR's cellColData ",
               "column); or use normMethod = \"nFrags\".")
    }
    m
}

# Named group factor per barcode (Sample# prefixes dropped), at most
# maxCells per group.
.cov_groups <- function(groups, maxCells) {
    if (is.null(names(groups)) || anyNA(groups) || !length(groups)) {
        .abort("'groups' must be a named vector (names = cell barcodes, ",
               "values = groups) without NA, e.g. setNames(clusters, cells).")
    }
    full <- names(groups)
    bc <- sub("^.*#", "", full)
    if (anyDuplicated(bc)) {
        .abort("'groups' names repeat a barcode (e.g. ",
               bc[anyDuplicated(bc)], "); give one group per cell.")
    }
    g <- factor(groups)
    keep <- unlist(lapply(split(seq_along(g), g), function(i) {
        if (!is.null(maxCells) && length(i) > maxCells)
            sample(i, maxCells) else i
    }), use.names = FALSE)
    keep <- sort(keep)
    list(group = stats::setNames(g[keep], bc[keep]), cell = full[keep])
}

.cov_regions <- function(fragments, region) {
    if (is.null(region)) return(.core(epi_info_tabix_seqnames(fragments)))
    if (methods::is(region, "GRanges")) {
        region <- paste0(GenomicRanges::seqnames(region), ":",
                         GenomicRanges::start(region), "-",
                         GenomicRanges::end(region))
    }
    as.character(region)
}

.cov_granges <- function(res, regions, cells, norm, normBy, tileSize) {
    lev <- levels(cells$group)
    n_cells <- tabulate(cells$group, length(lev))
    by <- if (!is.null(normBy)) {
        v <- normBy[cells$cell]
        if (anyNA(v)) {
            .abort("normBy lacks ", sum(is.na(v)), " cells of 'groups' (e.g. ",
                   cells$cell[is.na(v)][1L], "); name it by the same cells.")
        }
        v
    } else res$nFrags
    norm_sum <- vapply(split(as.numeric(by), cells$group), sum, 1)
    scale <- switch(norm, None = rep(1, length(lev)),
                    nCells = 1 / n_cells, 1e4 / norm_sum)
    chrom <- sub(":.*$", "", regions)[res$region]
    start <- res$tile * tileSize + 1
    out <- lapply(seq_along(lev), function(g) {
        i <- which(res$group == g)
        gr <- GenomicRanges::GRanges(chrom[i], IRanges::IRanges(start[i],
                                     width = tileSize))
        gr$reads <- res$reads[i]
        gr$score <- res$reads[i] * scale[g]
        gr
    })
    gl <- GenomicRanges::GRangesList(stats::setNames(out, lev))
    S4Vectors::metadata(gl) <- list(nCells = stats::setNames(n_cells, lev),
        normFactor = norm_sum, tileSize = tileSize, normMethod = norm)
    gl
}

#' Write group coverages as BigWig files
#'
#' @description Writes each group of [groupCoverages()] to
#' `<outDir>/<group>-TileSize-<tileSize>-normMethod-<normMethod>-epione.bw`
#' with `rtracklayer::export.bw()` (ArchR's `getGroupBW()` file naming with
#' `epione` for `ArchR`). Tiles without insertions are absent (zero).
#' @param coverage A GRangesList from [groupCoverages()].
#' @param outDir Output folder (created if needed).
#' @param chromSizes Chromosome lengths: a named numeric vector, a GRanges
#'   or a Seqinfo. Default: the end of the last tile of each chromosome.
#' @return The paths of the BigWig files, named by group.
#' @examples
#' ex <- p2gExampleData()
#' frags <- system.file("extdata", "multiome_loci_fragments.tsv.gz",
#'                      package = "epione")
#' cov <- groupCoverages(frags, ex$clusters, threads = 1)
#' \donttest{
#' # loading rtracklayer takes a few seconds
#' if (requireNamespace("rtracklayer", quietly = TRUE))
#'     exportGroupBW(cov, tempfile())
#' }
#' @export
exportGroupBW <- function(coverage, outDir, chromSizes = NULL) {
    if (!requireNamespace("rtracklayer", quietly = TRUE)) {
        .abort("exportGroupBW() needs the rtracklayer package: ",
               "BiocManager::install(\"rtracklayer\").", kind = "input")
    }
    if (!methods::is(coverage, "GRangesList")) {
        .abort("'coverage' must be the GRangesList of groupCoverages().")
    }
    dir.create(outDir, showWarnings = FALSE, recursive = TRUE)
    md <- S4Vectors::metadata(coverage)
    len <- .cov_chrom_sizes(coverage, chromSizes)
    paths <- file.path(outDir, paste0(make.names(names(coverage)),
        "-TileSize-", md$tileSize, "-normMethod-", md$normMethod,
        "-epione.bw"))
    for (g in seq_along(coverage)) {
        gr <- coverage[[g]]
        gr <- GenomeInfoDb::keepSeqlevels(gr, names(len), pruning.mode =
                                              "coarse")
        GenomeInfoDb::seqlengths(gr) <- len[GenomeInfoDb::seqlevels(gr)]
        gr <- GenomicRanges::trim(gr)
        gr <- gr[IRanges::width(gr) > 0]
        S4Vectors::mcols(gr) <- S4Vectors::mcols(gr)["score"]
        rtracklayer::export.bw(sort(gr), paths[g])
    }
    stats::setNames(paths, names(coverage))
}

.cov_chrom_sizes <- function(coverage, chromSizes) {
    if (is.null(chromSizes)) {
        all <- unlist(coverage, use.names = FALSE)
        return(vapply(split(GenomicRanges::end(all), as.character(
            GenomicRanges::seqnames(all))), max, 1))
    }
    if (methods::is(chromSizes, "GRanges")) {
        return(stats::setNames(GenomicRanges::end(chromSizes),
            as.character(GenomicRanges::seqnames(chromSizes))))
    }
    if (methods::is(chromSizes, "Seqinfo")) {
        return(GenomeInfoDb::seqlengths(chromSizes))
    }
    if (is.null(names(chromSizes))) {
        .abort("'chromSizes' must be named by chromosome, e.g. ",
               "c(chr1 = 248956422).")
    }
    chromSizes
}
