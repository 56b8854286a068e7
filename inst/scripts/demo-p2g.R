# Peak-to-gene demo on the bundled multiome example: links, co-accessibility,
# group BigWigs and an ArchR-style browser track, written to demo_output/.
# Usage (repository root): Rscript inst/scripts/demo-p2g.R
suppressPackageStartupMessages(library(epione))
if (!exists("out")) out <- "demo_output"
dir.create(out, showWarnings = FALSE)
ex <- p2gExampleData()
links <- peakToGeneLinks(ex$atac, ex$rna, ex$embedding, k = 30,
                         knnIteration = 500, threads = 2)
sig <- getPeak2GeneLinks(links, returnLoops = FALSE)
cat(sprintf("%d candidate pairs, %d pass ArchR's default cut-offs\n",
            nrow(links), nrow(sig)))
print(head(as.data.frame(sig[order(-sig$Correlation),
    c("gene", "seqnames", "peakStart", "distance", "Correlation", "FDR")])))
coa <- coAccessibility(ex$atac, ex$embedding, k = 30, threads = 2)
cat(sprintf("%d co-accessible pairs (r >= 0.5)\n",
            nrow(getCoAccessibility(coa, returnLoops = FALSE))))
frags <- system.file("extdata", "multiome_loci_fragments.tsv.gz",
                     package = "epione")
cov <- groupCoverages(frags, ex$clusters, threads = 2)
if (requireNamespace("rtracklayer", quietly = TRUE)) {
    bw <- exportGroupBW(cov, file.path(out, "GroupBigWigs"))
    cat("BigWigs:", paste(basename(bw), collapse = ", "), "\n")
}
genes <- SummarizedExperiment::rowRanges(ex$rna)
genes$symbol <- rownames(ex$rna)
p <- plotBrowserTrack(frags, groups = ex$clusters, geneSymbol = "CD8A",
    geneAnnotation = list(genes = genes),
    features = SummarizedExperiment::rowRanges(ex$atac),
    loops = getPeak2GeneLinks(links, corCutOff = 0.3, FDRCutOff = 1e-3),
    tileSize = 500, threads = 2)
ggplot2::ggsave(file.path(out, "p2g_browser_CD8A.png"), p, width = 7,
                height = 6, dpi = 150)
h <- plotPeak2GeneHeatmap(links, ex$atac, ex$rna, ex$clusters, k = 5,
                          corCutOff = 0.3, FDRCutOff = 1e-3)
ggplot2::ggsave(file.path(out, "p2g_heatmap.png"), h, width = 7, height = 6,
                dpi = 150)
cat("plots written to", out, "\n")
