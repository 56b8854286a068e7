# Benchmark: epione iterative LSI / clustering / UMAP versus ArchR 1.0.3's own
# functions on the same synthetic binary tile matrix.
#
#   R_LIBS=/work/reflib:.lib Rscript bench/lsi.R [n_cells] [n_tiles] [threads]
#
# Defaults: 10 000 cells x 500 000 tiles (the issue's 50 000 x 500 000 runs
# with `Rscript bench/lsi.R 50000 500000`; it needs ~6 GB). ArchR needs an
# Arrow project for addIterativeLSI, so its time is the sum of the steps it
# runs in memory, called exactly as addIterativeLSI calls them:
# .computeLSI (TF-IDF + irlba) per iteration, addClusters(matrix) (Seurat),
# the variable-feature pseudo-bulk (as .identifyVarFeatures) and uwot.
# Peak memory: the process's VmHWM, reset before each step where the kernel
# allows it (/proc/self/clear_refs). epione also runs with svdMethod =
# "irlba" (ArchR's result, the reference for issue 8's contract) and with
# seed 2 (how far ArchR moves from itself when only the seed changes).
#
# Measured 2026-11-29 18:54 on the quiet machine (10 000 cells x 500 000
# tiles, 28.7 M nnz, 2 threads, load 0.9-1.7): epione iterativeLSI 11.4 s
# wall / 13.4 s cpu (peak 1.84 GB) vs ArchR's LSI iterations 19.0 + 9.5 s,
# var features 0.8 s and clustering 11.2 s = 40.5 s wall / 62.6 s cpu:
# 3.55x wall, 4.66x cpu (svdMethod = "irlba": 32.6 s wall, 1.27x cpu).
# SVD alone 2.85 s vs irlba 17.1 s wall (6.1x cpu). addClusters 3.2 vs
# 11.2 s (3.47x); UMAP 17.9 vs 17.2 s (the same uwot call). Contract vs
# the irlba run: d 2.1e-7, |cor| >= 0.99994; final clusters ARI 1.000.
#
# Measured 2026-11-29 17:41 (5 000 cells x 500 000 tiles, 14.5 M nnz,
# 2 threads, shared 2-core machine at load 4.9-5.7, so compare CPU s):
#   epione iterativeLSI (2 it., incl. clustering) 6.3 s cpu (12.5 wall);
#   ArchR .computeLSI 11.9 + 6.6 s + var features 0.5 s + clustering
#   (addClusters proxy) 6.6 s = 25.6 s cpu: 4.09x (svdMethod = "irlba",
#   ArchR's own SVD call: 15.0 s cpu, 1.71x). Peak RSS 1.33 GB (1.39 GB
#   with irlba).
#   The SVD alone on iteration 1's 25 000 x 4 800 TF-IDF: C++ block Lanczos
#   2.31 s cpu (912 products) vs irlba's C fast path 10.68 s cpu (970):
#   4.6x. Why: irlba multiplies one vector at a time, streaming the sparse
#   matrix through memory for 2 flops per non-zero; blocks of 4 vectors
#   read it once for 8, Lanczos runs on t(X) X (Gram side = cells), so the
#   reorthogonalisation is over 4 800-long vectors instead of 25 000 too.
#   Accuracy (irlba at tol 1e-12, work 80, as truth): C++ d 5e-15 rel, all
#   |cor| 1; irlba's default call (ArchR's) d 1.5e-6 rel, min |cor| 0.99983
#   (sigma 28/29 = 249.603 / 249.600 nearly tie).
#   Contract against the irlba run (= ArchR, bit parity): iteration 1 d
#   1.5e-6, min |cor| 0.99983 (irlba's error, above). Later steps depend on
#   the arbitrary sign of each LSI dimension (scaleDims z-scores cells
#   across dimensions): iteration-1 clusters ARI 0.588, final features
#   shared 8 113 / 25 000, kNN(20) overlap 0.08 (clustering input) / 0.19
#   (unscaled), final clusters ARI 1.000. ArchR itself with seed 2 instead
#   of 1 (another irlba start, other signs): 0.594, 18 564, 0.20 / 0.33,
#   ARI 1.000 -- on this synthetic data cells of one type are exchangeable,
#   so kNN overlap is noise; the cluster ARI is the meaningful number.
#
# Measured 2026-11-29 18:03 (10 000 cells x 500 000 tiles, 28.7 M nnz,
# 2 threads, load 3.4-6.2): iterativeLSI 14.7 s cpu (22.3 wall) vs ArchR
# 39.5 + 13.1 + 1.5 + 14.9 = 69.0 s cpu: 4.68x (svdMethod = "irlba" 50.6 s,
# 1.36x); wall LSI + var 22.3 vs 76.6 s (3.44x). SVD on 25 000 x 9 593:
# 4.61 s cpu (1 136 products) vs irlba 34.5 s (1 324; 22.0 s in an earlier
# run at another load): 4.3-7.5x; vs the irlba run: d 2.1e-7, min |cor|
# 0.99994. Iteration-1 clusters ARI 0.589, features shared 7 886, kNN 0.05
# / 0.11, final ARI 1.000; ArchR seed 2: 0.586, 18 476, 0.12 / 0.22, 1.000.
#
# Before (2026-11-29 15:37, irlba default, load 10.9): 17.5 s vs 25.0 s cpu,
# 1.43x; irlba was ~80 % of epione's LSI cpu.
#
# Measured 2026-11-29 (irlba default, before the C++ SVD), the issue's
# 50 000 cells x 500 000 tiles (145 M nnz), epione only (R_LIBS=.lib,
# 2 threads, load average 7.7 -> 12.5):
#   simulate 290 s wall / 51 s cpu (peak 8.3 GB, the generator);
#   iterativeLSI (2 it.) 249 s wall / 94 s cpu, peak 6.1 GB;
#   addClusters 90 s wall / 31 s cpu, peak 4.5 GB; addUMAP 173 s wall /
#   69 s cpu, peak 4.9 GB; ARI(clusters, simulated types) 0.963.

