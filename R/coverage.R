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
        # every chromosome of chromSizes in the header, as ArchR's files
        GenomeInfoDb::seqlevels(gr, pruning.mode = "coarse") <- names(len)
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

# ---- project forms: getGroupBW, addGroupCoverages ------------------------

# Capped insertion counts per tile for groups of project cells, read from
# the Arrow fragment store (ArchR's .createGroupBW counting): both ends of
# each fragment, tile trunc(pos / tileSize), at most `ceiling` per cell and
# tile, summed over each group's cells. `region` restricts the fragments
# read to those overlapping it.
.arrow_group_counts <- function(proj, cellGroups, tileSize, ceiling,
                                region = NULL) {
    cells <- unique(unlist(cellGroups, use.names = FALSE))
    ind <- Matrix::sparseMatrix(
        i = match(unlist(cellGroups, use.names = FALSE), cells),
        j = rep(seq_along(cellGroups), lengths(cellGroups)), x = 1,
        dims = c(length(cells), length(cellGroups)))
    ind@x[] <- 1
    files <- getArrowFiles(proj)
    chrs <- unique(unlist(lapply(files, .h5ls, group = "Fragments")))
    if (!is.null(region)) {
        chrs <- intersect(chrs, as.character(GenomicRanges::seqnames(region)))
    }
    out <- lapply(chrs, function(chr) {
        fr <- lapply(files, getFragmentsFromArrow, chr = chr,
                     cellNames = cells)
        fr <- suppressWarnings(do.call(c, unname(fr)))
        if (!is.null(region)) fr <- IRanges::subsetByOverlaps(fr, region)
        if (!length(fr)) return(NULL)
        j <- match(fr$RG, cells)
        tile <- trunc(c(GenomicRanges::start(fr), GenomicRanges::end(fr)) /
                      tileSize)
        m <- Matrix::sparseMatrix(i = tile + 1, j = c(j, j), x = 1,
            dims = c(max(tile) + 1, length(cells)))
        if (!is.null(ceiling)) m@x <- pmin(m@x, ceiling)
        s <- Matrix::summary(methods::as(m %*% ind, "CsparseMatrix"))
        s <- s[s$x != 0, , drop = FALSE]
        data.frame(chr = rep(chr, nrow(s)), tile = s$i - 1, group = s$j,
                   reads = s$x)
    })
    do.call(rbind, c(list(data.frame(chr = character(), tile = numeric(),
        group = integer(), reads = numeric())), out))
}

# GRangesList like groupCoverages() from .arrow_group_counts().
.arrow_coverage <- function(proj, cellGroups, tileSize, ceiling, normMethod,
                            region = NULL) {
    norm <- .cov_norm_method(normMethod, 0)
    cnt <- .arrow_group_counts(proj, cellGroups, tileSize, ceiling, region)
    n_cells <- lengths(cellGroups)
    norm_sum <- if (norm %in% c("ReadsInTSS", "ReadsInPromoter", "nFrags")) {
        by <- getCellColData(proj, norm, drop = TRUE)
        names(by) <- rownames(proj@cellColData)
        vapply(cellGroups, function(cl) sum(by[cl]), 1)
    } else stats::setNames(rep(NA_real_, length(cellGroups)),
                           names(cellGroups))
    scale <- switch(norm, None = rep(1, length(cellGroups)),
                    nCells = 1 / n_cells, 1e4 / norm_sum)
    out <- lapply(seq_along(cellGroups), function(g) {
        d <- cnt[cnt$group == g, , drop = FALSE]
        gr <- GenomicRanges::GRanges(d$chr, IRanges::IRanges(
            d$tile * tileSize + 1, width = tileSize))
        gr$reads <- d$reads
        gr$score <- d$reads * scale[g]
        gr
    })
    gl <- GenomicRanges::GRangesList(stats::setNames(out, names(cellGroups)))
    S4Vectors::metadata(gl) <- list(nCells = n_cells, normFactor = norm_sum,
        tileSize = tileSize, normMethod = norm)
    gl
}

