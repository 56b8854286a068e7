# Clustering, UMAP and plotting helpers. ArchR parity for PBSmall is in
# test-lsi.R; here the graph pieces are checked against plain R.

blobs <- function(n_per = 60, k = 3, d = 5, seed = 1) {
    withr::local_seed(seed)
    cen <- matrix(rnorm(k * d, sd = 6), k)
    lab <- rep(seq_len(k), each = n_per)
    m <- cen[lab, ] + matrix(rnorm(length(lab) * d), length(lab))
    rownames(m) <- paste0("cell", seq_along(lab))
    list(m = m, lab = lab)
}

test_that("SNN weights are Seurat's shared / (2k - shared), pruned", {
    b <- blobs()
    k <- 20
    nn <- epione:::.annoy_knn(b$m, k, 50)
    s <- epione:::epi_clusters_snn(nn, 1 / 15)
    n <- nrow(b$m)
    g <- methods::new("dgCMatrix", p = s$p, i = s$i, x = s$x,
                      Dim = c(n, n))
    A <- matrix(0, n, n)
    A[cbind(rep(seq_len(n), k), as.vector(nn))] <- 1
    shared <- A %*% t(A)
    w <- shared / (k + (k - shared))
    w[w < 1 / 15] <- 0
    diag(w) <- 0
    expect_equal(as.matrix(g), w, ignore_attr = TRUE)
})

test_that("Louvain finds separated groups and its modularity is right", {
    b <- blobs()
    cl <- addClusters(b$m, verbose = FALSE, maxClusters = NULL)
    expect_equal(mclust::adjustedRandIndex(cl, b$lab), 1)
    # modularity of the returned partition, computed plainly
    nn <- epione:::.annoy_knn(b$m, 20, 50)
    s <- epione:::epi_clusters_snn(nn, 1 / 15)
    n <- nrow(b$m)
    g <- methods::new("dgCMatrix", p = s$p, i = s$i, x = s$x,
                      Dim = c(n, n))
    res <- epione:::epi_clusters_louvain(g, 0.8, 10, 10, 0)
    W <- as.matrix(g)
    kdeg <- rowSums(W)
    two_m <- sum(W)
    same <- outer(res$membership, res$membership, `==`)
    q <- (sum(W[same]) - 0.8 * sum(tapply(kdeg, res$membership, sum)^2) /
              two_m) / two_m
    expect_equal(res$modularity, q, tolerance = 1e-12)
    # numbered by decreasing size
    expect_true(all(diff(as.vector(table(res$membership))) <= 0))
})

test_that("maxClusters merges and names follow ArchR (C1..Cn)", {
    b <- blobs(n_per = 40, k = 6)
    cl <- addClusters(b$m, resolution = 2, maxClusters = 3, verbose = FALSE)
    expect_lte(length(unique(cl)), 3)
    expect_true(all(grepl("^C[1-3]$", cl)))
    one <- addClusters(b$m[1:40, ], verbose = FALSE, nOutlier = 100)
    expect_true(all(one == "C1"))
})

test_that("sampled clustering assigns every cell; threads do not matter", {
    b <- blobs(n_per = 100)
    a1 <- addClusters(b$m, sampleCells = 150, threads = 1, verbose = FALSE)
    a2 <- addClusters(b$m, sampleCells = 150, threads = 2, verbose = FALSE)
    expect_identical(a1, a2)
    expect_equal(mclust::adjustedRandIndex(a1, b$lab), 1)
    # exact kNN helper against dist()
    q <- epione:::.knn(b$m[1:100, ], b$m[101:110, ], 5, 2)
    dd <- as.matrix(stats::dist(rbind(b$m[101:110, ], b$m[1:100, ])))
    ref <- t(apply(dd[1:10, -(1:10)], 1, function(r) order(r)[1:5]))
    expect_identical(unname(q), unname(ref))
})

test_that("UMAP, getEmbedding and plotEmbedding work on a SCE", {
    b <- blobs()
    sce <- SingleCellExperiment::SingleCellExperiment(
        list(counts = matrix(0, 2, nrow(b$m),
                             dimnames = list(NULL, rownames(b$m)))))
    SingleCellExperiment::reducedDim(sce, "LSI") <- b$m
    sce <- addClusters(sce, reducedDims = "LSI", scaleDims = FALSE,
                       verbose = FALSE)
    sce <- addUMAP(sce, reducedDims = "LSI", scaleDims = FALSE,
                   verbose = FALSE, threads = 1)
    e <- getEmbedding(sce)
    expect_identical(dim(e), c(nrow(b$m), 2L))
    set.seed(5)
    again <- addUMAP(sce, reducedDims = "LSI", scaleDims = FALSE,
                     verbose = FALSE, threads = 1, force = TRUE)
    expect_identical(getEmbedding(again), e)
    p <- plotEmbedding(sce)
    expect_s3_class(p, "ggplot")
    expect_error(addUMAP(sce, reducedDims = "LSI"),
                 class = "epione_error_input", regexp = "force = TRUE")
    expect_error(getReducedDims(sce, "nope"), class = "epione_error_input",
                 regexp = "iterativeLSI")
})

