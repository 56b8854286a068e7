# matchMotifs() against motifmatchr 1.29's saved output (data/ref/chromvar,
# README there: hit sets, counts, positions exact; scores ~1e-12; thresholds
# exact), motif readers against plainly written expectations, bad input.

ref <- shared_path("data", "ref", "chromvar")
ref_tsv <- function(...) utils::read.delim(file.path(ref, ...),
                                            stringsAsFactors = FALSE)
read_fasta <- function(path) {
    con <- if (grepl("\\.gz$", path)) gzfile(path) else file(path)
    on.exit(close(con))
    l <- readLines(con)
    h <- grep("^>", l)
    ends <- c(h[-1L] - 1L, length(l))
    s <- vapply(seq_along(h), function(k)
        paste(l[seq_len(ends[k] - h[k]) + h[k]], collapse = ""), "")
    stats::setNames(s, sub("^>", "", l[h]))
}
ref_pwms <- function() {
    lo <- ref_tsv("inputs", "human_pwms_v2_logodds.tsv.gz")
    out <- lapply(split(lo, lo$motif_index), function(d) {
        matrix(d$value, nrow = 4, dimnames = list(c("A", "C", "G", "T"), NULL))
    })
    stats::setNames(out, unique(lo$id))
}
case_tag <- function(case, bg, p, w) {
    sprintf("%s_bg%s_p%s_w%d", case, bg, format(p, scientific = TRUE), w)
}

# Compares out = "scores" and out = "positions" (with ranges) to the
# reference files of one case.
expect_motifmatchr_case <- function(motifs, seqs, case, bg, p, w = 7,
                                    score_tol = 0, positions = TRUE) {
    tag <- case_tag(case, bg, p, w)
    sc <- matchMotifs(motifs, seqs, bg = bg, p.cutoff = p, w = w,
                      out = "scores", threads = 1)
    want <- ref_tsv("motifs", paste0(tag, "_scores.tsv.gz"))
    m <- motifMatches(sc)
    expect_s4_class(m, "lgCMatrix")
    got <- Matrix::summary(m)
    expect_identical(paste(got$i, got$j),
                     paste(want$seq_index, want$motif_index)[
                         order(want$motif_index, want$seq_index)])
    at <- cbind(want$seq_index, want$motif_index)
    expect_identical(as.numeric(motifCounts(sc)[at]), as.numeric(want$count))
    expect_equal(motifScores(sc)[at], want$maxScore, tolerance = score_tol)
    if (!positions) return(invisible(sc))
    rng <- GenomicRanges::GRanges(names(seqs), IRanges::IRanges(1L, nchar(seqs)))
    pos <- matchMotifs(motifs, seqs, bg = bg, p.cutoff = p, w = w,
                       out = "positions", ranges = rng, threads = 1)
    gr <- unlist(pos, use.names = FALSE)
    wp <- ref_tsv("motifs", paste0(tag, "_positions.tsv.gz"))
    expect_identical(rep(seq_along(pos), lengths(pos)), wp$motif_index)
    expect_identical(as.integer(BiocGenerics::start(gr)), wp$start)
    expect_identical(as.integer(BiocGenerics::end(gr)), wp$end)
    expect_identical(as.character(BiocGenerics::strand(gr)), wp$strand)
    expect_equal(S4Vectors::mcols(gr)$score, wp$score, tolerance = score_tol)
    invisible(sc)
}

test_that("converted matrices and MOODS thresholds equal motifmatchr's", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    pw <- ref_pwms()
    mot <- epione:::.as_motifs(pw)
    for (cs in list(c("subject", "5e-05"), c("even", "1e-05"))) {
        bg <- ref_tsv("motifs", sprintf("small_bg_%s_freqs.tsv", cs[1]))$freq
        conv <- epione:::epi_motifs_convert(mot$mats, mot$kind, mot$prior,
                                            bg, 0.8)
        want <- ref_tsv("motifs", sprintf("small_bg_%s_converted_pwms.tsv.gz",
                                          cs[1]))
        expect_identical(unlist(lapply(conv, as.vector), use.names = FALSE),
                         want$value)
        thr <- epione:::epi_motifs_thresholds(conv, bg, as.numeric(cs[2]), 2L)
        wt <- ref_tsv("motifs", paste0(case_tag("small", cs[1],
                                                 as.numeric(cs[2]), 7),
                                       "_thresholds.tsv"))
        expect_identical(thr, wt$threshold)
    }
})

