# Benchmark: epione::differentialAccessibility() against DESeq2::DESeq() +
# results() and glmGamPoi::glm_gp() + test_de(), on the simulated sets of
# shared/data/ref/deseq2 (regenerated here with its simulate.R; nothing is
# written to the repository). Prints, per size, the elapsed and CPU
# (user + system) seconds (median of EPIONE_BENCH_REPS runs, default 1 for
# the references and 5 for epione), the ratios to epione (x_elaps on
# elapsed, x_cpu on user + system CPU, which counts both epione threads),
# the load average
# before each size (the machine may be shared: compare CPU then), and
# whether the padj < 0.1 calls agree with DESeq2; exits non-zero if not.
# Usage: Rscript bench/deseq.R [p50k_s6 p200k_s12 p50k_s100]
#
# Measured 2026-11-30, session 7 (2-core AMD EPYC VM with AVX2, no other
# jobs; R 4.2.2, DESeq2 1.38.3; padj < 0.1 calls identical to DESeq2's in
# every run). The VM's speed drifts between and within runs (DESeq2 alone
# took 7.5-14.3 s on p50k_s6 and 37.9-48.7 s on p50k_s100 over three
# evenings), so compare ratios from one run. Last full run:
#   p50k_s6   DESeq2 14.31 s, epione 0.20 s: 73.0x elapsed, 43.2x CPU
#             (session 6: 84.3x, epione 0.16 s)
#   p200k_s12 DESeq2 43.79 s, epione 0.71 s: 61.7x, 33.7x (session 6:
#             52.8x, epione 0.87 s; a separate run this session 62.2x)
#   p50k_s100 DESeq2 37.88 s, epione 0.72 s: 52.5x, 27.8x (session 6:
#             45.4x, epione 0.89 s; a separate run this session 59.3x
#             with DESeq2 43.87 s / epione 0.74 s)
# glmGamPoi (glm_gp + test_de) 38-352 s: 51-496x.
# Peak extra RSS of one run in a fresh process (peak_extra_mb()): p50k_s6
# 11 MB (session 6: 19) = 2.4x its 4.6 MB count matrix with dimnames,
# 9.4x its 1.1 MB of integer values; p200k_s12 52 MB (62) = 2.3x / 5.7x;
# p50k_s100 22 MB (27) = 1.0x / 1.17x. The returned results and dispersion
# columns alone (11 doubles per peak) are 3.7x a 6-sample and 1.8x a
# 12-sample integer matrix, so the integer-values reading of "3x the count
# matrix" cannot be met at 6 samples by any run that returns them.
suppressPackageStartupMessages({
    library(epione)
    library(DESeq2)
    library(glmGamPoi)
})
source(file.path(dirname(sub("^--file=", "", grep("^--file=",
    commandArgs(FALSE), value = TRUE)[1])), "utils.R"))
Sys.setenv(OPENBLAS_NUM_THREADS = "1")
args <- commandArgs(trailingOnly = TRUE)
sizes <- if (length(args)) args else c("p50k_s6", "p200k_s12", "p50k_s100")
shared <- Sys.getenv("EPIONE_SHARED", "../shared")
ref <- file.path(shared, "data", "ref", "deseq2")
out <- Sys.getenv("EPIONE_BENCH_DIR", file.path(tempdir(), "deseq-bench"))
reps_ref <- as.integer(Sys.getenv("EPIONE_BENCH_REPS", "1"))
threads <- 2L

load_set <- function(name) {
    dd <- file.path(out, name)
    if (!file.exists(file.path(dd, "counts.tsv.gz"))) {
        system2("Rscript", c(file.path(ref, "scripts", "simulate.R"), out,
                             name), stdout = FALSE)
    }
    ct <- utils::read.delim(gzfile(file.path(dd, "counts.tsv.gz")),
                            check.names = FALSE)
    y <- as.matrix(ct[, -1])
    rownames(y) <- ct$peak_id
    list(y = y, cd = readRDS(file.path(dd, "colData.rds")))
}

timed <- function(expr_fn, reps) {
    runs <- lapply(seq_len(reps), function(i) {
        gc()
        t <- system.time(v <- expr_fn())
        list(t = t, v = v)
    })
    el <- vapply(runs, function(r) r$t[["elapsed"]], 0)
    us <- vapply(runs, function(r) r$t[["user.self"]] + r$t[["sys.self"]], 0)
    list(elapsed = stats::median(el), user = stats::median(us),
         value = runs[[1]]$v)
}

