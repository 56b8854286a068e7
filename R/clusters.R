# Clustering of a reduced-dimension matrix as ArchR's addClusters(method =
# "Seurat") does it (ArchR 1.0.3 R/Clustering.R): annoy kNN (k = 20, 50
# trees, Seurat's FindNeighbors), SNN graph pruned at 1/15, Louvain of the
# ModularityOptimizer (Seurat's FindClusters, in C++ here, no Seurat needed),
# singletons grouped, small clusters reassigned by kNN vote, clusters merged
# to maxClusters and named C1..Cn in hclust order of their centroids.

#' @include project.R lsi.R
NULL

#' Cluster cells (ArchR's addClusters)
#'
#' Shared-nearest-neighbour graph plus Louvain modularity clustering with
#' ArchR's defaults and post-processing. The graph and the Louvain
#' algorithm reproduce Seurat's `FindNeighbors()` / `FindClusters()` (as
#' ArchR calls them) without needing Seurat.
#'
#' @param input A cells x dimensions numeric matrix, a
#'   `SingleCellExperiment` with the reduced dimensions `reducedDims`, or an
#'   [EpioneProject-class] (ArchR's `addClusters(input = proj)`).
#' @param reducedDims Name of the `reducedDim` (SingleCellExperiment) or of
#'   the project's reduction.
#' @param name colData / cellColData column for the clusters.
#' @param sampleCells Cluster this many sampled cells and assign the others
#'   by a `knnAssign` nearest-neighbour vote (`NULL`: all cells).
#' @param seed Seed (R's RNG state is restored afterwards).
#' @param method Only `"Seurat"` (the algorithm, not the package).
#' @param dimsToUse,scaleDims,corCutOff Which dimensions (see
#'   [getReducedDims()]).
#' @param knnAssign Neighbours voting for reassigned cells.
#' @param nOutlier Clusters with fewer cells are reassigned.
#' @param maxClusters Merge clusters (hclust of centroids) down to this.
#' @param testBias,filterBias,biasClusters,biasCol,biasVals,biasQuantiles,biasEnrich,biasProportion,biasPval,nPerm
#'   ArchR's test of small clusters for depth bias (`biasVals` per cell;
#'   `biasCol` a colData column for a SingleCellExperiment).
#' @param prefix Cluster name prefix.
#' @param resolution,n.start,n.iter,random.seed Louvain parameters
#'   (Seurat `FindClusters`).
#' @param k.param,prune.SNN,n.trees Graph parameters (Seurat
#'   `FindNeighbors`).
#' @param threads Threads for the exact kNN steps.
#' @param verbose Print messages.
#' @param force Overwrite an existing colData column.
#' @param ... For the SingleCellExperiment method: passed on to the matrix
#'   method.
#' @return For a matrix, a character vector of cluster labels (one per
#'   row); for a SingleCellExperiment, the object with `colData(, name)`;
#'   for a project, the project with `cellColData[[name]]` (`NA` for cells
#'   absent from the reduction).
#' @seealso [ArchR::addClusters()]
#' @examples
#' set.seed(1)
#' m <- rbind(matrix(rnorm(300, 0), 100), matrix(rnorm(300, 4), 100))
#' rownames(m) <- paste0("cell", 1:200)
#' table(addClusters(m, verbose = FALSE))
#' @export
setGeneric("addClusters", function(input, ...) standardGeneric("addClusters"))

#' @rdname addClusters
#' @export
setMethod("addClusters", "matrix", function(input, sampleCells = NULL,
        seed = 1, method = "Seurat", knnAssign = 10, nOutlier = 5,
        maxClusters = 25, testBias = TRUE, filterBias = FALSE,
        biasClusters = 0.01, biasVals = NULL,
        biasQuantiles = c(0.05, 0.95), biasEnrich = 10,
        biasProportion = 0.5, biasPval = 0.05, nPerm = 500, prefix = "C",
        resolution = 0.8, n.start = 10, n.iter = 10, random.seed = 0,
        k.param = 20, prune.SNN = 1 / 15, n.trees = 50,
        threads = getOption("epione.threads", 2L), verbose = TRUE) {
    do.call(.cluster_matrix, as.list(environment()))
})

#' @rdname addClusters
#' @export
setMethod("addClusters", "SingleCellExperiment", function(input,
        reducedDims = "IterativeLSI", name = "Clusters", dimsToUse = NULL,
        scaleDims = NULL, corCutOff = 0.75, biasCol = "nFrags",
        force = FALSE, ...) {
    if (name %in% colnames(SummarizedExperiment::colData(input)) && !force)
        .abort("colData column '", name, "' exists; set force = TRUE or ",
               "choose another name", kind = "input")
    m <- getReducedDims(input, reducedDims = reducedDims,
                        dimsToUse = dimsToUse, scaleDims = scaleDims,
                        corCutOff = corCutOff)
    args <- list(...)
    cd <- SummarizedExperiment::colData(input)
    if (is.null(args$biasVals) && biasCol %in% colnames(cd))
        args$biasVals <- cd[[biasCol]]
    SummarizedExperiment::colData(input)[[name]] <-
        do.call(addClusters, c(list(m), args))
    input
})

