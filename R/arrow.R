# Fragments -> ArchR-compatible Arrow files (HDF5): cell QC, the fragment
# store, TileMatrix and GeneScoreMatrix, and readers. The heavy lifting is in
# inst/include/epione/arrow.hpp; this file prepares ArchR's annotation
# derived inputs with GenomicRanges and finishes what ArchR does in R
# (TSS formula, rounding) so results match ArchR 1.0.3 to the bit.

#' Create Arrow files from fragment files (ArchR's createArrowFiles)
#'
#' Reads 10x-style fragment files (bgzip + tabix) with HTSlib one chromosome
#' at a time, computes ArchR's per-cell QC, keeps cells with
#' `nFrags >= minFrags` and `TSSEnrichment >= minTSS`, and writes one HDF5
#' Arrow file per sample in ArchR 1.0.3's layout (readable by ArchR):
#' `Metadata`, `Fragments/<chr>`, `TileMatrix`, `GeneScoreMatrix`.
#' Each file is written under a temporary name and renamed when complete.
#'
#' QC (ArchR 1.0.3, R/CreateArrow.R): barcodes with `minFrags`..`maxFrags`
#' fragment lines are candidates; fragments of 10..2000 bp are kept;
#' `nFrags`, `nMonoFrags`/`nDiFrags`/`nMultiFrags` (`trunc(w / nucLength) + 1`
#' capped at 3), `NucleosomeRatio = (nDi + nMulti) / nMono`;
#' `TSSEnrichment = round(2 * (nWindow / 101) / max(nFlank / 100, 0.2), 3)`
#' with insertions (both fragment ends) in 101-bp TSS windows and the two
#' 100-bp flanks 1901..2000 bp away; `ReadsInTSS`, `ReadsInPromoter`,
#' `PromoterRatio = ReadsInPromoter / (2 nFrags)`, same for the blacklist.
#'
#' @param inputFiles Paths of bgzip-compressed, tabix-indexed fragment files.
#' @param sampleNames One unique name per input file.
#' @param outputNames Output paths without the `.arrow` extension.
#' @param geneAnnotation From [createGeneAnnotation()] (genes, TSS).
#' @param genomeAnnotation From [createGenomeAnnotation()] (chromSizes,
#'   blacklist). Only its chromosomes are imported.
#' @param minTSS,minFrags,maxFrags Cell filters (ArchR defaults).
#' @param addTileMatrix,addGeneScoreMatrix Add the matrices.
#' @param TileMatParams List: `tileSize` (500), `binarize` (TRUE).
#' @param GeneScoreMatParams List overriding ArchR's gene-score defaults
#'   (`geneModel`, `extendUpstream`, `extendDownstream`, `geneUpstream`,
#'   `geneDownstream`, `useGeneBoundaries`, `tileSize`, `ceiling`,
#'   `geneScaleFactor`, `scaleTo`).
#' @param excludeChr Chromosomes left out of the matrices.
#' @param nucLength Nucleosome length for the fragment classes.
#' @param promoterRegion Upstream and downstream bp around gene starts.
#' @param TSSParams List: `window` (101), `flank` (2000), `norm` (100),
#'   `minNorm` (0.2).
#' @param minFragSize,maxFragSize Fragment widths kept.
#' @param nChunk ArchR's read chunks per chromosome; only decides the order
#'   of tied cells and fragments, as in ArchR.
#' @param validBarcodes Optional barcodes to restrict to (a character
#'   vector, or a list named by sample).
#' @param QCDir Folder for the per-sample QC table
#'   (`<sample>-Pre-Filter-Metadata.rds`, all candidate barcodes).
#' @param threads Threads for BGZF decompression.
#' @param verbose Print progress.
#' @param force Overwrite existing Arrow files.
#' @param ... ArchR's spellings `addTileMat`, `addGeneScoreMat` are accepted.
#' @return The paths of the Arrow files (character).
#' @seealso [ArchR::createArrowFiles()], [getMatrixFromArrow()],
#'   [ArchRProject()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     QCDir = tempdir(), threads = 1, verbose = FALSE, force = TRUE)
#' getMatrixFromArrow(arrow, "GeneScoreMatrix", verbose = FALSE)
#' @export
createArrowFiles <- function(inputFiles, sampleNames,
        outputNames = sampleNames, geneAnnotation, genomeAnnotation,
        minTSS = 4, minFrags = 1000, maxFrags = 1e5, addTileMatrix = TRUE,
        addGeneScoreMatrix = TRUE, TileMatParams = list(tileSize = 500),
        GeneScoreMatParams = list(), excludeChr = c("chrM", "chrY"),
        nucLength = 147, promoterRegion = c(2000, 100), TSSParams = list(),
        minFragSize = 10, maxFragSize = 2000, nChunk = 5,
        validBarcodes = NULL, QCDir = "QualityControl",
        threads = getOption("epione.threads", 2L), verbose = TRUE,
        force = FALSE, ...) {
    dots <- list(...)
    if (!is.null(dots$addTileMat)) addTileMatrix <- dots$addTileMat
    if (!is.null(dots$addGeneScoreMat)) {
        addGeneScoreMatrix <- dots$addGeneScoreMat
    }
    p <- .arrow_params(inputFiles, sampleNames, outputNames, minTSS,
        minFrags, maxFrags, addTileMatrix, addGeneScoreMatrix, TileMatParams,
        GeneScoreMatParams, excludeChr, nucLength, promoterRegion, TSSParams,
        minFragSize, maxFragSize, nChunk, QCDir, threads, verbose, force)
    ga <- .check_gene_annotation(geneAnnotation)
    gn <- .check_genome_annotation(genomeAnnotation)
    out <- character(length(inputFiles))
    for (k in seq_along(inputFiles)) {
        vb <- if (is.list(validBarcodes)) validBarcodes[[sampleNames[k]]]
              else validBarcodes
        out[k] <- .create_arrow(p$inputFiles[k], sampleNames[k],
                                outputNames[k], ga, gn, vb, p)
    }
    out
}