test_that("matchMotifs equals motifmatchr on the small case (bg, p, w)", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    seqs <- read_fasta(file.path(ref, "inputs", "motif_small_sequences.fa"))
    pw <- ref_pwms()
    expect_motifmatchr_case(pw, seqs, "small", "subject", 5e-5)
    expect_motifmatchr_case(pw, seqs, "small", "even", 1e-5)
    # scores only (positions are covered above and below)
    expect_motifmatchr_case(pw, seqs, "small", "even", 5e-5, positions = FALSE)
    expect_motifmatchr_case(pw, seqs, "small", "subject", 1e-5,
                            positions = FALSE)
    # w = 8 loses exactly the hits of width-7 motifs ending an interval
    expect_motifmatchr_case(pw, seqs, "small", "subject", 5e-5, w = 5,
                            positions = FALSE)
    expect_motifmatchr_case(pw, seqs, "small", "subject", 5e-5, w = 8)
})

test_that("positions without ranges have motifmatchr's IRangesList shape", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    seqs <- read_fasta(file.path(ref, "inputs", "motif_small_sequences.fa"))
    # the background comes from all sequences, so a motif subset is exact
    pos <- matchMotifs(ref_pwms()[1:40], unname(seqs), out = "positions",
                       threads = 2)
    expect_length(pos, 40L)
    expect_true(all(lengths(pos) == length(seqs)))
    want <- ref_tsv("motifs", "small_bgsubject_p5e-05_w7_positions_IRangesList.tsv.gz")
    want <- want[want$motif_index <= 40, ]
    for (k in unique(want$motif_index)[1:5]) {
        w1 <- want[want$motif_index == k, ]
        ir <- unlist(pos[[k]], use.names = FALSE)
        expect_identical(rep(seq_along(pos[[k]]), lengths(pos[[k]])), w1$seq_index)
        expect_identical(IRanges::start(ir), w1$start)
        expect_identical(IRanges::end(ir), w1$end)
        expect_identical(S4Vectors::mcols(ir)$strand, w1$strand)
        expect_identical(S4Vectors::mcols(ir)$score, w1$score)
    }
    expect_identical(sum(vapply(pos, function(x) sum(lengths(x)), 1L)),
                     nrow(want))
})

test_that("human sequences: cisBP PWMs and JASPAR2020 PFMs equal motifmatchr", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    seqs <- read_fasta(file.path(ref, "inputs", "motif_human_sequences.fa.gz"))
    expect_motifmatchr_case(ref_pwms(), seqs, "human_cisbp", "subject", 5e-5)
    # the bundled JASPAR2020 counts take the PFMatrixList -> toPWM path
    expect_motifmatchr_case(getMotifs("JASPAR2020"), seqs, "human_jaspar",
                            "subject", 5e-5)
    # the bundled cisBP text keeps 16 digits: same hits, scores to ~1e-14
    expect_motifmatchr_case(getMotifs("cisbp"), seqs, "human_cisbp",
                            "subject", 5e-5, score_tol = 1e-12,
                            positions = FALSE)
})

test_that("TFBSTools PFMatrixList and PWMatrixList inputs work", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    skip_if_not_installed("TFBSTools")
    mdir <- shared_path("data", "motifs")
    pf <- readRDS(file.path(mdir,
        "JASPAR2020_CORE_vertebrates_non-redundant_PFMatrixList.rds"))[1:60]
    pw <- readRDS(file.path(mdir,
        "chromVARmotifs_human_pwms_v2_PWMatrixList.rds"))[1:60]
    seqs <- read_fasta(file.path(ref, "inputs", "motif_human_sequences.fa.gz"))
    a <- matchMotifs(pf, seqs, threads = 1)
    b <- matchMotifs(getMotifs("JASPAR2020")[1:60], seqs, threads = 1)
    # names differ: motifmatchr's (and so epione's) colnames are the list
    # names, TF names for a PFMatrixList, IDs for getMotifs()
    expect_identical(unname(motifMatches(a)), unname(motifMatches(b)))
    expect_identical(SummarizedExperiment::colData(a)$name,
                     SummarizedExperiment::colData(b)$name)
    expect_identical(colnames(a), names(pf))
    c1 <- matchMotifs(pw, seqs, threads = 1)
    c2 <- matchMotifs(ref_pwms()[1:60], seqs, threads = 1)
    expect_identical(motifMatches(c1), motifMatches(c2))
})

