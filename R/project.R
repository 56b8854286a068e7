# EpioneProject: the ArchRProject counterpart. A light S4 container that
# points at Arrow files and holds per-cell data and results; matrices stay on
# disk in the Arrow files until asked for.

setClassUnion("GRangesOrNULL", c("GRanges", "NULL"))

#' The epione project object (ArchR's ArchRProject)
#'
#' Other capabilities add their results to the slots below with the
#' `@<-` operator or the accessors; keep the conventions so every method can
#' find them.
#'
#' @slot projectMetadata `SimpleList`: `outputDirectory`, `sampleNames`,
#'   free-form results of other steps (e.g. `Peak2GeneLinks`).
#' @slot cellColData `DataFrame`, one row per cell, rownames `Sample#barcode`
#'   (QC columns from the Arrow files, `Sample`, and any added column such
#'   as `Clusters`).
#' @slot sampleColData `DataFrame`, one row per sample, column `ArrowFiles`.
#' @slot reducedDims `SimpleList` of reductions by name (e.g.
#'   `IterativeLSI`); each a list whose `matSVD` is a cells x dims matrix
#'   with cell rownames (ArchR's shape), plus any parameters.
#' @slot embeddings `SimpleList` by name (e.g. `UMAP`); each a list whose
#'   `df` is a cells x 2 data.frame, plus parameters.
#' @slot peakSet `GRanges` of peaks or `NULL` ([addPeakSet()]).
#' @slot peakAnnotation `SimpleList` of peak annotations by name (e.g.
#'   motif matches: a list with `matches` and parameters).
#' @slot geneAnnotation,genomeAnnotation ArchR-style annotation lists.
#' @seealso [ArchRProject()]
#' @exportClass EpioneProject
setClass("EpioneProject", representation(
    projectMetadata = "SimpleList",
    cellColData = "DataFrame",
    sampleColData = "DataFrame",
    reducedDims = "SimpleList",
    embeddings = "SimpleList",
    peakSet = "GRangesOrNULL",
    peakAnnotation = "SimpleList",
    geneAnnotation = "SimpleList",
    genomeAnnotation = "SimpleList"),
    prototype(cellColData = S4Vectors::DataFrame(Sample = character(0)),
              sampleColData = S4Vectors::DataFrame()))

setValidity("EpioneProject", function(object) {
    cc <- object@cellColData
    if (!"Sample" %in% names(cc)) return("cellColData needs a 'Sample' column")
    if (!all(cc$Sample %in% rownames(object@sampleColData))) {
        return("every cellColData Sample must be a row of sampleColData")
    }
    TRUE
})

#' Create a project from Arrow files (ArchR's ArchRProject)
#'
#' @param ArrowFiles Paths of Arrow files from [createArrowFiles()] (or
#'   ArchR).
#' @param outputDirectory Folder for the project (created).
#' @param copyArrows Copy the Arrow files into
#'   `outputDirectory/ArrowFiles` (ArchR's default) so the project owns them.
#' @param geneAnnotation,genomeAnnotation Optional annotations to keep.
#' @return An [EpioneProject-class] object.
#' @seealso [ArchR::ArchRProject()], [getCellColData()],
#'   [getMatrixFromProject()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
#'     force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"))
#' proj
#' head(getCellColData(proj))
#' @export
ArchRProject <- function(ArrowFiles, outputDirectory = "ArchROutput",
                         copyArrows = TRUE, geneAnnotation = NULL,
                         genomeAnnotation = NULL) {
    ArrowFiles <- vapply(ArrowFiles, .check_arrow, "", USE.NAMES = FALSE)
    .check_string(outputDirectory, "outputDirectory")
    dir.create(outputDirectory, recursive = TRUE, showWarnings = FALSE)
    samples <- vapply(ArrowFiles, function(f) .h5read(f, "Metadata/Sample"), "")
    if (anyDuplicated(samples)) {
        .abort("two Arrow files share a sample name (",
               samples[duplicated(samples)][1], "); recreate one with ",
               "another sampleNames.")
    }
    if (.check_flag(copyArrows, "copyArrows")) {
        dest <- file.path(outputDirectory, "ArrowFiles")
        dir.create(dest, showWarnings = FALSE)
        to <- file.path(dest, basename(ArrowFiles))
        todo <- normalizePath(ArrowFiles) != normalizePath(to, mustWork = FALSE)
        ok <- file.copy(ArrowFiles[todo], to[todo], overwrite = TRUE)
        if (!all(ok)) .abort("could not copy Arrow files to '", dest, "'.",
                             kind = "file")
        ArrowFiles <- to
    }
    ArrowFiles <- normalizePath(ArrowFiles)
    cc <- do.call(rbind, lapply(ArrowFiles, function(f) {
        md <- .arrow_metadata(f)
        md[, sort(names(md)), drop = FALSE]
    }))
    scd <- S4Vectors::DataFrame(ArrowFiles = ArrowFiles, row.names = samples)
    methods::new("EpioneProject",
        projectMetadata = S4Vectors::SimpleList(
            outputDirectory = normalizePath(outputDirectory),
            sampleNames = samples),
        cellColData = cc, sampleColData = scd,
        reducedDims = S4Vectors::SimpleList(),
        embeddings = S4Vectors::SimpleList(), peakSet = NULL,
        peakAnnotation = S4Vectors::SimpleList(),
        geneAnnotation = .as_simple_list(geneAnnotation),
        genomeAnnotation = .as_simple_list(genomeAnnotation))
}