.arrow_params <- function(inputFiles, sampleNames, outputNames, minTSS,
        minFrags, maxFrags, addTileMatrix, addGeneScoreMatrix, TileMatParams,
        GeneScoreMatParams, excludeChr, nucLength, promoterRegion, TSSParams,
        minFragSize, maxFragSize, nChunk, QCDir, threads, verbose, force) {
    if (!is.character(inputFiles) || !length(inputFiles)) {
        .abort("'inputFiles' must be paths of fragment files.")
    }
    inputFiles <- vapply(inputFiles, .check_file, "", name = "inputFiles")
    n <- length(inputFiles)
    if (!is.character(sampleNames) || length(sampleNames) != n) {
        .abort("'sampleNames' must give one name per input file.")
    }
    if (anyDuplicated(sampleNames)) {
        .abort("'sampleNames' must be unique; duplicated: ",
               paste(unique(sampleNames[duplicated(sampleNames)]),
                     collapse = ", "), ". Give each sample its own name.")
    }
    if (length(outputNames) != n || anyDuplicated(outputNames)) {
        .abort("'outputNames' must give one unique name per input file.")
    }
    .check_number(minTSS, "minTSS", 0)
    .check_number(minFrags, "minFrags", 0)
    .check_number(maxFrags, "maxFrags", minFrags)
    tile <- utils::modifyList(list(tileSize = 500, binarize = TRUE),
                              as.list(TileMatParams))
    .check_number(tile$tileSize, "TileMatParams$tileSize", 1, whole = TRUE)
    gene <- utils::modifyList(.gene_score_defaults(),
                              as.list(GeneScoreMatParams))
    tss <- utils::modifyList(list(window = 101, flank = 2000, norm = 100,
                                  minNorm = 0.2), as.list(TSSParams))
    if (length(promoterRegion) != 2L || any(promoterRegion < 0)) {
        .abort("'promoterRegion' must be two non-negative numbers ",
               "(upstream, downstream).")
    }
    list(inputFiles = unname(inputFiles), minTSS = minTSS,
         minFrags = minFrags, maxFrags = maxFrags,
         addTile = .check_flag(addTileMatrix, "addTileMatrix"),
         addGene = .check_flag(addGeneScoreMatrix, "addGeneScoreMatrix"),
         tile = tile, gene = gene, tss = tss,
         excludeChr = as.character(excludeChr), nucLength = nucLength,
         promoterRegion = promoterRegion, minFragSize = minFragSize,
         maxFragSize = maxFragSize, nChunk = nChunk, QCDir = QCDir,
         threads = .check_threads(threads),
         verbose = .check_flag(verbose, "verbose"),
         force = .check_flag(force, "force"))
}

# ArchR 1.0.3 .addGeneScoreMat defaults (R/MatrixGeneScores.R).
.gene_score_defaults <- function() {
    list(geneModel = "exp(-abs(x)/5000) + exp(-1)",
         extendUpstream = c(1000, 100000), extendDownstream = c(1000, 100000),
         geneUpstream = 5000, geneDownstream = 0, useGeneBoundaries = TRUE,
         tileSize = 500, ceiling = 4, geneScaleFactor = 5, scaleTo = 10000)
}

