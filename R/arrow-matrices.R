# Matrices added to existing Arrow files (or a project's) from the fragments
# they store: addTileMatrix, addGeneScoreMatrix, addPeakSet, addPeakMatrix.

# Arrow files and, per file, the cells to use (Arrow order, without the
# sample prefix): all cells, or the project's.
.input_arrows <- function(input) {
    if (methods::is(input, "EpioneProject")) {
        files <- getArrowFiles(input)
        keep <- rownames(input@cellColData)
    } else if (is.character(input)) {
        files <- vapply(input, .check_arrow, "", USE.NAMES = FALSE)
        keep <- NULL
    } else {
        .abort("'input' must be an EpioneProject or Arrow file paths.")
    }
    lapply(files, function(f) {
        s <- .h5read(f, "Metadata/Sample")
        cells <- .h5read(f, "Metadata/CellNames")
        if (!is.null(keep)) cells <- cells[paste0(s, "#", cells) %in% keep]
        list(file = f, sample = s, cells = cells)
    })
}

.project_anno <- function(input, what) {
    if (!methods::is(input, "EpioneProject")) return(NULL)
    a <- c(as.list(input@genomeAnnotation), as.list(input@geneAnnotation))
    a[[what]]
}

.or_empty <- function(gr) if (is.null(gr)) GenomicRanges::GRanges() else gr

.check_new_matrix <- function(file, name, force) {
    if (!force && name %in% .arrow_matrices(file)) {
        .abort("'", file, "' already has a ", name, "; use force = TRUE to ",
               "replace it.", kind = "file")
    }
}

#' Add a TileMatrix to Arrow files (ArchR's addTileMatrix)
#'
#' Counts both Tn5 insertions of every stored fragment in fixed-width tiles
#' (tile of position p: `trunc(p / tileSize)`), binarizes by default and
#' zeroes tiles touching the blacklist, as ArchR 1.0.3 does.
#'
#' @param input An [EpioneProject-class] or Arrow file paths.
#' @param chromSizes GRanges of chromosome lengths (default: the project's
#'   genomeAnnotation).
#' @param blacklist Optional GRanges.
#' @param tileSize Tile width in bp.
#' @param binarize Store 0/1 (`Sparse.Binary.Matrix`) instead of counts.
#' @param excludeChr Chromosomes left out.
#' @param force Replace an existing TileMatrix.
#' @return `input`, invisibly (the Arrow files are modified).
#' @seealso [ArchR::addTileMatrix()], [createArrowFiles()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' addTileMatrix(arrow, anno$genomeAnnotation$chromSizes, tileSize = 5000)
#' getMatrixFromArrow(arrow, "TileMatrix", verbose = FALSE)
#' @export
addTileMatrix <- function(input,
                          chromSizes = .project_anno(input, "chromSizes"),
                          blacklist = .project_anno(input, "blacklist"),
                          tileSize = 500, binarize = TRUE,
                          excludeChr = c("chrM", "chrY"), force = FALSE) {
    if (!methods::is(chromSizes, "GRanges")) {
        .abort("'chromSizes' must be a GRanges of chromosome lengths (e.g. ",
               "createGenomeAnnotation()$chromSizes).")
    }
    .check_number(tileSize, "tileSize", 1, whole = TRUE)
    chr <- as.character(GenomicRanges::seqnames(chromSizes))
    len <- as.numeric(GenomicRanges::end(chromSizes))
    keep <- !chr %in% excludeChr
    bl <- .bed_df(.or_empty(blacklist))
    for (a in .input_arrows(input)) {
        .check_new_matrix(a$file, "TileMatrix", force)
        .write_tile_info2(a$file, chr[keep], len[keep], a$cells, tileSize,
                          .check_flag(binarize, "binarize"), TRUE)
        .core(epi_arrow_tiles_from_arrow(a$file, a$cells, chr[keep], len[keep],
                                         tileSize, binarize, bl))
    }
    invisible(input)
}

#' Add a GeneScoreMatrix to Arrow files (ArchR's addGeneScoreMatrix)
#'
#' ArchR 1.0.3's gene activity model: each gene body extended by
#' `geneUpstream`/`geneDownstream`, tiles of `tileSize` bp within
#' `extendUpstream`/`extendDownstream` (stopping at neighbouring genes when
#' `useGeneBoundaries`), weighted by `geneModel` of the distance and by the
#' inverse gene length (`geneScaleFactor`), insertion counts capped at
#' `ceiling`, scaled to `scaleTo` per cell and rounded to 3 decimals.
#'
#' @param input An [EpioneProject-class] or Arrow file paths.
#' @param genes GRanges with `symbol` (default: the project's genes).
#' @param geneModel,extendUpstream,extendDownstream,geneUpstream,geneDownstream,useGeneBoundaries,tileSize,ceiling,geneScaleFactor,scaleTo
#'   ArchR's parameters and defaults.
#' @param excludeChr Chromosomes left out.
#' @param blacklist Optional GRanges; tiles touching it get weight 0.
#' @param force Replace an existing GeneScoreMatrix.
#' @return `input`, invisibly.
#' @seealso [ArchR::addGeneScoreMatrix()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' addGeneScoreMatrix(arrow, anno$geneAnnotation$genes)
#' getMatrixFromArrow(arrow, "GeneScoreMatrix", verbose = FALSE)
#' @export
addGeneScoreMatrix <- function(input, genes = .project_anno(input, "genes"),
        geneModel = "exp(-abs(x)/5000) + exp(-1)",
        extendUpstream = c(1000, 100000), extendDownstream = c(1000, 100000),
        geneUpstream = 5000, geneDownstream = 0, useGeneBoundaries = TRUE,
        tileSize = 500, ceiling = 4, geneScaleFactor = 5, scaleTo = 10000,
        excludeChr = c("chrY", "chrM"),
        blacklist = .project_anno(input, "blacklist"), force = FALSE) {
    if (!methods::is(genes, "GRanges") || is.null(genes$symbol)) {
        .abort("'genes' must be a GRanges with a 'symbol' column (e.g. ",
               "createGeneAnnotation()$genes).")
    }
    p <- list(excludeChr = excludeChr, gene = list(geneModel = geneModel,
        extendUpstream = extendUpstream, extendDownstream = extendDownstream,
        geneUpstream = geneUpstream, geneDownstream = geneDownstream,
        useGeneBoundaries = useGeneBoundaries, tileSize = tileSize,
        ceiling = ceiling, geneScaleFactor = geneScaleFactor,
        scaleTo = scaleTo))
    model <- .gene_model(genes, NULL, p)
    bl <- .bed_df(.or_empty(blacklist))
    for (a in .input_arrows(input)) {
        .check_new_matrix(a$file, "GeneScoreMatrix", force)
        raw <- .core(epi_arrow_genes_from_arrow(a$file, a$cells, model$genes,
            tileSize, ceiling, model$table, model$half, bl))
        .write_gene_scores(a$file, raw, model, a$cells, p)
    }
    invisible(input)
}