.as_simple_list <- function(x) {
    if (is.null(x)) return(S4Vectors::SimpleList())
    S4Vectors::SimpleList(as.list(x))
}

setMethod("show", "EpioneProject", function(object) {
    cat("class: EpioneProject\n")
    cat("outputDirectory:", object@projectMetadata$outputDirectory, "\n")
    cat("samples(", nrow(object@sampleColData), "): ",
        paste(rownames(object@sampleColData), collapse = " "), "\n", sep = "")
    cat("numberOfCells:", nrow(object@cellColData), "\n")
    cat("cellColData names(", ncol(object@cellColData), "): ",
        paste(names(object@cellColData), collapse = " "), "\n", sep = "")
    cat("availableMatrices:", paste(getAvailableMatrices(object),
                                    collapse = " "), "\n")
    cat("reducedDims:", paste(names(object@reducedDims), collapse = " "), "\n")
    cat("embeddings:", paste(names(object@embeddings), collapse = " "), "\n")
    cat("peakSet:", if (is.null(object@peakSet)) "none" else
        paste(length(object@peakSet), "peaks"), "\n")
})

#' Accessors of an EpioneProject (ArchR names)
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param select Optional column names of cellColData.
#' @param drop Drop to a vector when one column is selected.
#' @return `getCellColData()`: a `DataFrame` (or vector); `getArrowFiles()`:
#'   named character paths; `getAvailableMatrices()`: matrix names present in
#'   every Arrow file; `getPeakSet()`: GRanges or NULL.
#' @seealso [ArchR::getCellColData()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
#'     force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"))
#' getArrowFiles(proj)
#' getAvailableMatrices(proj)
#' summary(getCellColData(proj, "TSSEnrichment", drop = TRUE))
#' @name project-accessors
NULL

#' @rdname project-accessors
#' @export
getCellColData <- function(ArchRProj, select = NULL, drop = FALSE) {
    .check_project(ArchRProj)
    cc <- ArchRProj@cellColData
    if (is.null(select)) return(cc)
    miss <- setdiff(select, names(cc))
    if (length(miss)) {
        .abort("cellColData has no column(s) ", paste(miss, collapse = ", "),
               "; available: ", paste(names(cc), collapse = ", "), ".")
    }
    cc[, select, drop = drop]
}

#' @rdname project-accessors
#' @export
getArrowFiles <- function(ArchRProj) {
    .check_project(ArchRProj)
    stats::setNames(ArchRProj@sampleColData$ArrowFiles,
                    rownames(ArchRProj@sampleColData))
}

#' @rdname project-accessors
#' @export
getAvailableMatrices <- function(ArchRProj) {
    files <- if (methods::is(ArchRProj, "EpioneProject"))
        getArrowFiles(ArchRProj) else ArchRProj
    Reduce(intersect, lapply(files, .arrow_matrices))
}

#' @rdname project-accessors
#' @export
getPeakSet <- function(ArchRProj) {
    .check_project(ArchRProj)
    ArchRProj@peakSet
}

.check_project <- function(x) {
    if (!methods::is(x, "EpioneProject")) {
        .abort("'ArchRProj' must be an EpioneProject; create one with ",
               "ArchRProject().")
    }
    invisible(x)
}