test_that("results do not depend on the number of threads", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    seqs <- read_fasta(file.path(ref, "inputs", "motif_human_sequences.fa.gz"))
    mot <- getMotifs("JASPAR2020")[1:150]
    for (out in c("matches", "scores", "positions")) {
        run <- function(t) matchMotifs(mot, seqs, out = out, threads = t)
        got <- run(1L)
        expect_identical(run(2L), got)
        expect_identical(run(4L), got)
    }
})

test_that("a GRanges subject reads an indexed FASTA through HTSlib", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    seqs <- read_fasta(file.path(ref, "inputs", "motif_human_sequences.fa.gz"))
    fa <- tempfile(fileext = ".fa")
    on.exit(unlink(c(fa, paste0(fa, ".fai"))))
    chrom <- seqs[c(501, 503)]
    names(chrom) <- c("chr11", "chrM")
    writeLines(paste0(">", names(chrom), "\n", chrom), fa)
    # no index yet: an actionable error
    gr <- GenomicRanges::GRanges(c("chr11", "chrM", "chr11"),
                                 IRanges::IRanges(c(1001, 1, 39001),
                                                  width = c(500, 800, 1625)))
    expect_error(matchMotifs(getMotifs("JASPAR2020")[1:5], gr, genome = fa),
                 class = "epione_error_file", regexp = "indexFa")
    epione:::epi_fasta_lengths(fa, TRUE)  # builds the .fai
    mot <- getMotifs("JASPAR2020")[1:200]
    sub <- substring(chrom[as.character(GenomicRanges::seqnames(gr))],
                     GenomicRanges::start(gr), GenomicRanges::end(gr))
    want <- matchMotifs(mot, sub, out = "scores", threads = 1)
    got <- matchMotifs(mot, gr, genome = fa, out = "scores", threads = 2)
    expect_identical(SummarizedExperiment::assays(got),
                     SummarizedExperiment::assays(want))
    expect_identical(as.character(BiocGenerics::strand(
        SummarizedExperiment::rowRanges(got))), rep("+", 3))
    pos <- matchMotifs(mot, gr, genome = fa, out = "positions")
    pos_rel <- matchMotifs(mot, sub, out = "positions")
    k <- which.max(lengths(pos))
    rel <- pos_rel[[k]]
    s <- rep(seq_along(rel), lengths(rel))
    expect_identical(BiocGenerics::start(pos[[k]]),
                     BiocGenerics::start(gr)[s] +
                         IRanges::start(unlist(rel, use.names = FALSE)) - 1L)
    expect_identical(epione:::.genome_sequences(fa, gr), unname(sub))
    # a chromosome absent from the FASTA, a range past the end
    bad <- GenomicRanges::GRanges("chr2", IRanges::IRanges(1, 10))
    expect_error(matchMotifs(mot, bad, genome = fa),
                 class = "epione_error_input", regexp = "absent.*chromosome")
    far <- GenomicRanges::GRanges("chrM", IRanges::IRanges(16000, 17000))
    expect_error(matchMotifs(mot, far, genome = fa),
                 class = "epione_error_input", regexp = "trim\\(\\)")
    expect_error(matchMotifs(mot, gr), class = "epione_error_input",
                 regexp = "needs 'genome'")
})

test_that("bg = 'genome' counts the whole FASTA; numeric bg is checked", {
    fa <- tempfile(fileext = ".fa")
    on.exit(unlink(c(fa, paste0(fa, ".fai"))))
    writeLines(c(">a", "ACGTACGTAAAA", ">b", "ccggNNtt"), fa)
    epione:::epi_fasta_lengths(fa, TRUE)
    counts <- epione:::.genome_base_counts(fa, 1L)
    expect_identical(unname(counts), c(6, 4, 4, 4))
    mot <- list(m = matrix(c(9, 0, 0, 1, 0, 9, 1, 0, 0, 0, 9, 1), 4,
                           dimnames = list(c("A", "C", "G", "T"), NULL)))
    expect_silent(matchMotifs(mot, "ACGACG", genome = fa, bg = "genome",
                              threads = 1))
    expect_error(matchMotifs(mot, "ACGACG", bg = c(0.5, 0.5, 0.5, 0.5)),
                 class = "epione_error_input", regexp = "summing to 1")
})

