# Iterative LSI of a project streamed from its Arrow files (ArchR 1.0.3
# addIterativeLSI reads the same way: .getRowSums for the totals,
# .getPartialMatrix for the selected features of the sampled cells). The
# whole features x cells matrix is never built: one pass over all cells, a
# chunk of cells at a time, gives the feature totals; each iteration then
# reads only its features, for the sampled cells (the fit) and chunk by
# chunk for the projection of the others. The fit itself is the matrix
# engine of R/lsi.R (.compute_lsi, .project_lsi, .lsi_cluster) run on these
# reduced matrices, so the result equals iterativeLSI() on the full matrix.

#' @include lsi.R
NULL

# ---------------------------------------------------------------------------
# The store: the project's matrix as rows (features in getMatrixFromArrow
# order: chromosomes sorted, idx within) and cells (cellColData order), each
# cell located in its Arrow file by column.
.lsi_store <- function(proj, useMatrix, excludeChr, chunkSize) {
    files <- getArrowFiles(proj)
    fdf <- as.data.frame(.h5read(files[1L], paste0(useMatrix,
        "/Info/FeatureDF")), stringsAsFactors = FALSE)
    n_stored <- nrow(fdf)
    seqs <- levels(factor(fdf$seqnames))
    seqs <- seqs[!seqs %in% excludeChr]
    if (!length(seqs)) .abort("no seqnames left after excludeChr",
                              kind = "input")
    fdf <- fdf[fdf$seqnames %in% seqs, , drop = FALSE]
    fdf <- fdf[order(match(fdf$seqnames, seqs), fdf$idx), , drop = FALSE]
    rownames(fdf) <- NULL
    cells <- rownames(proj@cellColData)
    parts <- lapply(files, .lsi_store_file, useMatrix, cells, n_stored)
    found <- unlist(lapply(parts, `[[`, "global"))
    if (length(found) != length(cells) || anyDuplicated(found))
        .abort("the Arrow files' ", useMatrix, " cells do not match the ",
               "project's cells; recreate the project from its Arrow files",
               kind = "input")
    list(files = parts, group = useMatrix, features = fdf, seqs = seqs,
         block_rows = vapply(seqs, function(s)
             max(fdf$idx[fdf$seqnames == s]), numeric(1)),
         cells = cells, chunk = chunkSize)
}

# One Arrow file: the project cells it holds, as 0-based columns of the
# matrix (ascending) and positions among the project's cells.
.lsi_store_file <- function(file, useMatrix, cells, n_features) {
    n <- nrow(as.data.frame(.h5read(file, paste0(useMatrix,
                                                 "/Info/FeatureDF"))))
    if (n != n_features)
        .abort("the Arrow files hold different ", useMatrix, " features (",
               n, " vs ", n_features, "); recreate them with the same ",
               "genome", kind = "input")
    sample <- .h5read(file, "Metadata/Sample")
    cn <- paste0(sample, "#", .h5read(file, paste0(useMatrix,
                                                   "/Info/CellNames")))
    col <- which(cn %in% cells)
    list(file = file, col = col - 1L, global = match(cn[col], cells))
}

# Chunks of at most store$chunk consecutive matrix columns of one file
# holding wanted cells: list of (file, col = 0-based columns, global).
.lsi_chunks <- function(store, wanted) {
    keep <- rep(FALSE, length(store$cells))
    keep[wanted] <- TRUE
    out <- list()
    for (f in store$files) {
        sel <- keep[f$global]
        if (!any(sel)) next
        col <- f$col[sel]
        glob <- f$global[sel]
        for (k in split(seq_along(col), col %/% store$chunk))
            out[[length(out) + 1L]] <- list(file = f$file, col = col[k],
                                            global = glob[k])
    }
    out
}

# Per chromosome block: block row (idx - 1) -> position in `rows` (global
# feature indices, ascending), -1 elsewhere; empty for unused blocks.
.lsi_row_maps <- function(store, rows) {
    fdf <- store$features
    at <- rep(-1L, nrow(fdf))
    at[rows] <- seq_along(rows) - 1L
    lapply(seq_along(store$seqs), function(b) {
        k <- which(fdf$seqnames == store$seqs[b])
        if (!any(at[k] >= 0L)) return(integer(0))
        m <- rep(-1L, store$block_rows[[b]])
        m[fdf$idx[k]] <- at[k]
        m
    })
}

# The features `rows` x the cells of one chunk, a dgCMatrix named by cell.
.lsi_read_chunk <- function(store, ch, maps, n_rows) {
    s <- .core(epi_arrow_read_cells(ch$file, store$group, store$seqs, maps,
                                    n_rows, ch$col))
    methods::new("dgCMatrix", i = s$i, p = s$p, x = s$x,
                 Dim = as.integer(s$dim),
                 Dimnames = list(NULL, store$cells[ch$global]))
}

