# Peak memory of addIterativeLSI(proj) streamed from the Arrow store, and
# how it grows with the number of cells (issue #8: 1 M cells x 500 k tiles
# within 24 GB).
#
#   R_LIBS=.lib Rscript bench/lsi-stream.R write <dir> <n_files>
#   R_LIBS=.lib Rscript bench/lsi-stream.R run <dir> <n_files> [final] [chunk]
#   R_LIBS=.lib Rscript bench/lsi-stream.R memory <dir> <n_files> [final]
#
# `write` makes <n_files> Arrow files of 10 000 synthetic cells each (one
# sample per file, 500 000 tiles of 500 bp on 10 chromosomes, binary TileMatrix
# written with epione's own writer), generated one file at a time so the
# writer never holds more than 10 000 cells. The matrix is bench/lsi.R's
# generator: 8 cell types with their own 20 000-tile programmes, 30 000
# shared tiles, uniform background, log-normal depth (median 2 500 tiles).
# `run` opens the first <n_files> as a project in a fresh process and runs
# addIterativeLSI with ArchR's defaults (2 iterations, varFeatures 25 000,
# dims 1:30, sampleCellsPre 10 000) and sampleCellsFinal = <final> (0 =
# NULL, ArchR's default: the last fit uses all cells); it prints wall and
# cpu time, the process's peak RSS (VmHWM, reset just before the call) and
# the R heap peak (gc), then the ARI of the clusters of the embedding vs the
# simulated types as a sanity check. `memory` runs the previous project
# path (whole matrix read, then iterativeLSI) on the same files.
#
# Measured 2026-11-29 on the shared 2-core machine (R_LIBS = a private copy
# of the installed package, threads = 2, chunkSize 5000; 29 M stored values
# per 10 000 cells, i.e. 2 900 per cell; 345-351 values per cell in the
# 25 000 final features). Peak RSS includes R + packages (0.55 GB):
#   cells  sampleCellsFinal  peak RSS  wall / cpu s         load (1 min)
#   20k    NULL              1.54 GB   123 / 75             4.2 -> 4.9
#   40k    NULL              1.74 GB   195 / 101            4.7 -> 6.0
#   100k   NULL              2.12 GB   273 / 156            2.9 -> 4.6
#   100k   NULL (traced)     2.24 GB   441 / 152            3.1 -> 6.7
#   100k   10000             1.48 GB   191 / 107            5.7 -> 6.4
#   200k   NULL (traced)     3.25 GB   419 / 274            3.0 -> 5.1
#   40k    in-memory path    6.60 GB   193 / 117            6.2 -> 5.5
# (in-memory = the previous project path: getMatrixFromProject, then
# iterativeLSI; it held the whole 500k x 40k matrix.) The traces: the pass
# over all tiles peaks at 1.48-1.50 GB (a chunk of 5 000 cells x 500 000
# tiles; the same at 100k and 200k cells), iteration 1 and its clustering
# (10 000 sampled cells) and the variable features stay under it, and the
# last fit on all cells sets the peak: 2.24 GB at 100k, 3.25 GB at 200k,
# i.e. +1.01 GB per 100k cells = 10.1 KB per cell = 31 bytes per value of
# the final features (the read matrix, the cbind of its chunks, its TF-IDF
# copy, the per-cell coordinates).
# Extrapolation to 1 M cells x 500k tiles (peak = 1.23 GB + 10.1 KB x N):
#   sampleCellsFinal = NULL (ArchR's default): 11.3 GB, within 24 GB. The
#     per-cell cost scales with the values per cell in the final 25 000
#     features (347 here): 24 GB holds up to ~735 per cell; denser real
#     data should set sampleCellsFinal.
#   sampleCellsFinal = 10 000 (100k cells: 1.48 GB, the pass constant):
#     only per-cell vectors grow (coordinates, names, ~1.5 KB per cell),
#     ~3 GB at 1 M cells whatever the density.

suppressPackageStartupMessages({
    library(Matrix)
    library(epione)
})
a <- commandArgs(trailingOnly = TRUE)
mode <- a[1]
dir <- a[2]
n_files <- as.integer(a[3])
per_file <- 10000L
n_tiles <- 500000L
n_chr <- 10L
tile_size <- 500

source(file.path(dirname(sub("^--file=", "", grep("^--file=",
    commandArgs(FALSE), value = TRUE)[1])), "utils.R"))
vm <- bench_vm_gb

# Cells of one file: types, depths and tiles (bench/lsi.R's generator, the
# programmes fixed by seed 1 for every file, the cells by the file's seed).
simulate_file <- function(k, n_types = 8) {
    set.seed(1)
    shared <- sample.int(n_tiles, 30000)
    prog <- do.call(cbind, lapply(seq_len(n_types), function(t)
        sample.int(n_tiles, 20000)))
    set.seed(1000 + k)
    type <- sample.int(n_types, per_file, replace = TRUE)
    depth <- pmax(200L, round(rlnorm(per_file, log(2500), 0.6)))
    m <- bench_draw_tiles(type, depth, prog, shared, n_tiles)
    list(m = m, type = type, nFrags = depth)
}