.create_arrow <- function(input, sample, output, ga, gn, validBC, p) {
    arrow <- paste0(output, ".arrow")
    if (file.exists(arrow) && !p$force) {
        .abort("Arrow file '", arrow, "' already exists; use force = TRUE ",
               "to overwrite it or choose another outputNames.",
               kind = "file")
    }
    dir.create(dirname(arrow), recursive = TRUE, showWarnings = FALSE)
    if (p$verbose) message("[", sample, "] reading ", input)
    chroms <- .arrow_chroms(input, gn$chromSizes, p$nChunk)
    qc <- .arrow_qc(input, chroms, ga, gn, validBC, p, sample)
    tmp <- paste0(arrow, ".tmp-", Sys.getpid())
    on.exit(unlink(tmp), add = TRUE)
    .arrow_init(tmp, sample, qc$barcode)
    if (p$verbose) message("[", sample, "] writing ", nrow(qc), " cells")
    model <- if (p$addGene) .gene_model(ga$genes, gn, p) else NULL
    res <- .core(epi_arrow_write(input, tmp, chroms$table, chroms$chunks,
        !(chroms$table$name %in% p$excludeChr), qc$barcode, p$minFragSize,
        p$maxFragSize, p$addTile, p$tile$tileSize, isTRUE(p$tile$binarize),
        p$addGene, if (p$addGene) model$genes else data.frame(),
        p$gene$tileSize, p$gene$ceiling, if (p$addGene) model$table else 0,
        if (p$addGene) model$half else 0, .bed_df(gn$blacklist), p$threads,
        p$verbose))
    if (p$addTile) .write_tile_info(tmp, chroms$table, qc$barcode, p)
    if (p$addGene) .write_gene_scores(tmp, res$geneScores, model, qc$barcode, p)
    .write_metadata(tmp, qc, gn)
    .arrow_h5write(tmp, "Metadata/Completed", "Finished")
    if (file.exists(arrow)) unlink(arrow)
    if (!file.rename(tmp, arrow)) {
        .abort("could not rename '", tmp, "' to '", arrow, "'.", kind = "file")
    }
    arrow
}

# Chromosomes of the genome annotation, and ArchR's read chunks
# (tile(chromSizes, nChunk), named "<chr>#chunk<k>"), ranked by name in C
# order: ArchR lists them alphabetically (h5ls), which orders tied cells.
.arrow_chroms <- function(input, chromSizes, nChunk) {
    seqs <- .core(epi_arrow_seqnames(input))
    if (!length(seqs)) {
        .abort("fragment file '", input, "' is empty (no indexed fragments).",
               kind = "input")
    }
    chr <- as.character(GenomicRanges::seqnames(chromSizes))
    dropped <- setdiff(seqs, chr)
    if (length(dropped)) {
        .warn("fragments on ", length(dropped), " chromosome(s) absent from ",
              "genomeAnnotation$chromSizes were dropped: ",
              paste(utils::head(dropped, 10), collapse = ", "),
              if (length(dropped) > 10) ", ...")
    }
    if (!any(chr %in% seqs)) {
        .abort("no chromosome of genomeAnnotation (", paste(utils::head(chr, 5),
               collapse = ", "), ", ...) is in the fragment file (",
               paste(utils::head(seqs, 5), collapse = ", "), "); check the ",
               "genome and the 'chr' prefix.", kind = "input")
    }
    tiles <- unlist(GenomicRanges::tile(chromSizes, nChunk))
    name <- paste0(GenomicRanges::seqnames(tiles), "#chunk", seq_along(tiles))
    rank <- match(name, sort(name, method = "radix"))
    tchr <- as.character(GenomicRanges::seqnames(tiles))
    chunks <- lapply(chr, function(c) list(
        start = as.numeric(GenomicRanges::start(tiles)[tchr == c]),
        rank = as.integer(rank[tchr == c])))
    list(table = data.frame(name = chr,
                            length = as.numeric(GenomicRanges::end(chromSizes)),
                            stringsAsFactors = FALSE),
         chunks = chunks)
}

.bed_df <- function(gr) {
    data.frame(chr = as.character(GenomicRanges::seqnames(gr)),
               start = as.numeric(GenomicRanges::start(gr)),
               end = as.numeric(GenomicRanges::end(gr)),
               stringsAsFactors = FALSE)
}

# TSS windows/flanks (.fastTSSEnrichment), promoters and blacklist.
.qc_features <- function(ga, gn, p) {
    tss <- GenomicRanges::resize(ga$TSS, 1L, fix = "start")
    GenomicRanges::strand(tss) <- "*"
    tss <- unique(tss)
    t <- p$tss
    win <- GenomicRanges::resize(tss, t$window, "center")
    flank <- c(GenomicRanges::GRanges(GenomicRanges::seqnames(tss),
        IRanges::IRanges(GenomicRanges::end(tss) + t$flank - t$norm + 1,
                         GenomicRanges::end(tss) + t$flank)),
        GenomicRanges::GRanges(GenomicRanges::seqnames(tss),
        IRanges::IRanges(GenomicRanges::start(tss) - t$flank,
                         GenomicRanges::start(tss) - t$flank + t$norm - 1)))
    prom <- .extend_gr(GenomicRanges::resize(ga$genes, 1L, "start"),
                       p$promoterRegion[1], p$promoterRegion[2])
    list(window = .bed_df(win), flank = .bed_df(flank),
         promoter = .bed_df(prom), blacklist = .bed_df(gn$blacklist))
}

