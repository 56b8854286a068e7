# Benchmark: peakToGeneLinks on a synthetic 10k-cell multiome (fixed seed,
# ~670k candidate pairs), against ArchR 1.0.3's own addPeak2GeneLinks steps
# run in memory (its determineOverlapCpp and rowCorCpp, nabor::knn, the
# per-group Matrix::rowSums of .getGroupMatrix), which leaves out ArchR's
# Arrow reads and so favours ArchR. The seed tutorial's Python port took
# 7.6 s for 726k pairs on PBMC 10k multiome (different machine).
# Usage: EPIONE_REFLIB=/work/reflib R_LIBS=.lib Rscript bench/p2g.R
# Env: P2G_CELLS (10000), P2G_REPS (3), P2G_THREADS (2).
suppressPackageStartupMessages({
    library(Matrix)
    library(SummarizedExperiment)
})
reflib <- Sys.getenv("EPIONE_REFLIB", "/work/reflib")
has_archr <- dir.exists(file.path(reflib, "ArchR"))
if (has_archr) .libPaths(c(.libPaths(), reflib))
library(epione)
n_cells <- as.integer(Sys.getenv("P2G_CELLS", "10000"))
reps <- as.integer(Sys.getenv("P2G_REPS", "3"))
threads <- as.integer(Sys.getenv("P2G_THREADS", "2"))

# Cells in 8 clusters; peaks and genes prefer some clusters, so linked
# features co-vary across metacells. 10 chromosomes of 150 Mb.
synthetic_multiome <- function(n_cells, n_peaks = 1e5, n_genes = 2e4,
                               n_clusters = 8, seed = 1) {
    set.seed(seed)
    cl <- sample.int(n_clusters, n_cells, replace = TRUE)
    centers <- matrix(stats::rnorm(n_clusters * 30, sd = 3), n_clusters)
    emb <- centers[cl, ] + matrix(stats::rnorm(n_cells * 30), n_cells)
    cells <- sprintf("cell%05d", seq_len(n_cells))
    rownames(emb) <- cells
    counts <- function(n_feat, per_cell) {
        aff <- matrix(stats::rgamma(n_feat * n_clusters, 0.5), n_feat)
        ij <- lapply(seq_len(n_clusters), function(k) {
            j <- which(cl == k)
            i <- sample.int(n_feat, per_cell * length(j), replace = TRUE,
                            prob = aff[, k])
            cbind(i, rep(j, each = per_cell))
        })
        ij <- do.call(rbind, ij)
        m <- sparseMatrix(ij[, 1], ij[, 2], x = 1, dims = c(n_feat, n_cells))
        colnames(m) <- cells
        m
    }
    place <- function(n) {
        chr <- sample.int(10, n, replace = TRUE)
        pos <- sample.int(150e6 - 1000, n, replace = TRUE)
        o <- order(chr, pos)
        GenomicRanges::GRanges(paste0("chr", chr[o]),
                               IRanges::IRanges(pos[o], width = 500))
    }
    genes <- place(n_genes)
    GenomicRanges::end(genes) <- GenomicRanges::start(genes)
    list(atac = SummarizedExperiment(list(counts = counts(n_peaks, 2000)),
                                     rowRanges = place(n_peaks)),
         rna = SummarizedExperiment(list(counts = counts(n_genes, 1500)),
                                    rowRanges = genes),
         emb = emb)
}

