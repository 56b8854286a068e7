# Marker features: the Wilcoxon, t and binomial statistics against
# stats::wilcox.test / stats::t.test / the binomial formula written plainly
# here, and the bias matching's invariants (no ArchR marker output is saved).

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
    pv <- SummarizedExperiment::assay(mk, "Pval")[, "C1"]
    used <- rowSums(m[, c(mi$cells, mi$bgd)]) > 0   # ArchR: BH where a mean > 0
    expect_equal(fdr[used], stats::p.adjust(pv[used], "fdr"))
    expect_true(all(is.na(fdr[!used])))
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
    expect_error(getMarkerFeatures(se, testMethod = "anova"),
                 class = "epione_error_input", regexp = "ttest")
    expect_error(getMarkerFeatures(se, testMethod = "binomial"),
                 class = "epione_error_input", regexp = "binarize = TRUE")
    expect_error(getMarkerFeatures(se, testMethod = "binomial",
                                   binarize = TRUE, normBy = "nFrags"),
                 class = "epione_error_input", regexp = "normBy")
    expect_error(getMarkerFeatures(se, normBy = "depth"),
                 class = "epione_error_input", regexp = "normBy")
    for (tm in c("ttest", "binomial")) {
        a <- getMarkerFeatures(se, testMethod = tm, binarize = TRUE,
                               threads = 1, verbose = FALSE)
        b <- getMarkerFeatures(se, testMethod = tm, binarize = TRUE,
                               threads = 2, verbose = FALSE)
        expect_identical(a, b)
    }
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

# ArchR's normalisation written plainly: scaleTo / colSums, rescaled so the
# median normalised depth is scaleTo.
plain_norm <- function(m, scale_to = 1e4) {
    cs <- colSums(m)
    nf <- scale_to / cs
    nf * scale_to / stats::median(nf * cs)
}

test_that("t-test equals stats::t.test(var.equal = TRUE) on ArchR's values", {
    se <- marker_se()
    se$Clusters[121:160] <- "C3"
    SummarizedExperiment::assay(se)[150, ] <- 0      # no signal: FDR NA
    mk <- getMarkerFeatures(se, testMethod = "ttest", verbose = FALSE)
    expect_identical(SummarizedExperiment::assayNames(mk),
                     c("Log2FC", "Mean", "Variance", "FDR", "Pval",
                       "MeanDiff", "MeanBGD", "VarianceBGD"))
    m <- as.matrix(SummarizedExperiment::assay(se))
    nf <- plain_norm(m)
    for (g in c("C1", "C3")) {
        mi <- S4Vectors::metadata(mk)$MatchInfo[[g]]
        a_all <- t(t(m[, mi$cells]) * nf[mi$cells])
        b_all <- t(t(m[, mi$bgd]) * nf[mi$bgd])
        for (r in c(1, 5, 20, 77)) {
            tt <- stats::t.test(a_all[r, ], b_all[r, ], var.equal = TRUE)
            get <- function(a) unname(SummarizedExperiment::assay(mk, a)[r, g])
            expect_equal(get("Pval"), tt$p.value, tolerance = 1e-10)
            expect_equal(get("Mean"), mean(a_all[r, ]), tolerance = 1e-12)
            expect_equal(get("MeanBGD"), mean(b_all[r, ]), tolerance = 1e-12)
            # ArchR 1.0.3 reports the background variance in both columns
            expect_equal(get("Variance"), stats::var(b_all[r, ]),
                         tolerance = 1e-12)
            expect_equal(get("VarianceBGD"), stats::var(b_all[r, ]),
                         tolerance = 1e-12)
            expect_equal(get("Log2FC"),
                         log2((sum(a_all[r, ]) + 1) / (sum(b_all[r, ]) + 1)),
                         tolerance = 1e-12)
        }
        fdr <- SummarizedExperiment::assay(mk, "FDR")[, g]
        pv <- SummarizedExperiment::assay(mk, "Pval")[, g]
        expect_true(is.na(fdr[150]))
        expect_equal(fdr[-150], stats::p.adjust(pv[-150], "fdr"))
    }
})

test_that("binomial test equals ArchR's formula on binarized values", {
    se <- marker_se()
    mk <- getMarkerFeatures(se, testMethod = "binomial", binarize = TRUE,
                            verbose = FALSE)
    expect_identical(SummarizedExperiment::assayNames(mk),
                     c("Log2FC", "Mean", "FDR", "Pval", "MeanDiff",
                       "MeanBGD"))
    m <- as.matrix(SummarizedExperiment::assay(se)) > 0
    mi <- S4Vectors::metadata(mk)$MatchInfo$C2
    n1 <- length(mi$cells)
    n2 <- length(mi$bgd)
    for (r in c(1, 3, 40, 99)) {
        s1 <- sum(m[r, mi$cells])
        s2 <- sum(m[r, mi$bgd])
        p <- if (s1 / n1 >= s2 / n2)
            sum(stats::dbinom(s1:n1, n1, max(s2, 1) / n2))
        else sum(stats::dbinom(s2:n2, n2, max(s1, 1) / n1))
        expect_equal(unname(SummarizedExperiment::assay(mk, "Pval")[r, "C2"]),
                     min(2 * p, 1), tolerance = 1e-10)
        expect_equal(unname(SummarizedExperiment::assay(mk, "Mean")[r, "C2"]),
                     s1 / n1)
    }
})

