pbsmall_ref <- shared_path("data", "fragments", "pbsmall", "archr_reference")

pbsmall_matches <- function() {
    mm <- Matrix::readMM(file.path(pbsmall_ref, "PBSmall_motifMatches.mtx.gz"))
    mm <- methods::as(mm, "CsparseMatrix")
    colnames(mm) <- readLines(file.path(pbsmall_ref,
                                        "PBSmall_motifMatches_motifs.txt"))
    peaks <- utils::read.delim(file.path(pbsmall_ref,
                                         "PBSmall_peakSet.bed.gz"))
    list(m = mm, peaks = peaks)
}

test_that("hypergeometric enrichment equals ArchR's formula (phyper)", {
    skip_if_not(has_shared(), "shared data absent")
    d <- pbsmall_matches()
    fg <- which(d$peaks$peakType == "Promoter")
    got <- peakAnnoEnrichment(fg, d$m)
    m <- as.matrix(d$m) != 0
    for (j in seq_len(ncol(m))) {
        q <- sum(m[fg, j]); K <- sum(m[, j])
        lp <- phyper(q - 1, K, nrow(m) - K, length(fg), lower.tail = FALSE,
                     log.p = TRUE)
        expect_equal(got$CompareFrequency[j], q)
        expect_equal(got$BackgroundFrequency[j], K)
        expect_equal(got$pvalue[j], exp(lp), tolerance = 1e-12)
        expect_equal(got$mlog10p[j], round(-lp / log(10), 4))
        expect_equal(got$Enrichment[j], (q / length(fg)) / (K / nrow(m)))
    }
    expect_equal(got$mlog10Padj, pmax(got$mlog10p - log10(6), 0))
    archr <- peakAnnoEnrichment(fg, d$m, mlog10Padj = "ArchR")
    expect_equal(archr$mlog10Padj, pmax(got$mlog10p - log10(9), 0))
    expect_equal(got$FDR, p.adjust(got$pvalue, "BH"))
    expect_identical(peakAnnoEnrichment(fg, d$m, threads = 2),
                     peakAnnoEnrichment(fg, d$m, threads = 1))
    dense <- peakAnnoEnrichment(fg, as.matrix(d$m) != 0)
    expect_equal(dense$mlog10p, got$mlog10p)
    se <- SummarizedExperiment::SummarizedExperiment(list(matches = d$m))
    expect_equal(peakAnnoEnrichment(fg, se)$pvalue, got$pvalue)
})

test_that("fisher and chisq agree with fisher.test and chisq.test", {
    skip_if_not(has_shared(), "shared data absent")
    d <- pbsmall_matches()
    fg <- which(d$peaks$peakType == "Distal")
    fi <- peakAnnoEnrichment(fg, d$m, test = "fisher")
    ch <- peakAnnoEnrichment(fg, d$m, test = "chisq")
    m <- as.matrix(d$m) != 0
    other <- setdiff(seq_len(nrow(m)), fg)
    for (j in seq_len(ncol(m))) {
        tab <- matrix(c(sum(m[fg, j]), sum(!m[fg, j]),
                        sum(m[other, j]), sum(!m[other, j])), 2)
        expect_equal(fi$pvalue[j], fisher.test(tab)$p.value,
                     tolerance = 1e-10)
        ct <- suppressWarnings(chisq.test(tab, correct = FALSE))
        expect_equal(ch$chisq[j], unname(ct$statistic), tolerance = 1e-12)
        expect_equal(ch$pvalue[j], ct$p.value, tolerance = 1e-10)
    }
})

test_that("the tutorial's chi-square statistic is reproduced", {
    # seed 001: 934 of 48,519 foreground vs 529 of 5,000 background peaks
    m <- Matrix::sparseMatrix(i = c(1:934, 48519 + 1:529), j = rep(1, 1463),
                              dims = c(53519, 1))
    got <- peakAnnoEnrichment(seq_len(48519), m, test = "chisq")
    expect_equal(got$chisq, 1277.047, tolerance = 1e-6)
})

test_that("background peak matrices and gc-matched backgrounds", {
    skip_if_not(has_shared(), "shared data absent")
    d <- pbsmall_matches()
    bgd <- as.matrix(utils::read.delim(file.path(pbsmall_ref,
        "PBSmall_BackgroundPeaks_idx.tsv.gz"), header = TRUE))
    storage.mode(bgd) <- "integer"
    fg <- which(d$peaks$peakType == "Exonic")
    got <- peakAnnoEnrichment(fg, d$m, background = bgd)
    idx <- c(fg, as.vector(bgd[fg, ]))        # ArchR's "bgd" background
    m <- as.matrix(d$m) != 0
    expect_identical(got$nBackground, rep(length(idx), ncol(m)))
    expect_equal(got$BackgroundFrequency, unname(colSums(m[idx, ])))
    withr::local_seed(3)
    g1 <- peakAnnoEnrichment(fg, d$m, background = "gc-matched",
                             gc = d$peaks$GC, nBackground = 5)
    withr::local_seed(3)
    g2 <- peakAnnoEnrichment(fg, d$m, background = "gc-matched",
                             gc = d$peaks$GC, nBackground = 5)
    expect_identical(g1, g2)
    expect_identical(g1$nBackground[1], length(fg) * 6L)
})