#' Read a matrix of all cells of a project (ArchR's getMatrixFromProject)
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param useMatrix Matrix name, see [getAvailableMatrices()].
#' @param useSeqnames,excludeChr,binarize As [getMatrixFromArrow()].
#' @param verbose Print progress.
#' @return A `RangedSummarizedExperiment` (features x project cells, in
#'   cellColData order) with one `dgCMatrix` assay named `useMatrix` and
#'   colData = cellColData. For ArchR's `Sparse.Assays.Matrix` (e.g. the
#'   `MotifMatrix` of [addDeviationsMatrix()]): a `SummarizedExperiment`
#'   with one assay per stored assay (`deviations`, `z`) and rowData.
#' @seealso [ArchR::getMatrixFromProject()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
#'     force = TRUE)
#' proj <- ArchRProject(arrow, file.path(tempdir(), "proj"))
#' getMatrixFromProject(proj, "GeneScoreMatrix")
#' @export
getMatrixFromProject <- function(ArchRProj, useMatrix = "GeneScoreMatrix",
                                 useSeqnames = NULL, excludeChr = NULL,
                                 binarize = FALSE, verbose = TRUE) {
    .check_project(ArchRProj)
    cc <- ArchRProj@cellColData
    ses <- lapply(getArrowFiles(ArchRProj), function(f) {
        se <- getMatrixFromArrow(f, useMatrix, useSeqnames = useSeqnames,
                                 excludeChr = excludeChr, binarize = binarize,
                                 verbose = verbose)
        se[, colnames(se) %in% rownames(cc)]
    })
    # Every assay (e.g. deviations and z of a MotifMatrix), cells in
    # cellColData order; rowData alone when the matrix has no ranges.
    nms <- SummarizedExperiment::assayNames(ses[[1]])
    asy <- lapply(nms, function(a) do.call(cbind, lapply(unname(ses),
        SummarizedExperiment::assay, a))[, rownames(cc), drop = FALSE])
    names(asy) <- nms
    if (!methods::is(ses[[1]], "RangedSummarizedExperiment")) {
        return(SummarizedExperiment::SummarizedExperiment(assays = asy,
            rowData = SummarizedExperiment::rowData(ses[[1]]), colData = cc))
    }
    SummarizedExperiment::SummarizedExperiment(assays = asy,
        rowRanges = SummarizedExperiment::rowRanges(ses[[1]]), colData = cc)
}

# A SingleCellExperiment of one matrix (GeneScoreMatrix when present, else
# the first available), with reducedDims and embeddings as reducedDims.
.project_to_sce <- function(from) {
    avail <- getAvailableMatrices(from)
    use <- if ("GeneScoreMatrix" %in% avail) "GeneScoreMatrix" else avail[1]
    if (is.na(use)) .abort("the project's Arrow files hold no matrix.")
    se <- getMatrixFromProject(from, use, verbose = FALSE)
    sce <- methods::as(se, "SingleCellExperiment")
    rd <- list()
    for (nm in names(from@reducedDims)) {
        x <- from@reducedDims[[nm]]
        if (is.list(x) && !is.null(x$matSVD)) x <- x$matSVD
        rd[[nm]] <- as.matrix(x)
    }
    for (nm in names(from@embeddings)) {
        x <- from@embeddings[[nm]]
        rd[[nm]] <- as.matrix(if (is.list(x) && !is.null(x$df)) x$df else x)
    }
    cells <- colnames(sce)
    rd <- lapply(rd, function(m) m[cells, , drop = FALSE])
    if (length(rd)) SingleCellExperiment::reducedDims(sce) <- rd
    sce
}

#' @import methods
#' @importClassesFrom SingleCellExperiment SingleCellExperiment
#' @importClassesFrom S4Vectors DataFrame SimpleList
#' @importClassesFrom GenomicRanges GRanges
NULL

setAs("EpioneProject", "SingleCellExperiment", .project_to_sce)

#' Peak annotations of a project (ArchR's getPeakAnnotation, getMatches,
#' getPositions)
#'
#' A peak annotation (e.g. from `addMotifAnnotations()`) is kept by name in
#' the project's `peakAnnotation` slot, as ArchR keeps it: a list with `Name`,
#' the paths `Matches` (an RDS of a `RangedSummarizedExperiment` peaks x
#' annotations with a logical sparse assay `matches`) and `Positions` (an
#' RDS of a `GRangesList` of hits per annotation, or `NULL`), plus any
#' parameters. The RDS files live in `outputDirectory/Annotations`.
#'
#' @param ArchRProj An [EpioneProject-class].
#' @param name Annotation name (default: the first one).
#' @param annoName Optional annotation (column) names to keep; matched as
#'   regular expressions like ArchR does.
#' @return `getPeakAnnotation()`: the annotation's list; `getMatches()`: a
#'   `RangedSummarizedExperiment` of matches over the project's peak set;
#'   `getPositions()`: a `GRangesList`.
#' @seealso [ArchR::getMatches()], [ArchR::getPositions()]
#' @examples
#' proj <- methods::new("EpioneProject")
#' names(proj@peakAnnotation)
#' @name peak-annotations
NULL