# Cells of each group of a discrete cellColData column (sorted groups, as
# split()), at most maxCells each drawn with sample() as ArchR does.
.project_cell_groups <- function(proj, groupBy, maxCells = NULL) {
    g <- getCellColData(proj, groupBy, drop = TRUE)
    if (is.numeric(g) && length(unique(g)) > 0.5 * length(g)) {
        .abort("groupBy = \"", groupBy, "\" looks continuous; use a ",
               "discrete cellColData column such as \"Clusters\" or ",
               "\"Sample\".")
    }
    cg <- split(rownames(proj@cellColData), g)
    if (!is.null(maxCells)) {
        cg <- lapply(cg, function(x) if (length(x) > maxCells)
            sample(x, maxCells) else x)
    }
    cg
}

#' Group BigWig files of a project (ArchR's getGroupBW)
#'
#' @description ArchR 1.0.3's `getGroupBW()`: for each group of
#' `cellColData[[groupBy]]` (at most `maxCells` cells, drawn with `sample()`
#' from the caller's random stream as ArchR), Tn5 insertions of the
#' fragments stored in the Arrow files are counted in `tileSize` tiles, each
#' cell contributing at most `ceiling` per tile, and scaled as in
#' [groupCoverages()] (`reads * 10^4 / sum` of the cells' `normMethod`
#' column for "ReadsInTSS", "ReadsInPromoter", "nFrags"; `/ nCells`;
#' "None"). One BigWig per group is written to
#' `outputDirectory/GroupBigWigs/<groupBy>/` (emptied first, as ArchR),
#' named `<group>-TileSize-<tileSize>-normMethod-<normMethod>-epione.bw`.
#' @param ArchRProj An [EpioneProject-class].
#' @param groupBy A discrete cellColData column (default "Sample").
#' @param normMethod One of "ReadsInTSS" (default), "ReadsInPromoter",
#'   "nFrags", "nCells", "None".
#' @param tileSize Tile width in bp (default 100).
#' @param maxCells Maximum cells per group (default 1000; `NULL` for all).
#' @param ceiling Maximum insertions per cell and tile (default 4; `NULL`
#'   for none).
#' @param verbose Report each group.
#' @param threads Unused (kept for ArchR's signature).
#' @return The paths of the BigWig files, named by group.
#' @seealso [groupCoverages()], [exportGroupBW()], ArchR's `getGroupBW()`.
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex4"))
#' \donttest{
#' # loading rtracklayer takes a few seconds
#' if (requireNamespace("rtracklayer", quietly = TRUE))
#'     getGroupBW(ex$proj, groupBy = "Clusters", verbose = FALSE)
#' }
#' @export
getGroupBW <- function(ArchRProj, groupBy = "Sample",
        normMethod = "ReadsInTSS", tileSize = 100, maxCells = 1000,
        ceiling = 4, verbose = TRUE,
        threads = getOption("epione.threads", 2L)) {
    .check_project(ArchRProj)
    .check_number(tileSize, "tileSize", min = 1, whole = TRUE)
    norm <- .cov_norm_method(normMethod, 0)
    if (norm %in% c("ReadsInTSS", "ReadsInPromoter", "nFrags"))
        getCellColData(ArchRProj, norm)
    cg <- .project_cell_groups(ArchRProj, groupBy, maxCells)
    dir <- file.path(ArchRProj@projectMetadata$outputDirectory,
                     "GroupBigWigs", groupBy)
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    unlink(list.files(dir, full.names = TRUE))
    if (verbose) message("Creating BigWigs for ", length(cg), " groups")
    cov <- .arrow_coverage(ArchRProj, cg, tileSize, ceiling, norm)
    cs <- .project_anno(ArchRProj, "chromSizes")
    exportGroupBW(cov, dir, chromSizes = cs)
}

