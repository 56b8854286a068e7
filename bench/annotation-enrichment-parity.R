# One-off parity check of peakAnnoEnrichment()'s ArchR form against ArchR
# 1.0.3's own peakAnnoEnrichment() on PBSmall's peaks and motif matches,
# with a marker SE (FDR, Log2FC) drawn at random for three groups.
#   R_LIBS=/work/reflib:.lib EPIONE_SHARED=/work/shared \
#       Rscript bench/annotation-enrichment-parity.R
suppressPackageStartupMessages({
    library(GenomicRanges)
    library(SummarizedExperiment)
    library(epione)
    library(ArchR, quietly = TRUE)
})
shared <- Sys.getenv("EPIONE_SHARED", "../shared")
ref <- file.path(shared, "data/fragments/pbsmall/archr_reference")
mm <- methods::as(Matrix::readMM(file.path(ref, "PBSmall_motifMatches.mtx.gz")),
                  "CsparseMatrix")
mm <- methods::as(mm != 0, "CsparseMatrix")
colnames(mm) <- readLines(file.path(ref, "PBSmall_motifMatches_motifs.txt"))
ps <- read.delim(file.path(ref, "PBSmall_peakSet.bed.gz"))
peaks <- GRanges(ps[[1]], IRanges(ps$start + 1L, ps$end))
matches <- SummarizedExperiment(list(matches = mm), rowRanges = peaks)
set.seed(42)
n <- length(peaks)
fdr <- cbind(A = runif(n), B = runif(n), C = runif(n)^3)
lfc <- cbind(A = rnorm(n), B = rnorm(n, 0.5), C = rnorm(n))
se <- SummarizedExperiment(list(FDR = fdr, Log2FC = lfc),
    rowData = DataFrame(seqnames = as.character(seqnames(peaks)),
                        start = start(peaks), end = end(peaks)))
metadata(se)$Params <- list(useMatrix = "PeakMatrix")
cut <- "FDR <= 0.2 & Log2FC >= 0.3"

tmp <- tempfile("parity"); dir.create(tmp); owd <- setwd(tmp)
rds <- file.path(tmp, "Motif-Matches-In-Peaks.rds")
saveRDS(matches, rds)
aproj <- methods::new("ArchRProject")
aproj@peakSet <- peaks
aproj@peakAnnotation <- S4Vectors::SimpleList(Motif = S4Vectors::SimpleList(
    Name = "Motif", Matches = rds))
want <- suppressMessages(ArchR::peakAnnoEnrichment(seMarker = se,
    ArchRProj = aproj, peakAnnotation = "Motif", cutOff = cut))
setwd(owd)

proj <- methods::new("EpioneProject")
proj@projectMetadata$outputDirectory <- tmp
proj@peakSet <- peaks
proj <- epione:::.add_peak_annotation(proj, "Motif", matches)
got <- epione::peakAnnoEnrichment(seMarker = se, ArchRProj = proj,
                          peakAnnotation = "Motif", cutOff = cut)
cat("assay names identical:", identical(assayNames(got), assayNames(want)),
    "\n")
cat("dimnames identical:", identical(dimnames(got), dimnames(want)), "\n")
for (a in setdiff(assayNames(want), "feature")) {
    x <- assay(got, a); y <- as.matrix(assay(want, a))
    cat(sprintf("%-22s max abs diff %.3g  identical %s\n", a,
                max(abs(x - y)), identical(unname(x), unname(y))))
}
cat("feature identical:", identical(unname(assay(got, "feature")),
                                   unname(as.matrix(assay(want, "feature")))),
    "\n")
cat("storage modes (ArchR / epione):",
    vapply(assayNames(want), function(a) paste(storage.mode(as.matrix(
        assay(want, a))), storage.mode(assay(got, a)), sep = "/"), ""), "\n")
