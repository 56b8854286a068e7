# Browser track: structure of the composed plot and ArchR's arc geometry.

track_inputs <- function() {
    ex <- p2gExampleData()
    genes <- SummarizedExperiment::rowRanges(ex$rna)
    genes$symbol <- rownames(ex$rna)
    list(ex = ex, genes = genes,
         frags = system.file("extdata", "multiome_loci_fragments.tsv.gz",
                             package = "epione", mustWork = TRUE))
}

test_that("plotBrowserTrack composes coverage, peaks, loops and genes", {
    d <- track_inputs()
    loops <- GenomicRanges::GRanges("chr2", IRanges::IRanges(
        c(86785000, 86790000), c(86800000, 86810000)), value = c(0.5, 0.9))
    p <- plotBrowserTrack(d$frags, groups = d$ex$clusters,
        geneSymbol = "CD8A", geneAnnotation = list(genes = d$genes),
        features = SummarizedExperiment::rowRanges(d$ex$atac),
        loops = S4Vectors::SimpleList(Peak2GeneLinks = loops),
        maxCells = NULL, threads = 1)
    expect_s3_class(p, "patchwork")
    expect_length(p$patches$plots, 3L)          # + the last (gene) panel
    cov <- p$patches$plots[[1]]$data
    expect_setequal(levels(cov$group), sort(unique(d$ex$clusters)))
    # CD8A is on the minus strand: region = TSS (its end) -50 kb .. +50 kb
    g <- d$genes[d$genes$symbol == "CD8A"]
    lims <- p$patches$plots[[1]]$scales$get_scales("x")$limits
    expect_equal(lims, c(GenomicRanges::end(g) - 50000,
                         GenomicRanges::end(g) + 50000))
    tmp <- tempfile(fileext = ".png")
    grDevices::png(tmp, width = 800, height = 600)
    print(p)
    grDevices::dev.off()
    expect_gt(file.size(tmp), 1000)
})

test_that("loop arcs follow ArchR's getArchDF half-ellipses", {
    lp <- GenomicRanges::GRanges("chr1", IRanges::IRanges(c(100, 100),
        c(300, 200)), value = c(1, 2))
    df <- epione:::.arch_df(lp)
    a <- df[df$id == 1, ]
    b <- df[df$id == 2, ]
    expect_equal(range(a$x), c(100, 300))
    expect_equal(min(a$y), -100, tolerance = 1e-3)     # widest arc: depth 100
    expect_equal(min(b$y), -50, tolerance = 1e-3)      # half the span
    expect_true(all(df$y <= 1e-12))
})

test_that("a missing gene or region is an input error naming the fix", {
    d <- track_inputs()
    expect_error(plotBrowserTrack(d$frags, groups = d$ex$clusters,
                                  geneSymbol = "NOPE",
                                  geneAnnotation = list(genes = d$genes)),
                 class = "epione_error_input", regexp = "geneSymbol")
})

test_that("plotPeak2GeneHeatmap matrices are z-scored metacell values", {
    ex <- p2gExampleData()
    links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 30,
                             threads = 1)
    m <- plotPeak2GeneHeatmap(links, ex$atac, ex$rna, ex$clusters, k = 5,
        corCutOff = 0.3, FDRCutOff = 1e-3, returnMatrices = TRUE)
    knn <- S4Vectors::metadata(links)$KNNList
    x <- SummarizedExperiment::assay(ex$rna)
    agg <- vapply(knn, function(cl) Matrix::rowSums(x[, cl]), numeric(nrow(x)))
    lg <- log2(t(t(agg) / colSums(agg)) * 1e4 + 1)
    g <- m$Peak2GeneLinks$idxRNA[1]
    label <- vapply(knn, function(cl)
        names(sort(table(ex$clusters[cl]), decreasing = TRUE))[1], "")
    # columns are ordered by group; compare as sorted value sets per row
    z <- (lg[g, ] - mean(lg[g, ])) / stats::sd(lg[g, ])
    expect_equal(sort(m$RNA[1, ]), sort(z), tolerance = 1e-10)
    expect_false(is.unsorted(m$kmeansId))
    expect_setequal(m$colData$groupBy, label)
    expect_true(all(m$Peak2GeneLinks$Correlation >= 0.3))
    p <- plotPeak2GeneHeatmap(links, ex$atac, ex$rna, ex$clusters, k = 5,
        corCutOff = 0.3, FDRCutOff = 1e-3)
    expect_s3_class(p, "patchwork")
    expect_error(plotPeak2GeneHeatmap(links, ex$atac, ex$rna, ex$clusters,
                                      corCutOff = 0.999),
                 class = "epione_error_input", regexp = "lower corCutOff")
})

