# Benchmark: epione vs chromVAR 1.29 on the scaled synthetic case of
# shared/data/ref/chromvar (5,000 cells x 50,000 peaks, 800 annotations),
# rebuilt with the reference's own generator (scripts/05_synthetic_scaled.R)
# and checked against its md5 fingerprint.
#
#   R_LIBS=/work/reflib:.lib Rscript bench/chromvar.R [n_ref_annot] [threads]
#
# chromVAR's computeDeviations takes ~300 s (user) for all 800 annotations
# on this machine; its cost is a sum over annotations (one bplapply task
# each), so by default it runs on the first 80 annotations and epione runs
# on the same 80 (ratio) and on all 800. Pass 800 for the full comparison.
# Peak memory: the process high-water mark (VmHWM) after the epione phase,
# before chromVAR is loaded.
#
# Measured 2026-11-29 18:51 on the quiet 2-core machine (load 0.8-1.2),
# `bench/chromvar.R 160 2`, chromVAR 1.29 serial:
#   getBackgroundPeaks  chromVAR 2.07 s (CPU 2.17) | epione 0.19 s (CPU 0.35)
#                       10.7x elapsed, 6.2x CPU, identical draws
#   computeDeviations sample, 160 ann.: 60.8 s vs 2.01 s: 30.3x (CPU 17.0x)
#     extrapolated to 800 ann.: 304 s vs 7.03 s: 43.2x (CPU 22.9x)
#   analytical, 800 ann.: 304 s vs 1.43 s: 213x (CPU 115x)
#   peak memory of the epione phase (VmHWM) 1.60 GiB.
suppressPackageStartupMessages({
    library(Matrix)
    library(SummarizedExperiment)
})
args <- commandArgs(trailingOnly = TRUE)
n_ref <- if (length(args) >= 1) as.integer(args[1]) else 80L
threads <- if (length(args) >= 2) as.integer(args[2]) else 2L
shared <- Sys.getenv("EPIONE_SHARED", "/work/shared")
ref <- file.path(shared, "data", "ref", "chromvar")

vm_hwm <- function() {
    l <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
    as.numeric(gsub("[^0-9]", "", l)) / 1024^2   # GiB
}
# CPU = user + sys of this process and its children (the machine is
# shared, so elapsed time depends on the load printed with each row).
timed <- function(expr) {
    gc()
    t <- system.time(v <- force(expr))
    list(value = v, elapsed = t[["elapsed"]],
         user = t[["user.self"]] + t[["user.child"]] + t[["sys.self"]] +
             t[["sys.child"]])
}
# getBackgroundPeaks takes ~0.2-2 s: median of `reps` runs under the same
# seed (each tool's first run also pays one-off set-up costs).
timed_bg <- function(fun, reps = 5L) {
    runs <- lapply(seq_len(reps), function(i) {
        set.seed(1)
        timed(fun(se))
    })
    pick <- order(vapply(runs, `[[`, 0, "elapsed"))[(reps + 1L) %/% 2L]
    runs[[pick]]
}
load_avg <- function() {
    scan("/proc/loadavg", what = "", n = 1L, quiet = TRUE)
}
row <- function(task, ref_t, epi_t, same) {
    cat(sprintf(paste("%-34s chromVAR %7.2f s (CPU %7.2f) | epione %6.2f s",
                      "(CPU %6.2f) | ratio elapsed %6.1fx CPU %6.1fx |",
                      "agree: %s | load %s\n"),
        task, ref_t$elapsed, ref_t$user, epi_t$elapsed, epi_t$user,
        ref_t$elapsed / epi_t$elapsed, ref_t$user / epi_t$user, same,
        load_avg()))
}

source(file.path(ref, "scripts", "05_synthetic_scaled.R"))
t_build <- system.time(sc <- make_scaled())
fp <- fingerprint(sc)
want <- utils::read.delim(file.path(ref, "timings", "scaled_fingerprint.tsv"))
stopifnot(identical(fp$value, want$value))
cat(sprintf(paste("input: %d cells x %d peaks, nnz %s, %d annotations",
                  "(built in %.0f s, fingerprint ok)\n"),
            ncol(sc$counts), nrow(sc$counts), format(length(sc$counts@x)),
            ncol(sc$anno), t_build[["elapsed"]]))
se <- SummarizedExperiment(assays = list(counts = sc$counts),
                           rowData = S4Vectors::DataFrame(bias = sc$bias))
sub <- sc$anno[, seq_len(n_ref)]

## epione phase ---------------------------------------------------------
suppressPackageStartupMessages(library(epione))
cat(sprintf("epione threads = %d; BLAS: %s\n", threads, sessionInfo()$BLAS))
e_bg <- timed_bg(function(x) epione::getBackgroundPeaks(x, threads = threads))
e_exp <- timed(epione::computeExpectations(se))
e_sub <- timed(epione::computeDeviations(se, sub, e_bg$value,
    method = "sample", threads = threads))
e_all <- timed(epione::computeDeviations(se, sc$anno, e_bg$value,
    method = "sample", threads = threads))
e_ana <- timed(epione::computeDeviations(se, sc$anno, method = "analytical",
                                 threads = threads))
hwm <- vm_hwm()
cat(sprintf(paste("epione all %d annotations: sample %.2f s (CPU %.2f),",
                  "analytical %.2f s (CPU %.2f); peak memory (VmHWM)",
                  "%.2f GiB\n"),
            ncol(sc$anno), e_all$elapsed, e_all$user, e_ana$elapsed,
            e_ana$user, hwm))
za <- epione::deviationScores(e_ana$value)
zs <- epione::deviationScores(e_all$value)
r <- vapply(seq_len(nrow(zs)), function(i)
    stats::cor(za[i, ], zs[i, ], use = "complete.obs"), 0)
cat(sprintf(paste("analytical vs sample per-annotation Pearson:",
                  "min %.4f median %.4f\n"),
            min(r), stats::median(r)))

## chromVAR phase -------------------------------------------------------
reflib <- Sys.getenv("EPIONE_REFLIB", "/work/reflib")
.libPaths(c(reflib, .libPaths()))
suppressPackageStartupMessages(library(chromVAR))
BiocParallel::register(BiocParallel::SerialParam())
r_bg <- timed_bg(chromVAR::getBackgroundPeaks)
row("getBackgroundPeaks", r_bg, e_bg,
    identical(unname(r_bg$value), unname(e_bg$value) + 0))
r_exp <- timed(chromVAR::computeExpectations(se))
row("computeExpectations", r_exp, e_exp,
    isTRUE(all.equal(r_exp$value, e_exp$value, tolerance = 1e-14)))
r_sub <- timed(chromVAR::computeDeviations(se, sub, r_bg$value))
same <- isTRUE(all.equal(unname(chromVAR::deviationScores(r_sub$value)),
                         unname(epione::deviationScores(e_sub$value)),
                         tolerance = 1e-10))
row(sprintf("computeDeviations sample (%d ann.)", n_ref), r_sub, e_sub, same)
scale <- ncol(sc$anno) / n_ref
est <- list(elapsed = r_sub$elapsed * scale, user = r_sub$user * scale)
row(sprintf("  extrapolated to %d ann.", ncol(sc$anno)), est, e_all, same)
row(sprintf("  analytical, %d ann. (extrap.)", ncol(sc$anno)), est, e_ana,
    "n/a")
if (!same) quit(status = 1)
