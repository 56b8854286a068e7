# Benchmark: epione::createArrowFiles vs ArchR 1.0.3 createArrowFiles on
# ArchR's PBSmall fragments (QC + TileMatrix 500 bp + GeneScoreMatrix), then
# epione alone on a synthetic fragment file (default 20 M fragments) that
# this script generates (ArchR would take hours there).
#
#   R_LIBS=/work/reflib:.lib Rscript bench/arrow.R [n_synthetic] [threads]
#
# ArchR runs with 1 thread (its default subThreads inside createArrowFiles;
# threads > 1 only splits samples). Peak memory: VmHWM of this process
# after the epione synthetic run (ArchR is not loaded before it).
suppressPackageStartupMessages({
    library(epione)
    library(data.table)
})
args <- commandArgs(trailingOnly = TRUE)
n_syn <- if (length(args) >= 1) as.numeric(args[1]) else 20e6
threads <- if (length(args) >= 2) as.integer(args[2]) else 2L
shared <- Sys.getenv("EPIONE_SHARED", "/work/shared")
work <- file.path(tempdir(), "bench-arrow")
dir.create(work, showWarnings = FALSE)
frags <- file.path(shared, "data", "fragments", "pbsmall", "PBSmall.tsv.gz")
anno <- exampleAnnotation()

vm_hwm <- function() {
    l <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
    as.numeric(gsub("[^0-9]", "", l)) / 1024^2
}
timed <- function(expr) {
    gc()
    t <- system.time(v <- force(expr))
    list(value = v, elapsed = t[["elapsed"]],
         user = t[["user.self"]] + t[["user.child"]])
}

## ---- epione on PBSmall (median of 3) ----------------------------------------
run_epi <- function() createArrowFiles(frags, "PBSmall",
    file.path(work, "epi", "PBSmall"), anno$geneAnnotation,
    anno$genomeAnnotation, minFrags = 100, QCDir = NULL, threads = threads,
    verbose = FALSE, force = TRUE)
dir.create(file.path(work, "epi"), showWarnings = FALSE)
epi <- lapply(1:3, function(i) timed(run_epi()))
epi_el <- stats::median(vapply(epi, `[[`, 0, "elapsed"))
epi_us <- stats::median(vapply(epi, `[[`, 0, "user"))
n_frag <- 29399

## ---- synthetic file: n_syn fragments, 20k barcodes, chr5 + chr11 ----------
syn <- file.path(work, "synthetic.tsv")
syn_gz <- file.path(work, "synthetic.tsv.gz")
if (n_syn > 0) {
    set.seed(1)
    len <- c(chr5 = 180915260, chr11 = 135006516)
    chr <- sample(names(len), n_syn, replace = TRUE, prob = len)
    start <- as.integer(floor(stats::runif(n_syn) * (len[chr] - 3000)))
    width <- pmax(20L, as.integer(stats::rexp(n_syn, 1 / 180)))
    bc <- sprintf("BC%05d", sample.int(20000, n_syn, replace = TRUE,
                                       prob = stats::rexp(20000)))
    dt <- data.table(chr, start, end = start + width, bc, 1L)
    setorder(dt, chr, start)
    fwrite(dt, syn, sep = "\t", col.names = FALSE)
    rm(dt, chr, start, width, bc)
    gc()
    t_idx <- timed(indexFragments(syn, syn_gz))
    unlink(syn)
    dir.create(file.path(work, "syn"), showWarnings = FALSE)
    t_syn <- timed(createArrowFiles(syn_gz, "SYN", file.path(work, "syn", "SYN"),
        anno$geneAnnotation, anno$genomeAnnotation, minFrags = 100,
        minTSS = 0, QCDir = NULL, threads = threads, verbose = FALSE,
        force = TRUE))
    hwm <- vm_hwm()
    n_cells <- nrow(epione:::.arrow_metadata(t_syn$value))
}

## ---- ArchR on PBSmall (one run: 40 s) ---------------------------------------
suppressPackageStartupMessages(library(ArchR))
addArchRThreads(threads = 1, force = TRUE)
addArchRVerbose(FALSE)
options(ArchR.locking = FALSE, ArchR.logging = FALSE, ArchR.h5level = 0,
        ArchR.chrPrefix = TRUE, ArchR.debugging = FALSE)
e <- new.env()
data("geneAnnoHg19test2", package = "ArchR", envir = e)
data("genomeAnnoHg19test2", package = "ArchR", envir = e)
genome <- S4Vectors::SimpleList(genome = "nullGenome",
    chromSizes = e$genomeAnnoHg19test2$chromSizes,
    blacklist = e$genomeAnnoHg19test2$blacklist)
owd <- setwd(file.path(work))
ref <- timed(suppressMessages(ArchR::createArrowFiles(frags, "PBSmall",
    outputNames = file.path(work, "PBSmall_archr"), minFrags = 100,
    minTSS = 4, addTileMat = TRUE, addGeneScoreMat = TRUE,
    geneAnnotation = e$geneAnnoHg19test2, genomeAnnotation = genome,
    force = TRUE, logFile = file.path(work, "archr.log"))))
setwd(owd)

## ---- agreement ----------------------------------------------------------------
a_epi <- epi[[1]]$value
a_ref <- ref$value
same_qc <- identical(epione:::.arrow_metadata(a_epi)$TSSEnrichment,
                     as.vector(rhdf5::h5read(a_ref, "Metadata/TSSEnrichment")))
gs <- function(f) SummarizedExperiment::assay(
    epione::getMatrixFromArrow(f, "GeneScoreMatrix", verbose = FALSE))
tm <- function(f) SummarizedExperiment::assay(
    epione::getMatrixFromArrow(f, "TileMatrix", verbose = FALSE))
same_gs <- max(abs(gs(a_epi) - gs(a_ref))) == 0
same_tm <- identical(tm(a_epi), tm(a_ref))

cat(sprintf("%-44s ArchR %7.2f s (user %6.2f, 1 thread) | epione %6.3f s (user %6.3f, %d threads) | ratio elapsed %6.1fx | %s frag/s | agree: QC %s, tiles %s, gene scores %s\n",
    "createArrowFiles PBSmall (29,399 frags)", ref$elapsed, ref$user, epi_el,
    epi_us, threads, ref$elapsed / epi_el,
    format(round(n_frag / epi_el), big.mark = ","), same_qc, same_tm, same_gs))
if (n_syn > 0) {
    cat(sprintf("%-44s epione %7.2f s (user %6.2f, %d threads) | %s frag/s | %d cells | indexFragments %6.2f s | peak RSS %.2f GiB\n",
        sprintf("createArrowFiles synthetic (%s frags)",
                format(n_syn, big.mark = ",", scientific = FALSE)),
        t_syn$elapsed, t_syn$user, threads,
        format(round(n_syn / t_syn$elapsed), big.mark = ","), n_cells,
        t_idx$elapsed, hwm))
}
if (!(same_qc && same_gs && same_tm)) quit(status = 1)