# Calls fun(chunk matrix, global cell indices) on every chunk of the cells
# `wanted` over the features `rows`; returns the results in chunk order, or
# folded as they come by combine(acc, result) (acc NULL at first) so that
# per-chunk results as long as the features never pile up.
.lsi_stream <- function(store, rows, wanted, fun, combine = NULL) {
    maps <- .lsi_row_maps(store, rows)
    out <- if (is.null(combine)) list() else NULL
    for (ch in .lsi_chunks(store, wanted)) {
        r <- fun(.lsi_read_chunk(store, ch, maps, length(rows)), ch$global)
        if (is.null(combine)) out[[length(out) + 1L]] <- r
        else out <- combine(out, r)
    }
    out
}

# The features `rows` x the cells `cells` (global indices, any order), in
# that column order: the only full read, used for the (sampled) fit.
.lsi_read <- function(store, rows, cells) {
    pieces <- .lsi_stream(store, rows, cells, function(m, g) m)
    m <- .cbind_dgc(pieces, length(rows))
    want <- store$cells[cells]
    if (!identical(colnames(m), want)) m <- m[, want, drop = FALSE]
    m
}

# cbind of dgCMatrix pieces with the same rows, slots concatenated once
# (Matrix's cbind on many pieces copies pairwise).
.cbind_dgc <- function(pieces, n_rows) {
    if (!length(pieces))
        return(Matrix::sparseMatrix(i = integer(), j = integer(),
            x = numeric(), dims = c(n_rows, 0L)))
    nnz <- vapply(pieces, function(m) length(m@x), numeric(1))
    if (sum(nnz) > .Machine$integer.max)
        .abort("more than 2^31 - 1 values in the LSI features of these ",
               "cells; set sampleCellsFinal (e.g. 50000)", kind = "input")
    off <- c(0, cumsum(nnz))
    p <- unlist(lapply(seq_along(pieces), function(k) {
        pp <- pieces[[k]]@p
        if (k > 1L) pp <- pp[-1L]
        as.integer(pp + off[k])
    }))
    methods::new("dgCMatrix", p = p,
        i = unlist(lapply(pieces, methods::slot, "i")),
        x = unlist(lapply(pieces, methods::slot, "x")),
        Dim = c(as.integer(n_rows), sum(vapply(pieces, ncol, 1L))),
        Dimnames = list(NULL, unlist(lapply(pieces, colnames))))
}

# ---------------------------------------------------------------------------
# One pass over all cells: what .lsi_total, the depth fallback, the input
# checks and the LSIFeatures row sums need, summed chunk by chunk (integer
# counts sum exactly, so the totals equal the full matrix's).
.lsi_pass <- function(store, p) {
    n <- nrow(store$features)
    col <- numeric(length(store$cells))
    acc <- .lsi_stream(store, seq_len(n), seq_along(store$cells),
        function(m, g) .lsi_pass_chunk(m, g, p), function(acc, r) {
            col[r$global] <<- r$col
            r$col <- r$global <- NULL
            if (is.null(acc)) return(r)
            for (f in c("count", "raw", "l", "l2"))
                if (!is.null(r[[f]])) acc[[f]] <- acc[[f]] + r[[f]]
            acc$range <- range(c(acc$range, r$range))
            acc
        })
    acc$col <- col
    acc
}

.lsi_pass_chunk <- function(m, g, p) {
    rows <- seq_len(nrow(m)) - 1L
    cols <- seq_len(ncol(m)) - 1L
    out <- list(global = g, col = Matrix::colSums(m),
        range = if (length(m@x)) range(m@x) else numeric(0),
        count = .core(epi_lsi_row_sums(m, rows, nrow(m), cols, TRUE)),
        raw = .core(epi_lsi_row_sums(m, rows, nrow(m), cols, FALSE)))
    if (p$firstSelection != "top") {
        m@x <- log2(m@x + 1)
        out$l <- Matrix::rowSums(m)
        m@x <- m@x^2
        out$l2 <- Matrix::rowSums(m)
    }
    out
}

# .lsi_total from the pass: accessibility (top) or log2 variance (var).
.lsi_total_stream <- function(acc, p, n_cells) {
    if (p$firstSelection == "top")
        return(if (p$binarize) acc$count else acc$raw)
    m <- acc$l / n_cells
    s <- (acc$l2 - n_cells * m^2) / (n_cells - 1)
    s[m <= 0] <- NA
    s
}

# .check_lsi_input needs only the value range, the cell count and names: a
# 2-row stand-in carries them (no copy of the data).
.lsi_check_stream <- function(store, r, p) {
    n <- length(store$cells)
    stub <- methods::new("dgCMatrix", Dim = c(2L, n),
        p = c(0L, rep(length(r), n)), i = seq_along(r) - 1L,
        x = as.numeric(r), Dimnames = list(NULL, store$cells))
    .check_lsi_input(stub, p)
}

# ---------------------------------------------------------------------------
# The iteration loop of .iterative_lsi with streamed reads; same calls in
# the same order, so the R RNG stream (sampling, clustering) is the same.
.iterative_lsi_stream <- function(store, total, depth, samples, p) {
    set.seed(p$seed)
    p <- .lsi_small_data(p, length(store$cells))
    .lsi_loop(.lsi_first_features(total, p), depth, p,
        function(feats, j) .lsi_partial_stream(store, feats, depth, samples,
                                               p, j),
        function(cl, feats, j) .lsi_var_features_stream(store, cl, total,
                                                        feats, p, j))
}