test_that("N, IUPAC codes and lower case follow MOODS; bad letters error", {
    mot <- list(m = matrix(c(9, 0, 0, 1, 0, 9, 1, 0, 0, 0, 9, 1, 9, 1, 0, 0),
                           4, dimnames = list(c("A", "C", "G", "T"), NULL)))
    # consensus "ACGA"; at p = 0.01 only the consensus passes. MOODS quirk:
    # a motif shorter than w ending on an interval's last base is missed.
    seqs <- c(up = "TTTACGATTT", low = "tttacgattt", n = "TTTACNATTT",
              short = "AC", allN = "NNNNNNNN", iupac_end = "TTTACGARYK",
              iupac = "TTTACGATRYK")
    m <- matchMotifs(mot, seqs, bg = "even", p.cutoff = 0.01, out = "scores",
                     threads = 1)
    hit <- as.vector(as.matrix(motifMatches(m)))
    expect_identical(hit, c(TRUE, TRUE, FALSE, FALSE, FALSE, FALSE, TRUE))
    expect_identical(motifScores(m)[1, 1], motifScores(m)[2, 1])
    expect_error(matchMotifs(mot, c("ACGT", "ACXGT")),
                 class = "epione_error_input", regexp = "sequence 2.*'X'")
    expect_error(matchMotifs(mot, NA_character_),
                 class = "epione_error_input", regexp = "NA")
    expect_error(matchMotifs(mot, character()), class = "epione_error_input",
                 regexp = "no sequences")
})

test_that("bad motifs give classed errors that name the fix", {
    base <- matrix(c(9, 0, 0, 1, 0, 9, 1, 0), 4,
                   dimnames = list(c("A", "C", "G", "T"), NULL))
    neg <- base
    neg[2, 1] <- NA
    zero <- base
    zero[, 2] <- 0
    expect_error(matchMotifs(list(), "ACGT"), class = "epione_error_input",
                 regexp = "non-empty list")
    expect_error(matchMotifs(list(a = neg), "ACGT"),
                 class = "epione_error_input", regexp = "NA")
    expect_error(matchMotifs(list(a = zero), "ACGT"),
                 class = "epione_error_input", regexp = "all-zero column 2")
    expect_error(matchMotifs(list(a = base[1:3, ]), "ACGT"),
                 class = "epione_error_input", regexp = "4 rows")
    odd <- base - 5  # negative values that are not log odds of anything
    expect_error(matchMotifs(list(a = odd), "ACGT"),
                 class = "epione_error_input", regexp = "cannot tell the type")
    expect_error(matchMotifs(list(a = "x"), "ACGT"),
                 class = "epione_error_input", regexp = "numeric 4-row")
    # columns with different totals are normalised one by one (TFBSTools)
    uneven <- base
    uneven[, 2] <- uneven[, 2] * 3
    expect_s4_class(matchMotifs(list(a = uneven), "ACGTTT", threads = 1),
                    "SummarizedExperiment")
})

