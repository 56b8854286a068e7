# Benchmark: peak annotation, motif enrichment and footprints, epione versus
# ArchR 1.0.3 internals on the same inputs, in one process.
# Run from the package root:
#   R_LIBS=/work/reflib:.lib EPIONE_SHARED=/work/shared Rscript bench/annotation.R
# ArchR is optional (side library); without it only epione is timed.
suppressPackageStartupMessages({
    library(GenomicRanges)
    library(epione)
})
shared <- Sys.getenv("EPIONE_SHARED", "../shared")
has_archr <- requireNamespace("ArchR", quietly = TRUE)
# ArchR's internals call SummarizedExperiment functions unqualified
if (has_archr) suppressPackageStartupMessages({
    library(SummarizedExperiment)
    library(magrittr)
})
threads <- 2L

timed <- function(expr, reps = 3L) {
    e <- substitute(expr)
    env <- parent.frame()
    t <- vapply(seq_len(reps), function(i) {
        tt <- system.time(v <<- eval(e, env))
        # CPU = user + sys of this process and its children (threads count)
        c(tt[["elapsed"]], sum(tt[c("user.self", "sys.self", "user.child",
                                   "sys.child")], na.rm = TRUE))
    }, numeric(2))
    list(value = v, elapsed = median(t[1, ]), user = median(t[2, ]))
}
v <- NULL
row <- function(what, size, ref, epi, same) {
    cat(sprintf(paste("%-20s %-26s ref %6.2fs (CPU %6.2f)  epione %6.2fs",
        "(CPU %6.2f)  ratio %5.1fx  same=%s\n"),
                what, size, if (is.null(ref)) NA else ref$elapsed,
                if (is.null(ref)) NA else ref$user, epi$elapsed, epi$user,
                if (is.null(ref)) NA else ref$elapsed / epi$elapsed, same))
}

# 1. annotatePeaks: 500k synthetic peaks on ArchR's hg19 annotation -------
ga <- readRDS(file.path(shared, "data/annotation/hg19/ArchR_geneAnnoHg19.rds"))
set.seed(1)
n <- 5e5
chr <- sample(paste0("chr", c(1:22, "X")), n, TRUE)
peaks <- GRanges(chr, IRanges(sample.int(1.5e8, n, TRUE), width = 501))
epi <- timed(annotatePeaks(peaks, ga, threads = threads))
ref <- if (has_archr) timed(ArchR:::.fastAnnoPeaks(peaks, BSgenome = NULL,
    geneAnnotation = S4Vectors::SimpleList(as.list(ga)),
    promoterRegion = c(2000, 100)))
same <- if (has_archr) identical(epi$value$peakType, ref$value$peakType) &&
    identical(abs(epi$value$distToTSS), ref$value$distToTSS) &&
    identical(epi$value$nearestTSS, ref$value$nearestTSS) else NA
row("annotatePeaks", "500k peaks, hg19", ref, epi, same)

# 2. peakAnnoEnrichment: 900 motifs x 500k peaks, 5% match density -------
m <- Matrix::rsparsematrix(n, 900, 0.05) != 0
colnames(m) <- paste0("motif", 1:900)
fg <- sort(sample.int(n, 20000))
epi <- timed(peakAnnoEnrichment(fg, m, mlog10Padj = "ArchR"))
ref <- if (has_archr) timed({
    se <- SummarizedExperiment::SummarizedExperiment(list(matches = m))
    ArchR:::.computeEnrichment(se, fg, seq_len(n))
})
same <- if (has_archr) {
    r <- ref$value[colnames(m), ]
    isTRUE(all.equal(r$mlog10Padj, epi$value$mlog10Padj)) &&
        isTRUE(all.equal(r$CompareFrequency, epi$value$CompareFrequency))
} else NA
row("peakAnnoEnrichment", "900 motifs x 500k peaks", ref, epi, same)
rm(m)

# 3. getFootprints: PBSmall fragments, profile only (ArchR needs an
# ArchRProject with group coverages, so its reference here is ArchR's own
# Rle route: coverage of insertions + rleSumsStranded) ----------------------
frag <- file.path(shared, "data/fragments/pbsmall/PBSmall.tsv.gz")
fr <- read.delim(frag, header = FALSE)
pick <- sample(nrow(fr), 5000, TRUE)
pos <- GRanges(fr$V1[pick], IRanges(fr$V3[pick] - 3L, width = 8),
               strand = sample(c("+", "-"), 5000, TRUE))
epi <- timed(getFootprints(frag, list(s = pos), flank = 250))
ref <- if (has_archr) timed({
    ins <- GRanges(rep(fr$V1, 2), IRanges(c(fr$V2 + 1L, fr$V3), width = 1))
    cov <- coverage(ins)
    feat <- split(resize(pos, 1, "center"), seqnames(pos))
    ArchR:::rleSumsStranded(cov[names(feat)], feat, 501L, as.integer)
})
same <- if (has_archr) isTRUE(all.equal(unname(
    SummarizedExperiment::assay(epi$value)[1:501, 1]),
    as.numeric(ref$value))) else NA