# Pass 1 and ArchR's filters; returns the kept cells in Arrow order.
.arrow_qc <- function(input, chroms, ga, gn, validBC, p, sample) {
    qc <- .core(epi_arrow_scan(input, chroms$table, chroms$chunks,
        .qc_features(ga, gn, p), p$minFragSize, p$maxFragSize, p$nucLength,
        p$threads, p$verbose))
    if (!nrow(qc)) {
        .abort("fragment file '", input, "' has no fragments on the genome's ",
               "chromosomes; check that it is not empty.", kind = "input")
    }
    if (!is.null(validBC)) qc <- qc[qc$barcode %in% validBC, , drop = FALSE]
    # ArchR orders barcodes by decreasing line count, ties by first
    # appearance over its alphabetically listed chunks (radix = stable).
    qc <- qc[order(-qc$nLines, qc$firstChunk, qc$barcode, method = "radix"), ]
    qc <- qc[qc$nLines >= p$minFrags & qc$nLines <= p$maxFrags, , drop = FALSE]
    if (nrow(qc) < 3L) {
        .abort("2 or fewer barcodes have between minFrags = ", p$minFrags,
               " and maxFrags = ", p$maxFrags, " fragments in '", input,
               "'; lower 'minFrags' or check the genome annotation.",
               kind = "input")
    }
    qc <- .qc_metrics(qc, p$tss, length(gn$blacklist) > 0)
    qc$Keep <- 1 * (qc$nFrags >= p$minFrags & qc$TSSEnrichment >= p$minTSS)
    .save_qc(qc, sample, p$QCDir)
    if (sum(qc$Keep) < 3) {
        .abort("2 or fewer cells pass minFrags = ", p$minFrags,
               " and minTSS = ", p$minTSS, " (median TSS enrichment ",
               round(stats::median(qc$TSSEnrichment), 2), ", median nFrags ",
               stats::median(qc$nFrags), "); lower the filters.",
               kind = "input")
    }
    qc[qc$Keep == 1, , drop = FALSE]
}

# ArchR's per-cell formulas, evaluated in R exactly as ArchR does.
.qc_metrics <- function(qc, t, hasBlacklist) {
    cWn <- qc$nWindow / t$window
    cFn <- qc$nFlank / t$norm
    qc$TSSEnrichment <- round(2 * cWn / pmax(cFn, t$minNorm), 3)
    qc$ReadsInTSS <- cWn * t$window
    qc$NucleosomeRatio <- (qc$nDiFrags + qc$nMultiFrags) / qc$nMonoFrags
    qc$PromoterRatio <- qc$ReadsInPromoter / (qc$nFrags * 2)
    qc$BlacklistRatio <- qc$ReadsInBlacklist / (qc$nFrags * 2)
    if (!hasBlacklist) qc$ReadsInBlacklist <- qc$BlacklistRatio <- NULL
    qc
}

.save_qc <- function(qc, sample, QCDir) {
    if (is.null(QCDir)) return(invisible())
    dir <- file.path(QCDir, sample)
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    df <- S4Vectors::DataFrame(cellNames = paste0(sample, "#", qc$barcode),
        qc[, setdiff(names(qc), c("barcode", "firstChunk", "nWindow",
                                 "nFlank", "nLines")), drop = FALSE])
    saveRDS(df, file.path(dir, paste0(sample, "-Pre-Filter-Metadata.rds")))
}

# ---- writing ----------------------------------------------------------------

# HDF5 dims are the reverse of R's: a vector written by rhdf5's h5write is
# {n}; ArchR's h5createDataset(dims = c(n, 1)) vectors are {1, n}.
.arrow_h5write <- function(file, name, x, dims = length(x), strsize = 0L,
                           level = 4L) {
    .core(epi_arrow_h5_write(file, name, x, as.numeric(dims),
                             as.integer(strsize), as.integer(level)))
}

.arrow_init <- function(file, sample, cells) {
    .core(epi_arrow_h5_create(file))
    .arrow_h5write(file, "Class", "Arrow")
    .arrow_h5write(file, "ArchRVersion", "1.0.3")
    .arrow_h5write(file, "epioneVersion",
                   as.character(utils::packageVersion("epione")))
    .arrow_h5write(file, "Metadata/Sample", sample)
    .arrow_h5write(file, "Metadata/Date", as.character(Sys.Date()))
    .arrow_h5write(file, "Metadata/CellNames", cells)
    .core(epi_arrow_h5_group(file, "Fragments", FALSE))
}

.write_metadata <- function(file, qc, gn) {
    cols <- c("nFrags", "nMonoFrags", "nDiFrags", "nMultiFrags",
              "NucleosomeRatio", "TSSEnrichment", "ReadsInTSS",
              "ReadsInPromoter", "PromoterRatio", "ReadsInBlacklist",
              "BlacklistRatio")
    .arrow_h5write(file, "Metadata/PassQC", as.numeric(qc$Keep))
    for (nm in intersect(cols, names(qc))) {
        .arrow_h5write(file, paste0("Metadata/", nm), as.numeric(qc[[nm]]))
    }
}