test_that("readMotifs reads JASPAR, MEME, HOMER and TRANSFAC", {
    j <- file.path(tempdir(), "m.jaspar")
    writeLines(c(">MA0001.1\tAGL3", "A  [ 0 3 79 ]", "C  [ 94 75 4 ]",
                 "G  [ 1 0 3 ]", "T  [ 2 19 11 ]"), j)
    m <- readMotifs(j, "jaspar")
    want <- matrix(c(0, 94, 1, 2, 3, 75, 0, 19, 79, 4, 3, 11), 4,
                   dimnames = list(c("A", "C", "G", "T"), NULL))
    expect_identical(names(m), "MA0001.1")
    expect_identical(attr(m[[1]], "name"), "AGL3")
    expect_identical(unclass(m[[1]])[, ], want)
    me <- file.path(tempdir(), "m.meme")
    writeLines(c("MEME version 4", "ALPHABET= ACGT", "MOTIF X1 FOO",
                 "letter-probability matrix: alength= 4 w= 2 nsites= 10 E= 0",
                 " 0.1 0.2 0.3 0.4", " 0.5 0.5 0 0"), me)
    m <- readMotifs(me, "meme")[["X1"]]
    expect_equal(unclass(m)[, ], matrix(c(1, 2, 3, 4, 5, 5, 0, 0), 4,
        dimnames = list(c("A", "C", "G", "T"), NULL)))
    ho <- file.path(tempdir(), "m.homer")
    writeLines(c(">ACG\tACG/Homer\t6.5", "0.7\t0.1\t0.1\t0.1",
                 "0.1\t0.7\t0.1\t0.1", "0.1\t0.1\t0.7\t0.1"), ho)
    m <- readMotifs(ho, "homer")
    expect_identical(names(m), "ACG/Homer")
    expect_equal(unclass(m[[1]])[, 1], c(A = 70, C = 10, G = 10, T = 10))
    tf <- file.path(tempdir(), "m.transfac")
    writeLines(c("AC M1", "XX", "ID M1", "NA Foo", "P0 A C G T",
                 "01 1 2 3 4 N", "02 5 0 0 5 W", "XX", "//"), tf)
    m <- readMotifs(tf, "transfac")
    expect_identical(names(m), "M1")
    expect_identical(unclass(m[[1]])[, ], matrix(c(1, 2, 3, 4, 5, 0, 0, 5), 4,
        dimnames = list(c("A", "C", "G", "T"), NULL)))
    expect_error(readMotifs(tf, "meme"), class = "epione_error_format",
                 regexp = "check 'format'")
})

test_that("bundled motif sets match the shared sources", {
    j <- getMotifs("JASPAR2020")
    expect_length(j, 746L)
    expect_identical(names(j)[1:2], c("MA0002.2", "MA0003.4"))
    expect_identical(attr(j[["MA0139.1"]], "name"), "CTCF")
    cis <- getMotifs("cisbp")
    expect_length(cis, 870L)
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    pw <- ref_pwms()
    expect_identical(names(cis), names(pw))
    expect_equal(unname(lapply(cis, function(m) unclass(m)[, ])),
                 unname(lapply(pw, unname)), tolerance = 1e-14,
                 ignore_attr = TRUE)
    meme <- readMotifs(shared_path("data", "motifs",
        "JASPAR2020_CORE_vertebrates_non-redundant_pfms_meme.txt"), "meme")
    expect_identical(names(meme), names(j))
    freq <- function(m) sweep(unclass(m)[, ], 2, colSums(m), "/")
    expect_equal(freq(meme[["MA0139.1"]]), freq(j[["MA0139.1"]]),
                 tolerance = 1e-5)
})

# ---- addMotifAnnotations (ArchR's wrapper) ------------------------------

motif_project <- function(dir, genome = NULL) {
    p <- methods::new("EpioneProject", projectMetadata =
        S4Vectors::SimpleList(outputDirectory = dir))
    if (!is.null(genome)) p@genomeAnnotation <- S4Vectors::SimpleList(
        genome = genome)
    p
}

