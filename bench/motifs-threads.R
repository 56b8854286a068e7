# Thread speed-up of epione::matchMotifs (no reference tool): the cisBP
# 870 PWMs against n real sequences (Biostrings' dm3 upstream regions),
# out = "matches", at each thread count. Prints the median of `reps` runs
# (elapsed, user + system CPU), the speed-up over 1 thread, the load
# average, and checks the answers are identical across thread counts.
# Usage (repository root):
#   R_LIBS=.lib Rscript bench/motifs-threads.R [n=3000] [reps=3] [threads=1,2]
args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args) >= 1) as.integer(args[1]) else 3000L
reps <- if (length(args) >= 2) as.integer(args[2]) else 3L
threads <- if (length(args) >= 3) as.integer(strsplit(args[3], ",")[[1]]) else
    c(1L, 2L)
suppressPackageStartupMessages({
    library(epione)
    library(Biostrings)
})
dm3 <- system.file("extdata", "dm3_upstream2000.fa.gz", package = "Biostrings")
seqs <- unique(readDNAStringSet(dm3))[seq_len(n)]
motifs <- getMotifs("cisbp")
cat(sprintf("%d cisBP PWMs x %d sequences (%.1f Mb), load average: %s\n",
            length(motifs), length(seqs), sum(width(seqs)) / 1e6,
            paste(readLines("/proc/loadavg"), collapse = " ")))
res <- list()
base <- NULL
for (t in threads) {
    runs <- vapply(seq_len(reps), function(r) {
        gc(FALSE)
        t0 <- proc.time()
        res[[as.character(t)]] <<- matchMotifs(motifs, seqs, threads = t)
        d <- proc.time() - t0
        c(d[["elapsed"]], d[["user.self"]] + d[["sys.self"]])
    }, numeric(2))
    el <- stats::median(runs[1, ])
    cpu <- stats::median(runs[2, ])
    if (is.null(base)) base <- el
    cat(sprintf("threads %d: elapsed %.2f s, CPU %.2f s, speed-up %.2fx\n",
                t, el, cpu, base / el))
}
same <- all(vapply(res, identical, NA, res[[1]]))
cat("identical across threads:", same, "\n")
cat("load average after:", readLines("/proc/loadavg"), "\n")
if (!same) quit(status = 1)