# Info group of a sparse matrix (ArchR .initializeMat).
.write_matrix_info <- function(file, group, class, units, cells, featureDF,
                               params) {
    .core(epi_arrow_h5_group(file, group, TRUE))
    .arrow_h5write(file, paste0(group, "/Info/Class"), class)
    .arrow_h5write(file, paste0(group, "/Info/Units"), units)
    .arrow_h5write(file, paste0(group, "/Info/CellNames"), cells)
    if (!is.null(featureDF)) {
        .core(epi_arrow_h5_write_df(file, paste0(group, "/Info/FeatureDF"),
                                    as.list(featureDF)))
    }
    .core(epi_arrow_h5_write_df(file, paste0(group, "/Info/Params"),
                                as.list(params)))
    .arrow_h5write(file, paste0(group, "/Info/Date"), as.character(Sys.Date()))
}

.write_tile_info <- function(file, chroms, cells, p) {
    keep <- !(chroms$name %in% p$excludeChr)
    .write_tile_info2(file, chroms$name[keep], chroms$length[keep], cells,
                      p$tile$tileSize, isTRUE(p$tile$binarize), FALSE)
}

# Info of TileMatrix; FeatureDF/Params come from C++ (the tile table can
# have millions of rows).
.write_tile_info2 <- function(file, chr, len, cells, tileSize, binarize,
                              replace) {
    .core(epi_arrow_h5_group(file, "TileMatrix", replace))
    ids <- c("Class", "Units", "CellNames", "Date")
    vals <- list(if (binarize) "Sparse.Binary.Matrix"
                 else "Sparse.Integer.Matrix",
                 if (binarize) "BinarizedCounts" else "Counts", cells,
                 as.character(Sys.Date()))
    for (k in seq_along(ids)) {
        .arrow_h5write(file, paste0("TileMatrix/Info/", ids[k]), vals[[k]])
    }
    .core(epi_arrow_tile_info(file, chr, len, tileSize))
}

# ArchR's gene model (R/MatrixGeneScores.R, useGeneBoundaries): genes sorted
# as ArchR sorts them, their 5-kb-extended regions, tile windows bounded by
# the neighbouring genes, and weights 1 + m (scale - 1) / (max m - min m)
# with m = 1 / width. The distance model is tabulated by R's own evaluation
# of `geneModel`, so any ArchR model string works.
.gene_model <- function(genes, gn, p) {
    g <- p$gene
    chr0 <- as.character(GenomicRanges::seqnames(genes))
    gr <- genes[!(chr0 %in% p$excludeChr)]
    gr <- gr[!is.na(gr$symbol)]
    if (!length(gr)) .abort("geneAnnotation has no genes with a symbol.")
    gr$geneStart <- GenomicRanges::start(GenomicRanges::resize(gr, 1L, "start"))
    gr$geneEnd <- GenomicRanges::start(GenomicRanges::resize(gr, 1L, "end"))
    gr <- .extend_gr(gr, g$geneUpstream, g$geneDownstream)
    m <- 1 / GenomicRanges::width(gr)
    gr$geneWeight <- 1 + m * (g$geneScaleFactor - 1) / (max(m) - min(m))
    gr <- GenomeInfoDb::sortSeqlevels(gr)
    gr <- sort(gr, ignore.strand = TRUE)
    chr <- as.character(GenomicRanges::seqnames(gr))
    win <- lapply(split(seq_along(gr), factor(chr, unique(chr))),
                  function(ix) .gene_windows(gr[ix], g))
    gr$idx <- unlist(lapply(split(chr, factor(chr, unique(chr))), seq_along),
                     use.names = FALSE)
    half <- max(c(g$extendUpstream, g$extendDownstream)) + g$tileSize + 1
    table <- eval(parse(text = g$geneModel), list(x = as.numeric(-half:half)))
    genes <- data.frame(chr = chr,
        regionStart = as.numeric(GenomicRanges::start(gr)),
        regionEnd = as.numeric(GenomicRanges::end(gr)),
        tss = as.numeric(GenomicRanges::start(
            GenomicRanges::resize(gr, 1L, "start"))),
        winStart = unlist(lapply(win, `[[`, "s"), use.names = FALSE),
        winEnd = unlist(lapply(win, `[[`, "e"), use.names = FALSE),
        minus = as.integer(GenomicRanges::strand(gr) == "-"),
        weight = gr$geneWeight, stringsAsFactors = FALSE)
    list(genes = genes, table = as.numeric(table), half = half, gr = gr)
}