# ArchR 1.0.3's addPeak2GeneLinks body (IntegrativeAnalysis.R) on matrices.
archr_p2g <- function(d, k = 100, knnIteration = 500, maxDist = 250000) {
    set.seed(1)
    rD <- d$emb
    idx <- sample(seq_len(nrow(rD)), knnIteration,
                  replace = !nrow(rD) >= knnIteration)
    knn <- nabor::knn(data = rD, query = rD[idx, ], k = k)$nn.idx
    keep <- ArchR:::determineOverlapCpp(knn, floor(0.8 * k))
    knn <- knn[keep == 0, ]
    groups <- lapply(seq_len(nrow(knn)), function(x) rownames(rD)[knn[x, ]])
    group_mat <- function(m) {
        out <- matrix(0, nrow(m), length(groups))
        for (z in seq_along(groups)) {
            j <- which(colnames(m) %in% groups[[z]])
            out[, z] <- Matrix::rowSums(m[, j, drop = FALSE])
        }
        log2(t(t(out) / colSums(out)) * 1e4 + 1)
    }
    ga <- group_mat(assay(d$atac))
    gr <- group_mat(assay(d$rna))
    o <- S4Vectors::DataFrame(GenomicRanges::findOverlaps(
        suppressWarnings(GenomicRanges::resize(rowRanges(d$rna),
                                               2 * maxDist + 1, "center")),
        GenomicRanges::resize(rowRanges(d$atac), 1, "center"),
        ignore.strand = TRUE))
    colnames(o) <- c("B", "A")
    o$Correlation <- ArchR:::rowCorCpp(as.integer(o$A), as.integer(o$B),
                                       ga, gr)
    o$VarQATAC <- ArchR:::.getQuantiles(matrixStats::rowVars(ga))[o$A]
    o$VarQRNA <- ArchR:::.getQuantiles(matrixStats::rowVars(gr))[o$B]
    n <- ncol(ga)
    tstat <- o$Correlation / sqrt(pmax(1 - o$Correlation^2, 1e-17,
                                       na.rm = TRUE) / (n - 2))
    o$FDR <- p.adjust(2 * pt(-abs(tstat), n - 2), method = "fdr")
    o
}

timed <- function(expr_fn, reps) {
    runs <- lapply(seq_len(reps), function(i) {
        gc()
        t <- system.time(v <- expr_fn())
        list(t = t, v = v)
    })
    el <- vapply(runs, function(r) r$t[["elapsed"]], 1)
    us <- vapply(runs, function(r) r$t[["user.self"]], 1)
    list(elapsed = stats::median(el), user = stats::median(us),
         value = runs[[1]]$v)
}

t_gen <- system.time(d <- synthetic_multiome(n_cells))[["elapsed"]]
cat(sprintf("synthetic multiome: %d cells, %d peaks, %d genes (%.1f s)\n",
            n_cells, nrow(d$atac), nrow(d$rna), t_gen))
epi <- timed(function() peakToGeneLinks(d$atac, d$rna, d$emb,
                                        threads = threads), reps)
cat(sprintf("pairs: %d, metacells: %d\n", nrow(epi$value),
            S4Vectors::metadata(epi$value)$nGroups))
cat(sprintf("%-22s %8s %8s %8s %8s\n", "tool", "elapsed", "user",
            "threads", "ratio"))
cat(sprintf("%-22s %8.2f %8.2f %8d %8s\n", "epione peakToGeneLinks",
            epi$elapsed, epi$user, threads, "1.0"))
cat(sprintf("%-22s %8.2f %8s %8s %8.2f\n", "seed (Python, 726k)", 7.61,
            "-", "-", 7.61 / epi$elapsed))
same <- NA
if (has_archr && requireNamespace("nabor", quietly = TRUE)) {
    ref <- timed(function() archr_p2g(d), 1L)
    same <- identical(ref$value$A, epi$value$idxATAC) &&
        identical(ref$value$B, epi$value$idxRNA) &&
        isTRUE(all.equal(ref$value$Correlation, epi$value$Correlation,
                         tolerance = 1e-10)) &&
        isTRUE(all.equal(ref$value$FDR, epi$value$FDR, tolerance = 1e-10))
    cat(sprintf("%-22s %8.2f %8.2f %8d %8.2f\n", "ArchR steps, in memory",
                ref$elapsed, ref$user, 1L, ref$elapsed / epi$elapsed))
}

