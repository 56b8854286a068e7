# createArrowFiles / getMatrixFromArrow against ArchR 1.0.3's saved outputs
# (shared/data/ref/archr/pbsmall, written with minFrags = 100, minTSS = 4),
# plus checks written plainly here and bad-input errors.

frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
ref <- shared_path("data", "ref", "archr", "pbsmall")

make_arrow <- function(dir, threads = 1L, ...) {
    anno <- exampleAnnotation()
    createArrowFiles(frags, "PBSmall", file.path(dir, "PBSmall"),
        geneAnnotation = anno$geneAnnotation,
        genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
        QCDir = file.path(dir, "QC"), threads = threads, verbose = FALSE,
        force = TRUE, ...)
}

arrow_dir <- file.path(tempdir(), "arrow-test")
dir.create(arrow_dir, showWarnings = FALSE)
arrow <- make_arrow(arrow_dir)

read_tsv <- function(...) {
    utils::read.delim(file.path(ref, ...), stringsAsFactors = FALSE)
}

test_that("cells, their order and QC metrics equal ArchR's", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    want <- read_tsv("qc_cells_arrow_metadata.tsv.gz")
    md <- epione:::.arrow_metadata(arrow)
    expect_identical(rownames(md), want$cellNames)
    for (nm in c("nFrags", "nMonoFrags", "nDiFrags", "nMultiFrags",
                 "ReadsInPromoter", "ReadsInBlacklist", "PassQC")) {
        expect_identical(md[[nm]], as.numeric(want[[nm]]), label = nm)
    }
    expect_equal(md$TSSEnrichment, want$TSSEnrichment, tolerance = 1e-6)
    for (nm in c("ReadsInTSS", "NucleosomeRatio", "PromoterRatio",
                 "BlacklistRatio")) {
        expect_equal(md[[nm]], want[[nm]], tolerance = 1e-12, label = nm)
    }
})

test_that("pre-filter QC of all 150 barcodes equals ArchR's", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    want <- read_tsv("qc_prefilter_all_barcodes.tsv.gz")
    got <- readRDS(file.path(arrow_dir, "QC", "PBSmall",
                             "PBSmall-Pre-Filter-Metadata.rds"))
    expect_identical(as.character(got$cellNames), want$cellNames)
    expect_identical(got$nFrags, as.numeric(want$nFrags))
    expect_equal(got$TSSEnrichment, want$TSSEnrichment, tolerance = 1e-6)
    expect_identical(got$Keep, as.numeric(want$Keep))
})

test_that("nFrags equals a plain count of the fragment file", {
    tab <- utils::read.delim(frags, header = FALSE)
    w <- tab$V3 - tab$V2
    keep <- w >= 10 & w <= 2000
    n <- table(tab$V4[keep])
    md <- epione:::.arrow_metadata(arrow)
    bc <- sub("^PBSmall#", "", rownames(md))
    expect_identical(md$nFrags, as.numeric(n[bc]))
    # Arrow cell order = decreasing number of fragment lines
    lines <- table(tab$V4)[bc]
    expect_false(is.unsorted(-as.numeric(lines)))
})

test_that("stored fragments equal ArchR's, in ArchR's order", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    want <- read_tsv("arrow_fragments.tsv.gz")
    got <- getFragmentsFromArrow(arrow)
    expect_identical(as.character(GenomicRanges::seqnames(got)), want$chr)
    expect_identical(GenomicRanges::start(got), want$start)
    expect_identical(GenomicRanges::end(got), want$end)
    expect_identical(got$RG, want$cell)
})

