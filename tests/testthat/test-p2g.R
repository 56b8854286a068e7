# Peak-to-gene links and co-accessibility against ArchR 1.0.3 outputs in
# ../shared/data/ref/archr (multiome and PBSmall), plus bad input.

archr_ref <- function(...) shared_path("data", "ref", "archr", ...)
read_ref <- function(set, f) {
    utils::read.delim(gzfile(archr_ref(set, f)), stringsAsFactors = FALSE)
}
mtx <- function(set, stem, rows_name = NULL) {
    m <- methods::as(Matrix::readMM(gzfile(archr_ref(set,
        paste0(stem, ".mtx.gz")))), "CsparseMatrix")
    colnames(m) <- read_ref(set, paste0(stem, "_cols.tsv.gz"))$cellNames
    m
}
# ArchR's getReducedDims(scaleDims = TRUE): z-score each cell's coordinates.
scaled_lsi <- function(set) {
    lsi <- read_ref(set, "lsi_matSVD.tsv.gz")
    emb <- as.matrix(lsi[, -1])
    rownames(emb) <- lsi$cellNames
    (emb - rowMeans(emb)) / matrixStats_rowSds(emb)
}
matrixStats_rowSds <- function(m) apply(m, 1L, stats::sd)
archr_inputs <- function(set) {
    pr <- read_ref(set, "peak_matrix_rows.tsv.gz")
    gr <- read_ref(set, "gene_expression_matrix_rows.tsv.gz")
    gm <- mtx(set, "gene_expression_matrix")
    rownames(gm) <- gr$name
    list(atac = SummarizedExperiment::SummarizedExperiment(
             list(counts = mtx(set, "peak_matrix")),
             rowRanges = GenomicRanges::GRanges(pr$seqnames,
                 IRanges::IRanges(pr$start, pr$end))),
         rna = SummarizedExperiment::SummarizedExperiment(list(x = gm),
             rowRanges = GenomicRanges::GRanges(gr$seqnames,
                 IRanges::IRanges(gr$start, gr$end))),
         emb = scaled_lsi(set))
}
expect_same_groups <- function(links, set) {
    kg <- read_ref(set, "p2g_GEX_knn_groups.tsv.gz")
    want <- split(kg$cellNames, kg$group)
    got <- S4Vectors::metadata(links)$KNNList
    expect_length(got, length(want))
    expect_true(all(mapply(setequal, got, want)))
}
expect_p2g_equal <- function(got, want) {
    expect_identical(got$idxATAC, want$idxATAC)
    expect_identical(got$idxRNA, want$idxRNA)
    for (v in c("Correlation", "FDR", "VarQATAC", "VarQRNA")) {
        expect_identical(is.na(got[[v]]), is.na(want[[v]]), label = v)
        expect_equal(got[[v]], want[[v]], tolerance = 1e-10, label = v)
    }
}

test_that("peakToGeneLinks reproduces ArchR on the multiome set", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    d <- archr_inputs("multiome")
    run <- function(t) peakToGeneLinks(d$atac, d$rna, d$emb, k = 30,
                                       knnIteration = 500, threads = t)
    got <- run(1L)
    expect_same_groups(got, "multiome")
    want <- read_ref("multiome", "p2g_GEX_full.tsv.gz")
    expect_p2g_equal(got, want)
    expect_identical(got$gene, want$gene_name)
    expect_identical(got$peakStart, want$peak_start)
    expect_identical(run(2L), got)
})

test_that("peakToGeneLinks and getPeak2GeneLinks reproduce ArchR on PBSmall", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    d <- archr_inputs("pbsmall")
    got <- peakToGeneLinks(d$atac, d$rna, d$emb, k = 15, knnIteration = 200,
                           threads = 2)
    expect_same_groups(got, "pbsmall")
    expect_p2g_equal(got, read_ref("pbsmall", "p2g_GEX_full.tsv.gz"))
    want <- read_ref("pbsmall", "p2g_GEX_getPeak2GeneLinks_defaults.tsv.gz")
    expect_p2g_equal(getPeak2GeneLinks(got, returnLoops = FALSE), want)
    neg <- getPeak2GeneLinks(got, corCutOff = -1, FDRCutOff = 1,
                             returnLoops = FALSE)
    expect_equal(nrow(neg), 0L)   # ArchR quirk: negative cut-off means <=
    loops <- getPeak2GeneLinks(got)$Peak2GeneLinks
    expect_s4_class(loops, "GRanges")
    expect_true(all(loops$value >= 0.45 & loops$FDR <= 1e-4))
})