suppressPackageStartupMessages({
    library(Matrix)
    library(epione)
})
args <- as.numeric(commandArgs(trailingOnly = TRUE))
n_cells <- if (length(args) >= 1) args[1] else 10000
n_tiles <- if (length(args) >= 2) args[2] else 500000
threads <- if (length(args) >= 3) args[3] else 2
have_archr <- requireNamespace("ArchR", quietly = TRUE)
# ArchR is attached last (its internals need its Depends); every epione
# call below is written epione:: because ArchR masks the same names.
if (have_archr) suppressPackageStartupMessages(library(ArchR))
source(file.path(dirname(sub("^--file=", "", grep("^--file=",
    commandArgs(FALSE), value = TRUE)[1])), "utils.R"))

# Synthetic scATAC tile matrix (fixed seed): 8 cell types, each with its
# own programme of 20 000 accessible tiles, 30 000 shared (promoter-like)
# tiles and a uniform background; log-normal depth (median 2 500 tiles per
# cell); binary. Columns named like ArchR cells.
simulate_tiles <- function(n_cells, n_tiles, n_types = 8, seed = 1) {
    set.seed(seed)
    type <- sample.int(n_types, n_cells, replace = TRUE)
    depth <- pmax(200L, round(rlnorm(n_cells, log(2500), 0.6)))
    shared <- sample.int(n_tiles, 30000)
    prog <- lapply(seq_len(n_types), function(t) sample.int(n_tiles, 20000))
    m <- bench_draw_tiles(type, depth, do.call(cbind, prog), shared, n_tiles)
    colnames(m) <- sprintf("Sim#cell%06d", seq_len(n_cells))
    list(m = m, type = type, nFrags = depth)
}