#' @rdname addClusters
#' @export
setMethod("addClusters", "EpioneProject", function(input,
        reducedDims = "IterativeLSI", name = "Clusters", dimsToUse = NULL,
        scaleDims = NULL, corCutOff = 0.75, biasCol = "nFrags",
        force = FALSE, ...) {
    cc <- input@cellColData
    if (name %in% names(cc) && !force)
        .abort("cellColData column '", name, "' exists; set force = TRUE ",
               "or choose another name", kind = "input")
    m <- getReducedDims(input, reducedDims = reducedDims,
                        dimsToUse = dimsToUse, scaleDims = scaleDims,
                        corCutOff = corCutOff)
    args <- list(...)
    if (is.null(args$biasVals) && !isFALSE(args$testBias)) {
        if (!biasCol %in% names(cc))
            .abort("cellColData has no biasCol '", biasCol, "'; set biasCol ",
                   "to a column of getCellColData(proj) or testBias = FALSE",
                   kind = "input")
        args$biasVals <- cc[rownames(m), biasCol]
    }
    cl <- do.call(addClusters, c(list(m), args))
    out <- rep(NA_character_, nrow(cc))
    out[match(rownames(m), rownames(cc))] <- cl
    input@cellColData[[name]] <- out
    input
})

#' @rdname addClusters
#' @param ArchRProj The project, when passed by ArchR's alternative
#'   argument name (`addClusters(ArchRProj = proj)`).
#' @export
setMethod("addClusters", "missing", function(input, ArchRProj, ...) {
    addClusters(ArchRProj, ...)
})

.cluster_matrix <- function(input, sampleCells = NULL, seed = 1,
        method = "Seurat", knnAssign = 10, nOutlier = 5, maxClusters = 25,
        testBias = TRUE, filterBias = FALSE, biasClusters = 0.01,
        biasVals = NULL, biasQuantiles = c(0.05, 0.95), biasEnrich = 10,
        biasProportion = 0.5, biasPval = 0.05, nPerm = 500, prefix = "C",
        resolution = 0.8, n.start = 10, n.iter = 10, random.seed = 0,
        k.param = 20, prune.SNN = 1 / 15, n.trees = 50,
        threads = getOption("epione.threads", 2L), verbose = TRUE, ...) {
    .check_cluster_input(input, method)
    threads <- .check_threads(threads)
    .with_seed(seed, {
        mat <- input
        idx <- NULL
        if (!is.null(sampleCells) && sampleCells < nrow(mat)) {
            idx <- sample(seq_len(nrow(mat)), sampleCells)
            mat <- mat[idx, , drop = FALSE]
        }
        # ArchR's .clustSeurat builds a dummy 3 x n rnorm matrix: draw it
        # so the bias test below sees ArchR's RNG stream.
        stats::rnorm(nrow(mat) * 3, 10)
        clust <- .seurat_clusters(mat, resolution, n.start, n.iter,
                                  random.seed, k.param, prune.SNN, n.trees)
        if (!is.null(idx))
            clust <- .assign_by_knn(input, idx, clust, knnAssign, threads)
        if (testBias && !is.null(biasVals))
            clust <- .test_bias(input, clust, biasVals, biasClusters,
                                biasQuantiles, biasEnrich, biasProportion,
                                biasPval, nPerm, filterBias, knnAssign,
                                threads)
        clust <- .reassign_small(input, clust, nOutlier, knnAssign, threads)
        .name_clusters(input, clust, maxClusters, prefix)
    })
}

.check_cluster_input <- function(input, method) {
    if (!grepl("seurat", tolower(method)))
        .abort("only method = \"Seurat\" is implemented (the Seurat ",
               "algorithm; the Seurat package is not needed)",
               kind = "input")
    if (!is.numeric(input) || anyNA(input) || any(!is.finite(input)))
        .abort("the reduced-dimension matrix must be finite numbers ",
               "without NA", kind = "input")
    if (nrow(input) < 3L || ncol(input) < 1L)
        .abort("need at least 3 cells (rows) and 1 dimension to cluster, ",
               "got ", nrow(input), " x ", ncol(input), kind = "input")
}