test_that("coAccessibility reproduces ArchR on PBSmall", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    d <- archr_inputs("pbsmall")
    coa <- coAccessibility(d$atac, d$emb, k = 15, knnIteration = 200,
                           threads = 2)
    expect_equal(nrow(coa), 44482L)   # NOTES.md section 11
    got <- getCoAccessibility(coa, corCutOff = 0.5, returnLoops = FALSE)
    want <- read_ref("pbsmall",
                     "coaccessibility_getCoAccessibility_cor0.5.tsv.gz")
    expect_identical(got$queryHits, want$queryHits)
    expect_identical(got$subjectHits, want$subjectHits)
    for (v in c("correlation", "Variability1", "Variability2", "Pval", "FDR",
                "VarQuantile1", "VarQuantile2")) {
        expect_equal(got[[v]], want[[v]], tolerance = 1e-10, label = v)
    }
    # |r| = 1 (duplicated peaks) makes TStat 1 / sqrt(rounding noise).
    fin <- abs(want$correlation) < 1 - 1e-9
    expect_equal(got$TStat[fin], want$TStat[fin], tolerance = 1e-8)
    loops <- getCoAccessibility(coa)$CoAccessibility
    expect_true(all(loops$value >= 0.5))
})

test_that("correlations equal a plain R computation on the metacells", {
    ex <- p2gExampleData()
    links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 10,
                             knnIteration = 60, threads = 1)
    groups <- S4Vectors::metadata(links)$KNNList
    agg <- function(x) {
        m <- vapply(groups, function(cells)
            Matrix::rowSums(x[, cells, drop = FALSE]), numeric(nrow(x)))
        log2(t(t(m) / colSums(m)) * 1e4 + 1)
    }
    a <- agg(SummarizedExperiment::assay(ex$atac))
    r <- agg(SummarizedExperiment::assay(ex$rna))
    i <- seq(1, nrow(links), length.out = 50)
    want <- mapply(function(p, g) suppressWarnings(stats::cor(a[p, ], r[g, ])),
                   links$idxATAC[i], links$idxRNA[i])
    expect_equal(links$Correlation[i], want, tolerance = 1e-12)
    n <- length(groups)
    tt <- want / sqrt((1 - want^2) / (n - 2))
    expect_true(all(links$distance <= 250000))
    ok <- !is.na(want)
    expect_true(all(links$FDR[i][ok] >= (2 * stats::pt(-abs(tt), n - 2))[ok]
                    - 1e-15))
})

test_that("the caller's random number stream is left untouched", {
    ex <- p2gExampleData()
    set.seed(42)
    a <- stats::runif(1)
    set.seed(42)
    invisible(peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 10,
                              knnIteration = 60, threads = 1))
    expect_identical(stats::runif(1), a)
})