timed <- function(label, expr) {
    bench_peak_reset()
    st <- system.time(val <- force(expr))
    t <- st[["elapsed"]]
    cat(sprintf("%-42s %8.2f s wall %8.2f s cpu   peak %6.2f GB\n", label,
                t, st[["user.self"]] + st[["sys.self"]], bench_vm_gb("VmHWM")))
    attr(val, "sec") <- t
    attr(val, "cpu") <- st[["user.self"]] + st[["sys.self"]]
    val
}

cat(sprintf("cells %d, tiles %d, threads %d, load average %s\n", n_cells,
            n_tiles, threads, bench_load_avg()))

# The two SVDs on iteration 1's TF-IDF matrix (rebuilt in plain R,
# LSIMethod 2): irlba's C fast path (ArchR's call) and epione's C++ block
# Lanczos (svdMethod = "epione"), both started from set.seed(1).
svd_compare <- function(m, fit) {
    cells <- setdiff(rownames(fit$matSVD), fit$outliers)
    x <- m[fit$rows, cells]
    x@x <- x@x / rep(Matrix::colSums(x), diff(x@p))
    rs <- Matrix::rowSums(m[fit$rows, cells])
    x@x <- log(x@x * (length(cells) / rs[x@i + 1L]) * 1e4 + 1)
    set.seed(1)
    a <- timed("irlba fast C path (ArchR's)", irlba::irlba(x, 30, 30))
    set.seed(1)
    b <- timed("epione C++ SVD (svdMethod = \"epione\")",
               epione:::.lsi_svd(x, 30, list(svdMethod = "epione",
                                             threads = threads)))
    cat(sprintf(paste0("  SVD %dx%d: epione %.2f s cpu (%d products) vs ",
                       "irlba %.2f s cpu (%d): %.2fx; max rel diff d %.1e,",
                       " min |cor| v %.7f\n"), nrow(x), ncol(x),
                attr(b, "cpu"), b$mprod, attr(a, "cpu"), a$mprod,
                attr(a, "cpu") / attr(b, "cpu"), max(abs(a$d - b$d) / a$d),
                min(abs(diag(stats::cor(a$v, b$v))))))
}

# Exact kNN (k = 20, Euclidean) by blocks of rows, without a dense n x n.
knn20 <- function(x) {
    sq <- rowSums(x^2)
    do.call(rbind, lapply(split(seq_len(nrow(x)),
                                ceiling(seq_len(nrow(x)) / 500)), function(i) {
        d <- outer(sq[i], sq, "+") - 2 * tcrossprod(x[i, , drop = FALSE], x)
        d[cbind(seq_along(i), i)] <- Inf
        t(apply(d, 1, function(r) order(r)[1:20]))
    }))
}
knn_overlap <- function(a, b) {
    ka <- knn20(a)
    kb <- knn20(b)
    mean(vapply(seq_len(nrow(ka)), function(i)
        length(intersect(ka[i, ], kb[i, ])) / 20, numeric(1)))
}

cat(sprintf("cells %d, tiles %d, threads %d\n", n_cells, n_tiles, threads))
sim <- timed("simulate matrix", simulate_tiles(n_cells, n_tiles))
cat(sprintf("nnz %.1f M\n", length(sim$m@x) / 1e6))
sce <- SingleCellExperiment::SingleCellExperiment(list(TileMatrix = sim$m))
sce$nFrags <- sim$nFrags

# epione end to end (2 iterations, ArchR defaults), then clusters and UMAP.
e_lsi <- timed("epione iterativeLSI (2 iterations)",
    epione::iterativeLSI(sce, threads = threads, verbose = FALSE))
# The same with ArchR's own SVD call: its result is ArchR's (bit parity,
# tests/testthat/test-lsi.R), so it is the reference for the contract.
i_lsi <- timed("epione iterativeLSI, svdMethod = \"irlba\"",
    epione::iterativeLSI(sce, threads = threads, verbose = FALSE,
                         svdMethod = "irlba"))
e_cl <- timed("epione addClusters", epione::addClusters(e_lsi, verbose = FALSE,
                                                 threads = threads))