test_that("bad clustering input gives classed errors", {
    m <- matrix(rnorm(40), 20, dimnames = list(paste0("c", 1:20), NULL))
    bad <- m
    bad[1, 1] <- NA
    expect_error(addClusters(bad), class = "epione_error_input",
                 regexp = "NA")
    expect_error(addClusters(m, method = "scran"),
                 class = "epione_error_input", regexp = "Seurat")
    expect_error(addUMAP(m, nNeighbors = 40), class = "epione_error_input",
                 regexp = "lower nNeighbors")
})

# A project holding only cell data and a reduction (no Arrow file needed for
# clustering, UMAP and plotting).
blob_project <- function() {
    b <- blobs()
    cells <- rownames(b$m)
    proj <- methods::new("EpioneProject",
        projectMetadata = S4Vectors::SimpleList(outputDirectory =
                                                    tempfile("blobproj")),
        cellColData = S4Vectors::DataFrame(Sample = rep("S", length(cells)),
            nFrags = seq_along(cells) * 10, row.names = cells),
        sampleColData = S4Vectors::DataFrame(ArrowFiles = NA_character_,
                                             row.names = "S"))
    m <- b$m
    colnames(m) <- paste0("LSI", seq_len(ncol(m)))
    proj@reducedDims$LSI <- S4Vectors::SimpleList(matSVD = m,
        scaleDims = FALSE, corToDepth = list(scaled = rep(0, 5),
                                             none = c(0.9, rep(0, 4))))
    list(proj = proj, b = b)
}

test_that("project methods equal the matrix methods on ArchR's inputs", {
    x <- blob_project()
    proj <- x$proj
    m <- x$b$m
    colnames(m) <- paste0("LSI", 1:5)
    # corToDepth$none 0.9 > corCutOff drops LSI1, as ArchR
    expect_identical(unname(getReducedDims(proj, "LSI")), unname(m[, -1]))
    expect_equal(getReducedDims(proj, "LSI", scaleDims = TRUE,
                                dimsToUse = 1:3),
                 ((m - rowMeans(m)) / apply(m, 1, stats::sd))[, 1:3],
                 tolerance = 1e-14)
    rd <- getReducedDims(proj, "LSI", returnMatrix = FALSE)
    expect_identical(rd$dimsKept, 2:5)
    proj <- addClusters(proj, reducedDims = "LSI", verbose = FALSE)
    want <- addClusters(m[, -1], biasVals = proj@cellColData$nFrags,
                        verbose = FALSE)
    expect_identical(proj@cellColData$Clusters, want)
    again <- addClusters(ArchRProj = proj, reducedDims = "LSI", name = "C2",
                         verbose = FALSE)
    expect_identical(again@cellColData$C2, want)
    expect_error(addClusters(proj, reducedDims = "LSI"),
                 class = "epione_error_input", regexp = "force = TRUE")
    proj <- addUMAP(ArchRProj = proj, reducedDims = "LSI", verbose = FALSE,
                    threads = 1, saveModel = FALSE)
    u <- getEmbedding(proj)
    um <- addUMAP(m[, -1], verbose = FALSE, threads = 1, saveModel = FALSE)
    expect_equal(unname(as.matrix(u)), unname(um), ignore_attr = TRUE)
    expect_identical(rownames(u), rownames(m))
    expect_identical(colnames(u), paste0("LSI#UMAP_Dimension_", 1:2))
    expect_true(is.na(getEmbedding(proj, returnDF = FALSE)$params$uwotModel))
    expect_s3_class(plotEmbedding(proj, name = "Clusters"), "ggplot")
    pl <- plotEmbedding(proj, name = c("Clusters", "nFrags"))
    expect_identical(names(pl), c("Clusters", "nFrags"))
    expect_error(plotEmbedding(proj, name = "nope"),
                 class = "epione_error_input", regexp = "cellColData")
    expect_error(getEmbedding(proj, "TSNE"), class = "epione_error_input",
                 regexp = "addUMAP")
    expect_error(addClusters(proj, reducedDims = "LSI", name = "C2",
                             biasCol = "depth"),
                 class = "epione_error_input", regexp = "testBias = FALSE")
})

test_that("project addClusters / addUMAP: threads 1 and 2 identical", {
    proj <- blob_project()$proj
    run <- function(t) {
        p <- addClusters(proj, reducedDims = "LSI", sampleCells = 150,
                         threads = t, verbose = FALSE)
        p <- addUMAP(p, reducedDims = "LSI", threads = t, verbose = FALSE,
                     saveModel = FALSE)
        list(p@cellColData$Clusters, getEmbedding(p))
    }
    expect_identical(run(1L), run(2L))
})