test_that("the project method draws per-group coverage from the Arrow files", {
    pr <- p2gExampleProject(file.path(tempdir(), "tracks-proj"))
    proj <- addCoAccessibility(pr$proj, dimsToUse = 1:10, k = 20,
                               knnIteration = 100, threads = 1)
    p <- plotBrowserTrack(proj, geneSymbol = "CD8A", minCells = 60,
                          normMethod = "nCells")
    expect_s3_class(p, "patchwork")
    # coverage, peaks, co-accessibility loops (the default) + gene panel
    expect_length(p$patches$plots, 3L)
    cov <- p$patches$plots[[1]]$data
    tab <- table(getCellColData(proj, "Clusters", drop = TRUE))
    expect_identical(levels(cov$group), sort(names(tab)[tab >= 60]))
    # nCells scaling: insertions in the region / cells, counted plainly
    f <- utils::read.delim(gzfile(system.file("extdata",
        "multiome_loci_fragments.tsv.gz", package = "epione")), header = FALSE)
    g <- pr$proj@geneAnnotation$genes
    g <- g[g$symbol == "CD8A"]
    region <- GenomicRanges::GRanges("chr2", IRanges::IRanges(
        GenomicRanges::end(g) - 50000, GenomicRanges::end(g) + 50000))
    cl <- levels(cov$group)[1]
    cl_all <- getCellColData(proj, "Clusters", drop = TRUE)
    cells <- sub("^MO#", "", rownames(proj@cellColData)[cl_all == cl])
    lo <- GenomicRanges::start(region)
    hi <- GenomicRanges::end(region)
    f <- f[f$V4 %in% cells & f$V1 == "chr2" & f$V2 + 1 <= hi & f$V3 >= lo, ]
    pos <- c(f$V2 + 1, f$V3)
    tile <- trunc(pos / 250)
    inside <- tile >= floor(lo / 250) & tile * 250 + 1 <= hi
    expect_equal(sum(cov$y[cov$group == cl]), sum(inside) / length(cells))
    two <- plotBrowserTrack(proj, geneSymbol = c("CD8A", "LEF1"),
                            minCells = 60, plotSummary = "bulkTrack")
    expect_named(two, c("CD8A", "LEF1"))
    expect_error(plotBrowserTrack(proj, geneSymbol = "CD8A", minCells = 1e4),
                 class = "epione_error_input", regexp = "lower minCells")
})

test_that("plotPeak2GeneHeatmap takes the project (ArchR's form)", {
    pr <- p2gExampleProject(file.path(tempdir(), "tracks-heat"))
    proj <- addGeneExpressionMatrix(pr$proj, pr$seRNA, verbose = FALSE)
    proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 20,
                              knnIteration = 100, threads = 1)
    m <- plotPeak2GeneHeatmap(proj, k = 3, corCutOff = 0.2, FDRCutOff = 0.1,
                              returnMatrices = TRUE)
    links <- getPeak2GeneLinks(proj, corCutOff = 0.2, FDRCutOff = 0.1,
                               returnLoops = FALSE)
    expect_identical(nrow(m$ATAC), nrow(links))
    expect_true(all(m$colData$groupBy %in%
                    getCellColData(proj, "Clusters", drop = TRUE)))
})