test_that("marker SummarizedExperiment input follows ArchR's layout", {
    withr::local_seed(1)
    m <- Matrix::rsparsematrix(300, 4, 0.3) != 0
    colnames(m) <- paste0("motif", 1:4)
    fdr <- matrix(runif(600), 300, 2, dimnames = list(NULL, c("A", "B")))
    lfc <- matrix(rnorm(600), 300, 2)
    se <- SummarizedExperiment::SummarizedExperiment(
        list(FDR = fdr, Log2FC = lfc))
    out <- peakAnnoEnrichment(se, m, cutOff = "FDR <= 0.5 & Log2FC >= 0")
    expect_identical(dim(out), c(4L, 2L))
    expect_identical(SummarizedExperiment::assayNames(out)[1:2],
                     c("FDR", "pvalue"))
    a <- peakAnnoEnrichment(which(fdr[, "B"] <= 0.5 & lfc[, 2] >= 0), m)
    expect_equal(SummarizedExperiment::assay(out, "mlog10Padj")[, "B"],
                 setNames(a$mlog10Padj, a$feature))
})

test_that("bad enrichment input is a classed error naming the fix", {
    m <- Matrix::rsparsematrix(50, 2, 0.3) != 0
    expect_error(peakAnnoEnrichment(integer(), m),
                 class = "epione_error_input", regexp = "no peaks")
    expect_error(peakAnnoEnrichment(rep(TRUE, 3), m),
                 class = "epione_error_input", regexp = "50 peaks")
    expect_error(peakAnnoEnrichment(c(1, 99), m),
                 class = "epione_error_input", regexp = "1..50")
    expect_error(peakAnnoEnrichment(1:5, m, background = 10:20),
                 class = "epione_error_input", regexp = "union")
    expect_error(peakAnnoEnrichment(1:5, m, background = "gc-matched"),
                 class = "epione_error_input", regexp = "GC")
    expect_error(peakAnnoEnrichment(1:5, "x"),
                 class = "epione_error_input", regexp = "matchMotifs")
    se <- SummarizedExperiment::SummarizedExperiment(
        list(FDR = matrix(0, 50, 1)))
    expect_error(peakAnnoEnrichment(se, m, cutOff = "Log2FC > 1"),
                 class = "epione_error_input", regexp = "could not be")
})

test_that("enrichment plots select as ArchR's plotEnrichHeatmap", {
    withr::local_seed(2)
    mat <- matrix(c(50, 10, 0, 30, 60, 0, 5, 5, 25), 3,
                  dimnames = list(c("m1", "m2", "m3"), c("A", "B", "C")))
    se <- SummarizedExperiment::SummarizedExperiment(list(mlog10Padj = mat))
    x <- plotEnrichHeatmap(se, n = 1, cutOff = 20, clusterCols = FALSE,
                           returnMatrix = TRUE)
    # top-1 per group above 20: m1 (A), m2 (B), m3 (C); rows scaled to max
    expect_identical(rownames(x), c("m1 (50)", "m2 (60)", "m3 (25)"))
    expect_equal(unname(x[1, ]), c(100, 60, 10))
    expect_s3_class(plotEnrichHeatmap(se, n = 2, cutOff = 5), "ggplot")
    expect_error(plotEnrichHeatmap(se, cutOff = 100),
                 class = "epione_error_input", regexp = "lower cutOff")
    m <- Matrix::rsparsematrix(200, 30, 0.2) != 0
    colnames(m) <- paste0("M", 1:30)
    p <- plotEnrichRank(peakAnnoEnrichment(1:60, m), n = 5)
    expect_s3_class(p, "ggplot")
})

# ArchR 1.0.3 .computeEnrichment written out plainly for one group.
archr_enrichment_ref <- function(m, idx) {
    q <- colSums(m[idx, , drop = FALSE]); K <- colSums(m); n <- nrow(m)
    mlog10p <- round(-phyper(q - 1, K, n - K, length(idx), lower.tail = FALSE,
                             log.p = TRUE) / log(10), 4)
    list(CompareFrequency = q, nCompare = rep(length(idx), ncol(m)),
         CompareProportion = q / length(idx), BackgroundFrequency = K,
         nBackground = rep(n, ncol(m)), BackgroundProporition = K / n,
         Enrichment = (q / length(idx)) / (K / n), mlog10p = mlog10p,
         mlog10Padj = pmax(mlog10p - log10(9), 0))
}