# Real data: the ArchR reference inputs, against ArchR's own full-function
# times recorded in timings.tsv (same kind of 2-core machine, 1 thread).
ref_dir <- Sys.getenv("EPIONE_SHARED", "/work/shared")
ref_dir <- file.path(ref_dir, "data", "ref", "archr")
if (dir.exists(ref_dir)) {
    rd <- function(set, f) utils::read.delim(gzfile(file.path(ref_dir, set,
                                                              f)))
    mtx <- function(set, stem) {
        m <- methods::as(Matrix::readMM(gzfile(file.path(ref_dir, set,
            paste0(stem, ".mtx.gz")))), "CsparseMatrix")
        colnames(m) <- rd(set, paste0(stem, "_cols.tsv.gz"))$cellNames
        m
    }
    tm <- rd(".", "timings.tsv")
    archr_s <- function(pattern) tm$elapsed_s[grep(pattern, tm$step,
                                                  fixed = TRUE)][1]
    for (set in c("pbsmall", "multiome")) {
        pr <- rd(set, "peak_matrix_rows.tsv.gz")
        gr <- rd(set, "gene_expression_matrix_rows.tsv.gz")
        atac <- SummarizedExperiment(list(x = mtx(set, "peak_matrix")),
            rowRanges = GenomicRanges::GRanges(pr$seqnames,
                IRanges::IRanges(pr$start, pr$end)))
        rna <- SummarizedExperiment(list(x = mtx(set,
            "gene_expression_matrix")), rowRanges = GenomicRanges::GRanges(
            gr$seqnames, IRanges::IRanges(gr$start, gr$end)))
        lsi <- rd(set, "lsi_matSVD.tsv.gz")
        emb <- as.matrix(lsi[, -1])
        rownames(emb) <- lsi$cellNames
        emb <- (emb - rowMeans(emb)) / apply(emb, 1, stats::sd)
        k <- if (set == "pbsmall") 15 else 30
        it <- if (set == "pbsmall") 200 else 500
        e1 <- timed(function() peakToGeneLinks(atac, rna, emb, k = k,
            knnIteration = it, threads = threads), reps)
        e2 <- timed(function() coAccessibility(atac, emb, k = k,
            knnIteration = it, threads = threads), reps)
        a1 <- archr_s(paste0(set, ".addPeak2GeneLinks(GeneExpressionMatrix"))
        a2 <- archr_s(paste0(set, ".addCoAccessibility"))
        row <- "%-9s %-16s epione %6.2f s  ArchR (recorded) %6.2f s  ratio %6.1f\n"
        cat(sprintf(row, set, "Peak2GeneLinks", e1$elapsed, a1,
                    a1 / e1$elapsed))
        cat(sprintf(row, set, "CoAccessibility", e2$elapsed, a2,
                    a2 / e2$elapsed))
    }
}

# Group BigWigs on ArchR's shipped PBSmall project: ArchR getGroupBW (Arrow
# fragments) vs groupCoverages + exportGroupBW (fragment file).
zip <- file.path(Sys.getenv("EPIONE_SHARED", "/work/shared"), "data",
                 "fragments", "pbsmall", "PBSmall_ArchRProject.zip")
if (has_archr && file.exists(zip)) {
    dir <- tempfile("pbsmall")
    utils::unzip(zip, exdir = dir)
    old_wd <- setwd(dir)   # ArchR writes ArchRLogs/ into the working dir
    suppressPackageStartupMessages(library(ArchR))
    ArchR::addArchRThreads(1, force = TRUE)
    proj <- ArchR::loadArchRProject(file.path(dir, "PBSmall"),
                                    showLogo = FALSE)
    groups <- stats::setNames(proj$Clusters, proj$cellNames)
    tss <- stats::setNames(proj$ReadsInTSS, proj$cellNames)
    frag <- sub("PBSmall_ArchRProject.zip$", "PBSmall.tsv.gz", zip)
    a <- timed(function() ArchR::getGroupBW(proj, groupBy = "Clusters",
        normMethod = "ReadsInTSS", verbose = FALSE), 1L)
    e <- timed(function() exportGroupBW(groupCoverages(frag, groups,
        normMethod = "ReadsInTSS", normBy = tss, threads = threads),
        file.path(dir, "epione_bw"), chromSizes = ArchR::getChromSizes(proj)),
        reps)
    setwd(old_wd)
    cat(sprintf("%-9s %-16s epione %6.2f s  ArchR %6.2f s  ratio %6.1f\n",
                "pbsmall", "getGroupBW", e$elapsed, a$elapsed,
                a$elapsed / e$elapsed))
}