test_that("bad inputs are classed errors that name the fix", {
    ex <- p2gExampleData()
    p2g <- function(atac = ex$atac, rna = ex$rna, emb = ex$embedding, ...)
        peakToGeneLinks(atac, rna, emb, k = 10, knnIteration = 60,
                        threads = 1, ...)
    no_tss <- SummarizedExperiment::SummarizedExperiment(
        list(x = SummarizedExperiment::assay(ex$rna)))
    expect_error(p2g(rna = no_tss), class = "epione_error_input",
                 regexp = "rowRanges\\(rna\\)")
    far <- ex$rna
    SummarizedExperiment::rowRanges(far) <- GenomicRanges::GRanges("chrUn",
        IRanges::IRanges(seq_len(nrow(far)) * 10, width = 1))
    expect_error(p2g(rna = far), class = "epione_error_input",
                 regexp = "seqlevelsStyle|raise maxDist")
    rna2 <- ex$rna
    colnames(rna2) <- paste0("x", colnames(rna2))
    expect_error(p2g(rna = rna2), class = "epione_error_input",
                 regexp = "intersect\\(colnames")
    expect_error(p2g(emb = ex$embedding[1:5, ]), class = "epione_error_input",
                 regexp = "lower k")
    emb <- ex$embedding
    emb[3, 2] <- NA
    expect_error(p2g(emb = emb), class = "epione_error_input",
                 regexp = "drop those cells")
    expect_error(p2g(atac = SummarizedExperiment::assay(ex$atac)),
                 class = "epione_error_input", regexp = "SummarizedExperiment")
    expect_error(peakToGeneLinks(ex$atac, ex$rna, ex$embedding, threads = 0),
                 class = "epione_error_input", regexp = "threads = 1")
    dup <- ex$embedding
    rownames(dup)[2] <- rownames(dup)[1]
    expect_error(p2g(emb = dup), class = "epione_error_input",
                 regexp = "one row")
    expect_error(coAccessibility(ex$atac, emb, k = 10, threads = 1),
                 class = "epione_error_input", regexp = "NA")
})

test_that("a SingleCellExperiment's reducedDim can be the embedding", {
    skip_if_not_installed("SingleCellExperiment")
    ex <- p2gExampleData()
    sce <- methods::as(ex$atac, "SingleCellExperiment")
    SingleCellExperiment::reducedDim(sce, "IterativeLSI") <-
        ex$embedding[colnames(sce), ]
    a <- peakToGeneLinks(sce, ex$rna, "IterativeLSI", k = 10,
                         knnIteration = 60, threads = 1)
    b <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding[colnames(sce), ],
                         k = 10, knnIteration = 60, threads = 1)
    expect_identical(a, b)
})

test_that("addEmpiricalPval follows ArchR's null-correlation procedure", {
    ex <- p2gExampleData()
    run <- function(emp) peakToGeneLinks(ex$atac, ex$rna, ex$embedding,
        k = 10, knnIteration = 60, addEmpiricalPval = emp, threads = 1)
    got <- run(TRUE)
    plain <- run(FALSE)
    expect_identical(got[, names(plain)], plain)
    # ArchR: set.seed(seed); sample(seed cells); then per chromosome of the
    # pairs sample(other-chromosome peaks, 1000) x the chromosome's genes.
    groups <- S4Vectors::metadata(got)$KNNList
    agg <- function(x) {
        m <- vapply(groups, function(cl) Matrix::rowSums(x[, cl]),
                    numeric(nrow(x)))
        log2(t(t(m) / colSums(m)) * 1e4 + 1)
    }
    a <- agg(SummarizedExperiment::assay(ex$atac))
    r <- agg(SummarizedExperiment::assay(ex$rna))
    seqa <- as.character(GenomicRanges::seqnames(
        SummarizedExperiment::rowRanges(ex$atac)))
    set.seed(1)
    invisible(sample(seq_len(nrow(ex$embedding)), 60))
    chr_of_pair <- seqa[got$idxATAC]
    null <- unlist(lapply(unique(chr_of_pair), function(chr) {
        id <- which(seqa != chr)
        trans <- if (length(id) > 1000) sample(id, 1000) else id
        genes <- unique(got$idxRNA[chr_of_pair == chr])
        g <- expand.grid(trans, genes)
        suppressWarnings(mapply(function(i, j) stats::cor(a[i, ], r[j, ]),
                                g[[1]], g[[2]]))
    }))
    null <- null[!is.na(null)]
    want <- 2 * stats::pnorm(-abs((got$Correlation - mean(null)) /
                                  stats::sd(null)))
    expect_equal(got$EmpPval, want, tolerance = 1e-8)
    expect_equal(got$EmpFDR, stats::p.adjust(want, "fdr"), tolerance = 1e-8)
})

# ---- project forms ----------------------------------------------------------
# The multiome project rebuilt from the shared fragments (565 cells, as
# ArchR), with ArchR's peak set, LSI and the raw RNA counts: every step of
# the project path must give ArchR's saved outputs.