#' Pseudo-bulk replicate coverages of a project (ArchR's addGroupCoverages)
#'
#' @description ArchR 1.0.3's `addGroupCoverages()`: for each group of
#' `groupBy` (in `gtools::mixedsort`-like order) ArchR's pseudo-bulk
#' replicates are drawn (`.identifyGroupsForPseudoBulk`: samples with more
#' than `minCells` cells become replicates, the rest are merged or topped up
#' to `minReplicates`; small groups get `minReplicates` least-overlapping
#' samples of `minCells` cells, which, as in ArchR, calls `set.seed(1)`;
#' at most `maxCells` cells and `maxReplicates` replicates), replicates over
#' `maxFragments` fragments are trimmed, and each replicate's Tn5 insertion
#' coverage (both fragment ends, per base) is written to
#' `outputDirectory/GroupCoverages/<groupBy>/` as
#' `<group>._.<Rep>.insertions.coverage.h5`, in ArchR's layout
#' (`Coverage/<chr>/Lengths`, `Values`; `Coverage/Info/CellNames`). Unlike
#' ArchR no Tn5 k-mer bias is added (it needs a BSgenome); `kmerLength` is
#' stored only.
#'
#' Random draws use R's generator from the caller's state, as ArchR does:
#' `set.seed(1); addGroupCoverages(...)` reproduces ArchR's replicates.
#' @param ArchRProj An [EpioneProject-class].
#' @param groupBy A discrete cellColData column (default "Clusters").
#' @param useLabels Use `sampleLabels` to form replicates (default TRUE).
#' @param sampleLabels cellColData column of sample labels.
#' @param minCells,maxCells,maxFragments,minReplicates,maxReplicates,sampleRatio
#'   ArchR's replicate parameters and defaults.
#' @param excludeChr Chromosomes left out of the coverage files.
#' @param kmerLength Stored in the parameters (no bias is computed).
#' @param threads Unused (kept for ArchR's signature).
#' @param returnGroups Return the replicate cell groups only (ArchR's
#'   `returnGroups`).
#' @param force Recompute existing coverages of `groupBy`.
#' @param verbose Report the groups.
#' @return The project with `projectMetadata$GroupCoverages[[groupBy]]` =
#'   `SimpleList(Params, coverageMetadata)` (Params holds `cellGroups`;
#'   coverageMetadata has `Group`, `Name`, `File`, `nCells`,
#'   `nInsertions`), or with `returnGroups` a `SimpleList` of replicate cell
#'   names per group.
#' @seealso [getGroupBW()], ArchR's `addGroupCoverages()`.
#' @examples
#' ex <- p2gExampleProject(file.path(tempdir(), "p2g-ex5"))
#' set.seed(1)
#' cg <- addGroupCoverages(ex$proj, returnGroups = TRUE, verbose = FALSE)
#' lengths(cg)
#' @export
addGroupCoverages <- function(ArchRProj, groupBy = "Clusters",
        useLabels = TRUE, sampleLabels = "Sample", minCells = 40,
        maxCells = 500, maxFragments = 25 * 10^6, minReplicates = 2,
        maxReplicates = 5, sampleRatio = 0.8, excludeChr = NULL,
        kmerLength = 6, threads = getOption("epione.threads", 2L),
        returnGroups = FALSE, force = FALSE, verbose = TRUE) {
    .check_project(ArchRProj)
    if (minReplicates < 2) .abort("minReplicates must be at least 2.")
    prev <- ArchRProj@projectMetadata$GroupCoverages[[groupBy]]
    if (!is.null(prev) && !force) {
        if (returnGroups) return(prev)
        .abort("group coverages of '", groupBy, "' exist already; use ",
               "force = TRUE to recompute them.")
    }
    cc <- ArchRProj@cellColData
    labels <- getCellColData(ArchRProj, sampleLabels, drop = TRUE)
    groups <- getCellColData(ArchRProj, groupBy, drop = TRUE)
    ok <- !is.na(groups)
    ug <- .mixed_sort(unique(groups[ok]))
    cellGroups <- lapply(ug, function(u) {
        w <- which(ok & groups == u)
        reps <- .pseudobulk_groups(rownames(cc)[w], if (useLabels)
            as.character(labels[w]), useLabels, minCells, maxCells,
            minReplicates, maxReplicates, sampleRatio)
        if (is.null(names(reps))) names(reps) <- paste0("Rep",
                                                        seq_along(reps))
        blank <- which(names(reps) == "")
        names(reps)[blank] <- paste0("Rep", blank)
        reps
    })
    cellGroups <- S4Vectors::SimpleList(stats::setNames(cellGroups, ug))
    params <- S4Vectors::SimpleList(groupBy = groupBy, minCells = minCells,
        maxCells = maxCells, minReplicates = minReplicates,
        sampleRatio = sampleRatio, kmerLength = kmerLength,
        cellGroups = cellGroups)
    cellGroups <- .trim_fragments(cellGroups, cc, maxFragments)
    if (returnGroups) return(cellGroups)
    meta <- .write_coverages(ArchRProj, cellGroups, groupBy, excludeChr,
                             verbose)
    if (is.null(ArchRProj@projectMetadata$GroupCoverages))
        ArchRProj@projectMetadata$GroupCoverages <- S4Vectors::SimpleList()
    ArchRProj@projectMetadata$GroupCoverages[[groupBy]] <-
        S4Vectors::SimpleList(Params = params, coverageMetadata = meta)
    ArchRProj
}

