anno_dir <- shared_path("data", "annotation")

read_archr_peaks <- function(file, zero_based) {
    d <- utils::read.delim(file, stringsAsFactors = FALSE)
    chr <- if (is.null(d$seqnames)) d$chrom else d$seqnames
    gr <- GenomicRanges::GRanges(chr,
        IRanges::IRanges(d$start + zero_based, d$end))
    d$nearestGene[d$nearestGene == "NA"] <- NA
    list(gr = gr, ref = d)
}

test_that("annotatePeaks reproduces ArchR 1.0.3 peak annotation (PBSmall)", {
    skip_if_not(has_shared(), "shared data absent")
    ga <- readRDS(file.path(anno_dir, "hg19test2",
                            "ArchR_geneAnnoHg19test2.rds"))
    sets <- list(
        list(shared_path("data", "ref", "archr", "pbsmall",
                         "peakset_tiles.tsv.gz"), 0L),
        list(shared_path("data", "fragments", "pbsmall", "archr_reference",
                         "PBSmall_peakSet.bed.gz"), 1L))
    for (s in sets) {
        x <- read_archr_peaks(s[[1]], s[[2]])
        got <- annotatePeaks(x$gr, ga, threads = 1)
        expect_identical(got$nearestGene, x$ref$nearestGene)
        expect_identical(got$distToGeneStart,
                         as.integer(x$ref$distToGeneStart))
        expect_identical(got$peakType, x$ref$peakType)
        expect_identical(got$nearestTSS, x$ref$nearestTSS)
        expect_identical(abs(got$distToTSS), as.integer(x$ref$distToTSS))
        expect_identical(annotatePeaks(x$gr, ga, threads = 2), got)
    }
})

test_that("nearest TSS and signed distance agree with distanceToNearest", {
    skip_if_not(has_shared(), "shared data absent")
    ga <- readRDS(file.path(anno_dir, "hg19", "ArchR_geneAnnoHg19.rds"))
    withr::local_seed(7)
    n <- 20000
    chr <- sample(c("chr1", "chr2", "chr17", "chrX"), n, TRUE)
    peaks <- GenomicRanges::GRanges(chr, IRanges::IRanges(
        sample.int(5e7, n, TRUE), width = sample(150:900, n, TRUE)))
    got <- annotatePeaks(peaks, ga, threads = 2)
    mid <- GenomicRanges::resize(peaks, 1, "center")
    tss <- ga$TSS
    dn <- GenomicRanges::distanceToNearest(mid, tss, ignore.strand = TRUE)
    hit <- S4Vectors::subjectHits(dn)
    expect_identical(S4Vectors::queryHits(dn), seq_len(n))
    expect_identical(got$nearestTSS, tss$tx_name[hit])
    # signed: summit minus TSS, flipped for minus-strand TSSs
    raw <- GenomicRanges::start(mid) - GenomicRanges::start(tss)[hit]
    minus <- as.character(GenomicRanges::strand(tss))[hit] == "-"
    raw[minus] <- -raw[minus]
    want <- as.integer(sign(raw) * S4Vectors::mcols(dn)$distance)
    expect_identical(got$distToTSS, want)
    dg <- GenomicRanges::distanceToNearest(mid,
        GenomicRanges::resize(ga$genes, 1, "start"), ignore.strand = TRUE)
    expect_identical(got$nearestGene,
                     unname(ga$genes$symbol[S4Vectors::subjectHits(dg)]))
})

tiny_annotation <- function() {
    # GENE1 (+): exons 1000-1200, 3000-3100, 5000-6000; GENE2 (-): 20000-30000
    genes <- GenomicRanges::GRanges("chr1",
        IRanges::IRanges(c(1000, 20000), c(6000, 30000)),
        strand = c("+", "-"), symbol = c("GENE1", "GENE2"),
        gene_id = c("1", "2"))
    exons <- GenomicRanges::GRanges("chr1",
        IRanges::IRanges(c(1000, 3000, 5000, 20000, 29000),
                         c(1200, 3100, 6000, 21000, 30000)),
        strand = c("+", "+", "+", "-", "-"),
        symbol = rep(c("GENE1", "GENE2"), c(3, 2)),
        gene_id = rep(c("1", "2"), c(3, 2)))
    tss <- GenomicRanges::GRanges("chr1", IRanges::IRanges(c(1000, 30000),
        width = 1), strand = c("+", "-"), tx_name = c("tx1", "tx2"))
    list(genes = genes, exons = exons, TSS = tss)
}