mo_env <- new.env()
multiome_project <- function() {
    if (!is.null(mo_env$proj)) return(mo_env$proj)
    R <- archr_ref("multiome")
    M <- shared_path("data", "fragments", "multiome")
    g <- utils::read.delim(file.path(R,
                                     "annotation_genes_hg38_orgHsEgDb.bed.gz"))
    genes <- GenomicRanges::GRanges(g$chr, IRanges::IRanges(g$start0 + 1L,
        g$end), strand = g$strand, symbol = g$symbol)
    ga <- createGeneAnnotation(genes = genes,
        TSS = unique(GenomicRanges::resize(genes, 1L, "start")))
    cs <- utils::read.delim(file.path(R, "annotation_chromSizes.tsv.gz"))
    bl <- utils::read.delim(file.path(R, "annotation_blacklist_hg38.bed.gz"))
    gn <- createGenomeAnnotation(stats::setNames(as.numeric(cs$length),
        cs$chr), GenomicRanges::GRanges(bl$chr, IRanges::IRanges(
        bl$start0 + 1L, bl$end)))
    d <- file.path(tempdir(), "p2g-mo")
    dir.create(d, showWarnings = FALSE)
    a <- createArrowFiles(file.path(M, "test_rna_atac_fragments.tsv.gz"),
        "MO", file.path(d, "MO"), ga, gn, minFrags = 20, minTSS = 0,
        validBarcodes = readLines(file.path(M, "barcodes.tsv.gz")),
        addTileMatrix = FALSE, addGeneScoreMatrix = FALSE, QCDir = NULL,
        threads = 2, verbose = FALSE, force = TRUE)
    proj <- ArchRProject(a, file.path(d, "proj"), copyArrows = FALSE,
                         geneAnnotation = ga, genomeAnnotation = gn)
    ps <- read_ref("multiome", "peakset_tiles.tsv.gz")
    proj <- addPeakMatrix(addPeakSet(proj, GenomicRanges::GRanges(
        ps$seqnames, IRanges::IRanges(ps$start, ps$end))))
    cl <- read_ref("multiome", "clusters_umap.tsv.gz")
    proj@cellColData$Clusters <- cl$Clusters[match(
        rownames(proj@cellColData), cl$cellNames)]
    lsi <- read_ref("multiome", "lsi_matSVD.tsv.gz")
    ctd <- read_ref("multiome", "lsi_svd_d_corToDepth.tsv.gz")
    proj@reducedDims$IterativeLSI <- list(matSVD = `rownames<-`(
        as.matrix(lsi[, -1]), lsi$cellNames), scaleDims = TRUE,
        corToDepth = list(scaled = ctd$corToDepth_scaled,
                          none = ctd$corToDepth_none))
    mo_env$proj <- proj
    proj
}
multiome_rna <- function() {
    M <- shared_path("data", "fragments", "multiome")
    cnt <- methods::as(Matrix::readMM(gzfile(file.path(M,
        "rna_counts.mtx.gz"))), "CsparseMatrix")
    feat <- utils::read.delim(gzfile(file.path(M, "rna_features.tsv.gz")))
    rr <- read_ref("multiome", "rna_gene_ranges.tsv.gz")
    rownames(cnt) <- feat$id
    colnames(cnt) <- paste0("MO#", readLines(file.path(M, "barcodes.tsv.gz")))
    SummarizedExperiment::SummarizedExperiment(list(counts = cnt),
        rowRanges = GenomicRanges::GRanges(rr$seqnames, IRanges::IRanges(
            rr$start, rr$end), strand = rr$strand))
}

