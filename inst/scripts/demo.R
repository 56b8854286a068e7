# epione demo on the bundled data: `Rscript inst/scripts/demo.R [outdir]`.
# Runs the main jobs end to end (fragments -> Arrow + QC, chromVAR,
# differential accessibility, peak-to-gene links), prints a short summary
# and writes plots to `outdir` (default ./demo_output).
suppressPackageStartupMessages({
    library(epione)
    library(ggplot2)
})
out <- commandArgs(trailingOnly = TRUE)[1L]
if (is.na(out)) out <- "demo_output"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
step <- function(title) cat("\n==", title, "\n")

info <- epioneInfo()
cat(sprintf("epione %s | HTSlib %s | HDF5 %s | BLAS ok: %s | threads: %d\n",
    packageVersion("epione"), info$htslib, info$hdf5, info$blas$correct,
    info$tbb_threads))

step("Fragments -> Arrow file, cell QC, tile and gene-score matrices")
source(system.file("scripts", "demo-arrow.R", package = "epione"))

step("chromVAR: background peaks, deviations, variability")
se <- readRDS(system.file("extdata", "chromvar_mini_counts.rds",
                          package = "epione"))
ix <- readRDS(system.file("extdata", "chromvar_mini_ix.rds",
                          package = "epione"))
set.seed(2017)
bg <- getBackgroundPeaks(se)
dev <- computeDeviations(se, ix, bg, method = "sample")
var <- computeVariability(dev, bootstrap_error = FALSE)
print(head(var[order(-var$variability), c("name", "variability",
                                          "p_value_adj")], 5))
ggsave(file.path(out, "chromvar_variability.png"), plotVarDev(dev),
       width = 5, height = 4, dpi = 100)

step("Differential accessibility (DESeq2's model)")
set.seed(1)
mu <- rgamma(2000, 2, 0.02)
fc <- ifelse(seq_along(mu) <= 200, 4, 1)
counts <- cbind(matrix(rnbinom(2000 * 3, mu = mu, size = 5), ncol = 3),
                matrix(rnbinom(2000 * 3, mu = mu * fc, size = 5), ncol = 3))
colnames(counts) <- paste0("s", 1:6)
rownames(counts) <- paste0("peak", 1:2000)
samples <- data.frame(condition = factor(rep(c("ctrl", "trt"), each = 3)),
                      row.names = colnames(counts))
res <- differentialAccessibility(counts, ~ condition, colData = samples)
rd <- SummarizedExperiment::rowData(res)
cat(sum(rd$padj < 0.1, na.rm = TRUE), "of 2000 peaks at padj < 0.1",
    "(200 were simulated with a 4-fold change)\n")
ggsave(file.path(out, "volcano.png"), volcanoPlot(res), width = 5,
       height = 4, dpi = 100)

step("Peak-to-gene links, co-accessibility, browser track")
source(system.file("scripts", "demo-p2g.R", package = "epione"))
cat("\nPlots and files written to", normalizePath(out), "\n")