row("getFootprints", "5k sites, 29k fragments", ref, epi, same)

# 4. getFootprints at scale: 2M synthetic fragments (two 50-Mb chromosomes),
# 50k sites, profile only; same ArchR Rle route as the reference ------------
nf <- 2e6
big <- data.frame(chr = sample(c("chrA", "chrB"), nf, TRUE),
                  s0 = sample.int(5e7 - 1000, nf, TRUE))
big$e <- big$s0 + sample(40:600, nf, TRUE)
big$bc <- sample(paste0("bc", 1:50), nf, TRUE)
big <- big[order(big$chr, big$s0), ]
txt <- tempfile(fileext = ".tsv")
data.table::fwrite(big, txt, sep = "\t", col.names = FALSE)
gz <- Rsamtools::bgzip(txt, paste0(txt, ".gz"))
invisible(Rsamtools::indexTabix(gz, seq = 1, start = 2, end = 3,
                                 zeroBased = TRUE))
pos <- GRanges(sample(c("chrA", "chrB"), 5e4, TRUE),
               IRanges(sample(1e4:(5e7 - 1e4), 5e4), width = 10),
               strand = sample(c("+", "-"), 5e4, TRUE))
epi <- timed(getFootprints(gz, list(s = pos), flank = 250), reps = 1L)
ref <- if (has_archr) timed({
    ins <- GRanges(rep(big$chr, 2), IRanges(c(big$s0 + 1L, big$e), width = 1))
    cov <- coverage(ins)
    feat <- split(resize(pos, 1, "center"), seqnames(pos))
    ArchR:::rleSumsStranded(cov[names(feat)], feat, 501L, as.integer)
}, reps = 1L)
same <- if (has_archr) isTRUE(all.equal(unname(
    SummarizedExperiment::assay(epi$value)[1:501, 1]),
    as.numeric(ref$value))) else NA
row("getFootprints", "50k sites, 2M fragments", ref, epi, same)

# 5. The issue's size: 20M fragments (four 150-Mb chromosomes), 50k sites,
# profile only. Opt-in (EPIONE_BENCH_BIG=1): ~1.5 GB of text to write and
# index, and the Rle reference holds 40M insertions in memory. ArchR's own
# getFootprints() cannot run here: it needs an ArchRProject with
# addGroupCoverages() and a BSgenome (none for hg19 is installed), so the
# reference is again its Rle route from fragments already in memory.
if (Sys.getenv("EPIONE_BENCH_BIG") == "1") {
    nf <- 2e7
    len <- 1.5e8
    chrs <- paste0("chr", 1:4)
    big <- data.table::data.table(chr = sample(chrs, nf, TRUE),
                                  s0 = sample.int(len - 1000, nf, TRUE))
    big[, e := s0 + sample(40:600, nf, TRUE)]
    big[, bc := sample(paste0("bc", 1:500), nf, TRUE)]
    data.table::setorder(big, chr, s0)
    txt <- tempfile(fileext = ".tsv")
    t_io <- system.time({
        data.table::fwrite(big, txt, sep = "\t", col.names = FALSE)
        gz <- Rsamtools::bgzip(txt, paste0(txt, ".gz"))
        invisible(Rsamtools::indexTabix(gz, seq = 1, start = 2, end = 3,
                                         zeroBased = TRUE))
    })
    unlink(txt)
    cat(sprintf("(20M-fragment file written and indexed in %.0fs)\n",
                t_io[["elapsed"]]))
    pos <- GRanges(sample(chrs, 5e4, TRUE),
                   IRanges(sample(1e4:(len - 1e4), 5e4), width = 10),
                   strand = sample(c("+", "-"), 5e4, TRUE))
    grp <- setNames(rep(c("g1", "g2"), 250), paste0("bc", 1:500))
    load_at <- function() sub(".*load average: ", "", system("uptime",
                                                             intern = TRUE))
    cat("load before:", load_at(), "\n")
    epi <- timed(getFootprints(gz, list(s = pos), groupBy = grp, flank = 250),
                 reps = 1L)
    ref <- if (has_archr) timed({
        ins <- GRanges(rep(big$chr, 2), IRanges(c(big$s0 + 1L, big$e),
                                                 width = 1))
        cov <- coverage(ins)
        rm(ins)
        feat <- split(resize(pos, 1, "center"), seqnames(pos))
        ArchR:::rleSumsStranded(cov[names(feat)], feat, 501L, as.integer)
    }, reps = 1L)
    same <- if (has_archr) isTRUE(all.equal(unname(rowSums(
        SummarizedExperiment::assay(epi$value)[1:501, ])),
        as.numeric(ref$value))) else NA
    row("getFootprints", "50k sites, 20M fragments", ref, epi, same)
    cat("load after:", load_at(), "\n")
}
cat("(reference for footprints: ArchR's Rle route from fragments already in",
    "memory; epione reads and parses the bgzip file)\n")
cat("threads:", threads, " ArchR threads: 1\n")