test_that("heatmap matrix equals ArchR's steps written plainly", {
    set.seed(3)
    m <- Matrix::rsparsematrix(120, 180, 0.2)
    m@x <- round(abs(m@x) * 3) + 1
    m[1:10, 1:60] <- m[1:10, 1:60] + 6
    m[11:20, 61:120] <- m[11:20, 61:120] + 6
    m[21:30, 121:180] <- m[21:30, 121:180] + 6
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    rownames(se) <- paste0("f", 1:120)
    se$Clusters <- rep(c("C1", "C2", "C3"), each = 60)
    se$nFrags <- Matrix::colSums(m)
    mk <- getMarkerFeatures(se, bias = "log10(nFrags)", verbose = FALSE)
    got <- plotMarkerHeatmap(mk, returnMatrix = TRUE)
    mean <- SummarizedExperiment::assay(mk, "Mean")
    fdr <- SummarizedExperiment::assay(mk, "FDR")
    fc <- SummarizedExperiment::assay(mk, "Log2FC")
    pass <- fdr <= 0.01 & fc >= 0.5
    x <- log2(sweep(mean, 2, colSums(mean), "/") * 1e4 + 1)
    x <- t(apply(x, 1, function(r) (r - mean(r)) / stats::sd(r)))
    x <- pmin(pmax(x, -2), 2)
    keep <- which(rowSums(pass, na.rm = TRUE) > 0 &
                  apply(x, 1, stats::var) != 0)
    x <- x[keep, , drop = FALSE]
    p <- pass[keep, , drop = FALSE]
    colord <- stats::hclust(stats::dist(t(x)))$order
    p <- p[, colord, drop = FALSE]
    key <- apply(p, 1, function(r) paste(ifelse(is.na(r), 0,
                                                ifelse(r, 2, 1)),
                                         collapse = ""))
    want <- x[order(key, decreasing = TRUE, method = "radix"), ]
    rownames(want) <- rownames(mk)[keep][order(key, decreasing = TRUE,
                                               method = "radix")]
    expect_equal(got, want)
    expect_true(all(paste0("f", 1:30) %in% rownames(got)))
    expect_identical(plotMarkerHeatmap(mk, returnMatrix = TRUE,
                                       transpose = TRUE), t(got))
    expect_s3_class(plotMarkerHeatmap(mk, labelMarkers = "f1"), "ggplot")
    expect_error(plotMarkerHeatmap(mk, cutOff = "FDR < 0"),
                 class = "epione_error_data", regexp = "loosen")
})

test_that("getMarkerFeatures on a project reads the Arrow matrix", {
    d <- tempfile("mk-proj")
    dir.create(d)
    arrow <- pbsmall_arrow(d, addTileMatrix = FALSE)
    proj <- ArchRProject(arrow, file.path(d, "proj"))
    cells <- rownames(proj@cellColData)
    proj@cellColData$CellType <- sub("^PBSmall#(.).*", "\\1", cells)
    mk <- getMarkerFeatures(proj, groupBy = "CellType", verbose = FALSE)
    expect_identical(colnames(mk), c("B", "M", "T"))
    gs <- getMatrixFromProject(proj, "GeneScoreMatrix", verbose = FALSE)
    expect_identical(SummarizedExperiment::rowData(mk)$name,
                     SummarizedExperiment::rowRanges(gs)$name)
    m <- as.matrix(SummarizedExperiment::assay(gs))
    nf <- plain_norm(m)
    mi <- S4Vectors::metadata(mk)$MatchInfo$M
    a <- t(t(m[, mi$cells]) * nf[mi$cells])
    b <- t(t(m[, mi$bgd]) * nf[mi$bgd])
    for (r in which(rowSums(m) > 0)[c(1, 50, 200)]) {
        w <- suppressWarnings(stats::wilcox.test(a[r, ], b[r, ],
                                                 exact = FALSE))
        expect_equal(unname(SummarizedExperiment::assay(mk, "Pval")[r, "M"]),
                     w$p.value, tolerance = 1e-10)
        expect_equal(unname(SummarizedExperiment::assay(mk, "Mean")[r, "M"]),
                     mean(a[r, ]), tolerance = 1e-12)
    }
    expect_identical(S4Vectors::metadata(mk)$Params$useMatrix,
                     "GeneScoreMatrix")
    one <- getMarkerFeatures(proj, groupBy = "CellType", useSeqnames = "chr5",
                             testMethod = "ttest", verbose = FALSE)
    expect_true(all(SummarizedExperiment::rowData(one)$seqnames == "chr5"))
    expect_error(getMarkerFeatures(proj, useMatrix = "PeakMatrix"),
                 class = "epione_error_input", regexp = "available")
})

test_that("tile and peak matrices are normalised by ReadsInTSS (ArchR)", {
    m <- Matrix::rsparsematrix(50, 20, 0.3)
    m@x <- abs(m@x)
    cd <- data.frame(ReadsInTSS = 1:20 * 3)
    nf <- epione:::.marker_norm(m, cd, NULL, 1e4, "wilcoxon", TRUE)
    want <- stats::median(cd$ReadsInTSS) / cd$ReadsInTSS
    want <- want * 1e4 / stats::median(want * Matrix::colSums(m))
    expect_equal(nf, want)
    expect_null(epione:::.marker_norm(m, cd, NULL, 1e4, "binomial", TRUE))
})