test_that("addGeneExpressionMatrix writes ArchR's GeneExpressionMatrix", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    proj <- addGeneExpressionMatrix(multiome_project(), multiome_rna(),
                                    verbose = FALSE)
    mo_env$proj <- proj
    expect_true("GeneExpressionMatrix" %in% getAvailableMatrices(proj))
    se <- getMatrixFromProject(proj, "GeneExpressionMatrix", verbose = FALSE)
    want <- mtx("multiome", "gene_expression_matrix")
    wr <- read_ref("multiome", "gene_expression_matrix_rows.tsv.gz")
    rr <- SummarizedExperiment::rowRanges(se)
    expect_identical(rr$name, wr$name)
    expect_identical(rr$idx, wr$idx)
    expect_identical(GenomicRanges::start(rr), wr$start)
    expect_identical(colnames(se), colnames(want))
    got <- SummarizedExperiment::assay(se)
    expect_equal(max(abs(got - want)), 0, tolerance = 1e-10)
    cc <- read_ref("multiome", "cellColData_final.tsv.gz")
    cc <- cc[match(rownames(proj@cellColData), cc$cellNames), ]
    for (v in c("Gex_nUMI", "Gex_nGenes", "Gex_MitoRatio", "Gex_RiboRatio")) {
        expect_equal(proj@cellColData[[v]], cc[[v]], tolerance = 1e-12,
                     label = v)
    }
})

test_that("addPeak2GeneLinks on the project reproduces ArchR's links", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    proj <- mo_env$proj
    skip_if(is.null(proj) || !"GeneExpressionMatrix" %in%
            getAvailableMatrices(proj), "GeneExpressionMatrix test failed")
    proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 30,
                              knnIteration = 500, threads = 2)
    got <- S4Vectors::metadata(getPeakSet(proj))$Peak2GeneLinks
    expect_same_groups(got, "multiome")
    want <- read_ref("multiome", "p2g_GEX_full.tsv.gz")
    expect_p2g_equal(got, want)
    expect_identical(names(got), c("idxATAC", "idxRNA", "Correlation", "FDR",
                                   "VarQATAC", "VarQRNA"))
    gs <- S4Vectors::metadata(got)$geneSet
    expect_identical(gs$name[got$idxRNA], want$gene_name)
    expect_identical(GenomicRanges::start(gs)[got$idxRNA], want$gene_start)
    ps <- S4Vectors::metadata(got)$peakSet
    expect_identical(GenomicRanges::start(ps)[got$idxATAC], want$peak_start)
    neg <- getPeak2GeneLinks(proj, corCutOff = -1, FDRCutOff = 1,
                             returnLoops = FALSE)
    expect_equal(nrow(neg), 0L)   # as ArchR's saved table
    expect_identical(getPeak2GeneLinks(proj, corCutOff = 0.3,
                                       FDRCutOff = 0.01),
                     getPeak2GeneLinks(got, corCutOff = 0.3,
                                       FDRCutOff = 0.01))
    # the same links from the matrix-level engine on ArchR's own matrices
    d <- archr_inputs("multiome")
    eng <- peakToGeneLinks(d$atac, d$rna, d$emb, k = 30, threads = 1)
    expect_identical(got$Correlation, eng$Correlation)
    mo_env$proj <- proj
})

test_that("addCoAccessibility on the project gives ArchR's 77,822 pairs", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    proj <- mo_env$proj
    skip_if(is.null(proj), "multiome project not built")
    proj <- addCoAccessibility(proj, dimsToUse = 1:10, k = 30,
                               knnIteration = 500, threads = 2)
    coa <- S4Vectors::metadata(getPeakSet(proj))$CoAccessibility
    expect_equal(nrow(coa), 77822L)   # NOTES.md section 13
    expect_same_groups(coa, "multiome")
    d <- archr_inputs("multiome")
    eng <- coAccessibility(d$atac, d$emb, k = 30, maxDist = 1e5, threads = 1)
    expect_identical(coa$correlation, eng$correlation)
    loops <- getCoAccessibility(proj)$CoAccessibility
    expect_true(all(loops$value >= 0.5))
    expect_identical(getCoAccessibility(proj, returnLoops = FALSE),
                     getCoAccessibility(coa, returnLoops = FALSE))
})