test_that("finer types and signs follow the documented rules", {
    ga <- tiny_annotation()
    mids <- c(400, 1100, 2500, 3050, 4000, 9000, 12500, 31500, 60000, 24000)
    peaks <- GenomicRanges::GRanges("chr1", IRanges::IRanges(mids - 50,
                                                             mids + 50))
    got <- annotatePeaks(peaks, ga, promoter = c(-2000, 200),
                         proximal = 10000, threads = 1)
    # centre = start + (width - 1) %/% 2 = mids
    expect_identical(got$type, c("promoter", "promoter", "first-intron",
        "exonic", "intronic", "proximal", "distal-intergenic", "promoter",
        "distal-intergenic", "first-intron"))
    # 400 is upstream of + TSS 1000: -(600 - 1); 31500 upstream of - TSS 30000
    expect_identical(got$distToTSS[c(1, 8, 10)], c(-599L, -1499L, 5999L))
    expect_identical(got$distToTSS[2], 99L)
    expect_identical(got$nearestGene[8], "GENE2")
    expect_identical(got$nearestGeneId[1], "1")
    # genes only: TSS = gene start, in-gene peaks are "genic"
    g <- annotatePeaks(peaks, ga$genes, promoter = c(-2000, 200),
                       proximal = 10000, threads = 1)
    expect_identical(g$type[4], "genic")
    expect_identical(g$nearestTSS[8], "GENE2")
})

test_that("SummarizedExperiment rowRanges and summits are annotated", {
    ga <- tiny_annotation()
    peaks <- GenomicRanges::GRanges("chr1", IRanges::IRanges(c(900, 5500),
                                                             width = 400))
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = matrix(1:4, 2)), rowRanges = peaks)
    out <- annotatePeaks(se, ga, threads = 1)
    expect_identical(SummarizedExperiment::rowData(out)$type,
                     c("promoter", "exonic"))
    peaks$summit <- c(905L, 5510L)
    s <- annotatePeaks(peaks, ga, anchor = "summit", threads = 1)
    expect_identical(s$distToTSS[1], -94L)
})

test_that("bad input gives classed errors that name the fix", {
    ga <- tiny_annotation()
    p <- GenomicRanges::GRanges("chr1", IRanges::IRanges(100, width = 10))
    expect_error(annotatePeaks(p[0], ga), class = "epione_error_input",
                 regexp = "at least one peak")
    z <- GenomicRanges::GRanges("chr1", IRanges::IRanges(100, width = 0))
    expect_error(annotatePeaks(z, ga), class = "epione_error_input",
                 regexp = "width\\(peaks\\) > 0")
    expect_error(annotatePeaks(p, list(foo = 1)), class = "epione_error_input",
                 regexp = "geneAnnotation")
    expect_error(annotatePeaks(p, ga, promoter = c(10, -10)),
                 class = "epione_error_input", regexp = "from <= to")
    expect_error(annotatePeaks(p, ga, anchor = "summit"),
                 class = "epione_error_input", regexp = "summit")
    expect_error(annotatePeaks(p, ga, threads = 0),
                 class = "epione_error_input", regexp = "threads")
    other <- GenomicRanges::GRanges(c("chr1", "chrZ"),
                                    IRanges::IRanges(c(100, 5), width = 10))
    expect_warning(out <- annotatePeaks(other, ga, threads = 1),
                   class = "epione_warning_input", regexp = "seqlevelsStyle")
    expect_true(is.na(out$distToTSS[2]) && is.na(out$nearestGene[2]))
    expect_identical(out$type[2], "distal-intergenic")
})

test_that("getPeakSequences returns the real hg19 peak sequences", {
    skip_if_not(has_shared(), "shared data absent")
    dir <- shared_path("data", "sequences", "human_hg19_chr11")
    seg <- Biostrings::readDNAStringSet(file.path(dir,
                                                  "hg19_chr11_segments.fa.gz"))
    want <- Biostrings::readDNAStringSet(file.path(dir,
        "hg19_chr11_accessible_peaks.fa.gz"))
    tab <- utils::read.delim(file.path(dir, "hg19_chr11_accessible_peaks.tsv"))
    # genome = the second segment, renamed; coordinates shifted into it
    genome <- Biostrings::DNAStringSet(list(seg2 = seg[[2]]))
    off <- 113930315L - 1L
    peaks <- GenomicRanges::GRanges("seg2", IRanges::IRanges(
        tab$start0 + 1L - off, tab$end - off))
    got <- getPeakSequences(peaks, genome)
    expect_identical(unname(as.character(got)), unname(as.character(want)))
    fa <- withr::local_tempfile(fileext = ".fa")
    Biostrings::writeXStringSet(genome, fa)
    Rsamtools::indexFa(fa)
    expect_identical(as.character(getPeakSequences(peaks, fa)),
                     as.character(got))
    BiocGenerics::strand(peaks) <- "-"
    rc <- getPeakSequences(peaks, Rsamtools::FaFile(fa), width = 200)
    mid <- GenomicRanges::resize(peaks, 200, fix = "center")
    expect_identical(unname(as.character(rc)), as.character(
        Biostrings::reverseComplement(Biostrings::DNAStringSet(
            substring(as.character(genome[[1]]), BiocGenerics::start(mid),
                      BiocGenerics::end(mid))))))
    expect_error(getPeakSequences(GenomicRanges::GRanges("seg2",
        IRanges::IRanges(191000, width = 500)), genome),
        class = "epione_error_input", regexp = "trim")
    expect_error(getPeakSequences(peaks, tempfile()),
                 class = "epione_error_file")
})