e_um <- timed("epione addUMAP", epione::addUMAP(e_cl, verbose = FALSE))
md <- S4Vectors::metadata(e_lsi)$IterativeLSI
cat(sprintf("ARI(clusters, simulated types) = %.3f\n",
            mclust::adjustedRandIndex(e_cl$Clusters,
                                      sim$type[match(colnames(e_cl),
                                                     colnames(sim$m))])))
e_total <- attr(e_lsi, "sec") + attr(e_cl, "sec") + attr(e_um, "sec")
svd_compare(sim$m, md$iterations[[1]]$lsi)

# Contract of issue 8 against the irlba run (= ArchR): iteration 1 d and
# |cor|, final kNN(k = 20) overlap, ARI of clusters.
mi <- S4Vectors::metadata(i_lsi)$IterativeLSI
a1 <- md$iterations[[1]]$lsi
b1 <- mi$iterations[[1]]$lsi
cat(sprintf(paste0("iteration 1 vs irlba run: max rel diff d %.1e, ",
                   "min |cor| %.6f\n"), max(abs(a1$svd$d - b1$svd$d) /
                                               b1$svd$d),
            min(abs(diag(stats::cor(a1$matSVD,
                                    b1$matSVD[rownames(a1$matSVD), ]))))))
# Calibration: ArchR's own pipeline (the irlba run) with seed 2 instead of
# 1 differs from seed 1 the same way (other irlba start, other signs).
s_lsi <- timed("epione iterativeLSI, svdMethod = \"irlba\", seed 2",
    epione::iterativeLSI(sce, threads = threads, verbose = FALSE,
                         svdMethod = "irlba", seed = 2))
vs_irlba <- function(label, x_lsi, x_cl) {
    mx <- S4Vectors::metadata(x_lsi)$IterativeLSI
    c1 <- function(m) {
        cl <- m$iterations[[1]]$clusters
        stats::setNames(cl$clusters, cl$cellNames)
    }
    ci <- c1(mi)
    ari <- function(a, b) mclust::adjustedRandIndex(a, b[names(a)])
    fx <- epione::getReducedDims(x_cl, dimsToUse = 1:30)
    fi <- epione::getReducedDims(i_cl, dimsToUse = 1:30)[rownames(fx), ]
    ux <- SingleCellExperiment::reducedDim(x_lsi)
    ui <- SingleCellExperiment::reducedDim(i_lsi)[rownames(ux), ]
    cat(sprintf(paste0("%s vs ArchR (irlba run, seed 1): iteration-1 ",
                       "clusters ARI %.3f; final features shared %d of %d;",
                       " kNN(20) overlap %.3f (clustering input), %.3f ",
                       "(unscaled); ARI clusters %.3f\n"), label,
                ari(c1(mx), ci),
                length(intersect(mx$LSIFeatures, mi$LSIFeatures)),
                length(mi$LSIFeatures), knn_overlap(fx, fi),
                knn_overlap(ux, ui),
                ari(stats::setNames(x_cl$Clusters, colnames(x_cl)),
                    stats::setNames(i_cl$Clusters, colnames(i_cl)))))
}
i_cl <- epione::addClusters(i_lsi, verbose = FALSE, threads = threads)
vs_irlba("epione default", e_lsi, e_cl)
vs_irlba("ArchR seed 2", s_lsi,
         epione::addClusters(s_lsi, verbose = FALSE, threads = threads))

cat("load average after epione:", bench_load_avg(), "\n")