test_that("TileMatrix equals ArchR's exactly", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    se <- getMatrixFromArrow(arrow, "TileMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(ref, "tile_matrix_500bp.mtx.gz"))
    cols <- read_tsv("tile_matrix_500bp_cols.tsv.gz")$cellNames
    expect_identical(colnames(se), cols)
    got <- SummarizedExperiment::assay(se)
    expect_s4_class(got, "dgCMatrix")
    expect_identical(dim(got), dim(want))
    expect_identical(Matrix::summary(got)$i, Matrix::summary(want)$i)
    expect_identical(as.numeric(Matrix::summary(got)$j),
                     as.numeric(Matrix::summary(want)$j))
    nz <- read_tsv("tile_matrix_500bp_rows_nonzero.tsv.gz")
    rr <- SummarizedExperiment::rowRanges(se)[nz$row]
    expect_identical(as.character(GenomicRanges::seqnames(rr)), nz$seqnames)
    expect_identical(rr$idx, nz$idx)
    expect_identical(GenomicRanges::start(rr), as.integer(nz$start))
})

test_that("GeneScoreMatrix equals ArchR's to 1e-6", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    se <- getMatrixFromArrow(arrow, "GeneScoreMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(ref, "gene_score_matrix.mtx.gz"))
    rows <- read_tsv("gene_score_matrix_rows.tsv.gz")
    expect_identical(SummarizedExperiment::rowRanges(se)$name, rows$name)
    expect_identical(SummarizedExperiment::rowRanges(se)$idx, rows$idx)
    got <- SummarizedExperiment::assay(se)
    expect_lt(max(abs(got - methods::as(want, "CsparseMatrix"))), 1e-6)
    stored <- read_tsv("GeneScoreMatrix_stored_rowSummaries.tsv.gz")
    rs <- unlist(lapply(c("chr5", "chr11"), function(c) epione:::.h5read(
        arrow, paste0("GeneScoreMatrix/", c, "/rowSums"))))
    expect_equal(rs, stored$rowSums, tolerance = 1e-12)
})