write_file <- function(k) {
    sample <- sprintf("S%03d", k)
    file <- file.path(dir, paste0(sample, ".arrow"))
    sim <- simulate_file(k)
    cells <- sprintf("cell%06d", seq_len(per_file))
    per_chr <- n_tiles / n_chr
    chr <- paste0("chr", seq_len(n_chr))
    epione:::.arrow_init(file, sample, cells)
    epione:::.arrow_h5write(file, "Metadata/nFrags", as.numeric(sim$nFrags))
    epione:::.arrow_h5write(file, "Metadata/SimType", as.numeric(sim$type))
    epione:::.write_tile_info2(file, chr, rep(per_chr * tile_size - 1, n_chr),
                               cells, tile_size, TRUE, FALSE)
    for (c in seq_len(n_chr)) {
        rows <- (c - 1) * per_chr + seq_len(per_chr)
        epione:::epi_arrow_write_sparse(file, paste0("TileMatrix/", chr[c]),
                                        sim$m[rows, ])
    }
    length(sim$m@x)
}

if (mode == "write") {
    dir.create(dir, showWarnings = FALSE, recursive = TRUE)
    for (k in seq_len(n_files)) {
        if (file.exists(file.path(dir, sprintf("S%03d.arrow", k)))) next
        st <- system.time(nnz <- write_file(k))
        cat(sprintf("file %d: %.1f M nnz, %.1f s wall %.1f s cpu, load %s\n",
                    k, nnz / 1e6, st[["elapsed"]],
                    st[["user.self"]] + st[["sys.self"]], bench_load_avg()))
    }
    quit(save = "no")
}

final <- if (length(a) >= 4 && a[4] != "0") as.integer(a[4]) else NULL
chunk <- if (length(a) >= 5) as.integer(a[5]) else 5000L
files <- file.path(dir, sprintf("S%03d.arrow", seq_len(n_files)))
proj <- ArchRProject(files, file.path(dir, sprintf("proj%d", n_files)),
                     copyArrows = FALSE)
n <- nrow(proj@cellColData)
cat(sprintf("cells %d, tiles %d, sampleCellsFinal %s, chunkSize %d, ",
            n, n_tiles, if (is.null(final)) "NULL" else final, chunk),
    sprintf("load before %s\n", bench_load_avg()))
# Peak so far at the end of each streamed phase (cumulative VmHWM), to see
# which phase sets the peak: the pass, each fit, each projection.
for (f in c(".lsi_pass", ".compute_lsi", ".lsi_project_stream",
            ".lsi_var_features_stream", ".lsi_cluster")) {
    suppressMessages(trace(f, where = asNamespace("epione"), print = FALSE,
        exit = bquote(cat(sprintf("  %-26s done: RSS %.2f GB, peak %.2f GB\n",
                                  .(f), .(vm)("VmRSS"), .(vm)("VmHWM"))))))
}
rss0 <- vm("VmRSS")
bench_peak_reset()
if (mode == "memory") {
    # The previous project path (epione 0.3 before streaming): the whole
    # matrix from getMatrixFromProject, then iterativeLSI() on it.
    st <- system.time({
        se <- getMatrixFromProject(proj, "TileMatrix", verbose = FALSE)
        sce <- iterativeLSI(se, sampleCellsFinal = final, threads = 2,
                            verbose = FALSE)
    })
    g <- gc()
    cat(sprintf(paste0("in-memory getMatrixFromProject + iterativeLSI: ",
                       "%.1f s wall, %.1f s cpu; RSS before %.2f GB, peak ",
                       "RSS %.2f GB; R heap peak %.2f GB; load after %s\n"),
                st[["elapsed"]], st[["user.self"]] + st[["sys.self"]], rss0,
                vm("VmHWM"), sum(g[, ncol(g)]) / 1024, bench_load_avg()))
    quit(save = "no")
}
st <- system.time(proj <- addIterativeLSI(proj, sampleCellsFinal = final,
                                          chunkSize = chunk, threads = 2,
                                          verbose = FALSE))
g <- gc()
cat(sprintf(paste0("addIterativeLSI: %.1f s wall, %.1f s cpu (user %.1f, ",
                   "sys %.1f); RSS before %.2f GB, peak RSS %.2f GB; R heap ",
                   "peak %.2f GB; load after %s\n"),
            st[["elapsed"]], st[["user.self"]] + st[["sys.self"]],
            st[["user.self"]], st[["sys.self"]], rss0, vm("VmHWM"),
            sum(g[, ncol(g)]) / 1024, bench_load_avg()))
lsi <- proj@reducedDims$IterativeLSI
cat(sprintf("final features %d, cells embedded %d, d[1:3] %s\n",
            nrow(lsi$LSIFeatures), nrow(lsi$matSVD),
            paste(signif(lsi$svd$d[1:3], 5), collapse = " ")))
# Values in the final features over all cells: what the last fit holds
# when sampleCellsFinal is NULL (dgCMatrix: 12 bytes each).
nnz_final <- sum(lsi$LSIFeatures$rowSums)
cat(sprintf("final features: %.1f M values over all cells (%.0f per cell, ",
            nnz_final / 1e6, nnz_final / n),
    sprintf("%.2f GB as dgCMatrix)\n", nnz_final * 12 / 2^30))
cl <- lsi$iterations[[1]]$clusters
type <- proj@cellColData$SimType[match(cl$cellNames,
                                       rownames(proj@cellColData))]
if (requireNamespace("mclust", quietly = TRUE))
    cat(sprintf("ARI(iteration-1 clusters, simulated types) %.3f\n",
                mclust::adjustedRandIndex(cl$clusters, type)))
