# Marker features: the Wilcoxon statistics against stats::wilcox.test and
# the bias matching's invariants (no ArchR marker output is saved).

marker_se <- function(seed = 1) {
    withr::local_seed(seed)
    m <- Matrix::rsparsematrix(150, 160, 0.25)
    m@x <- round(abs(m@x) * 3) + 1
    m[1:10, 1:80] <- m[1:10, 1:80] + 5      # markers of C1
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    colnames(se) <- paste0("cell", 1:160)
    se$Clusters <- rep(c("C1", "C2"), each = 80)
    se$nFrags <- Matrix::colSums(m) * 10
    se$TSSEnrichment <- stats::runif(160, 5, 20)
    se
}

test_that("Wilcoxon p-values and AUC equal wilcox.test on matched cells", {
    se <- marker_se()
    mk <- getMarkerFeatures(se, normBy = "none", verbose = FALSE)
    mi <- S4Vectors::metadata(mk)$MatchInfo$C1
    expect_identical(length(mi$cells), length(mi$bgd))
    expect_true(all(se$Clusters[mi$cells] == "C1"))
    expect_true(all(se$Clusters[mi$bgd] == "C2"))
    m <- as.matrix(SummarizedExperiment::assay(se))
    for (r in c(1, 5, 20, 77)) {
        a <- m[r, mi$cells]
        b <- m[r, mi$bgd]
        w <- suppressWarnings(stats::wilcox.test(a, b, exact = FALSE,
                                                 correct = TRUE))
        expect_equal(unname(SummarizedExperiment::assay(mk, "Pval")[r, "C1"]),
                     w$p.value, tolerance = 1e-10)
        expect_equal(unname(SummarizedExperiment::assay(mk, "AUC")[r, "C1"]),
                     unname(w$statistic) / (length(a) * length(b)),
                     tolerance = 1e-12)
        expect_equal(unname(SummarizedExperiment::assay(mk, "Log2FC")[r, "C1"]),
                     log2((sum(a) + 1) / (sum(b) + 1)))
    }
    fdr <- SummarizedExperiment::assay(mk, "FDR")[, "C1"]
    expect_equal(fdr, stats::p.adjust(
        SummarizedExperiment::assay(mk, "Pval")[, "C1"], "fdr"))
    expect_true(all(fdr[1:10] < 0.01))
})

test_that("marker results do not depend on threads; bad input errors", {
    se <- marker_se()
    a <- getMarkerFeatures(se, threads = 1, verbose = FALSE)
    b <- getMarkerFeatures(se, threads = 2, verbose = FALSE)
    expect_identical(SummarizedExperiment::assay(a, "Pval"),
                     SummarizedExperiment::assay(b, "Pval"))
    expect_error(getMarkerFeatures(se, groupBy = "nope"),
                 class = "epione_error_input", regexp = "addClusters")
    expect_error(getMarkerFeatures(se, bias = "log10(missing)"),
                 class = "epione_error_input", regexp = "bias")
    expect_error(getMarkerFeatures(se, testMethod = "ttest"),
                 class = "epione_error_input", regexp = "wilcoxon")
})

test_that("getMarkers filters with the cut-off expression", {
    se <- marker_se()
    rownames(se) <- paste0("f", seq_len(nrow(se)))
    mk <- getMarkerFeatures(se, verbose = FALSE)
    mm <- getMarkers(mk, cutOff = "FDR <= 0.01 & Log2FC >= 0.5")
    fdr <- SummarizedExperiment::assay(mk, "FDR")[, "C1"]
    fc <- SummarizedExperiment::assay(mk, "Log2FC")[, "C1"]
    expect_setequal(mm$C1$name, rownames(mk)[fdr <= 0.01 & fc >= 0.5])
    expect_true(all(diff(mm$C1$Log2FC) <= 0))
    expect_error(getMarkers(mk, cutOff = "nope > 1"),
                 class = "epione_error_input", regexp = "assay names")
})