# gtools::mixedsort order (numbers inside names compared as numbers).
.mixed_sort <- function(x) {
    x <- as.character(x)
    num <- suppressWarnings(as.numeric(gsub("\\D", "", x)))
    x[order(gsub("\\d", "", x), num, x)]
}

# Replicates over maxFragments keep their smallest cells up to the limit.
.trim_fragments <- function(cellGroups, cc, maxFragments) {
    for (i in seq_along(cellGroups)) {
        for (j in seq_along(cellGroups[[i]])) {
            cl <- cellGroups[[i]][[j]]
            nf <- cc[cl, "nFrags"]
            if (sum(nf) > maxFragments) {
                o <- order(nf)
                cellGroups[[i]][[j]] <- cl[o][cumsum(nf[o]) < maxFragments]
            }
        }
    }
    cellGroups
}

# ArchR's .identifyGroupsForPseudoBulk (GroupCoverages.R), same R calls in
# the same order so the random draws are ArchR's.
.pseudobulk_groups <- function(cells, labels, useLabels, minCells, maxCells,
                               minReplicates, maxReplicates, sampleRatio) {
    if (is.null(labels)) labels <- rep("A", length(cells))
    per <- table(labels)
    per <- per[sample(seq_along(per), length(per))]
    if (length(cells) >= minCells * minReplicates && useLabels) {
        reps <- .replicates_by_label(cells, labels, per, minCells,
                                     minReplicates)
    } else {
        reps <- .least_overlap(cells, minReplicates, minCells,
                               replace = length(cells) < minCells /
                                   sampleRatio)
    }
    reps <- S4Vectors::SimpleList(reps)
    for (i in seq_along(reps)) {
        if (length(reps[[i]]) > maxCells) reps[[i]] <- sample(reps[[i]],
                                                               maxCells)
    }
    n_unique <- vapply(reps, function(x) length(unique(x)), 1L)
    reps <- reps[order(n_unique, decreasing = TRUE)]
    if (!is.null(maxReplicates) && length(reps) > maxReplicates)
        reps <- reps[seq_len(maxReplicates)]
    reps
}

.replicates_by_label <- function(cells, labels, per, minCells,
                                 minReplicates) {
    n_pass <- sum(per >= minCells)
    n_merge <- floor(sum(per[per < minCells]) / minCells)
    by_label <- split(cells, labels)
    pass <- by_label[names(per)[per > minCells]]
    rest <- by_label[!names(by_label) %in% names(pass)]
    if (n_pass >= minReplicates) {
        if (length(unlist(rest)) >= minCells) pass$Other <- unlist(rest)
    } else if (n_pass + n_merge >= minReplicates) {
        left <- unlist(rest, use.names = FALSE)
        left <- sample(left, length(left))
        chunks <- split(left, ceiling(seq_along(left) /
            ceiling(length(left) / (minReplicates - n_pass))))
        if (n_pass == 0) {
            pass <- chunks
            names(pass) <- paste0("Rep", seq_along(pass))
        } else pass <- append(pass, chunks)
    } else {
        left <- unlist(rest, use.names = FALSE)
        need <- minCells * (minReplicates - n_pass) - length(left)
        take <- sample(unlist(pass, use.names = FALSE), need)
        pass <- lapply(pass, function(x) x[!x %in% take])
        pass[[length(pass) + 1L]] <- c(left, take)
        names(pass) <- paste0("Rep", seq_along(pass))
    }
    pass
}