# Seurat FindNeighbors (annoy, self included) + ComputeSNN + FindClusters
# (ModularityOptimizer Louvain) + GroupSingletons; ArchR's "ClusterN" names.
.seurat_clusters <- function(mat, resolution, n_start, n_iter, random_seed,
                             k, prune, n_trees) {
    k <- min(k, nrow(mat) - 1L)
    nn <- .annoy_knn(mat, k, n_trees)
    s <- .core(epi_clusters_snn(nn, prune))
    n <- nrow(mat)
    snn <- methods::new("dgCMatrix", p = s$p, i = s$i, x = s$x,
                        Dim = c(n, n))
    if (length(snn@x) == 0L)
        .abort("the SNN graph has no edges; use more cells or dimensions",
               kind = "data")
    res <- .core(epi_clusters_louvain(snn, resolution, n_start, n_iter,
                                      random_seed))
    ids <- .group_singletons(res$membership, snn)
    paste0("Cluster", match(ids, unique(ids)))
}

# Seurat's AnnoyNN with its defaults (euclidean, n.trees, search.k = -1).
.annoy_knn <- function(mat, k, n_trees) {
    a <- methods::new(RcppAnnoy::AnnoyEuclidean, ncol(mat))
    for (i in seq_len(nrow(mat))) a$addItem(i - 1L, mat[i, ])
    a$build(n_trees)
    nn <- matrix(0L, nrow(mat), k)
    for (i in seq_len(nrow(mat)))
        nn[i, ] <- a$getNNsByVector(mat[i, ], k) + 1L
    nn
}

# Seurat GroupSingletons: a cluster of one cell joins the cluster with the
# highest mean SNN weight (ties: sample() after set.seed(1), as Seurat).
.group_singletons <- function(ids, snn) {
    tab <- table(ids)
    single <- intersect(unique(ids), as.integer(names(tab)[tab == 1]))
    if (!length(single)) return(ids)
    keep <- setdiff(unique(ids), single)
    for (s in single) {
        i <- which(ids == s)
        conn <- vapply(keep, function(j) {
            jc <- which(ids == j)
            sum(snn[i, jc]) / length(jc)
        }, numeric(1))
        best <- keep[conn == max(conn)]
        set.seed(1)
        ids[i] <- as.integer(sample(as.character(best), 1))
    }
    ids
}

# ArchR: sampled-out cells take the majority cluster of their knnAssign
# nearest sampled cells (ties: first cluster in order of appearance).
.assign_by_knn <- function(all, idx, clust, k, threads) {
    knn <- .knn(all[idx, , drop = FALSE], all[-idx, , drop = FALSE], k,
                threads)
    uniq <- unique(clust)
    votes <- matrix(match(clust, uniq)[knn], ncol = k)
    counts <- vapply(seq_along(uniq), function(u) rowSums(votes == u),
                     numeric(nrow(votes)))
    counts <- matrix(counts, ncol = length(uniq))
    out <- character(nrow(all))
    out[idx] <- clust
    out[-idx] <- uniq[apply(counts, 1, which.max)]
    out
}

.knn <- function(data, query, k, threads) {
    .core(epi_clusters_knn(data, query, as.integer(k), threads))
}

# ArchR: clusters smaller than nOutlier cells are reassigned by kNN vote.
.reassign_small <- function(mat, clust, n_outlier, k, threads) {
    tab <- table(clust)
    for (ci in names(tab)[tab < n_outlier]) {
        i <- which(clust == ci)
        if (length(i) == length(clust)) break
        knn <- .knn(mat[-i, , drop = FALSE], mat[i, , drop = FALSE],
                    min(k, length(clust) - length(i)), threads)
        rest <- clust[-i]
        clust[i] <- apply(knn, 1, function(r)
            names(sort(table(rest[r]), decreasing = TRUE)[1L]))
    }
    clust
}

# ArchR: merge to maxClusters by hclust of centroids, then name C1..Cn in
# the dendrogram order of the centroids.
.name_clusters <- function(mat, clust, max_clusters, prefix) {
    if (!is.null(max_clusters) && length(unique(clust)) > max_clusters) {
        ct <- stats::cutree(.centroid_tree(mat, clust), max_clusters)
        clust <- paste0(prefix, ct)[match(clust, names(ct))]
    }
    if (length(unique(clust)) == 1L) return(rep(paste0(prefix, "1"),
                                                length(clust)))
    hc <- .centroid_tree(mat, clust)
    new <- paste0(prefix, seq_along(hc$labels))
    new[match(clust, hc$labels[hc$order])]
}

.centroid_tree <- function(mat, clust) {
    u <- unique(clust)
    means <- t(vapply(u, function(g)
        colMeans(mat[clust == g, , drop = FALSE]), numeric(ncol(mat))))
    if (ncol(mat) == 1L) means <- matrix(means, ncol = 1L)
    rownames(means) <- u
    stats::hclust(stats::dist(means))
}

