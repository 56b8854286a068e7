# Benchmark: epione::matchMotifs vs motifmatchr::matchMotifs on the same
# inputs in one process. Prints per case the median of `reps` runs (elapsed
# and user CPU seconds), the ratios and whether the answers agree (exits
# non-zero if not).
# Usage (repository root):
#   EPIONE_REFLIB=/work/reflib R_LIBS=/work/reflib:.lib \
#       Rscript bench/motifs.R [reps=3] [threads=1,2]
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1) as.integer(args[1]) else 3L
threads <- if (length(args) >= 2) as.integer(strsplit(args[2], ",")[[1]]) else c(1L, 2L)
reflib <- Sys.getenv("EPIONE_REFLIB", "/work/reflib")
.libPaths(c(reflib, .libPaths()))
suppressPackageStartupMessages({
    library(epione)
    library(motifmatchr)
    library(Biostrings)
    library(TFBSTools)
})
shared <- Sys.getenv("EPIONE_SHARED", "../shared")

timed <- function(expr_fn) {
    runs <- lapply(seq_len(reps), function(r) {
        gc(FALSE)
        t0 <- proc.time()
        value <- expr_fn()
        t1 <- proc.time() - t0
        list(value = value, elapsed = t1[["elapsed"]],
             user = t1[["user.self"]] + t1[["user.child"]])
    })
    list(value = runs[[1]]$value,
         elapsed = stats::median(vapply(runs, `[[`, 1, "elapsed")),
         user = stats::median(vapply(runs, `[[`, 1, "user")))
}
# Motif names differ (motifmatchr: the list names; epione: motif IDs), so
# values are compared without dimnames.
plain <- function(m) unname(as.matrix(m))
same_result <- function(a, b, out) {
    if (out == "matches")
        return(identical(plain(motifMatches(a)), plain(epione::motifMatches(b))))
    isTRUE(all.equal(plain(motifScores(a)), plain(epione::motifScores(b)),
                     tolerance = 1e-12)) &&
        identical(plain(motifCounts(a)), plain(epione::motifCounts(b)))
}

dm3 <- system.file("extdata", "dm3_upstream2000.fa.gz", package = "Biostrings")
cases <- list(
    list(name = "cisBP 870 PWMs x dm3 upstream 1000 seqs",
         motifs_ref = function() { data("human_pwms_v2", package = "chromVARmotifs",
                                        envir = environment()); human_pwms_v2 },
         motifs_epi = function() getMotifs("cisbp"),
         seqs = function() unique(readDNAStringSet(dm3))[1:1000]),
    list(name = "JASPAR2020 746 PFMs x human 503 seqs",
         motifs_ref = function() readRDS(file.path(shared, "data", "motifs",
             "JASPAR2020_CORE_vertebrates_non-redundant_PFMatrixList.rds")),
         motifs_epi = function() getMotifs("JASPAR2020"),
         seqs = function() readDNAStringSet(file.path(shared, "data", "ref",
             "chromvar", "inputs", "motif_human_sequences.fa.gz"))))

ok <- TRUE
cat(sprintf("%-42s %-8s %7s %9s %9s %9s %9s %8s %8s %5s\n", "case", "out",
            "threads", "ref_el", "ref_user", "epi_el", "epi_user",
            "x_el", "x_user", "same"))
for (cs in cases) {
    seqs <- cs$seqs()
    mref <- cs$motifs_ref()
    mepi <- cs$motifs_epi()
    label <- sprintf("%s (%.2f Mb)", cs$name, sum(as.numeric(width(seqs))) / 1e6)
    for (out in c("matches", "scores")) {
        ref <- timed(function() motifmatchr::matchMotifs(mref, seqs, out = out))
        for (th in threads) {
            epi <- timed(function() epione::matchMotifs(mepi, seqs, out = out,
                                                        threads = th))
            same <- same_result(ref$value, epi$value, out)
            ok <- ok && same
            cat(sprintf("%-42s %-8s %7d %9.2f %9.2f %9.2f %9.2f %8.1f %8.1f %5s\n",
                        substr(label, 1, 42), out, th, ref$elapsed, ref$user,
                        epi$elapsed, epi$user, ref$elapsed / epi$elapsed,
                        ref$user / epi$user, same))
        }
    }
}
cat("motifmatchr", as.character(packageVersion("motifmatchr")), "(single-threaded);",
    "epione", as.character(packageVersion("epione")), "; reps =", reps, "\n")
if (!ok) quit(status = 1)
