# Locates ../shared (EPIONE_SHARED overrides) and builds tiny fixtures.
shared_path <- function(...) {
    root <- Sys.getenv("EPIONE_SHARED", "")
    if (!nzchar(root)) {
        # tests run from tests/testthat (test_local / R CMD check copies);
        # walk up until a sibling 'shared' folder appears.
        dir <- normalizePath(getwd())
        for (k in 1:6) {
            cand <- file.path(dirname(dir), "shared")
            if (dir.exists(file.path(cand, "data"))) { root <- cand; break }
            dir <- dirname(dir)
        }
    }
    file.path(root, ...)
}
has_shared <- function() dir.exists(shared_path("data"))

# Arrow file of the bundled PBSmall fragments (ArchR's example data) in
# `dir`, as ArchR's tutorial makes it; `...` picks the matrices and cells
# (addTileMatrix, addGeneScoreMatrix, validBarcodes).
pbsmall_arrow <- function(dir, sample = "PBSmall", ...) {
    anno <- exampleAnnotation()
    createArrowFiles(
        system.file("extdata", "PBSmall.tsv.gz", package = "epione"), sample,
        file.path(dir, sample), geneAnnotation = anno$geneAnnotation,
        genomeAnnotation = anno$genomeAnnotation, minFrags = 100,
        QCDir = NULL, threads = 1, verbose = FALSE, force = TRUE, ...)
}

random_dgc <- function(nrow, ncol, density = 0.1, seed = 1) {
    withr::local_seed(seed)
    Matrix::rsparsematrix(nrow, ncol, density,
        rand.x = function(n) as.numeric(sample.int(5, n, replace = TRUE)))
}

# Two IterativeLSI results of runs that differed only in `threads`, to be
# identical: the date and the recorded thread counts set aside.
expect_same_lsi_but_threads <- function(a, b) {
    strip <- function(x) {
        x$date <- NULL
        x$params$threads <- NULL
        for (j in seq_along(x$iterations)) {
            x$iterations[[j]]$clusters$params$threads <- NULL
        }
        x
    }
    expect_identical(strip(a), strip(b))
}