# ArchR's bias test: small clusters (< biasClusters of cells) whose depth
# quantiles are enriched at the extremes versus permuted backgrounds are
# reported, and reassigned by kNN vote when filterBias.
.test_bias <- function(mat, clust, bias, frac, bq, enrich, prop, pval,
                       n_perm, filter, k, threads) {
    q <- trunc(rank(bias)) / length(bias)
    tab <- table(clust)
    small <- names(tab)[tab / sum(tab) < frac]
    flagged <- character(0)
    for (ci in small) {
        fg <- q[clust == ci]
        bg_all <- q[clust != ci]
        size <- n_perm * length(fg)
        bg <- matrix(sample(bg_all, size, replace = size > length(bg_all)),
                     nrow = length(fg), ncol = n_perm)
        hi <- c(sum(fg >= max(bq)), sum(fg <= min(bq)))
        n <- list(colSums(bg >= max(bq)), colSums(bg <= min(bq)))
        pv <- vapply(1:2, function(s)
            max(sum(hi[s] < n[[s]]) * 2, 1) / length(n[[s]]), numeric(1))
        en <- vapply(1:2, function(s) hi[s] / max(stats::median(n[[s]]), 1),
                     numeric(1))
        s <- if (en[1L] > en[2L]) 1L else 2L
        if (en[s] > enrich && hi[s] / length(fg) > prop &&
            min(pv[s], 1) <= pval) flagged <- c(flagged, ci)
    }
    if (!length(flagged)) return(clust)
    if (!filter) {
        message("Biased Clusters : ", paste(flagged, collapse = " "))
        return(clust)
    }
    for (ci in flagged) {
        i <- which(clust == ci)
        knn <- .knn(mat[-i, , drop = FALSE], mat[i, , drop = FALSE], k,
                    threads)
        rest <- clust[-i]
        clust[i] <- apply(knn, 1, function(r)
            names(sort(table(rest[r]), decreasing = TRUE)[1L]))
    }
    clust
}

#' Reduced dimensions as ArchR's getReducedDims returns them
#'
#' Row-wise z-scored (when `scaleDims`) LSI coordinates without the
#' dimensions whose |correlation| to log10(depth + 1) exceeds `corCutOff`.
#'
#' @param ArchRProj A `SingleCellExperiment` from [iterativeLSI()] or an
#'   [EpioneProject-class] after [addIterativeLSI()].
#' @param reducedDims Name of the reduced dimensions.
#' @param returnMatrix Return the matrix (`TRUE`) or a list with it and
#'   the kept dimensions.
#' @param dimsToUse Dimensions to consider (`NULL`: all).
#' @param scaleDims Scale per cell; `NULL` uses the LSI's setting.
#' @param corCutOff Depth-correlation cut-off.
#' @param ... Arguments of the methods (above).
#' @return A cells x dimensions matrix (or a list, see `returnMatrix`: for a
#'   SingleCellExperiment `matDR` and `dimsKept`; for a project ArchR's
#'   reduction list with the matrix first and `dimsKept` added).
#' @seealso [ArchR::getReducedDims()]
#' @examples
#' x <- Matrix::rsparsematrix(3000, 300, 0.05)
#' x@x[] <- 1
#' sce <- iterativeLSI(x, varFeatures = 1000, dimsToUse = 1:5,
#'                     totalFeatures = 20000, verbose = FALSE)
#' dim(getReducedDims(sce))
#' @export
setGeneric("getReducedDims", function(ArchRProj, ...)
    standardGeneric("getReducedDims"))

#' @rdname getReducedDims
#' @export
setMethod("getReducedDims", "SingleCellExperiment", function(ArchRProj,
        reducedDims = "IterativeLSI", returnMatrix = TRUE, dimsToUse = NULL,
        scaleDims = NULL, corCutOff = 0.75) {
    if (!reducedDims %in% SingleCellExperiment::reducedDimNames(ArchRProj))
        .abort("no reducedDim '", reducedDims, "'; run iterativeLSI() ",
               "first or pick one of: ", paste(SingleCellExperiment::
               reducedDimNames(ArchRProj), collapse = ", "), kind = "input")
    m <- SingleCellExperiment::reducedDim(ArchRProj, reducedDims)
    info <- S4Vectors::metadata(ArchRProj)[[reducedDims]]
    s <- .select_dims(m, info, dimsToUse, scaleDims, corCutOff)
    if (returnMatrix) return(s$mat[, s$kept, drop = FALSE])
    list(matDR = s$mat[, s$kept, drop = FALSE], dimsKept = s$kept)
})

#' @rdname getReducedDims
#' @export
setMethod("getReducedDims", "EpioneProject", function(ArchRProj,
        reducedDims = "IterativeLSI", returnMatrix = TRUE, dimsToUse = NULL,
        scaleDims = NULL, corCutOff = 0.75) {
    info <- .project_reduction(ArchRProj, reducedDims)
    s <- .select_dims(info[[1L]], info, dimsToUse, scaleDims, corCutOff)
    cells <- rownames(s$mat) %in% rownames(ArchRProj@cellColData)
    mat <- s$mat[cells, s$kept, drop = FALSE]
    if (returnMatrix) return(mat)
    info$dimsKept <- s$kept
    info[[1L]] <- mat
    info
})

