# Demo: fragments -> Arrow file -> QC plots and matrices, on the bundled
# PBSmall fragments (ArchR's test data, hg19 chr5 + chr11, 150 barcodes).
#   Rscript inst/scripts/demo-arrow.R [output folder]
suppressPackageStartupMessages(library(epione))
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "demo_output/arrow"
dir.create(out, recursive = TRUE, showWarnings = FALSE)

frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
anno <- exampleAnnotation()   # ArchR's hg19test2 genes, TSS, blacklist
t0 <- proc.time()
arrow <- createArrowFiles(frags, "PBSmall", file.path(out, "PBSmall"),
    geneAnnotation = anno$geneAnnotation,
    genomeAnnotation = anno$genomeAnnotation,
    minFrags = 100, minTSS = 4, QCDir = file.path(out, "QualityControl"),
    threads = 2, force = TRUE)
cat(sprintf("createArrowFiles: %.2f s -> %s\n", (proc.time() - t0)[["elapsed"]],
            arrow))

proj <- ArchRProject(arrow, file.path(out, "project"),
                     geneAnnotation = anno$geneAnnotation,
                     genomeAnnotation = anno$genomeAnnotation)
print(proj)
pre <- readRDS(file.path(out, "QualityControl", "PBSmall",
                         "PBSmall-Pre-Filter-Metadata.rds"))
cat(sum(pre$Keep), "of", nrow(pre), "barcodes pass QC\n")

grDevices::pdf(file.path(out, "PBSmall-QC.pdf"), width = 5, height = 4.5)
print(plotTSSvsFrags(pre, minTSS = 4, minFrags = 100, title = "PBSmall"))
print(plotFragmentSizes(proj))
print(plotTSSEnrichment(proj))
grDevices::dev.off()

gs <- getMatrixFromProject(proj, "GeneScoreMatrix")
tm <- getMatrixFromProject(proj, "TileMatrix")
cat("GeneScoreMatrix:", nrow(gs), "genes x", ncol(gs), "cells;",
    "TileMatrix:", nrow(tm), "tiles,", Matrix::nnzero(SummarizedExperiment::assay(tm)),
    "non-zeros\n")
sce <- methods::as(proj, "SingleCellExperiment")
print(sce)
cat("QC plots written to", file.path(out, "PBSmall-QC.pdf"), "\n")