test_that("ArchR's own Arrow files (layout v1 and v2) are read", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    v2 <- file.path(tempdir(), "archr_PBSmall.arrow")
    writeBin(memDecompress(readBin(file.path(ref, "PBSmall.arrow.gz"), "raw",
                                   30e6), "gzip"), v2)
    gs <- SummarizedExperiment::assay(getMatrixFromArrow(v2, verbose = FALSE))
    want <- Matrix::readMM(file.path(ref, "gene_score_matrix.mtx.gz"))
    expect_identical(max(abs(gs - methods::as(want, "CsparseMatrix"))), 0)
    v1 <- shared_path("data", "fragments", "pbsmall", "PBSmall.arrow")
    aref <- shared_path("data", "fragments", "pbsmall", "archr_reference")
    tm <- getMatrixFromArrow(v1, "TileMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(aref, "PBSmall_TileMatrix.mtx.gz"))
    feat <- utils::read.delim(file.path(aref, "PBSmall_TileMatrix_features.tsv.gz"))
    key <- paste(GenomicRanges::seqnames(tm), SummarizedExperiment::rowRanges(tm)$idx)
    got <- SummarizedExperiment::assay(tm)[match(paste(feat$seqnames, feat$idx), key), ]
    expect_identical(sum(got != methods::as(want, "CsparseMatrix")), 0L)
    gs1 <- getMatrixFromArrow(v1, "GeneScoreMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(aref, "PBSmall_GeneScoreMatrix.mtx.gz"))
    feat <- utils::read.delim(file.path(aref,
                                        "PBSmall_GeneScoreMatrix_features.tsv.gz"))
    key <- paste(GenomicRanges::seqnames(gs1), SummarizedExperiment::rowRanges(gs1)$idx)
    got <- SummarizedExperiment::assay(gs1)[match(paste(feat$seqnames, feat$idx), key), ]
    expect_lt(max(abs(got - methods::as(want, "CsparseMatrix"))), 1e-6)
})

test_that("the Arrow layout matches ArchR's (groups, names, types, dims)", {
    skip_if_not(dir.exists(ref), "shared ArchR reference absent")
    skip_if_not_installed("rhdf5")
    v2 <- file.path(tempdir(), "archr_PBSmall.arrow")
    skip_if_not(file.exists(v2))
    lay <- function(f) {
        x <- rhdf5::h5ls(f, all = TRUE)
        x <- x[x$name != "epioneVersion", ]
        x <- x[order(x$group, x$name), c("group", "name", "otype", "dclass",
                                         "dtype", "dim")]
        rownames(x) <- NULL
        x
    }
    expect_identical(lay(arrow), lay(v2))
    fd <- rhdf5::h5read(arrow, "GeneScoreMatrix/Info/FeatureDF")
    expect_identical(names(fd), c("seqnames", "start", "end", "strand",
                                  "name", "idx"))
    expect_identical(as.vector(rhdf5::h5read(arrow, "Class")), "Arrow")
    rhdf5::h5closeAll()
})

test_that("results do not depend on the number of threads", {
    d2 <- file.path(tempdir(), "arrow-test-2")
    dir.create(d2, showWarnings = FALSE)
    a2 <- make_arrow(d2, threads = 2L)
    for (m in c("TileMatrix", "GeneScoreMatrix")) {
        expect_identical(
            SummarizedExperiment::assay(getMatrixFromArrow(arrow, m, verbose = FALSE)),
            SummarizedExperiment::assay(getMatrixFromArrow(a2, m, verbose = FALSE)))
    }
    expect_identical(epione:::.arrow_metadata(arrow)$TSSEnrichment,
                     epione:::.arrow_metadata(a2)$TSSEnrichment)
})

test_that("concurrent readers of one Arrow file all get the same matrix", {
    skip_if_not_installed("rhdf5")
    want <- SummarizedExperiment::assay(
        getMatrixFromArrow(arrow, "TileMatrix", verbose = FALSE))
    # A reader holds the file open (as an ArchR session would) while this
    # process and two forked ones read it at the same time.
    fid <- rhdf5::H5Fopen(arrow, flags = "H5F_ACC_RDONLY")
    on.exit(rhdf5::H5Fclose(fid))
    got <- parallel::mclapply(1:3, function(i) {
        SummarizedExperiment::assay(
            getMatrixFromArrow(arrow, "TileMatrix", verbose = FALSE))
    }, mc.cores = 3)
    for (g in got) expect_identical(g, want)
    expect_identical(SummarizedExperiment::assay(
        getMatrixFromArrow(arrow, "TileMatrix", verbose = FALSE)), want)
})

# ---- bad input --------------------------------------------------------------

bad_dir <- file.path(tempdir(), "arrow-bad")
dir.create(bad_dir, showWarnings = FALSE)
run_bad <- function(f, ...) {
    anno <- exampleAnnotation()
    createArrowFiles(f, "S", file.path(bad_dir, "S"), anno$geneAnnotation,
        anno$genomeAnnotation, minFrags = 100, QCDir = NULL, verbose = FALSE,
        force = TRUE, threads = 1, ...)
}
write_frags <- function(lines, name) {
    txt <- file.path(bad_dir, paste0(name, ".tsv"))
    writeLines(lines, txt)
    txt
}

test_that("a missing tabix index is a format error naming tabix", {
    f <- file.path(bad_dir, "noindex.tsv.gz")
    file.copy(frags, f, overwrite = TRUE)
    expect_error(run_bad(f), class = "epione_error_format", regexp = "tabix")
    expect_false(file.exists(file.path(bad_dir, "S.arrow")))
})

test_that("a truncated bgzip file is a format error", {
    f <- file.path(bad_dir, "trunc.tsv.gz")
    b <- readBin(frags, "raw", file.size(frags))
    writeBin(b[seq_len(length(b) %/% 2)], f)
    file.copy(paste0(frags, ".tbi"), paste0(f, ".tbi"), overwrite = TRUE)
    expect_error(run_bad(f), class = "epione_error_format",
                 regexp = "truncated")
})

test_that("plain gzip input is a format error that says bgzip", {
    f <- file.path(bad_dir, "plain.tsv.gz")
    con <- gzfile(f, "w")
    writeLines("chr5\t100\t200\tA\t1", con)
    close(con)
    file.create(paste0(f, ".tbi"))
    expect_error(run_bad(f), class = "epione_error_format", regexp = "bgzip")
})

test_that("unsorted, reversed and negative fragments are refused", {
    f <- write_frags(c("chr5\t200\t300\tA\t1", "chr5\t100\t250\tA\t1"), "u")
    out <- file.path(bad_dir, "u.tsv.gz")
    expect_error(indexFragments(f, out), class = "epione_error_format",
                 regexp = "sort")
    expect_silent(indexFragments(f, out, sort = TRUE))
    expect_identical(tabixSeqnames(out), "chr5")
    f <- write_frags("chr5\t300\t200\tA\t1", "r")
    expect_error(indexFragments(f, out), class = "epione_error_format",
                 regexp = "start >= end")
    f <- write_frags("chr5\t-3\t200\tA\t1", "n")
    expect_error(indexFragments(f, out), class = "epione_error_format",
                 regexp = "negative")
})

test_that("an empty file is an input error", {
    out <- indexFragments(write_frags(character(), "e"),
                          file.path(bad_dir, "e.tsv.gz"))
    expect_error(run_bad(out), class = "epione_error_input", regexp = "empty")
})

test_that("chromosomes absent from the genome are dropped with a warning", {
    x <- c(readLines(frags), "chrZ\t100\t200\tB.1\t1")
    out <- indexFragments(write_frags(x, "z"), file.path(bad_dir, "z.tsv.gz"))
    expect_warning(a <- run_bad(out, addTileMatrix = FALSE,
                                addGeneScoreMatrix = FALSE),
                   class = "epione_warning_input", regexp = "chrZ")
    expect_identical(nrow(epione:::.arrow_metadata(a)), 127L)
})

test_that("duplicate sample names and existing outputs are refused", {
    anno <- exampleAnnotation()
    expect_error(createArrowFiles(c(frags, frags), c("S", "S"),
        geneAnnotation = anno$geneAnnotation,
        genomeAnnotation = anno$genomeAnnotation),
        class = "epione_error_input", regexp = "unique")
    expect_error(createArrowFiles(frags, "PBSmall",
        file.path(arrow_dir, "PBSmall"), anno$geneAnnotation,
        anno$genomeAnnotation, minFrags = 100, QCDir = NULL, verbose = FALSE),
        class = "epione_error_file", regexp = "force = TRUE")
    expect_error(getMatrixFromArrow(frags), class = "epione_error_format",
                 regexp = "createArrowFiles")
    expect_error(getMatrixFromArrow(arrow, "PeakMatrix"),
                 class = "epione_error_input", regexp = "available")
})

test_that("no temporary or partial Arrow file is left behind", {
    left <- list.files(c(arrow_dir, bad_dir), pattern = "\\.tmp-")
    expect_identical(left, character())
})

# ---- matrices added to existing Arrow files (ArchR's shipped project) -------

test_that("addTileMatrix / addPeakMatrix equal ArchR's shipped PBSmall project", {
    aref <- shared_path("data", "fragments", "pbsmall", "archr_reference")
    skip_if_not(dir.exists(aref), "shared ArchR reference absent")
    anno <- exampleAnnotation()
    d <- file.path(tempdir(), "arrow-add")
    dir.create(d, showWarnings = FALSE)
    a <- createArrowFiles(frags, "PBSmall", file.path(d, "PBSmall"),
        anno$geneAnnotation, anno$genomeAnnotation, minFrags = 100,
        addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
        threads = 1, verbose = FALSE, force = TRUE)
    proj <- ArchRProject(a, file.path(d, "proj"),
                         geneAnnotation = anno$geneAnnotation,
                         genomeAnnotation = anno$genomeAnnotation)
    cells <- paste0("PBSmall#", readLines(file.path(aref, "PBSmall_cells.txt")))
    proj <- addTileMatrix(proj, tileSize = 10000)
    tm <- getMatrixFromProject(proj, "TileMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(aref, "PBSmall_TileMatrix.mtx.gz"))
    feat <- utils::read.delim(file.path(aref, "PBSmall_TileMatrix_features.tsv.gz"))
    key <- paste(GenomicRanges::seqnames(tm), SummarizedExperiment::rowRanges(tm)$idx)
    got <- SummarizedExperiment::assay(tm)[match(paste(feat$seqnames, feat$idx), key),
                                           cells]
    expect_identical(sum(got != methods::as(want, "CsparseMatrix")), 0L)
    expect_error(addTileMatrix(proj), class = "epione_error_file",
                 regexp = "force = TRUE")

    pf <- utils::read.delim(file.path(aref, "PBSmall_PeakMatrix_features.tsv.gz"))
    peaks <- GenomicRanges::GRanges(pf$seqnames, IRanges::IRanges(pf$start, pf$end))
    proj <- addPeakMatrix(addPeakSet(proj, peaks))
    pm <- getMatrixFromProject(proj, "PeakMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(aref, "PBSmall_PeakMatrix.mtx.gz"))
    key <- paste(GenomicRanges::seqnames(pm), GenomicRanges::start(pm))
    got <- SummarizedExperiment::assay(pm)[match(paste(pf$seqnames, pf$start), key),
                                           cells]
    expect_identical(sum(got != methods::as(want, "CsparseMatrix")), 0L)
    cc <- utils::read.delim(file.path(aref, "PBSmall_cellColData.tsv.gz"))
    mine <- getCellColData(proj)[cells, ]
    expect_identical(mine$ReadsInPeaks, as.numeric(cc$ReadsInPeaks))
    expect_equal(mine$FRIP, cc$FRIP, tolerance = 1e-12)
    expect_identical(mine$TSSEnrichment, cc$TSSEnrichment)

    proj <- addGeneScoreMatrix(proj, force = TRUE)
    gs <- getMatrixFromProject(proj, "GeneScoreMatrix", verbose = FALSE)
    want <- Matrix::readMM(file.path(ref, "gene_score_matrix.mtx.gz"))
    expect_lt(max(abs(SummarizedExperiment::assay(gs) -
                      methods::as(want, "CsparseMatrix"))), 1e-6)
})

test_that("QC plots are ggplots built from the stored data", {
    anno <- exampleAnnotation()
    proj <- ArchRProject(arrow, file.path(tempdir(), "arrow-plots"),
                         copyArrows = FALSE,
                         geneAnnotation = anno$geneAnnotation)
    p1 <- plotTSSvsFrags(proj, minFrags = 100)
    expect_s3_class(p1, "ggplot")
    expect_identical(nrow(p1$data), 127L)
    p2 <- plotFragmentSizes(proj)
    expect_s3_class(p2, "ggplot")
    expect_equal(sum(p2$data$percent), 100)
    p3 <- plotTSSEnrichment(proj)
    expect_s3_class(p3, "ggplot")
    top <- p3$data$x[which.max(p3$data$value)]
    expect_lt(abs(top), 200)   # insertions pile up at the TSS
    expect_error(plotTSSvsFrags(data.frame(a = 1)), class = "epione_error_input",
                 regexp = "TSSEnrichment")
})

test_that("multiome QC (validBarcodes, hg38, 16 chromosomes) equals ArchR's", {
    R <- shared_path("data", "ref", "archr", "multiome")
    M <- shared_path("data", "fragments", "multiome")
    skip_if_not(dir.exists(R) && dir.exists(M), "shared multiome data absent")
    g <- utils::read.delim(file.path(R, "annotation_genes_hg38_orgHsEgDb.bed.gz"))
    genes <- GenomicRanges::GRanges(g$chr, IRanges::IRanges(g$start0 + 1L, g$end),
                                    strand = g$strand, symbol = g$symbol)
    ga <- createGeneAnnotation(genes = genes,
        TSS = unique(GenomicRanges::resize(genes, 1L, "start")))
    cs <- utils::read.delim(file.path(R, "annotation_chromSizes.tsv.gz"))
    bl <- utils::read.delim(file.path(R, "annotation_blacklist_hg38.bed.gz"))
    gn <- createGenomeAnnotation(stats::setNames(as.numeric(cs$length), cs$chr),
        GenomicRanges::GRanges(bl$chr, IRanges::IRanges(bl$start0 + 1L, bl$end)))
    d <- file.path(tempdir(), "arrow-mo")
    a <- createArrowFiles(file.path(M, "test_rna_atac_fragments.tsv.gz"), "MO",
        file.path(d, "MO"), ga, gn, minFrags = 20, minTSS = 0,
        validBarcodes = readLines(file.path(M, "barcodes.tsv.gz")),
        addTileMatrix = FALSE, addGeneScoreMatrix = FALSE,
        QCDir = file.path(d, "QC"), threads = 2, verbose = FALSE, force = TRUE)
    want <- utils::read.delim(file.path(R, "qc_prefilter_all_barcodes.tsv.gz"))
    got <- readRDS(file.path(d, "QC", "MO", "MO-Pre-Filter-Metadata.rds"))
    expect_identical(as.character(got$cellNames), want$cellNames)
    for (nm in c("nFrags", "nMonoFrags", "nDiFrags", "nMultiFrags",
                 "ReadsInPromoter", "ReadsInBlacklist", "Keep")) {
        expect_identical(got[[nm]], as.numeric(want[[nm]]), label = nm)
    }
    expect_equal(got$TSSEnrichment, want$TSSEnrichment, tolerance = 1e-6)
    expect_equal(got$PromoterRatio, want$PromoterRatio, tolerance = 1e-12)
    expect_identical(nrow(epione:::.arrow_metadata(a)), 565L)
})

test_that("chromosomes read in parallel give the same Arrow file", {
    M <- shared_path("data", "fragments", "multiome")
    skip_if_not(dir.exists(M), "shared multiome data absent")
    cs <- c(chr1 = 248956422, chr2 = 242193529, chr4 = 190214555,
            chr10 = 133797422, chr17 = 83257441, chr19 = 58617616)
    gn <- createGenomeAnnotation(cs)
    genes <- GenomicRanges::GRanges(names(cs), IRanges::IRanges(1e6, 1.1e6),
        strand = "+", symbol = paste0("G", seq_along(cs)))
    ga <- createGeneAnnotation(genes = genes,
        TSS = GenomicRanges::resize(genes, 1L, "start"))
    run <- function(th) {
        d <- file.path(tempdir(), paste0("arrow-par-", th))
        suppressWarnings(createArrowFiles(
            file.path(M, "test_rna_atac_fragments.tsv.gz"), "MO",
            file.path(d, "MO"), ga, gn, minFrags = 20, minTSS = 0,
            QCDir = NULL, threads = th, verbose = FALSE, force = TRUE))
    }
    a1 <- run(1L)
    a2 <- run(2L)
    expect_identical(epione:::.arrow_metadata(a1), epione:::.arrow_metadata(a2))
    for (m in c("TileMatrix", "GeneScoreMatrix")) {
        expect_identical(
            SummarizedExperiment::assay(getMatrixFromArrow(a1, m, verbose = FALSE)),
            SummarizedExperiment::assay(getMatrixFromArrow(a2, m, verbose = FALSE)))
    }
    f1 <- getFragmentsFromArrow(a1)
    expect_gt(length(f1), 1000)
    expect_identical(f1, getFragmentsFromArrow(a2))
})