.project_reduction <- function(proj, reducedDims) {
    .check_project(proj)
    .check_string(reducedDims, "reducedDims")
    if (!reducedDims %in% names(proj@reducedDims))
        .abort("no reducedDims '", reducedDims, "' in the project; run ",
               "addIterativeLSI() first or pick one of: ",
               paste(names(proj@reducedDims), collapse = ", "),
               kind = "input")
    proj@reducedDims[[reducedDims]]
}

# ArchR getReducedDims on one reduction (matrix + its stored scaleDims and
# corToDepth): the (row-scaled) matrix and the dimensions kept.
.select_dims <- function(m, info, dimsToUse, scaleDims, corCutOff) {
    stored <- info$scaleDims
    if (length(stored) && is.na(stored[1L])) scaleDims <- FALSE
    if (is.null(scaleDims)) scaleDims <- isTRUE(stored)
    miss <- setdiff(dimsToUse, seq_len(ncol(m)))
    if (length(miss))
        message("Not all requested dimsToUse are available; ignoring: ",
                paste(miss, collapse = ", "))
    cd <- info$corToDepth
    cor_d <- if (is.null(cd) || (is.atomic(cd) && is.na(cd[1L])))
        rep(0, ncol(m)) else if (scaleDims) cd$scaled else cd$none
    if (scaleDims) m <- .scale_dims(m)
    use <- if (is.null(dimsToUse)) seq_along(cor_d)
        else intersect(dimsToUse, seq_along(cor_d))
    kept <- use[which(abs(cor_d[use]) <= corCutOff)]
    if (length(kept) != length(use))
        message("Filtering ", length(use) - length(kept), " dims correlated > ",
                corCutOff, " to log10(depth + 1)")
    list(mat = m, kept = kept)
}

#' UMAP embedding (ArchR's addUMAP)
#'
#' `uwot::umap()` after `set.seed(seed)` with ArchR's defaults
#' (`n_neighbors = 40`, `min_dist = 0.4`, `metric = "cosine"`) on the
#' reduced dimensions as [getReducedDims()] returns them.
#'
#' @param input A cells x dimensions matrix, a `SingleCellExperiment` or an
#'   [EpioneProject-class]. ArchR's `addUMAP(ArchRProj = proj)` also works.
#' @param ArchRProj The project, when passed by ArchR's argument name.
#' @param reducedDims,dimsToUse,scaleDims,corCutOff Which reduced
#'   dimensions (SingleCellExperiment, project).
#' @param name Name of the `reducedDim` (or project embedding) to add.
#' @param nNeighbors,minDist,metric uwot's `n_neighbors`, `min_dist`,
#'   `metric`.
#' @param saveModel Keep the uwot model (as ArchR; `ret_model = TRUE`).
#' @param seed Seed (R's RNG state is restored afterwards).
#' @param threads Passed to uwot as `n_threads` when not `NULL`; the
#'   default (`NULL`) uses uwot's default, as ArchR.
#' @param verbose Print uwot's messages.
#' @param force Overwrite an existing reducedDim.
#' @param ... Further arguments to `uwot::umap()`.
#' @return For a matrix, a cells x 2 matrix (with attribute `model` when
#'   `saveModel`); for a SingleCellExperiment, the object with
#'   `reducedDim(, name)`; for a project, the project with
#'   `embeddings[[name]]`, a `SimpleList` with `df` (data.frame, cells x 2,
#'   columns `<reducedDims>#UMAP_Dimension_1/2` as ArchR) and `params`
#'   (uwot arguments, `dimsToUse`, `scaleDims`, `corCutOff`, `nr`, `nc`,
#'   `uwotModel`: the file written by `uwot::save_uwot()` under
#'   `outputDirectory/Embeddings` or `NA`).
#' @seealso [ArchR::addUMAP()]
#' @examples
#' set.seed(1)
#' m <- matrix(rnorm(1000), 100)
#' rownames(m) <- paste0("cell", 1:100)
#' dim(addUMAP(m, nNeighbors = 15, verbose = FALSE, saveModel = FALSE,
#'             n_epochs = 50, threads = 1))
#' @export
setGeneric("addUMAP", function(input, ...) standardGeneric("addUMAP"))