.gene_windows <- function(r, g) {
    pmn <- GenomicRanges::start(r)
    pmx <- GenomicRanges::end(r)
    n <- length(r)
    ts <- g$tileSize
    if (!isTRUE(g$useGeneBoundaries)) {
        w <- .extend_gr(r, max(g$extendUpstream), max(g$extendDownstream))
        return(list(s = as.numeric(GenomicRanges::start(w)),
                    e = as.numeric(GenomicRanges::end(w))))
    }
    plus <- as.logical(GenomicRanges::strand(r) != "-")
    up <- g$extendUpstream
    dn <- g$extendDownstream
    pRev <- ifelse(plus, max(up), max(dn))
    pRevMin <- ifelse(plus, min(up), min(dn))
    pFwd <- ifelse(plus, max(dn), max(up))
    pFwdMin <- ifelse(plus, min(dn), min(up))
    s <- pmax(c(1, pmx[-n] + ts), pmn - pRev)
    s <- pmin(pmn - pRevMin, s)
    e <- pmin(c(pmn[-1] - ts, pmx[n] + pFwd[n]), pmx + pFwd)
    e <- pmax(pmx + pFwdMin, e)
    list(s = as.numeric(pmax(1, s)), e = as.numeric(pmin(e, 2147483647)))
}

# Normalise the raw scores as ArchR does: x * scaleTo / cell total over all
# chromosomes, rounded to 3 decimals, zeros dropped.
.write_gene_scores <- function(file, raw, model, cells, p) {
    g <- p$gene
    mats <- lapply(raw, function(m) methods::new("dgCMatrix", i = m$i,
        p = m$p, x = m$x, Dim = m$dim))
    tot <- Reduce(`+`, lapply(mats, Matrix::colSums))
    gr <- model$gr
    fdf <- data.frame(seqnames = as.character(GenomicRanges::seqnames(gr)),
        start = as.integer(gr$geneStart), end = as.integer(gr$geneEnd),
        strand = as.integer(GenomicRanges::strand(gr)),
        name = as.character(gr$symbol), idx = as.integer(gr$idx),
        stringsAsFactors = FALSE)
    # ArchR stores extend* under gene* too (its own quirk, kept).
    params <- data.frame(extendUpstream = g$extendUpstream,
        extendDownstream = g$extendDownstream,
        geneUpstream = g$extendUpstream, geneDownstream = g$extendDownstream,
        scaleTo = g$scaleTo, tileSize = g$tileSize, ceiling = g$ceiling,
        geneModel = g$geneModel, stringsAsFactors = FALSE)
    .write_matrix_info(file, "GeneScoreMatrix", "Sparse.Double.Matrix",
                       "NormCounts", cells, fdf, params)
    for (chr in names(mats)) {
        m <- mats[[chr]]
        m@x <- as.numeric(g$scaleTo * m@x / rep.int(tot, diff(m@p)))
        m@x <- round(m@x, 3)
        m <- Matrix::drop0(m)
        .core(epi_arrow_write_sparse(file, paste0("GeneScoreMatrix/", chr), m))
    }
}

# ---- reading ----------------------------------------------------------------

.h5read <- function(file, name) .core(epi_arrow_h5_read(file, name))
.h5ls <- function(file, group) .core(epi_arrow_h5_ls(file, group))

.check_arrow <- function(file) {
    file <- .check_file(file, "ArrowFile")
    cls <- tryCatch(.h5read(file, "Class"), epione_error = function(e) NULL)
    if (!identical(cls, "Arrow")) {
        .abort("'", file, "' is not an Arrow file (no /Class = \"Arrow\"); ",
               "create it with createArrowFiles().", kind = "format")
    }
    file
}

# Matrix groups are those with an Info/Class (ArchR .availableArrays).
.arrow_matrices <- function(file) {
    top <- .h5ls(file, "/")
    top[vapply(top, function(g) "Class" %in% .h5ls(file, paste0(g, "/Info")),
               logical(1))]
}

# Per-cell metadata stored in an Arrow file: a DataFrame with one row per
# cell (rownames Sample#barcode), the QC columns in alphabetical order and
# Sample (ArchR .getMetadata).
.arrow_metadata <- function(ArrowFile) {
    sample <- .h5read(ArrowFile, "Metadata/Sample")
    cells <- .h5read(ArrowFile, "Metadata/CellNames")
    nms <- setdiff(.h5ls(ArrowFile, "Metadata"), "CellNames")
    cols <- list()
    for (nm in nms) {
        v <- .h5read(ArrowFile, paste0("Metadata/", nm))
        if (length(v) == length(cells)) cols[[nm]] <- v
    }
    md <- S4Vectors::DataFrame(cols[order(names(cols))], check.names = FALSE)
    if (!ncol(md)) md <- S4Vectors::DataFrame(row.names = seq_along(cells))
    md$Sample <- rep(sample, length(cells))
    rownames(md) <- paste0(sample, "#", cells)
    md
}