# ArchR's .leastOverlapCells: of 100 random draws of n samples, the one
# whose samples are furthest apart. ArchR reseeds R's generator with 1 here
# (and leaves it so); kept for parity.
.least_overlap <- function(x, n, nSample, iterations = 100,
                           replace = FALSE) {
    set.seed(1)
    best <- NULL
    best_d <- -Inf
    for (i in seq_len(iterations)) {
        cur <- matrix(0, nrow = length(x), ncol = n)
        for (j in seq_len(n)) {
            cur[sample(seq_along(x), nSample, replace = replace), j] <- 1
        }
        d <- max(stats::dist(t(cur), method = "euclidean"))
        if (i == 1 || d > best_d) {
            best <- cur
            best_d <- d
        }
    }
    lapply(seq_len(n), function(j) x[which(best[, j] == 1)])
}

# Per replicate, base-pair insertion coverage in ArchR's coverage HDF5
# layout (without the k-mer bias).
.write_coverages <- function(proj, cellGroups, groupBy, excludeChr,
                             verbose) {
    dir <- file.path(proj@projectMetadata$outputDirectory, "GroupCoverages",
                     groupBy)
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    files <- getArrowFiles(proj)
    chrs <- unique(unlist(lapply(files, .h5ls, group = "Fragments")))
    chrs <- setdiff(chrs, excludeChr)
    len <- .cov_chrom_sizes(NULL, .project_anno(proj, "chromSizes"))
    rows <- list()
    for (g in names(cellGroups)) {
        for (r in names(cellGroups[[g]])) {
            cl <- cellGroups[[g]][[r]]
            name <- paste0(g, "._.", r)
            if (verbose) message("Coverage of ", name, " (", length(cl),
                                 " cells)")
            f <- file.path(dir, paste0(make.names(name),
                                       ".insertions.coverage.h5"))
            n <- .write_one_coverage(f, files, chrs, cl, len)
            rows[[name]] <- S4Vectors::DataFrame(Group = g, Name = name,
                File = f, nCells = length(cl), nInsertions = 2 * n)
        }
    }
    do.call(rbind, unname(rows))
}

.write_one_coverage <- function(file, files, chrs, cells, len) {
    unlink(file)
    .core(epi_arrow_h5_create(file))
    .arrow_h5write(file, "Class", "ArrowCoverage")
    .core(epi_arrow_h5_group(file, "Metadata", FALSE))
    .arrow_h5write(file, "Coverage/Info/CellNames", as.character(cells))
    times <- table(cells)
    n_frag <- 0
    for (chr in chrs) {
        fr <- suppressWarnings(do.call(c, unname(lapply(files,
            getFragmentsFromArrow, chr = chr, cellNames = unique(cells)))))
        # a cell drawn twice (small groups) counts twice, as in ArchR
        w <- as.integer(times[fr$RG])
        pos <- rep(c(GenomicRanges::start(fr), GenomicRanges::end(fr)),
                   c(w, w))
        n_frag <- n_frag + sum(w)
        width <- if (chr %in% names(len)) len[[chr]] else max(c(pos, 1))
        cov <- IRanges::coverage(IRanges::IRanges(pos, width = 1L),
                                 width = width)
        .arrow_h5write(file, paste0("Coverage/", chr, "/Lengths"),
                       as.integer(S4Vectors::runLength(cov)),
                       dims = c(1, S4Vectors::nrun(cov)))
        .arrow_h5write(file, paste0("Coverage/", chr, "/Values"),
                       as.integer(S4Vectors::runValue(cov)),
                       dims = c(1, S4Vectors::nrun(cov)))
    }
    n_frag
}
