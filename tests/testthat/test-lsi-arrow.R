# addIterativeLSI(proj) streams the Arrow store (R/lsi-arrow.R): its answer
# must equal iterativeLSI() on the whole matrix read by getMatrixFromProject,
# however the cells are cut into chunks.

arrow_of <- function(dir, sample, barcodes = NULL) {
    pbsmall_arrow(dir, sample, validBarcodes = barcodes,
                  addGeneScoreMatrix = FALSE)
}

pb_stream <- local({
    cache <- NULL
    function() {
        if (is.null(cache)) {
            d <- tempfile("lsi-stream")
            dir.create(d)
            cache <<- ArchRProject(arrow_of(d, "PBSmall"), file.path(d, "p"))
        }
        cache
    }
})

# The in-memory path, written with the public API only.
in_memory <- function(proj, ...) {
    se <- getMatrixFromProject(proj, "TileMatrix", verbose = FALSE)
    sce <- suppressMessages(suppressWarnings(iterativeLSI(se, ...,
                                                          verbose = FALSE)))
    list(se = se, sce = sce)
}

expect_same_lsi <- function(entry, ref) {
    fit <- S4Vectors::metadata(ref$sce)$IterativeLSI
    expect_identical(entry$matSVD,
                     SingleCellExperiment::reducedDim(ref$sce, "IterativeLSI"))
    for (f in c("rowSm", "nCol", "exclude", "idx", "svd", "outliers",
                "corToDepth"))
        expect_identical(entry[[f]], fit[[f]], label = f)
    rr <- SummarizedExperiment::rowRanges(ref$se)[fit$LSIFeatures]
    expect_identical(entry$LSIFeatures$idx, rr$idx)
    expect_identical(entry$LSIFeatures$seqnames,
                     as.character(GenomicRanges::seqnames(rr)))
    expect_identical(entry$LSIFeatures$start, GenomicRanges::start(rr))
    expect_identical(entry$LSIFeatures$rowSums, Matrix::rowSums(
        SummarizedExperiment::assay(ref$se)[fit$LSIFeatures, , drop = FALSE]))
    expect_length(entry$iterations, length(fit$iterations))
    for (j in seq_along(fit$iterations)) {
        a <- entry$iterations[[j]]
        b <- fit$iterations[[j]]
        expect_identical(a$features, b$features)
        expect_identical(a$lsi$rows, b$lsi$rows)
        expect_identical(a$lsi$matSVD, b$lsi$matSVD)
        expect_identical(a$clusters$clusters, b$clusters$clusters)
    }
}

test_that("the streamed reader equals getMatrixFromProject's matrix", {
    proj <- pb_stream()
    full <- SummarizedExperiment::assay(getMatrixFromProject(proj,
        "TileMatrix", verbose = FALSE))
    store <- epione:::.lsi_store(proj, "TileMatrix", NULL, 7L)
    expect_identical(nrow(store$features), nrow(full))
    set.seed(3)
    rows <- sort(sample(nrow(full), 5000))
    cells <- sample(ncol(full))     # any order
    got <- epione:::.lsi_read(store, rows, cells)
    expect_identical(got, full[rows, cells])
    expect_identical(epione:::.lsi_read(store, seq_len(nrow(full)),
                                        seq_len(ncol(full))), full)
    expect_length(epione:::.lsi_chunks(store, seq_len(ncol(full))),
                  ceiling(ncol(full) / 7))
})

test_that("streamed project LSI equals in-memory iterativeLSI (chunks)", {
    proj <- pb_stream()
    args <- list(varFeatures = 1000, dimsToUse = 1:5, seed = 1, threads = 2)
    ref <- do.call(in_memory, c(list(proj), args))
    for (chunk in c(23, 5000)) {
        got <- suppressWarnings(do.call(addIterativeLSI, c(list(proj,
            chunkSize = chunk, verbose = FALSE), args)))
        expect_same_lsi(got@reducedDims$IterativeLSI, ref)
    }
})