test_that("addMotifAnnotations stores ArchR's matches and positions", {
    skip_if_not(dir.exists(ref), "shared chromVAR reference absent")
    dir <- withr::local_tempdir()
    seqs <- read_fasta(file.path(ref, "inputs", "motif_human_sequences.fa.gz"))
    chrom <- seqs[c(501, 503)]
    names(chrom) <- c("chr11", "chrM")
    fa <- file.path(dir, "genome.fa")
    writeLines(paste0(">", names(chrom), "\n", chrom), fa)
    epione:::epi_fasta_lengths(fa, TRUE)  # builds the .fai
    peaks <- GenomicRanges::GRanges(rep(c("chr11", "chrM"), c(30, 10)),
        IRanges::IRanges(c(seq(1, 29001, by = 1000), seq(1, 9001, by = 1000)),
                         width = 501))
    proj <- addPeakSet(motif_project(dir, genome = fa), peaks)
    run <- function(t) addMotifAnnotations(proj, motifSet = "cisbptest",
        threads = t, verbose = FALSE)
    p1 <- run(1L)
    m <- getMatches(p1)
    pos <- getPositions(p1)
    # ArchR's names for the six test motifs, IDs as in the README
    cis <- getMotifs("cisbp")
    six <- cis[grep("PAX5|CEBPA|CEBPB|IRF4|ETS1|EOMES", names(cis))]
    ids <- getPeakAnnotation(p1)$motifSummary$ID
    expect_true(all(ids %in% names(six)))
    tf <- vapply(six, attr, "", "name")
    want_names <- paste0(tf, "_", seq_along(six))[match(ids, names(six))]
    expect_identical(colnames(m), want_names)
    # the peaks do not overlap, so a match = a hit inside the peak: the
    # same as matchMotifs(out = "matches") on the peak sequences
    direct <- matchMotifs(six, getPeakSet(p1), genome = fa, threads = 1)
    keep <- Matrix::colSums(motifMatches(direct)) > 0
    expect_identical(unname(as.matrix(SummarizedExperiment::assay(m,
        "matches"))), unname(as.matrix(motifMatches(direct)[, keep])))
    expect_identical(lengths(pos), lengths(matchMotifs(six[keep],
        getPeakSet(p1), genome = fa, out = "positions", threads = 1)),
        ignore_attr = TRUE)
    expect_identical(getMatches(run(2L)), m)
    expect_error(addMotifAnnotations(p1, motifSet = "cisbptest",
        verbose = FALSE), class = "epione_error_input", regexp = "force = TRUE")
    # a genome given as argument overrides the project's
    p2 <- addMotifAnnotations(addPeakSet(motif_project(dir), peaks),
        motifSet = "cisbptest", genome = fa, threads = 1, verbose = FALSE)
    expect_identical(getMatches(p2), m)
})

test_that("addMotifAnnotations gives classed errors that name the fix", {
    dir <- withr::local_tempdir()
    proj <- motif_project(dir)
    expect_error(addMotifAnnotations(proj, verbose = FALSE),
                 class = "epione_error_input", regexp = "addPeakSet")
    proj <- addPeakSet(proj, GenomicRanges::GRanges("chr1",
        IRanges::IRanges(1, 100)))
    expect_error(addMotifAnnotations(proj, verbose = FALSE),
                 class = "epione_error_input", regexp = "genome =")
    proj@genomeAnnotation <- S4Vectors::SimpleList(genome = "noSuchGenome")
    expect_error(addMotifAnnotations(proj, verbose = FALSE),
                 class = "epione_error_input", regexp = "noSuchGenome")
    expect_error(addMotifAnnotations(proj, motifSet = "homer",
        genome = "x.fa", verbose = FALSE), class = "epione_error_input",
        regexp = "cisbp")
    expect_error(addMotifAnnotations(proj, species = "Mus musculus",
        genome = "x.fa", verbose = FALSE), class = "epione_error_input",
        regexp = "motifPWMs")
})

test_that("moods.quirks = FALSE reports the short-motif hits MOODS misses", {
    m <- list(m1 = matrix(c(10, 0, 0, 0, 0, 10, 0, 0, 0, 0, 10, 0,
                            0, 0, 0, 10), 4,
                          dimnames = list(c("A", "C", "G", "T"), NULL)))
    s <- c("GGGGGGGGGGACGT", "ACGT", "TTTTACGTTTTT", "ACGTNNGGACGT")
    run <- function(q) matchMotifs(m, s, bg = "even", out = "positions",
        p.cutoff = 0.01, threads = 1, moods.quirks = q)[[1]]
    # every exact ACGT (a palindrome: one hit per strand), found plainly
    starts <- lapply(s, function(x) {
        g <- gregexpr("(?=ACGT)", x, perl = TRUE)[[1L]]
        if (g[1L] < 0) integer() else as.integer(g)
    })
    fixed <- run(FALSE)
    expect_identical(lapply(fixed, function(r) unique(IRanges::start(r))),
                     starts)
    # default (motifmatchr): a motif shorter than w = 7 ending on the last
    # base of an ACGT stretch is missed
    quirky <- run(TRUE)
    expect_identical(lapply(quirky, function(r) unique(IRanges::start(r))),
                     list(integer(), integer(), 5L, integer()))
    expect_error(matchMotifs(m, s, moods.quirks = NA),
                 class = "epione_error_input", regexp = "moods.quirks")
})
