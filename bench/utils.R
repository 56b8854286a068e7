# Helpers shared by the bench/ scripts (each sources this file from its own
# folder): the machine's load, this process's memory from /proc (Linux; NA
# elsewhere) and the synthetic scATAC tile draw of the LSI benchmarks.

# "1-min 5-min 15-min" load averages, NA where /proc is absent.
bench_load_avg <- function() {
    f <- "/proc/loadavg"
    if (!file.exists(f)) return(NA_character_)
    paste(strsplit(readLines(f), " ")[[1]][1:3], collapse = " ")
}

# Resets the kernel's peak-RSS mark (VmHWM) where allowed, and R's gc stats.
bench_peak_reset <- function() {
    f <- "/proc/self/clear_refs"
    if (file.exists(f)) try(writeLines("5", f), silent = TRUE)
    invisible(gc(reset = TRUE))
}

# A /proc/self/status memory field ("VmHWM", "VmRSS") in GiB.
bench_vm_gb <- function(key) {
    s <- readLines("/proc/self/status")
    as.numeric(gsub("[^0-9]", "", grep(paste0("^", key), s, value = TRUE))) /
        2^20
}

# Binary cells x tiles matrix (tiles x cells dgCMatrix) from cell types,
# depths (tiles per cell), the types' programmes (20 000 x types matrix of
# tiles) and 30 000 shared tiles: each fragment comes from the cell's
# programme (45 %), the shared set (25 %) or anywhere (30 %).
bench_draw_tiles <- function(type, depth, prog_mat, shared, n_tiles) {
    src <- sample.int(3L, sum(depth), TRUE, prob = c(0.45, 0.25, 0.30))
    cell <- rep.int(seq_along(type), depth)
    tile <- integer(length(cell))
    k <- src == 1L
    tile[k] <- prog_mat[cbind(sample.int(20000L, sum(k), TRUE),
                              type[cell[k]])]
    k <- src == 2L
    tile[k] <- shared[sample.int(30000L, sum(k), TRUE)]
    k <- src == 3L
    tile[k] <- sample.int(n_tiles, sum(k), TRUE)
    m <- Matrix::sparseMatrix(i = tile, j = cell, x = 1,
                              dims = c(n_tiles, length(type)))
    m@x[] <- 1
    m
}