# Project steps on the muon multiome set (565 cells): epione's ArchR-named
# project functions against ArchR 1.0.3's recorded times for the same steps
# (ref/archr/timings.tsv: 2-core machine, 1 ArchR thread; a different run,
# so only indicative).
shared <- Sys.getenv("EPIONE_SHARED", "/work/shared")
ref <- file.path(shared, "data", "ref", "archr", "multiome")
if (dir.exists(ref)) {
    rd <- function(f) utils::read.delim(gzfile(file.path(ref, f)))
    M <- file.path(shared, "data", "fragments", "multiome")
    cs <- rd("annotation_chromSizes.tsv.gz")
    g <- rd("annotation_genes_hg38_orgHsEgDb.bed.gz")
    genes <- GenomicRanges::GRanges(g$chr, IRanges::IRanges(g$start0 + 1L,
        g$end), strand = g$strand, symbol = g$symbol)
    dir <- tempfile("mo")
    dir.create(dir)
    a <- createArrowFiles(file.path(M, "test_rna_atac_fragments.tsv.gz"),
        "MO", file.path(dir, "MO"), createGeneAnnotation(genes),
        createGenomeAnnotation(stats::setNames(as.numeric(cs$length),
                                               cs$chr)),
        minFrags = 20, minTSS = 0, addTileMatrix = FALSE,
        addGeneScoreMatrix = FALSE, QCDir = NULL, threads = threads,
        validBarcodes = readLines(file.path(M, "barcodes.tsv.gz")),
        verbose = FALSE, force = TRUE)
    proj <- ArchRProject(a, file.path(dir, "proj"), copyArrows = FALSE,
        genomeAnnotation = createGenomeAnnotation(stats::setNames(
            as.numeric(cs$length), cs$chr)))
    ps <- rd("peakset_tiles.tsv.gz")
    proj <- addPeakMatrix(addPeakSet(proj, GenomicRanges::GRanges(
        ps$seqnames, IRanges::IRanges(ps$start, ps$end))))
    lsi <- rd("lsi_matSVD.tsv.gz")
    proj@reducedDims$IterativeLSI <- list(matSVD = `rownames<-`(
        as.matrix(lsi[, -1]), lsi$cellNames), scaleDims = TRUE)
    cnt <- methods::as(Matrix::readMM(gzfile(file.path(M,
        "rna_counts.mtx.gz"))), "CsparseMatrix")
    rr <- rd("rna_gene_ranges.tsv.gz")
    rownames(cnt) <- rr$name
    colnames(cnt) <- paste0("MO#", readLines(file.path(M, "barcodes.tsv.gz")))
    seRNA <- SummarizedExperiment::SummarizedExperiment(list(counts = cnt),
        rowRanges = GenomicRanges::GRanges(rr$seqnames, IRanges::IRanges(
            rr$start, rr$end)))
    tim <- utils::read.delim(file.path(dirname(ref), "timings.tsv"))
    archr_t <- function(pat) tim$elapsed_s[grep(pat, tim$step, fixed = TRUE)]
    steps <- list(
        addGeneExpressionMatrix = list(function() proj <<-
            addGeneExpressionMatrix(proj, seRNA, verbose = FALSE),
            "multiome.addGeneExpressionMatrix"),
        addPeak2GeneLinks = list(function() proj <<- addPeak2GeneLinks(proj,
            dimsToUse = 1:10, k = 30, threads = threads),
            "multiome.addPeak2GeneLinks"),
        addCoAccessibility = list(function() proj <<- addCoAccessibility(proj,
            dimsToUse = 1:10, k = 30, threads = threads),
            "multiome.addCoAccessibility"))
    cat("load:", system("uptime", intern = TRUE), "\n")
    for (nm in names(steps)) {
        e <- timed(steps[[nm]][[1]], 1L)
        at <- archr_t(steps[[nm]][[2]])
        cat(sprintf("%-9s %-24s epione %6.2f s (cpu %5.2f)  ArchR %6.2f s",
                    "multiome", nm, e$elapsed, e$user, at),
            sprintf(" (recorded)  ratio %6.1f\n", at / e$elapsed))
    }
}
cat("answers agree:", same, "\n")
if (isFALSE(same)) quit(status = 1)