test_that("getPeakSequences reads FASTA files with faidx as getSeq does", {
    skip_if_not(has_shared(), "shared data absent")
    dir <- shared_path("data", "sequences")
    # chrM plus 500 soft-masked CTCF peak records as one multi-sequence file
    recs <- c(Biostrings::readDNAStringSet(file.path(dir, "human_chrM",
                  "chrM_NC_012920.1_rCRS.fa.gz")),
              Biostrings::readDNAStringSet(file.path(dir, "human_chip_peaks",
                  "Gm12878.CTCF.top500.w200.hg19.fa.gz")))
    names(recs) <- sub(" .*", "", names(recs))
    tmp <- withr::local_tempdir()
    # write the soft-masked letters as they are in the source
    read_gz <- function(...) {
        con <- gzfile(file.path(dir, ...))
        on.exit(close(con))
        readLines(con)
    }
    lines <- c(read_gz("human_chrM", "chrM_NC_012920.1_rCRS.fa.gz"),
               read_gz("human_chip_peaks",
                       "Gm12878.CTCF.top500.w200.hg19.fa.gz"))
    lines <- sub("^>(\\S+).*", ">\\1", lines)
    fa <- file.path(tmp, "g.fa")
    writeLines(lines, fa)
    expect_error(getPeakSequences(GenomicRanges::GRanges("chrM",
        IRanges::IRanges(1, 10)), fa), class = "epione_error_file",
        regexp = "buildIndex = TRUE")
    withr::local_seed(9)
    n <- 300
    chr <- sample(names(recs), n, TRUE)
    len <- Biostrings::width(recs)[match(chr, names(recs))]
    w <- pmin(sample(5:150, n, TRUE), len)
    st <- vapply(seq_len(n), function(i) sample.int(len[i] - w[i] + 1, 1), 1L)
    gr <- GenomicRanges::GRanges(chr, IRanges::IRanges(st, width = w),
                                 strand = sample(c("+", "-", "*"), n, TRUE))
    got <- getPeakSequences(gr, fa, buildIndex = TRUE)
    expect_true(file.exists(paste0(fa, ".fai")))
    want <- Biostrings::getSeq(Rsamtools::FaFile(fa), gr)
    expect_identical(unname(as.character(got)), unname(as.character(want)))
    expect_identical(names(got), paste0(chr, ":", st, "-", st + w - 1L))
    # bgzip FASTA, given as an FaFile
    gz <- Rsamtools::bgzip(fa, file.path(tmp, "g.fa.gz"))
    Rsamtools::indexFa(gz)
    expect_identical(getPeakSequences(gr, Rsamtools::FaFile(gz), width = 9),
        getPeakSequences(gr, Biostrings::DNAStringSet(recs), width = 9))
    expect_error(getPeakSequences(GenomicRanges::GRanges("chr1",
        IRanges::IRanges(1, 10)), fa), class = "epione_error_input",
        regexp = "absent.*chromosome naming")
    expect_error(getPeakSequences(GenomicRanges::GRanges("chrM",
        IRanges::IRanges(16500, 16600)), fa), class = "epione_error_input",
        regexp = "16569.*trim")
})

test_that("unsorted peaks are annotated in their input order", {
    ga <- tiny_annotation()
    peaks <- GenomicRanges::GRanges("chr1", IRanges::IRanges(
        c(400, 1100, 2500, 3050, 4000, 9000, 31500), width = 101))
    withr::local_seed(4)
    o <- sample(length(peaks))
    a <- annotatePeaks(peaks, ga, threads = 1)
    b <- annotatePeaks(peaks[o], ga, threads = 1)
    expect_identical(S4Vectors::mcols(b), S4Vectors::mcols(a)[o, ])
    # "*" TSS strand counts as "+"
    ga$TSS <- GenomicRanges::GRanges("chr1", IRanges::IRanges(1000, width = 1),
                                     tx_name = "tx")
    u <- annotatePeaks(peaks[1], ga, threads = 1)
    expect_identical(u$distToTSS, -549L)
})