test_that("ArchR's form reads the project's matches, returns ArchR's SE", {
    skip_if_not(has_shared(), "shared data absent")
    d <- pbsmall_matches()
    peaks <- GenomicRanges::GRanges(d$peaks[[1]], IRanges::IRanges(
        d$peaks$start + 1L, d$peaks$end))
    matches <- SummarizedExperiment::SummarizedExperiment(
        list(matches = d$m), rowRanges = peaks)
    proj <- methods::new("EpioneProject")
    proj@projectMetadata$outputDirectory <- withr::local_tempdir()
    proj@peakSet <- peaks
    proj <- epione:::.add_peak_annotation(proj, "Motif", matches)
    # marker SE as getMarkerFeatures() gives it, rows shuffled
    withr::local_seed(3)
    o <- sample(length(peaks))
    n <- length(peaks)
    fdr <- cbind(A = runif(n), B = runif(n), C = rep(1, n))[o, ]
    lfc <- cbind(A = rnorm(n), B = rnorm(n), C = rnorm(n))[o, ]
    rd <- S4Vectors::DataFrame(seqnames = d$peaks[[1]][o],
        start = d$peaks$start[o] + 1L, end = d$peaks$end[o])
    se <- SummarizedExperiment::SummarizedExperiment(
        list(FDR = fdr, Log2FC = lfc), rowData = rd)
    S4Vectors::metadata(se)$Params <- list(useMatrix = "PeakMatrix")
    cut <- "FDR <= 0.3 & Log2FC >= 0.2"
    got <- peakAnnoEnrichment(seMarker = se, ArchRProj = proj,
        peakAnnotation = "Motif", matches = NULL, cutOff = cut,
        background = "all")
    expect_identical(SummarizedExperiment::assayNames(got),
        c("mlog10Padj", "mlog10p", "Enrichment", "BackgroundProporition",
          "nBackground", "BackgroundFrequency", "CompareProportion",
          "nCompare", "CompareFrequency", "feature"))
    expect_identical(dimnames(got), list(colnames(d$m), c("A", "B", "C")))
    m <- as.matrix(d$m) != 0
    for (g in c("A", "B")) {
        idx <- o[fdr[, g] <= 0.3 & lfc[, g] >= 0.2]
        want <- archr_enrichment_ref(m, idx)
        for (a in names(want)) {
            expect_equal(unname(SummarizedExperiment::assay(got, a)[, g]),
                         unname(as.numeric(want[[a]])), tolerance = 1e-12,
                         info = paste(g, a))
        }
    }
    # group C passes no peak: ArchR's NaN proportions and zero p-values
    expect_true(all(is.nan(SummarizedExperiment::assay(got,
                                                       "Enrichment")[, "C"])))
    expect_true(all(SummarizedExperiment::assay(got, "mlog10p")[, "C"] == 0))
    expect_identical(SummarizedExperiment::assay(got, "feature")[, "A"],
                     stats::setNames(colnames(d$m), colnames(d$m)))
    pos <- peakAnnoEnrichment(se, proj, peakAnnotation = "Motif",
                              cutOff = cut, threads = 1)
    expect_identical(pos, got)
    expect_identical(peakAnnoEnrichment(seMarker = se, matches = matches,
                                        cutOff = cut), got)
    # the positional matrix form is unchanged
    old <- peakAnnoEnrichment(se[, 1:2], matches, cutOff = cut)
    expect_true("pvalue" %in% SummarizedExperiment::assayNames(old))
    expect_equal(SummarizedExperiment::assay(old, "mlog10p"),
                 SummarizedExperiment::assay(got, "mlog10p")[, 1:2])
})

test_that("ArchR's form rejects other matrices and missing inputs", {
    se <- SummarizedExperiment::SummarizedExperiment(
        list(FDR = matrix(0, 5, 1), Log2FC = matrix(1, 5, 1)))
    S4Vectors::metadata(se)$Params <- list(useMatrix = "GeneScoreMatrix")
    proj <- methods::new("EpioneProject")
    expect_error(peakAnnoEnrichment(seMarker = se, ArchRProj = proj),
                 class = "epione_error_input", regexp = "PeakMatrix")
    S4Vectors::metadata(se)$Params$useMatrix <- "PeakMatrix"
    expect_error(peakAnnoEnrichment(seMarker = se),
                 class = "epione_error_input", regexp = "ArchRProj")
    expect_error(peakAnnoEnrichment(seMarker = se, ArchRProj = proj),
                 class = "epione_error_input", regexp = "addMotifAnnotations")
    m <- Matrix::rsparsematrix(5, 2, 0.5) != 0
    expect_error(peakAnnoEnrichment(seMarker = se, matches = m,
                                    background = "bgdPeaks"),
                 class = "epione_error_input", regexp = "getBackgroundPeaks")
    expect_error(peakAnnoEnrichment(seMarker = 1:3, matches = m),
                 class = "epione_error_input", regexp = "getMarkerFeatures")
})
