# epione demo on the bundled data: `Rscript inst/scripts/demo.R [outdir]`.
# Prints a short summary and writes plots to `outdir` (default
# ./demo_output). Later capabilities add their steps here.
suppressPackageStartupMessages({
    library(epione)
    library(ggplot2)
})
out <- commandArgs(trailingOnly = TRUE)[1L]
if (is.na(out)) out <- "demo_output"
dir.create(out, showWarnings = FALSE, recursive = TRUE)

info <- epioneInfo()
cat(sprintf("epione %s | HTSlib %s | HDF5 %s | BLAS ok: %s | threads: %d\n",
    packageVersion("epione"), info$htslib, info$hdf5, info$blas$correct,
    info$tbb_threads))

frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
cat("Bundled fragments (ArchR PBSmall, hg19):", frags, "\n")
cat("Chromosomes in the tabix index:", tabixSeqnames(frags), "\n")

fr <- utils::read.table(gzfile(frags), sep = "\t",
    col.names = c("chr", "start", "end", "barcode", "count"))
n_frags <- sort(table(fr$barcode), decreasing = TRUE)
cat(sprintf("%d fragments, %d barcodes; median %d fragments per barcode\n",
    nrow(fr), length(n_frags), as.integer(stats::median(n_frags))))

p <- ggplot(data.frame(size = fr$end - fr$start), aes(size)) +
    geom_histogram(binwidth = 10, fill = "#D51F26") +
    labs(x = "Fragment size (bp)", y = "Fragments",
         title = "PBSmall fragment-size distribution") +
    theme_classic()
png_file <- file.path(out, "fragment_sizes.png")
ggsave(png_file, p, width = 6, height = 4, dpi = 100)
cat("Wrote", png_file, "\n")