#' @rdname addUMAP
#' @export
setMethod("addUMAP", "matrix", function(input, nNeighbors = 40,
        minDist = 0.4, metric = "cosine", saveModel = TRUE, seed = 1,
        threads = NULL, verbose = TRUE, ...) {
    if (nrow(input) <= nNeighbors)
        .abort("nNeighbors (", nNeighbors, ") must be below the number of ",
               "cells (", nrow(input), "); lower nNeighbors", kind = "input")
    args <- list(X = input, n_neighbors = nNeighbors, min_dist = minDist,
                 verbose = verbose, metric = metric, ...,
                 ret_nn = saveModel, ret_model = saveModel)
    if (!is.null(threads)) args$n_threads <- .check_threads(threads)
    um <- .with_seed(seed, do.call(uwot::umap, args))
    emb <- if (saveModel) um$embedding else um
    rownames(emb) <- rownames(input)
    colnames(emb) <- paste0("UMAP_Dimension_", seq_len(ncol(emb)))
    if (saveModel) attr(emb, "model") <- um
    emb
})

#' @rdname addUMAP
#' @export
setMethod("addUMAP", "SingleCellExperiment", function(input,
        reducedDims = "IterativeLSI", name = "UMAP", dimsToUse = NULL,
        scaleDims = NULL, corCutOff = 0.75, force = FALSE, ...) {
    if (name %in% SingleCellExperiment::reducedDimNames(input) && !force)
        .abort("reducedDim '", name, "' exists; set force = TRUE or choose ",
               "another name", kind = "input")
    m <- getReducedDims(input, reducedDims = reducedDims,
                        dimsToUse = dimsToUse, scaleDims = scaleDims,
                        corCutOff = corCutOff)
    emb <- addUMAP(m, ...)
    attr(emb, "model") <- NULL
    colnames(emb) <- paste0(reducedDims, "#", colnames(emb))
    SingleCellExperiment::reducedDim(input, name) <- emb
    input
})

#' @rdname addUMAP
#' @export
setMethod("addUMAP", "EpioneProject", function(input,
        reducedDims = "IterativeLSI", name = "UMAP", nNeighbors = 40,
        minDist = 0.4, metric = "cosine", dimsToUse = NULL, scaleDims = NULL,
        corCutOff = 0.75, saveModel = TRUE, verbose = TRUE, seed = 1,
        force = FALSE, threads = NULL, ...) {
    .check_project(input)
    if (name %in% names(input@embeddings) && !force)
        .abort("embedding '", name, "' exists; set force = TRUE or choose ",
               "another name", kind = "input")
    m <- getReducedDims(input, reducedDims = reducedDims,
                        dimsToUse = dimsToUse, scaleDims = scaleDims,
                        corCutOff = corCutOff)
    emb <- addUMAP(m, nNeighbors = nNeighbors, minDist = minDist,
                   metric = metric, saveModel = saveModel, seed = seed,
                   threads = threads, verbose = verbose, ...)
    file <- if (saveModel) .save_umap_model(attr(emb, "model"), input,
                                            reducedDims) else NA
    df <- data.frame(emb[, 1L], emb[, 2L], row.names = rownames(m))
    colnames(df) <- paste0(reducedDims, "#UMAP_Dimension_", 1:2)
    params <- c(list(n_neighbors = nNeighbors, min_dist = minDist,
                     metric = metric, verbose = verbose), list(...),
                list(dimsToUse = dimsToUse, scaleDims = scaleDims,
                     corCutOff = corCutOff, nr = nrow(m), nc = ncol(m),
                     uwotModel = file, estimateUMAP = FALSE))
    input@embeddings[[name]] <- S4Vectors::SimpleList(df = df,
                                                      params = params)
    input
})

#' @rdname addUMAP
#' @export
setMethod("addUMAP", "missing", function(input, ArchRProj, ...) {
    addUMAP(ArchRProj, ...)
})

# ArchR keeps the uwot model in outputDirectory/Embeddings (a tar written
# by uwot's saver); NA when it cannot be written.
.save_umap_model <- function(model, proj, reducedDims) {
    dir <- file.path(proj@projectMetadata$outputDirectory, "Embeddings")
    if (is.null(model) || !length(dir)) return(NA)
    dir.create(dir, recursive = TRUE, showWarnings = FALSE)
    file <- tempfile(paste0("Save-Uwot-UMAP-Params-", reducedDims, "-"),
                     tmpdir = dir, fileext = ".tar")
    ok <- tryCatch({
        uwot::save_uwot(model, file)
        file.exists(file)
    }, error = function(e) FALSE)
    if (!ok) {
        .warn("the UMAP model could not be saved to '", dir, "'; ",
              "continuing without it", kind = "file")
        return(NA)
    }
    file
}

#' Embedding coordinates (ArchR's getEmbedding)
#'
#' @param ArchRProj A `SingleCellExperiment` or an [EpioneProject-class]
#'   with the embedding.
#' @param embedding Name of the `reducedDim` / project embedding.
#' @param returnDF Return the coordinates as a data.frame; `FALSE` gives a
#'   matrix (SingleCellExperiment) or, as ArchR, the whole embedding list
#'   with `df` and `params` (project).
#' @param ... Arguments of the methods (above).
#' @return The coordinates, one row per cell (see `returnDF`).
#' @seealso [ArchR::getEmbedding()]
#' @examples
#' sce <- SingleCellExperiment::SingleCellExperiment(list(
#'     counts = matrix(0, 2, 3, dimnames = list(NULL, c("a", "b", "c")))))
#' SingleCellExperiment::reducedDim(sce, "UMAP") <- matrix(1:6, 3)
#' getEmbedding(sce)
#' @export
setGeneric("getEmbedding", function(ArchRProj, ...)
    standardGeneric("getEmbedding"))