#' Add a peak set to a project (ArchR's addPeakSet)
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param peakSet GRanges of peaks.
#' @param force Replace an existing peak set.
#' @return The project with `peakSet` set: sorted, with `idx` = position
#'   within its chromosome in the input order (ArchR's convention). No GC
#'   content is added (no BSgenome).
#' @seealso [ArchR::addPeakSet()], [addPeakMatrix()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"))
#' peaks <- GenomicRanges::resize(anno$geneAnnotation$TSS[1:200], 501,
#'                                "center")
#' proj <- addPeakSet(proj, unique(peaks))
#' getPeakSet(proj)
#' @export
addPeakSet <- function(ArchRProj, peakSet, force = FALSE) {
    .check_project(ArchRProj)
    if (!methods::is(peakSet, "GRanges") || !length(peakSet)) {
        .abort("'peakSet' must be a non-empty GRanges.")
    }
    if (!is.null(ArchRProj@peakSet) && !force) {
        .abort("the project already has a peakSet; use force = TRUE.")
    }
    chr <- as.character(GenomicRanges::seqnames(peakSet))
    peakSet$idx <- stats::ave(seq_along(chr), chr, FUN = seq_along)
    peakSet <- sort(GenomeInfoDb::sortSeqlevels(peakSet))
    ArchRProj@peakSet <- peakSet
    ArchRProj
}

#' Add a PeakMatrix to a project's Arrow files (ArchR's addPeakMatrix)
#'
#' Counts both Tn5 insertions of every fragment in every overlapping peak,
#' caps counts at `ceiling` (or binarizes), and adds `ReadsInPeaks` and
#' `FRIP` (insertions in peaks / all insertions on peak chromosomes) to
#' cellColData, as ArchR 1.0.3 does.
#'
#' @param ArchRProj An [EpioneProject-class] with a peak set.
#' @param ceiling Maximum count per peak and cell.
#' @param binarize Store 0/1 instead of counts.
#' @param force Replace an existing PeakMatrix.
#' @return The project with `ReadsInPeaks` and `FRIP` in cellColData.
#' @seealso [ArchR::addPeakMatrix()], [addPeakSet()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"))
#' peaks <- GenomicRanges::resize(anno$geneAnnotation$TSS[1:500], 501, "center")
#' proj <- addPeakMatrix(addPeakSet(proj, unique(peaks)))
#' summary(getCellColData(proj, "FRIP", drop = TRUE))
#' @export
addPeakMatrix <- function(ArchRProj, ceiling = 4, binarize = FALSE,
                          force = TRUE) {
    .check_project(ArchRProj)
    ps <- ArchRProj@peakSet
    if (is.null(ps)) .abort("the project has no peakSet; use addPeakSet().")
    fdf <- data.frame(seqnames = as.character(GenomicRanges::seqnames(ps)),
        idx = as.integer(ps$idx), start = GenomicRanges::start(ps),
        end = GenomicRanges::end(ps), stringsAsFactors = FALSE)
    if (!is.null(ps$name)) fdf$name <- as.character(ps$name)
    params <- data.frame(ceiling = ceiling, binarize = binarize * 1)
    rip <- frip <- stats::setNames(numeric(0), character(0))
    for (a in .input_arrows(ArchRProj)) {
        .check_new_matrix(a$file, "PeakMatrix", force)
        .write_matrix_info(a$file, "PeakMatrix",
            if (binarize) "Sparse.Binary.Matrix" else "Sparse.Integer.Matrix",
            if (binarize) "BinarizedCounts" else "Counts", a$cells, fdf, params)
        r <- .core(epi_arrow_features_from_arrow(a$file, "PeakMatrix", a$cells,
            fdf, ceiling, .check_flag(binarize, "binarize")))
        nm <- paste0(a$sample, "#", a$cells)
        rip[nm] <- r$inPeaks
        frip[nm] <- r$inPeaks / r$total
    }
    cells <- rownames(ArchRProj@cellColData)
    ArchRProj@cellColData$ReadsInPeaks <- unname(rip[cells])
    ArchRProj@cellColData$FRIP <- unname(frip[cells])
    ArchRProj
}