# One chromosome block, layout v2 (indices/indptr/data) or v1 (1-based i,
# run-length j, x absent for binary matrices).
.read_block <- function(file, group, nrow, ncol) {
    parts <- .h5ls(file, group)
    if ("indptr" %in% parts) {
        i <- .h5read(file, paste0(group, "/indices"))
        p <- .h5read(file, paste0(group, "/indptr"))
        x <- as.numeric(.h5read(file, paste0(group, "/data")))
    } else if ("jLengths" %in% parts) {
        i <- .h5read(file, paste0(group, "/i")) - 1L
        jl <- .h5read(file, paste0(group, "/jLengths"))
        jv <- .h5read(file, paste0(group, "/jValues"))
        x <- if ("x" %in% parts) as.numeric(.h5read(file, paste0(group, "/x")))
             else rep(1, length(i))
        counts <- tabulate(rep.int(jv, jl), nbins = ncol)
        p <- c(0L, cumsum(counts))
    } else {
        return(Matrix::sparseMatrix(i = integer(), j = integer(),
                                    x = numeric(), dims = c(nrow, ncol)))
    }
    methods::new("dgCMatrix", i = as.integer(i), p = as.integer(p), x = x,
                 Dim = c(as.integer(nrow), as.integer(ncol)))
}

#' Read a matrix from an Arrow file (ArchR's getMatrixFromArrow)
#'
#' Reads ArchR Arrow files of both sparse layouts (v1, ArchR < 1.0.2, and
#' v2) and those written by [createArrowFiles()]. Rows are returned as ArchR
#' returns them: chromosomes in alphabetical order, `idx` order within.
#'
#' @param ArrowFile Path of an Arrow file.
#' @param useMatrix Matrix group, e.g. `"TileMatrix"`, `"GeneScoreMatrix"`.
#' @param useSeqnames,excludeChr Optional chromosomes to keep / drop.
#' @param cellNames Optional cells (`Sample#barcode`) to keep.
#' @param binarize Set non-zero values to 1.
#' @param verbose Print progress.
#' @return A `RangedSummarizedExperiment`, features x cells, with one
#'   `dgCMatrix` assay named `useMatrix`, colData = the Arrow's per-cell
#'   metadata and rowRanges built from FeatureDF (tiles `[start, start +
#'   tileSize - 1]`; gene scores span TSS..gene end with strand) carrying the
#'   FeatureDF columns (`idx`, `name`, ...) as mcols. For ArchR's
#'   `Sparse.Assays.Matrix` (e.g. `MotifMatrix`): a `SummarizedExperiment`
#'   with one assay per stored "seqnames" (`deviations`, `z`), rows named
#'   by FeatureDF `name`, rowData `idx`, `name`.
#' @seealso [ArchR::getMatrixFromArrow()], [getMatrixFromProject()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
#'     force = TRUE)
#' se <- getMatrixFromArrow(arrow, "GeneScoreMatrix", verbose = FALSE)
#' se
#' @export
getMatrixFromArrow <- function(ArrowFile, useMatrix = "GeneScoreMatrix",
                               useSeqnames = NULL, excludeChr = NULL,
                               cellNames = NULL, binarize = FALSE,
                               verbose = TRUE) {
    ArrowFile <- .check_arrow(ArrowFile)
    .check_string(useMatrix, "useMatrix")
    avail <- .arrow_matrices(ArrowFile)
    if (!useMatrix %in% avail) {
        .abort("matrix '", useMatrix, "' is not in '", ArrowFile,
               "'; available: ", paste(avail, collapse = ", "), ".")
    }
    fdf <- as.data.frame(
        .h5read(ArrowFile, paste0(useMatrix, "/Info/FeatureDF")),
        stringsAsFactors = FALSE)
    cells <- .h5read(ArrowFile, paste0(useMatrix, "/Info/CellNames"))
    seqs <- levels(factor(fdf$seqnames))   # ArchR: split() = sorted order
    if (!is.null(useSeqnames)) seqs <- seqs[seqs %in% useSeqnames]
    if (!is.null(excludeChr)) seqs <- seqs[!seqs %in% excludeChr]
    if (!length(seqs)) .abort("no seqnames left after useSeqnames/excludeChr.")
    rows <- list()
    blocks <- list()
    for (chr in seqs) {
        f <- fdf[fdf$seqnames == chr, , drop = FALSE]
        f <- f[order(f$idx), , drop = FALSE]
        m <- .read_block(ArrowFile, paste0(useMatrix, "/", chr),
                         max(f$idx, 0L), length(cells))
        blocks[[chr]] <- m[f$idx, , drop = FALSE]
        rows[[chr]] <- f
    }
    md <- .arrow_metadata(ArrowFile)
    cls <- .h5read(ArrowFile, paste0(useMatrix, "/Info/Class"))
    if (identical(cls, "Sparse.Assays.Matrix")) {
        return(.assays_matrix_se(blocks, rows, md, cells, cellNames, binarize))
    }
    mat <- do.call(rbind, unname(blocks))
    if (binarize) mat@x[] <- 1
    colnames(mat) <- paste0(md$Sample[1], "#", cells)
    if (!is.null(cellNames)) {
        if (!all(cellNames %in% colnames(mat))) {
            .abort("'cellNames' must all be cells of the Arrow file.")
        }
        mat <- mat[, cellNames, drop = FALSE]
    }
    fdf <- do.call(rbind, unname(rows))
    rr <- .feature_ranges(fdf, ArrowFile, useMatrix)
    SummarizedExperiment::SummarizedExperiment(
        assays = stats::setNames(list(mat), useMatrix),
        rowRanges = rr, colData = md[colnames(mat), , drop = FALSE])
}