test_that("getReducedDims' corCutOff and scaleDims apply to the project", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    proj <- multiome_project()
    rd <- epione:::.project_dims(proj, "IterativeLSI", 1:10, NULL, 0.75)
    expect_equal(rd, scaled_lsi("multiome")[rownames(rd), ],
                 tolerance = 1e-12)
    # unscaled: dim 1 correlates 0.83 with depth and is dropped, as ArchR
    un <- epione:::.project_dims(proj, "IterativeLSI", 1:10, FALSE, 0.75)
    expect_identical(ncol(un), 9L)
})

test_that("project forms fail with classed, actionable errors", {
    ex <- p2gExampleProject(file.path(tempdir(), "p2g-bad"))
    proj <- ex$proj
    expect_error(addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 10),
                 class = "epione_error_input",
                 regexp = "addGeneExpressionMatrix")
    nops <- proj
    nops@peakSet <- NULL
    expect_error(addCoAccessibility(nops, k = 10),
                 class = "epione_error_input", regexp = "addPeakSet")
    nord <- proj
    nord@reducedDims <- S4Vectors::SimpleList()
    expect_error(addCoAccessibility(nord, k = 10),
                 class = "epione_error_input", regexp = "addIterativeLSI")
    expect_error(addCoAccessibility(proj, dimsToUse = 1:10, k = 5000),
                 class = "epione_error_input", regexp = "lower k")
    bad <- ex$seRNA
    colnames(bad) <- sub("^MO#", "X#", colnames(bad))
    expect_error(addGeneExpressionMatrix(proj, bad, verbose = FALSE),
                 class = "epione_error_input",
                 regexp = "0 of [0-9]+ project cells")
    part <- ex$seRNA[, -1]
    expect_warning(addGeneExpressionMatrix(proj, part, verbose = FALSE),
                   class = "epione_warning", regexp = "1 of")
    expect_error(addGeneExpressionMatrix(proj, part, strictMatch = TRUE,
                                         verbose = FALSE),
                 class = "epione_error_input", regexp = "subset the project")
    expect_error(getPeak2GeneLinks(proj), class = "epione_error_input",
                 regexp = "addPeak2GeneLinks")
    expect_error(getCoAccessibility(proj), class = "epione_error_input",
                 regexp = "addCoAccessibility")
})

test_that("the bundled example project runs the whole project path", {
    ex <- p2gExampleProject(file.path(tempdir(), "p2g-ok"))
    proj <- addGeneExpressionMatrix(ex$proj, ex$seRNA, verbose = FALSE)
    proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 20,
                              knnIteration = 100, threads = 1)
    links <- getPeak2GeneLinks(proj, returnLoops = FALSE, corCutOff = 0,
                               FDRCutOff = 1, varCutOffATAC = NULL,
                               varCutOffRNA = NULL)
    expect_gt(nrow(links), 0L)
    # Gene expression values are the bundled normalised values again
    se <- getMatrixFromProject(proj, "GeneExpressionMatrix", verbose = FALSE)
    x <- SummarizedExperiment::assay(ex$seRNA)
    x <- x[, colnames(se)]
    expect_equal(as.matrix(SummarizedExperiment::assay(se)),
                 as.matrix(x[rownames(x) %in%
                             SummarizedExperiment::rowRanges(se)$name, ][
                     SummarizedExperiment::rowRanges(se)$name, ]),
                 tolerance = 1e-10, ignore_attr = TRUE)
})

test_that("addGroupCoverages draws ArchR's pseudo-bulk replicates", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    proj <- multiome_project()
    set.seed(1)
    cg <- addGroupCoverages(proj, returnGroups = TRUE, verbose = FALSE)
    want <- read_ref("multiome", "peakcall_pseudobulk_groups.tsv.gz")
    expect_identical(names(cg), sort(unique(want$group)))
    for (g in names(cg)) {
        w <- want[want$group == g, ]
        expect_identical(names(cg[[g]]), unique(w$replicate), label = g)
        for (r in names(cg[[g]])) {
            expect_setequal(unique(cg[[g]][[r]]),
                            w$cellNames[w$replicate == r])
        }
    }
})