# Peak extra resident memory of one differentialAccessibility() run, in a
# fresh R process (the references' freed heap would hide it here): VmHWM
# after the run minus VmRSS before it, the mark reset through
# /proc/self/clear_refs (Linux). Counts R's heap and the C++ core's
# allocations alike; NA where /proc does not allow it.
peak_extra_mb <- function(s) {
    f <- tempfile(fileext = ".rds")
    saveRDS(s, f)
    on.exit(unlink(f))
    code <- c(
        "suppressPackageStartupMessages(library(epione))",
        sprintf("s <- readRDS('%s'); th <- %dL", f, threads),
        "vm <- function(k) { x <- readLines('/proc/self/status')",
        "  as.numeric(gsub('[^0-9]', '', x[startsWith(x, k)])) / 1024 }",
        "da <- function(y) differentialAccessibility(y, ~ condition,",
        "  colData = s$cd, threads = th)",
        "invisible(da(s$y[1:2000, ])); invisible(gc())",
        "ok <- tryCatch({ writeLines('5', '/proc/self/clear_refs'); TRUE },",
        "  error = function(e) FALSE)",
        "b <- vm('VmRSS:'); invisible(da(s$y))",
        "cat(if (ok) vm('VmHWM:') - b else NA, '\\n')")
    rs <- file.path(R.home("bin"), "Rscript")
    out <- suppressWarnings(system2(rs, c("-e", shQuote(paste(code,
        collapse = "\n"))), stdout = TRUE, stderr = FALSE))
    suppressWarnings(as.numeric(utils::tail(out, 1)))
}

ok_all <- TRUE
cat(sprintf("%-10s %-12s %9s %9s %8s %8s  %s\n", "size", "tool", "elapsed",
            "cpu", "x_elaps", "x_cpu", "notes"))
for (size in sizes) {
    s <- load_set(size)
    cat(sprintf("# %s: %d x %d, load average %s\n", size, nrow(s$y),
                ncol(s$y), bench_load_avg()))
    dds_of <- function(y) DESeqDataSetFromMatrix(y, s$cd, ~ condition)
    run_d2 <- function(dds) results(DESeq(dds, quiet = TRUE))
    run_gp <- function(y) {
        fit <- glm_gp(y, design = ~ condition, col_data = s$cd,
                      size_factors = "poscounts", on_disk = FALSE)
        test_de(fit, reduced_design = ~ 1)
    }
    run_ep <- function(y) {
        SummarizedExperiment::rowData(differentialAccessibility(y,
            ~ condition, colData = s$cd, threads = threads))
    }
    # a first call pays one-time costs (lazy loading, method caches: ~1.5
    # s for DESeq2 at 50k x 6), so each tool is warmed up on 2000 peaks
    warm <- s$y[seq_len(min(2000L, nrow(s$y))), ]
    invisible(list(run_d2(dds_of(warm)), run_gp(warm), run_ep(warm)))
    dds <- dds_of(s$y)  # built outside the timing, as before
    d2 <- timed(function() run_d2(dds), reps_ref)
    gp <- timed(function() run_gp(s$y), reps_ref)
    ep <- timed(function() run_ep(s$y), 5L)
    calls_ref <- which(d2$value$padj < 0.1)
    calls_ep <- which(ep$value$padj < 0.1)
    same <- identical(calls_ref, calls_ep)
    ok_all <- ok_all && same
    row <- function(tool, t, note) {
        cat(sprintf("%-10s %-12s %9.2f %9.2f %8.1f %8.1f  %s\n", size, tool,
                    t$elapsed, t$user, t$elapsed / ep$elapsed,
                    t$user / ep$user, note))
    }
    row("DESeq2", d2, "1 thread (OpenBLAS 1)")
    row("glmGamPoi", gp, "1 thread, glm_gp + test_de")
    row("epione", ep, sprintf("%d threads; padj<0.1 calls %s DESeq2 (%d)",
                              threads, if (same) "==" else "!=",
                              length(calls_ref)))
    mb <- peak_extra_mb(s)
    data_mb <- length(s$y) * if (is.integer(s$y)) 4 else 8
    data_mb <- data_mb / 2^20
    cat(sprintf(paste("# epione peak extra RSS %.0f MB = %.2f x the %s",
                      "count values (%.0f MB; %.0f MB with dimnames)\n"),
                mb, mb / data_mb, typeof(s$y), data_mb,
                as.numeric(utils::object.size(s$y)) / 2^20))
}
if (!ok_all) quit(status = 1)