if (have_archr) {
    p <- md$params
    it <- md$iterations
    cells <- colnames(sim$m)
    # ArchR .computeLSI on the same features and cells as each iteration
    a_lsi <- 0
    a_lsi_cpu <- 0
    for (j in seq_along(it)) {
        cols <- if (j < length(it)) rownames(it[[j]]$lsi$matSVD) else cells
        mat <- sim$m[it[[j]]$features, cols]
        r <- timed(sprintf("ArchR .computeLSI iteration %d", j),
            ArchR:::.computeLSI(mat = mat, LSIMethod = 2, scaleTo = 1e4,
                                nDimensions = 30, binarize = TRUE,
                                outlierQuantiles = p$outlierQuantiles,
                                keep0lsi = FALSE, seed = 1))
        if (j == 1L) cat(sprintf(paste0("  vs ArchR: max rel diff d %.1e,",
            " min |cor| %.6f\n"), max(abs(a1$svd$d - r$svd$d) / r$svd$d),
            min(abs(diag(stats::cor(a1$matSVD,
                                    r$matSVD[rownames(a1$matSVD), ]))))))
        a_lsi <- a_lsi + attr(r, "sec")
        a_lsi_cpu <- a_lsi_cpu + attr(r, "cpu")
    }
    inp <- epione::getReducedDims(e_lsi, dimsToUse = 1:30)
    a_cl <- timed("ArchR addClusters(matrix, Seurat)",
        ArchR::addClusters(input = inp, verbose = FALSE, logFile = tempfile()))
    cl1 <- it[[1]]$clusters
    a_var <- timed("ArchR var features (R, as .identifyVarFeatures)", {
        g <- split(cl1$cellNames, cl1$clusters)
        rs <- Matrix::rowSums(sim$m)
        cand <- sort(head(order(rs, decreasing = TRUE), 500000))
        gm <- sapply(g, function(cc) Matrix::rowSums(sim$m[cand, cc]))
        gm <- log2(t(t(gm) / colSums(gm)) * 1e4 + 1)
        sort(head(order(matrixStats::rowVars(gm), decreasing = TRUE), 25000))
    })
    a_um <- timed("ArchR UMAP (uwot, as addUMAP)", {
        set.seed(1)
        uwot::umap(inp, n_neighbors = 40, min_dist = 0.4, metric = "cosine",
                   ret_nn = TRUE, ret_model = TRUE)
    })
    a_total <- a_lsi + attr(a_cl, "sec") + attr(a_var, "sec") +
        attr(a_um, "sec")
    cat(sprintf(paste0("\nepione total %.1f s, ArchR steps total %.1f s,",
                       " ratio %.2fx\n"), e_total, a_total, a_total / e_total))
    # wall, like the cpu line below: epione's iterativeLSI includes its
    # clustering between iterations, ArchR's stands in as addClusters
    a_it_wall <- a_lsi + attr(a_var, "sec") + attr(a_cl, "sec")
    cat(sprintf(paste0("  iterativeLSI: epione %.1f s vs ArchR %.1f s",
                       " (LSI + var + clustering, %.2fx)\n"),
                attr(e_lsi, "sec"), a_it_wall,
                a_it_wall / attr(e_lsi, "sec")))
    cat(sprintf("  clusters: epione %.1f s vs ArchR %.1f s (%.2fx)\n",
                attr(e_cl, "sec"), attr(a_cl, "sec"),
                attr(a_cl, "sec") / attr(e_cl, "sec")))
    cpu <- function(...) sum(vapply(list(...), attr, 0, "cpu"))
    # epione's iterativeLSI includes its iteration-1 clustering; ArchR's
    # is stood in for by its addClusters time on the final LSI.
    a_it <- a_lsi_cpu + cpu(a_var) + cpu(a_cl)
    cat(sprintf(paste0("  cpu: iterativeLSI epione %.1f s vs ArchR %.1f s",
                       " (LSI + var + clustering, %.2fx)\n"),
                cpu(e_lsi), a_it, a_it / cpu(e_lsi)))
    cat(sprintf(paste0("  cpu: iterativeLSI epione svdMethod = \"irlba\"",
                       " %.1f s (%.2fx)\n"), cpu(i_lsi), a_it / cpu(i_lsi)))
    cat("load average at the end:", bench_load_avg(), "\n")
} else {
    cat("\nArchR not installed (R_LIBS=/work/reflib:.lib): epione only,",
        sprintf("total %.1f s\n", e_total))
}
