# One-off parity check of getFootprints against ArchR 1.0.3's own internals
# (rleSumsStranded, kmerPositionFrequencyCpp, .computeFootprintsBiasSingle's
# oe formula) on the synthetic toy data of tests/testthat/test-footprints.R.
# Part 2 checks the project form on ArchR's PBSmall Arrow file. Run:
#   R_LIBS=/work/reflib:.lib EPIONE_SHARED=/work/shared \
#       Rscript bench/annotation-footprint-parity.R
suppressPackageStartupMessages({library(GenomicRanges); library(epione); library(Biostrings)})
src <- readLines("tests/testthat/test-footprints.R")
eval(parse(text = src[1:grep("^ref_bias", src) - 1]))   # write_fragments, toy_data, ref_footprint
d <- toy_data()
f <- write_fragments(d$frags, tempfile(fileext = ".tsv.gz"))
flank <- 250L; k <- 6L; window <- 2L * flank + 1L
# positions far enough from ends for flank 250
pos <- lapply(d$positions, function(p) p[start(p) > 400 & end(p) < 19000])
fp <- getFootprints(f, pos, groupBy = d$groups, genome = d$genome, flank = flank)
maxdiff <- 0
for (m in names(pos)) for (g in c("g1","g2","g3")) {
  fr <- d$frags[d$groups[d$frags$barcode] == g, ]
  # ArchR route: coverage Rle of insertions -> rleSumsStranded
  ins <- GRanges(factor(rep(fr$chr, 2), levels = c("chrA", "chrB")), IRanges(c(fr$start0 + 1, fr$end), width = 1))
  cov <- coverage(ins, width = c(chrA = 30000L, chrB = 20000L))
  feat <- split(resize(pos[[m]], 1, "center"), seqnames(pos[[m]]))
  foot <- ArchR:::rleSumsStranded(cov[names(feat)], feat, window, as.integer)
  # ArchR bias: kmerPositionFrequencyCpp on stranded views + oe
  exp <- Reduce(`+`, lapply(seq_along(d$genome), function(i) oligonucleotideFrequency(d$genome[[i]], k)))
  obs <- 0
  for (cn in names(d$genome)) {
    x <- c(fr$start0 + 1, fr$end)[rep(fr$chr, 2) == cn]
    v <- Views(d$genome[[cn]], IRanges(start = x - floor(k/2), width = k))
    obs <- obs + oligonucleotideFrequency(v, width = k, simplify.as = "collapsed")
  }
  oe <- obs / exp
  w <- resize(pos[[m]], window + k, "center")
  seqs <- DNAStringSet(lapply(seq_along(w), function(i) {
    s <- subseq(d$genome[[as.character(seqnames(w))[i]]], start(w)[i], end(w)[i])
    if (as.character(strand(w))[i] == "-") reverseComplement(s) else s }))
  tab <- ArchR:::kmerPositionFrequencyCpp(as.character(seqs), rep(1L, length(seqs)), window, k, ArchR:::.getKmers(k))
  bias <- colSums(as.matrix(tab) * as.vector(oe[rownames(tab)])); bias <- bias / sum(bias)
  a <- SummarizedExperiment::assay(fp, m)[, g]
  cat(m, g, "footprint identical:", identical(as.numeric(foot), unname(a[1:window])),
      " bias max abs diff:", max(abs(bias - a[window + 1:window])), "\n")
}

# Part 2: the project form on ArchR's own PBSmall Arrow file. ArchR reads
# the fragments (ArchR::getFragmentsFromArrow), insertions are their start
# and end as in ArchR's group coverages, and rleSumsStranded sums them
# around the sites; epione reads the same Arrow in getFootprints(proj).
shared <- Sys.getenv("EPIONE_SHARED", "../shared")
ref <- file.path(shared, "data/ref/archr/pbsmall")
arrow <- file.path(tempdir(), "PBSmall.arrow")
con <- gzfile(file.path(ref, "PBSmall.arrow.gz"), "rb")
writeBin(readBin(con, "raw", 5e7), arrow); close(con)
cl <- read.delim(file.path(ref, "clusters_umap.tsv.gz"))
anno <- epione::exampleAnnotation()
proj <- epione::ArchRProject(arrow, file.path(tempdir(), "fp-proj"),
                             copyArrows = FALSE,
                             genomeAnnotation = anno$genomeAnnotation)
proj@cellColData$Clusters <- cl$Clusters[match(rownames(proj@cellColData),
                                               cl$cellNames)]
suppressPackageStartupMessages({library(rhdf5); library(magrittr)})
owd <- setwd(tempdir())   # ArchR writes ArchRLogs/ into the working dir
fr <- suppressMessages(ArchR::getFragmentsFromArrow(arrow))
setwd(owd)
set.seed(3)
pick <- sample(length(fr), 300)
pos <- GRanges(seqnames(fr)[pick], IRanges(end(fr)[pick] - 3L, width = 8),
               strand = sample(c("+", "-"), 300, TRUE))
fp <- epione::getFootprints(proj, list(sites = pos), groupBy = "Clusters",
                    minCells = 1, flank = 250, threads = 2)
fp1 <- epione::getFootprints(proj, list(sites = pos), groupBy = "Clusters",
                     minCells = 1, flank = 250, threads = 1)
cat("threads 1 vs 2 identical:", identical(fp, fp1), "\n")
grp <- setNames(cl$Clusters, cl$cellNames)
for (g in colnames(fp)) {
    f <- fr[grp[as.character(mcols(fr)$RG)] %in% g]
    ins <- GRanges(rep(seqnames(f), 2), IRanges(c(start(f), end(f)), width = 1))
    cov <- coverage(ins)
    feat <- split(resize(pos, 1, "center"), seqnames(pos))
    feat <- feat[lengths(feat) > 0]
    foot <- ArchR:::rleSumsStranded(cov[names(feat)], feat, 501L, as.integer)
    a <- SummarizedExperiment::assay(fp)[1:501, g]
    cat("Arrow", g, "footprint identical:", identical(as.numeric(foot),
        unname(a)), " max abs diff:", max(abs(as.numeric(foot) - a)),
        " insertions:", sum(a), "\n")
}