test_that("project addPeak2GeneLinks passes cellsToUse and addEmpiricalPval", {
    ex <- p2gExampleProject(file.path(tempdir(), "p2g-emp"))
    proj <- addGeneExpressionMatrix(ex$proj, ex$seRNA, verbose = FALSE)
    cells <- rownames(proj@cellColData)[seq(1, nrow(proj@cellColData), 2)]
    proj <- addPeak2GeneLinks(proj, dimsToUse = 1:10, k = 15,
        knnIteration = 80, cellsToUse = cells, addEmpiricalPval = TRUE,
        threads = 1)
    got <- S4Vectors::metadata(getPeakSet(proj))$Peak2GeneLinks
    expect_true(all(c("EmpPval", "EmpFDR") %in% names(got)))
    expect_true(all(unlist(S4Vectors::metadata(got)$KNNList) %in% cells))
    expect_true(all(got$EmpPval >= 0 & got$EmpPval <= 1, na.rm = TRUE))
})

test_that("the project path reproduces ArchR's links on PBSmall too", {
    skip_if_not(has_shared(), "shared ArchR reference absent")
    d <- file.path(tempdir(), "p2g-pbsmall")
    dir.create(d, showWarnings = FALSE)
    anno <- exampleAnnotation()
    a <- pbsmall_arrow(d, addTileMatrix = FALSE, addGeneScoreMatrix = FALSE)
    proj <- ArchRProject(a, file.path(d, "proj"), copyArrows = FALSE,
                         genomeAnnotation = anno$genomeAnnotation)
    ps <- read_ref("pbsmall", "peakset_tiles.tsv.gz")
    proj <- addPeakMatrix(addPeakSet(proj, GenomicRanges::GRanges(
        ps$seqnames, IRanges::IRanges(ps$start, ps$end))))
    # ArchR's (already normalised) GeneExpressionMatrix as the RNA input:
    # normalising again leaves it unchanged up to rounding
    gm <- mtx("pbsmall", "gene_expression_matrix")
    gr <- read_ref("pbsmall", "gene_expression_matrix_rows.tsv.gz")
    rownames(gm) <- gr$name
    se <- SummarizedExperiment::SummarizedExperiment(list(x = gm),
        rowRanges = GenomicRanges::GRanges(gr$seqnames, IRanges::IRanges(
            gr$start, gr$end), strand = c("+", "-")[gr$strand]))
    proj <- addGeneExpressionMatrix(proj, se, verbose = FALSE)
    lsi <- read_ref("pbsmall", "lsi_matSVD.tsv.gz")
    ctd <- read_ref("pbsmall", "lsi_svd_d_corToDepth.tsv.gz")
    proj@reducedDims$IterativeLSI <- list(matSVD = `rownames<-`(
        as.matrix(lsi[, -1]), lsi$cellNames), scaleDims = TRUE,
        corToDepth = list(scaled = ctd$corToDepth_scaled,
                          none = ctd$corToDepth_none))
    proj <- addPeak2GeneLinks(proj, dimsToUse = 1:5, k = 15,
                              knnIteration = 200, threads = 2)
    got <- S4Vectors::metadata(getPeakSet(proj))$Peak2GeneLinks
    expect_same_groups(got, "pbsmall")
    expect_p2g_equal(got, read_ref("pbsmall", "p2g_GEX_full.tsv.gz"))
    want <- read_ref("pbsmall", "p2g_GEX_getPeak2GeneLinks_defaults.tsv.gz")
    expect_p2g_equal(getPeak2GeneLinks(proj, returnLoops = FALSE), want)
    proj <- addCoAccessibility(proj, dimsToUse = 1:5, k = 15,
                               knnIteration = 200, threads = 2)
    coa <- getCoAccessibility(proj, corCutOff = 0.5, returnLoops = FALSE)
    want <- read_ref("pbsmall",
                     "coaccessibility_getCoAccessibility_cor0.5.tsv.gz")
    expect_identical(coa$queryHits, want$queryHits)
    expect_identical(coa$subjectHits, want$subjectHits)
    for (v in c("correlation", "Variability1", "FDR", "VarQuantile1")) {
        expect_equal(coa[[v]], want[[v]], tolerance = 1e-10, label = v)
    }
})