# ArchR's Sparse.Assays.Matrix (e.g. MotifMatrix): each "seqnames" block
# (deviations, z) is one assay, rows named by FeatureDF$name; rowData is
# FeatureDF without seqnames (ArchR getMatrixFromArrow).
.assays_matrix_se <- function(blocks, rows, md, cells, cellNames, binarize) {
    cn <- paste0(md$Sample[1], "#", cells)
    keep <- if (is.null(cellNames)) cn else cellNames
    if (!all(keep %in% cn)) {
        .abort("'cellNames' must all be cells of the Arrow file.")
    }
    assays <- lapply(names(blocks), function(s) {
        m <- blocks[[s]]
        if (binarize) m@x[] <- 1
        dimnames(m) <- list(rows[[s]]$name, cn)
        m[, keep, drop = FALSE]
    })
    names(assays) <- names(blocks)
    rd <- rows[[1L]][, setdiff(names(rows[[1L]]), "seqnames"), drop = FALSE]
    rd <- S4Vectors::DataFrame(rd, row.names = rd$name)
    SummarizedExperiment::SummarizedExperiment(assays = assays,
        rowData = rd, colData = md[keep, , drop = FALSE])
}

# rowRanges from FeatureDF; GRanges reserves start/end/strand, so the
# stored columns other than those travel as mcols.
.feature_ranges <- function(fdf, file, useMatrix) {
    seq <- fdf$seqnames
    if (!is.null(fdf$end)) {
        s <- pmin(fdf$start, fdf$end)
        e <- pmax(fdf$start, fdf$end)
    } else {
        ts <- tryCatch(
            .h5read(file, paste0(useMatrix, "/Info/Params"))$tileSize[1],
            epione_error = function(e) NULL)
        if (is.null(ts)) ts <- if (nrow(fdf) > 1) diff(fdf$start[1:2]) else 1
        s <- fdf$start
        e <- fdf$start + ts - 1
    }
    strand <- if (is.null(fdf$strand)) "*" else
        c("+", "-", "*")[pmin(pmax(as.integer(fdf$strand), 1L), 3L)]
    gr <- GenomicRanges::GRanges(seq, IRanges::IRanges(s, e), strand = strand)
    extra <- fdf[, setdiff(names(fdf), c("seqnames", "start", "end", "strand")),
                 drop = FALSE]
    S4Vectors::mcols(gr) <- S4Vectors::DataFrame(extra)
    gr
}

#' Fragments stored in an Arrow file (ArchR's getFragmentsFromArrow)
#'
#' @param ArrowFile Path of an Arrow file.
#' @param chr Optional chromosomes to read.
#' @param cellNames Optional cells (`Sample#barcode`) to keep.
#' @return A `GRanges` of fragments (1-based start, end = start + width - 1)
#'   with column `RG` = cell name, in stored order.
#' @seealso [ArchR::getFragmentsFromArrow()]
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' anno <- exampleAnnotation()
#' arrow <- createArrowFiles(frags, "PBSmall",
#'     outputNames = file.path(tempdir(), "PBSmall"),
#'     geneAnnotation = anno$geneAnnotation,
#'     genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
#'     addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
#'     threads = 1, verbose = FALSE, force = TRUE)
#' getFragmentsFromArrow(arrow, chr = "chr11")
#' @export
getFragmentsFromArrow <- function(ArrowFile, chr = NULL, cellNames = NULL) {
    ArrowFile <- .check_arrow(ArrowFile)
    sample <- .h5read(ArrowFile, "Metadata/Sample")
    chrs <- .h5ls(ArrowFile, "Fragments")
    if (!is.null(chr)) chrs <- intersect(chrs, chr)
    out <- lapply(chrs, function(c) {
        g <- paste0("Fragments/", c)
        r <- .h5read(ArrowFile, paste0(g, "/Ranges"))
        n <- length(r) / 2
        rg <- rep.int(.h5read(ArrowFile, paste0(g, "/RGValues")),
                      .h5read(ArrowFile, paste0(g, "/RGLengths")))
        GenomicRanges::GRanges(rep(c, n), IRanges::IRanges(r[seq_len(n)],
            width = r[n + seq_len(n)]), RG = paste0(sample, "#", rg))
    })
    gr <- if (length(out)) suppressWarnings(do.call(c, unname(out))) else
        GenomicRanges::GRanges(RG = character())
    if (!is.null(cellNames)) gr <- gr[gr$RG %in% cellNames]
    gr
}