# .lsi_partial with reads of the iteration's features only: the fit on the
# (sampled) cells, in the order .lsi_partial gives them, then projection of
# all cells chunk by chunk.
.lsi_partial_stream <- function(store, feats, depth, samples, p, j) {
    n_sample <- if (j < p$iterations) p$sampleCellsPre else p$sampleCellsFinal
    cells <- store$cells
    loc <- seq_along(feats)
    if (is.null(n_sample)) {
        fit <- .compute_lsi(.lsi_read(store, feats, seq_along(cells)), loc,
                            seq_along(cells), p)
    } else {
        picked <- match(.sample_by_sample(cells, samples, depth, n_sample,
                                          p$outlierQuantiles), cells)
        fit <- .compute_lsi(.lsi_read(store, feats, picked), loc,
                            seq_along(picked), p)
        if (.lsi_project_all(p, j)) {
            fit <- .lsi_projected(fit,
                .lsi_project_stream(store, feats, fit, p), cells)
        }
    }
    fit$rows <- feats[fit$rows]
    .lsi_depth_cor(fit, feats, depth)
}

# .project_lsi of every cell, one chunk at a time (cells are projected
# independently), rows in cellColData order.
.lsi_project_stream <- function(store, feats, fit, p) {
    out <- do.call(rbind, .lsi_stream(store, feats, seq_along(store$cells),
        function(m, g) .project_lsi(m, fit, seq_len(ncol(m)), p)))
    out[store$cells, , drop = FALSE]
}

# .lsi_var_features with the cluster pseudo-bulks summed chunk by chunk.
.lsi_var_features_stream <- function(store, cl, total, prev, p, j) {
    groups <- unique(cl$clusters)
    if (length(groups) == 1L) return(prev)
    cand <- .lsi_var_candidates(cl, total, p)
    lev <- sort(groups)
    grp <- rep(-1L, length(store$cells))
    grp[match(cl$cellNames, store$cells)] <- match(cl$clusters, lev) - 1L
    gm <- .lsi_stream(store, cand, which(grp >= 0L), function(m, g)
        .core(epi_lsi_group_sums(m, seq_len(nrow(m)) - 1L, nrow(m), grp[g],
                                 length(lev), p$threads)),
        function(acc, r) if (is.null(acc)) r else acc + r)
    .lsi_pick_var(gm, cand, p, j)
}

# ---------------------------------------------------------------------------
# The project method's body: store, pass, checks, iterations, entry.
.add_lsi_stream <- function(proj, useMatrix, excludeChr, chunkSize, args) {
    p <- .lsi_params(args)
    store <- .lsi_store(proj, useMatrix, excludeChr, chunkSize)
    .lsi_check_stream(store, numeric(0), p)
    acc <- .lsi_pass(store, p)
    .lsi_check_stream(store, acc$range, p)
    cd <- proj@cellColData
    d <- if (!is.null(p$depthCol)) cd[[p$depthCol]] else acc$col
    if (!is.numeric(d) || anyNA(d) || any(d < 0))
        .abort("depth column '", p$depthCol, "' must be non-negative ",
               "numbers without NA", kind = "input")
    depth <- stats::setNames(log10(as.numeric(d) + 1), store$cells)
    samples <- if ("Sample" %in% colnames(cd)) as.character(cd$Sample)
        else rep("Sample1", length(store$cells))
    total <- .lsi_total_stream(acc, p, length(store$cells))
    out <- .with_seed(p$seed, .iterative_lsi_stream(store, total, depth,
                                                    samples, p))
    .lsi_stream_entry(out, store, acc$raw, useMatrix, proj, p)
}

# The reducedDims entry .lsi_project_entry builds from the in-memory path.
.lsi_stream_entry <- function(out, store, raw, useMatrix, proj, p) {
    fit <- out$lsi
    fdf <- store$features[fit$LSIFeatures, , drop = FALSE]
    start <- if (is.null(fdf$end)) fdf$start else pmin(fdf$start, fdf$end)
    feat <- S4Vectors::DataFrame(seqnames = as.character(fdf$seqnames),
        idx = if (is.null(fdf$idx)) fit$LSIFeatures else fdf$idx,
        start = as.integer(start), rowSums = raw[fit$LSIFeatures])
    tile <- if (useMatrix == "TileMatrix") .tile_size(proj) else NA
    keep <- c("rowSm", "nCol", "exclude", "idx", "svd", "binarize",
              "scaleTo", "nDimensions", "LSIMethod", "keep0lsi", "outliers")
    S4Vectors::SimpleList(c(
        list(matSVD = fit$matSVD), fit[keep],
        list(date = Sys.Date(), seed = out$params$seed, LSIFeatures = feat,
             corToDepth = fit$corToDepth, scaleDims = p$scaleDims,
             useMatrix = useMatrix, tileSize = tile,
             iterations = out$iterations, params = out$params)))
}