#' @rdname getEmbedding
#' @export
setMethod("getEmbedding", "SingleCellExperiment", function(ArchRProj,
        embedding = "UMAP", returnDF = TRUE) {
    if (!embedding %in% SingleCellExperiment::reducedDimNames(ArchRProj))
        .abort("no embedding '", embedding, "'; run addUMAP() first",
               kind = "input")
    e <- SingleCellExperiment::reducedDim(ArchRProj, embedding)
    if (returnDF) as.data.frame(e) else e
})

#' @rdname getEmbedding
#' @export
setMethod("getEmbedding", "EpioneProject", function(ArchRProj,
        embedding = "UMAP", returnDF = TRUE) {
    .check_project(ArchRProj)
    if (!embedding %in% names(ArchRProj@embeddings))
        .abort("no embedding '", embedding, "' in the project; run ",
               "addUMAP() first or pick one of: ",
               paste(names(ArchRProj@embeddings), collapse = ", "),
               kind = "input")
    e <- ArchRProj@embeddings[[embedding]]
    if (returnDF) e[[1L]] else e
})

.palette_discrete <- function(values) {
    lev <- sort(unique(as.character(values)))
    lev <- lev[order(nchar(lev), lev)]
    cols <- if (length(lev) <= length(.stallion)) .stallion[seq_along(lev)]
        else grDevices::colorRampPalette(.stallion)(length(lev))
    stats::setNames(cols, lev)
}

#' Plot an embedding coloured by a cell annotation (ArchR's plotEmbedding)
#'
#' Discrete values use ArchR's stallion palette (labelled at their
#' medians), continuous values solarExtra after ArchR's quantile cut.
#'
#' @param ArchRProj A `SingleCellExperiment` or an [EpioneProject-class].
#' @param colorBy `"cellColData"` (or `"colData"`): colour by a cell
#'   column; for a project also the name of a matrix in its Arrow files
#'   (e.g. `"GeneScoreMatrix"`), then `name` are features.
#' @param name Column(s) of colData / cellColData, or feature names; one
#'   plot per name.
#' @param embedding Name of the 2-d embedding.
#' @param size Point size.
#' @param labelMeans Label discrete groups at their medians.
#' @param log2Norm Plot `log2(x + 1)` of matrix values (`NULL`: `TRUE` for
#'   GeneScoreMatrix, as ArchR).
#' @param pal Optional colours (named by group for discrete values).
#' @param sampleCells Plot this many randomly chosen cells (`NULL`: all).
#' @param quantCut Quantiles to which continuous values are clipped.
#' @param randomize Draw points in random order (as ArchR's ggPoint).
#' @param keepAxis Keep axis text and ticks.
#' @param baseSize Base font size.
#' @param ... Arguments of the methods (above).
#' @return A ggplot object, or a named list of them for several `name`.
#' @seealso [ArchR::plotEmbedding()]
#' @examples
#' sce <- SingleCellExperiment::SingleCellExperiment(list(
#'     counts = matrix(0, 2, 4, dimnames = list(NULL, letters[1:4]))))
#' SingleCellExperiment::reducedDim(sce, "UMAP") <- matrix(rnorm(8), 4)
#' sce$Clusters <- c("C1", "C1", "C2", "C2")
#' plotEmbedding(sce)
#' @export
setGeneric("plotEmbedding", function(ArchRProj, ...)
    standardGeneric("plotEmbedding"))

#' @rdname plotEmbedding
#' @export
setMethod("plotEmbedding", "SingleCellExperiment", function(ArchRProj,
        colorBy = "cellColData", name = "Clusters", embedding = "UMAP",
        size = 0.5, labelMeans = TRUE) {
    e <- getEmbedding(ArchRProj, embedding, returnDF = FALSE)
    cd <- SummarizedExperiment::colData(ArchRProj)
    if (!name %in% colnames(cd))
        .abort("no colData column '", name, "' to colour by", kind = "input")
    .embedding_plot(e[, 1L], e[, 2L], cd[[name]], name,
                    xlab = paste(embedding, "Dimension 1"),
                    ylab = paste(embedding, "Dimension 2"), size = size,
                    labelMeans = labelMeans, quantCut = NULL)
})