#' @rdname peak-annotations
#' @export
getPeakAnnotation <- function(ArchRProj, name = NULL) {
    .check_project(ArchRProj)
    annos <- ArchRProj@peakAnnotation
    if (!length(annos)) {
        .abort("the project has no peak annotation; add one with ",
               "addMotifAnnotations().", kind = "input")
    }
    if (is.null(name)) name <- names(annos)[1]
    if (!name %in% names(annos)) {
        .abort("no peak annotation named '", name, "'; available: ",
               paste(names(annos), collapse = ", "), ".", kind = "input")
    }
    annos[[name]]
}

#' @rdname peak-annotations
#' @export
getMatches <- function(ArchRProj, name = NULL, annoName = NULL) {
    anno <- getPeakAnnotation(ArchRProj, name)
    matches <- .read_annotation_part(anno$Matches, "Matches")
    if (is.null(annoName)) return(matches)
    matches[, .grep_names(annoName, colnames(matches)), drop = FALSE]
}

#' @rdname peak-annotations
#' @export
getPositions <- function(ArchRProj, name = NULL, annoName = NULL) {
    anno <- getPeakAnnotation(ArchRProj, name)
    pos <- .read_annotation_part(anno$Positions, "Positions")
    if (is.null(annoName)) return(pos)
    pos[.grep_names(annoName, names(pos))]
}

.read_annotation_part <- function(x, what) {
    if (is.character(x)) {
        if (!file.exists(x)) {
            .abort("the annotation's ", what, " file '", x, "' is missing; ",
                   "add the annotation again.", kind = "file")
        }
        return(readRDS(x))
    }
    if (is.null(x)) {
        .abort("this peak annotation stores no ", what, ".", kind = "input")
    }
    x
}

.grep_names <- function(patterns, nms) {
    hit <- unique(unlist(lapply(patterns, grep, x = nms)))
    if (!length(hit)) {
        .abort("no annotation matches ", paste(patterns, collapse = ", "),
               ".", kind = "input")
    }
    sort(hit)
}

# Store a peak annotation the way getPeakAnnotation() expects: RDS files in
# outputDirectory/Annotations, paths and parameters in the slot.
.add_peak_annotation <- function(ArchRProj, name, matches, positions = NULL,
                                 extra = list(), force = FALSE) {
    if (name %in% names(ArchRProj@peakAnnotation) && !force) {
        .abort("the project already has a peak annotation '", name, "'; ",
               "use force = TRUE to replace it.", kind = "input")
    }
    dir <- file.path(ArchRProj@projectMetadata$outputDirectory, "Annotations")
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    mfile <- file.path(dir, paste0(name, "-Matches-In-Peaks.rds"))
    saveRDS(matches, mfile)
    pfile <- NULL
    if (!is.null(positions)) {
        pfile <- file.path(dir, paste0(name, "-Positions-In-Peaks.rds"))
        saveRDS(positions, pfile)
    }
    ArchRProj@peakAnnotation[[name]] <- c(list(Name = name, Matches = mfile,
        Positions = pfile), extra)
    ArchRProj
}

#' Per-cell columns of a project with `$` (as on an ArchRProject)
#'
#' @param x An [EpioneProject-class].
#' @param name A column of `cellColData`.
#' @param value A vector with one value per cell (in cellColData order).
#' @return `$`: the column; `$<-`: the project with the column set.
#' @examples
#' proj <- methods::new("EpioneProject",
#'     cellColData = S4Vectors::DataFrame(Sample = c("A", "A"),
#'                                        row.names = c("A#1", "A#2")),
#'     sampleColData = S4Vectors::DataFrame(ArrowFiles = "A.arrow",
#'                                          row.names = "A"))
#' proj$Clusters <- c("C1", "C2")
#' proj$Clusters
#' @name project-dollar
#' @aliases $,EpioneProject-method $<-,EpioneProject-method
NULL

#' @rdname project-dollar
#' @export
setMethod("$", "EpioneProject", function(x, name) {
    x@cellColData[[name]]
})

#' @rdname project-dollar
#' @export
setReplaceMethod("$", "EpioneProject", function(x, name, value) {
    if (!is.null(value) && length(value) != nrow(x@cellColData)) {
        .abort("'", name, "' needs one value per cell (",
               nrow(x@cellColData), "), not ", length(value), ".")
    }
    x@cellColData[[name]] <- value
    x
})