test_that("variable first selection and LSIMethod 1 stream alike", {
    proj <- pb_stream()
    args <- list(varFeatures = 1000, dimsToUse = 1:5, seed = 1, threads = 2,
                 iterations = 2, firstSelection = "var", binarize = FALSE,
                 LSIMethod = 1)
    ref <- do.call(in_memory, c(list(proj), args))
    got <- suppressWarnings(do.call(addIterativeLSI, c(list(proj,
        chunkSize = 29, verbose = FALSE), args)))
    expect_same_lsi(got@reducedDims$IterativeLSI, ref)
})

test_that("sampled final fit: chunked projection equals in-memory", {
    proj <- pb_stream()
    args <- list(varFeatures = 1000, dimsToUse = 1:5, seed = 2,
                 sampleCellsFinal = 120, iterations = 3)
    ref <- do.call(in_memory, c(list(proj), args))
    a <- suppressWarnings(do.call(addIterativeLSI, c(list(proj, chunkSize = 31,
        threads = 1, verbose = FALSE), args)))@reducedDims$IterativeLSI
    b <- suppressWarnings(do.call(addIterativeLSI, c(list(proj, chunkSize = 31,
        threads = 2, verbose = FALSE), args)))@reducedDims$IterativeLSI
    expect_same_lsi(a, ref)
    # fit on 120 sampled cells, every cell projected
    expect_lte(a$nCol, 120L)
    expect_setequal(rownames(a$matSVD), rownames(proj@cellColData))
    expect_same_lsi_but_threads(a, b)
})

test_that("a project of two Arrow files streams as one matrix", {
    one <- pb_stream()
    bc <- sub("^PBSmall#", "", rownames(one@cellColData))
    d <- tempfile("lsi-two")
    dir.create(d)
    half <- seq_len(floor(length(bc) / 2))
    files <- c(arrow_of(d, "A", bc[-half]), arrow_of(d, "B", bc[half]))
    proj <- ArchRProject(files, file.path(d, "p"))
    # chr11 alone has too few accessible tiles for ArchR's default
    # filterQuantile cut of 2 500 tiles: totalFeatures 1e5 cuts 500.
    args <- list(varFeatures = 1000, dimsToUse = 1:5, seed = 1, threads = 2,
                 totalFeatures = 1e5, excludeChr = "chr5")
    se <- getMatrixFromProject(proj, "TileMatrix", excludeChr = "chr5",
                               verbose = FALSE)
    sce <- suppressWarnings(do.call(iterativeLSI, c(list(se, verbose = FALSE),
        args[names(args) != "excludeChr"])))
    got <- suppressWarnings(do.call(addIterativeLSI, c(list(proj,
        chunkSize = 40, verbose = FALSE), args)))
    entry <- got@reducedDims$IterativeLSI
    expect_same_lsi(entry, list(se = se, sce = sce))
    expect_false("chr5" %in% entry$LSIFeatures$seqnames)
})

test_that("ArchR's own Arrow file (layout v1) streams like it reads", {
    skip_if_not(has_shared(), "shared data not available")
    v1 <- shared_path("data", "fragments", "pbsmall", "PBSmall.arrow")
    proj <- ArchRProject(v1, file.path(tempfile("lsi-v1"), "p"))
    full <- SummarizedExperiment::assay(getMatrixFromProject(proj,
        "TileMatrix", verbose = FALSE))
    store <- epione:::.lsi_store(proj, "TileMatrix", NULL, 11L)
    set.seed(4)
    rows <- sort(sample(nrow(full), 3000))
    cells <- sample(ncol(full))
    expect_identical(epione:::.lsi_read(store, rows, cells),
                     full[rows, cells])
    args <- list(varFeatures = 1000, dimsToUse = 1:5, seed = 1, threads = 2)
    ref <- do.call(in_memory, c(list(proj), args))
    got <- suppressMessages(suppressWarnings(do.call(addIterativeLSI,
        c(list(proj, chunkSize = 50, verbose = FALSE), args))))
    expect_same_lsi(got@reducedDims$IterativeLSI, ref)
})

test_that("chunkSize is checked", {
    expect_error(addIterativeLSI(pb_stream(), chunkSize = 0),
                 class = "epione_error_input", regexp = "chunkSize")
    expect_error(addIterativeLSI(pb_stream(), chunkSize = 2.5),
                 class = "epione_error_input", regexp = "chunkSize")
})