#' @rdname plotEmbedding
#' @export
setMethod("plotEmbedding", "EpioneProject", function(ArchRProj,
        embedding = "UMAP", colorBy = "cellColData", name = "Sample",
        log2Norm = NULL, pal = NULL, size = 0.1, sampleCells = NULL,
        quantCut = c(0.01, 0.99), randomize = TRUE, keepAxis = FALSE,
        baseSize = 10, labelMeans = TRUE) {
    df <- getEmbedding(ArchRProj, embedding, returnDF = TRUE)
    if (!is.null(sampleCells) && sampleCells < nrow(df))
        df <- df[sort(sample(seq_len(nrow(df)), sampleCells)), , drop = FALSE]
    vals <- .embedding_values(ArchRProj, colorBy, name, rownames(df),
                              log2Norm)
    lab <- strsplit(colnames(df)[1:2], "#", fixed = TRUE)
    xy <- vapply(lab, function(l) gsub("_", " ", l[length(l)]), "")
    plots <- lapply(names(vals), function(nm) .embedding_plot(df[, 1L],
        df[, 2L], vals[[nm]], nm, xlab = xy[1L], ylab = xy[2L], size = size,
        labelMeans = labelMeans, quantCut = quantCut, pal = pal,
        randomize = randomize, keepAxis = keepAxis, baseSize = baseSize,
        title = paste0(embedding, " of ", lab[[1L]][1L], " coloured by ",
                       nm)))
    names(plots) <- names(vals)
    if (length(plots) == 1L) plots[[1L]] else plots
})

# Values to colour by, one vector per name, in the embedding's cell order.
.embedding_values <- function(proj, colorBy, name, cells, log2Norm) {
    .check_string(colorBy, "colorBy")
    cc <- proj@cellColData
    if (!all(cells %in% rownames(cc)))
        .abort("not all cells of the embedding are in the project",
               kind = "input")
    if (tolower(colorBy) %in% c("coldata", "cellcoldata")) {
        miss <- setdiff(name, names(cc))
        if (length(miss))
            .abort("cellColData has no column(s) ", paste(miss,
                   collapse = ", "), "; pick from: ",
                   paste(names(cc), collapse = ", "), kind = "input")
        return(stats::setNames(lapply(name, function(n) cc[cells, n]), name))
    }
    .check_project_matrix(proj, colorBy, "the matching add*Matrix()")
    se <- getMatrixFromProject(proj, colorBy, verbose = FALSE)
    rn <- SummarizedExperiment::rowRanges(se)$name
    if (is.null(rn)) rn <- rownames(se)
    miss <- setdiff(name, rn)
    if (length(miss))
        .abort("features not in ", colorBy, ": ", paste(miss,
               collapse = ", "), kind = "input")
    mat <- SummarizedExperiment::assay(se)[match(name, rn), cells,
                                           drop = FALSE]
    if (is.null(log2Norm)) log2Norm <- tolower(colorBy) == "genescorematrix"
    stats::setNames(lapply(seq_along(name), function(i) {
        v <- as.numeric(mat[i, ])
        if (log2Norm) log2(v + 1) else v
    }), name)
}

# ArchR's .quantileCut: clip to the lower / upper quantiles.
.quantile_cut <- function(x, lo, hi) {
    q <- stats::quantile(x, c(lo, hi), na.rm = TRUE)
    pmin(pmax(x, q[[1L]]), q[[2L]])
}

.embedding_plot <- function(x, y, color, name, xlab, ylab, size,
                            labelMeans, quantCut, pal = NULL,
                            randomize = FALSE, keepAxis = TRUE,
                            baseSize = 11, title = NULL) {
    discrete <- !is.numeric(color)
    if (discrete) color <- as.character(color)
    else if (!is.null(quantCut))
        color <- .quantile_cut(color, min(quantCut), max(quantCut))
    df <- data.frame(x = x, y = y, color = color)
    if (randomize) df <- df[sample(seq_len(nrow(df))), , drop = FALSE]
    p <- ggplot2::ggplot(df, ggplot2::aes(.data$x, .data$y,
                                          color = .data$color)) +
        ggplot2::geom_point(size = size) +
        ggplot2::labs(x = xlab, y = ylab, color = name, title = title) +
        ggplot2::theme_classic(base_size = baseSize)
    if (!keepAxis)
        p <- p + ggplot2::theme(axis.text = ggplot2::element_blank(),
                                axis.ticks = ggplot2::element_blank())
    if (!discrete)
        return(p + ggplot2::scale_color_gradientn(colours =
            if (is.null(pal)) .solar_extra else pal))
    p <- p + ggplot2::scale_color_manual(values =
        if (is.null(pal)) .palette_discrete(df$color) else pal)
    if (labelMeans) {
        ctr <- stats::aggregate(cbind(x, y) ~ color, df, stats::median)
        p <- p + ggplot2::geom_text(data = ctr, ggplot2::aes(label =
            .data$color), color = "black")
    }
    p
}
