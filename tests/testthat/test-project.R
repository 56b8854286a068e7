# EpioneProject: construction from Arrow files, accessors, matrices, SCE.

proj_dir <- file.path(tempdir(), "project-test")
dir.create(proj_dir, showWarnings = FALSE)
frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
anno <- exampleAnnotation()
arrow <- createArrowFiles(frags, "PBSmall", file.path(proj_dir, "PBSmall"),
    geneAnnotation = anno$geneAnnotation,
    genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
    addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
    force = TRUE)

test_that("ArchRProject builds a project whose cellColData is the Arrow QC", {
    proj <- ArchRProject(arrow, file.path(proj_dir, "out"))
    expect_s4_class(proj, "EpioneProject")
    expect_true(validObject(proj))
    cc <- getCellColData(proj)
    expect_identical(nrow(cc), 127L)
    expect_true(all(c("nFrags", "TSSEnrichment", "Sample") %in% names(cc)))
    expect_identical(unique(cc$Sample), "PBSmall")
    expect_true(file.exists(getArrowFiles(proj)[["PBSmall"]]))
    expect_identical(dirname(getArrowFiles(proj)[["PBSmall"]]),
                     normalizePath(file.path(proj_dir, "out", "ArrowFiles")))
    expect_identical(getAvailableMatrices(proj), "GeneScoreMatrix")
    expect_null(getPeakSet(proj))
    expect_identical(getCellColData(proj, "nFrags", drop = TRUE), cc$nFrags)
    expect_error(getCellColData(proj, "nope"), class = "epione_error_input",
                 regexp = "available")
})

test_that("getMatrixFromProject returns the Arrow matrix over project cells", {
    proj <- ArchRProject(arrow, file.path(proj_dir, "out2"), copyArrows = FALSE)
    se <- getMatrixFromProject(proj, "GeneScoreMatrix", verbose = FALSE)
    ref <- getMatrixFromArrow(arrow, "GeneScoreMatrix", verbose = FALSE)
    expect_identical(SummarizedExperiment::assay(se),
                     SummarizedExperiment::assay(ref))
    expect_identical(colnames(se), rownames(getCellColData(proj)))
    # a subset project keeps only its cells
    proj@cellColData <- proj@cellColData[1:10, ]
    se <- getMatrixFromProject(proj, "GeneScoreMatrix", verbose = FALSE)
    expect_identical(ncol(se), 10L)
})

test_that("as(proj, 'SingleCellExperiment') carries reducedDims/embeddings", {
    proj <- ArchRProject(arrow, file.path(proj_dir, "out3"), copyArrows = FALSE)
    cells <- rownames(getCellColData(proj))
    lsi <- matrix(seq_len(2 * length(cells)), ncol = 2,
                  dimnames = list(rev(cells), c("LSI1", "LSI2")))
    proj@reducedDims$IterativeLSI <- list(matSVD = lsi)
    proj@embeddings$UMAP <- list(df = data.frame(x = 1, y = seq_along(cells),
                                                 row.names = cells))
    sce <- methods::as(proj, "SingleCellExperiment")
    expect_s4_class(sce, "SingleCellExperiment")
    expect_identical(SingleCellExperiment::reducedDimNames(sce),
                     c("IterativeLSI", "UMAP"))
    expect_identical(SingleCellExperiment::reducedDim(sce, "IterativeLSI"),
                     lsi[cells, ])
    expect_identical(colnames(sce), cells)
})

test_that("bad project input gives classed errors", {
    expect_error(ArchRProject(frags, file.path(proj_dir, "bad")),
                 class = "epione_error_format", regexp = "createArrowFiles")
    expect_error(ArchRProject(c(arrow, arrow), file.path(proj_dir, "bad2"),
                              copyArrows = FALSE),
                 class = "epione_error_input", regexp = "sample name")
    expect_error(getCellColData(list()), class = "epione_error_input",
                 regexp = "ArchRProject")
})

test_that("a two-sample project concatenates cells and matrices", {
    a2 <- createArrowFiles(frags, "Second", file.path(proj_dir, "Second"),
        geneAnnotation = anno$geneAnnotation,
        genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
        addTileMatrix = FALSE, QCDir = NULL, threads = 1, verbose = FALSE,
        force = TRUE)
    proj <- ArchRProject(c(arrow, a2), file.path(proj_dir, "two"),
                         copyArrows = FALSE)
    expect_identical(names(getArrowFiles(proj)), c("PBSmall", "Second"))
    expect_identical(nrow(getCellColData(proj)), 254L)
    se <- getMatrixFromProject(proj, "GeneScoreMatrix", verbose = FALSE)
    expect_identical(dim(se), c(2454L, 254L))
    m <- SummarizedExperiment::assay(se)
    expect_identical(unname(m[, 1:127]), unname(m[, 128:254]))
    expect_identical(colnames(se)[128], "Second#B.43")
})

test_that("peak annotations are stored and read back as ArchR keeps them", {
    proj <- methods::new("EpioneProject",
        projectMetadata = S4Vectors::SimpleList(outputDirectory = tempfile()))
    expect_error(getMatches(proj), class = "epione_error_input",
                 regexp = "addMotifAnnotations")
    peaks <- GenomicRanges::GRanges("chr1", IRanges::IRanges(
        c(1, 101, 201), width = 50))
    m <- Matrix::sparseMatrix(i = c(1, 3), j = c(1, 2), x = TRUE,
                              dims = c(3, 2))
    colnames(m) <- c("GATA1_1", "CTCF_2")
    se <- SummarizedExperiment::SummarizedExperiment(
        list(matches = m), rowRanges = peaks)
    pos <- GenomicRanges::GRangesList(GATA1_1 = peaks[1], CTCF_2 = peaks[3])
    proj <- epione:::.add_peak_annotation(proj, "Motif", se, pos)
    expect_true(file.exists(getPeakAnnotation(proj, "Motif")$Matches))
    expect_identical(SummarizedExperiment::assay(getMatches(proj)), m)
    expect_identical(colnames(getMatches(proj, annoName = "CTCF")), "CTCF_2")
    expect_identical(names(getPositions(proj, "Motif", "GATA")), "GATA1_1")
    expect_error(getMatches(proj, "Other"), class = "epione_error_input",
                 regexp = "available: Motif")
    expect_error(epione:::.add_peak_annotation(proj, "Motif", se),
                 class = "epione_error_input", regexp = "force = TRUE")
})

test_that("$ reads and sets cellColData columns, one value per cell", {
    proj <- methods::new("EpioneProject",
        cellColData = S4Vectors::DataFrame(Sample = c("A", "A", "A"),
                                           row.names = paste0("A#", 1:3)),
        sampleColData = S4Vectors::DataFrame(ArrowFiles = "A.arrow",
                                             row.names = "A"))
    proj$Clusters <- c("C1", "C2", "C1")
    expect_identical(proj$Clusters, c("C1", "C2", "C1"))
    expect_identical(getCellColData(proj, "Clusters", drop = TRUE),
                     c("C1", "C2", "C1"))
    expect_identical(proj$Sample, rep("A", 3))
    expect_error(proj$Bad <- 1:2, class = "epione_error_input",
                 regexp = "one value per cell")
})
