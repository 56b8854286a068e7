write_fragments <- function(df, path) {
    df <- df[order(df$chr, df$start0, df$end), ]
    txt <- tempfile(fileext = ".tsv")
    utils::write.table(df, txt, sep = "\t", quote = FALSE, row.names = FALSE,
                       col.names = FALSE)
    Rsamtools::bgzip(txt, path, overwrite = TRUE)
    Rsamtools::indexTabix(path, seq = 1, start = 2, end = 3,
                          zeroBased = TRUE)
    path
}

toy_data <- function() {
    withr::local_seed(11)
    bases <- c("A", "C", "G", "T")
    chrA <- paste(sample(bases, 30000, TRUE), collapse = "")
    substr(chrA, 5000, 5010) <- "NNNNNNNNNNN"
    chrB <- paste(sample(bases, 20000, TRUE), collapse = "")
    genome <- Biostrings::DNAStringSet(c(chrA = chrA, chrB = chrB))
    n <- 6000
    chr <- sample(c("chrA", "chrB"), n, TRUE, prob = c(0.6, 0.4))
    len <- c(chrA = 30000, chrB = 20000)[chr]
    s0 <- floor(runif(n, 0, len - 600))
    frags <- data.frame(chr = chr, start0 = s0,
                        end = s0 + sample(30:500, n, TRUE),
                        barcode = sample(paste0("bc", 1:9), n, TRUE),
                        count = 1L)
    mk <- function(m) GenomicRanges::GRanges(sample(c("chrA", "chrB"), m, TRUE),
        IRanges::IRanges(sample(400:19000, m), width = 8),
        strand = sample(c("+", "-", "*"), m, TRUE))
    list(genome = genome, frags = frags,
         positions = list(M1 = mk(40), M2 = mk(25)),
         groups = stats::setNames(rep(c("g1", "g2", "g3"), 3),
                                  paste0("bc", 1:9)))
}

# Plain-R reference: insertions at start0 + 1 and end; offsets from the site
# centre, mirrored for minus-strand sites.
ref_footprint <- function(frags, pos, flank) {
    ins <- data.frame(chr = rep(frags$chr, 2),
                      x = c(frags$start0 + 1, frags$end))
    mid <- GenomicRanges::resize(pos, 1, "center")
    out <- numeric(2 * flank + 1)
    for (i in seq_along(mid)) {
        x <- ins$x[ins$chr == as.character(GenomicRanges::seqnames(mid))[i]]
        d <- x - GenomicRanges::start(mid)[i]
        d <- d[abs(d) <= flank]
        if (as.character(GenomicRanges::strand(mid))[i] == "-") d <- -d
        out <- out + tabulate(d + flank + 1, 2 * flank + 1)
    }
    out
}

ref_bias <- function(genome, frags, pos, flank, k) {
    kmers <- Biostrings::mkAllStrings(c("A", "C", "G", "T"), k)
    exp <- Reduce(`+`, lapply(seq_along(genome), function(i)
        Biostrings::oligonucleotideFrequency(genome[[i]], k)))
    ins <- c(frags$start0 + 1, frags$end)
    chr <- rep(frags$chr, 2)
    obs <- numeric(length(kmers))
    for (cn in names(genome)) {
        x <- ins[chr == cn] - k %/% 2
        x <- x[x >= 1 & x + k - 1 <= length(genome[[cn]])]
        v <- Biostrings::Views(genome[[cn]], start = x, width = k)
        obs <- obs + Biostrings::oligonucleotideFrequency(v, k,
            simplify.as = "collapsed")
    }
    oe <- obs / exp
    window <- 2 * flank + 1
    wide <- GenomicRanges::resize(pos, window + k, "center")
    bias <- numeric(window)
    for (i in seq_along(wide)) {
        g <- genome[[as.character(GenomicRanges::seqnames(wide))[i]]]
        if (GenomicRanges::start(wide)[i] < 1 ||
            GenomicRanges::end(wide)[i] > length(g)) next
        s <- Biostrings::subseq(g, GenomicRanges::start(wide)[i],
                                GenomicRanges::end(wide)[i])
        minus <- as.character(GenomicRanges::strand(wide))[i] == "-"
        if (minus) s <- Biostrings::reverseComplement(s)
        km <- substring(as.character(s), 1:window, k:(window + k - 1))
        v <- oe[match(km, kmers)]
        v[is.na(v)] <- 0
        # ArchR: k-mer j of the stranded sequence counts at position j
        bias <- bias + v
    }
    unname(bias / sum(bias))
}

test_that("getFootprints equals a plain R count and ArchR's bias model", {
    d <- toy_data()
    f <- write_fragments(d$frags, withr::local_tempfile(fileext = ".tsv.gz"))
    flank <- 60
    fp <- getFootprints(f, d$positions, groupBy = d$groups,
                        genome = d$genome, flank = flank)
    expect_identical(SummarizedExperiment::assayNames(fp), c("M1", "M2"))
    expect_identical(colnames(fp), c("g1", "g2", "g3"))
    rd <- SummarizedExperiment::rowData(fp)
    for (m in c("M1", "M2")) {
        for (g in c("g1", "g3")) {
            fr <- d$frags[d$groups[d$frags$barcode] == g, ]
            a <- SummarizedExperiment::assay(fp, m)[, g]
            expect_equal(unname(a[rd$type == "footprint"]),
                         ref_footprint(fr, d$positions[[m]], flank))
            expect_equal(unname(a[rd$type == "bias"]),
                         ref_bias(d$genome, fr, d$positions[[m]], flank, 6),
                         tolerance = 1e-12)
        }
    }
    expect_equal(sum(fp$nInsertions), 2 * nrow(d$frags))
})

test_that("one group per file equals grouping barcodes of one file", {
    d <- toy_data()
    f <- write_fragments(d$frags, withr::local_tempfile(fileext = ".tsv.gz"))
    sub <- split(d$frags, d$groups[d$frags$barcode])
    files <- vapply(names(sub), function(g) write_fragments(sub[[g]],
        withr::local_tempfile(.local_envir = parent.frame(3),
                              fileext = ".tsv.gz")), "")
    a <- getFootprints(f, d$positions, groupBy = d$groups, flank = 40)
    b <- getFootprints(files, d$positions, flank = 40)
    expect_identical(colnames(b), names(sub))
    expect_equal(SummarizedExperiment::assay(a, "M2"),
                 SummarizedExperiment::assay(b, "M2"))
    # no genome: bias rows are NA
    rd <- SummarizedExperiment::rowData(b)
    expect_true(all(is.na(SummarizedExperiment::assay(b, "M1")[
        rd$type == "bias", ])))
})

test_that("footprints on PBSmall fragments match a plain R count", {
    skip_if_not(has_shared(), "shared data absent")
    f <- shared_path("data", "fragments", "pbsmall", "PBSmall.tsv.gz")
    fr <- utils::read.delim(f, header = FALSE,
                            col.names = c("chr", "start0", "end", "barcode",
                                          "count"))
    withr::local_seed(5)
    # sites at real fragment ends, so that windows are well covered
    pick <- sample(nrow(fr), 60)
    pos <- GenomicRanges::GRanges(fr$chr[pick], IRanges::IRanges(
        fr$end[pick] - 3L, width = 8), strand = sample(c("+", "-"), 60, TRUE))
    grp <- stats::setNames(substr(unique(fr$barcode), 1, 1),
                           unique(fr$barcode))
    fp <- getFootprints(f, list(sites = pos), groupBy = grp, flank = 250)
    rd <- SummarizedExperiment::rowData(fp)
    for (g in c("B", "M", "T")) {
        want <- ref_footprint(fr[grp[fr$barcode] == g, ], pos, 250)
        expect_equal(unname(SummarizedExperiment::assay(fp)[
            rd$type == "footprint", g]), want)
    }
})

test_that("footprint normalisation follows ArchR's plotFootprints", {
    d <- toy_data()
    f <- write_fragments(d$frags, withr::local_tempfile(fileext = ".tsv.gz"))
    fp <- getFootprints(f, d$positions, groupBy = d$groups,
                        genome = d$genome, flank = 60, flankNorm = 20)
    p <- footprintProfiles(fp, "M1", normMethod = "Subtract")
    a <- SummarizedExperiment::assay(fp, "M1")
    x <- seq(-60, 60)
    edge <- abs(x) >= 40
    foot <- a[1:121, "g2"] / mean(a[1:121, "g2"][edge])
    bias <- a[122:242, "g2"] / mean(a[122:242, "g2"][edge])
    expect_equal(p$footprint[p$group == "g2"], unname(foot - bias))
    dv <- footprintProfiles(fp, "M1", normMethod = "Divide")
    expect_equal(dv$footprint[dv$group == "g2"], unname(foot / bias))
    sm <- footprintProfiles(fp, "M1", normMethod = "None", smoothWindow = 5)
    raw <- a[1:121, "g1"]
    want <- vapply(1:121, function(i) mean(raw[max(1, i - 2):min(121, i + 2)]),
                   0)
    expect_equal(sm$footprint[sm$group == "g1"],
                 unname(want / mean(want[edge])))
    pl <- plotFootprints(fp, smoothWindow = 5)
    expect_s3_class(pl$M2, "ggplot")
})

test_that("bad footprint input is a classed error naming the fix", {
    d <- toy_data()
    f <- write_fragments(d$frags, withr::local_tempfile(fileext = ".tsv.gz"))
    expect_error(getFootprints(tempfile(), d$positions),
                 class = "epione_error_file")
    expect_error(getFootprints(f, "sites"), class = "epione_error_input",
                 regexp = "GRangesList")
    expect_error(getFootprints(f, d$positions, groupBy = c("a", "b")),
                 class = "epione_error_input", regexp = "named")
    far <- GenomicRanges::GRanges("chrA", IRanges::IRanges(10, width = 5))
    expect_error(getFootprints(f, far), class = "epione_error_input",
                 regexp = "flank \\+ 50")
    expect_error(getFootprints(f, d$positions, flank = 0),
                 class = "epione_error_input", regexp = "flank")
    noidx <- withr::local_tempfile(fileext = ".tsv.gz")
    file.copy(f, noidx)
    expect_error(getFootprints(noidx, d$positions),
                 class = "epione_error_file", regexp = "tabix")
})

# A project over the toy fragments: one Arrow file, cells grouped in
# cellColData$Clusters as d$groups groups the barcodes.
toy_project <- function(d, dir) {
    f <- write_fragments(d$frags, file.path(dir, "toy.tsv.gz"))
    ga <- createGeneAnnotation(GenomicRanges::GRanges("chrA",
        IRanges::IRanges(1000, 3000), strand = "+", symbol = "G1"))
    gen <- createGenomeAnnotation(c(chrA = 30000, chrB = 20000))
    a <- createArrowFiles(f, "S", file.path(dir, "S"), ga, gen, minTSS = 0,
        minFrags = 1, addTileMatrix = FALSE, addGeneScoreMatrix = FALSE,
        QCDir = NULL, threads = 1, verbose = FALSE, force = TRUE)
    proj <- ArchRProject(a, file.path(dir, "proj"), geneAnnotation = ga,
                         genomeAnnotation = gen)
    bc <- sub("^S#", "", rownames(proj@cellColData))
    proj@cellColData$Clusters <- unname(d$groups[bc])
    proj
}

test_that("getFootprints on a project counts its Arrow fragments per group", {
    d <- toy_data()
    dir <- withr::local_tempdir()
    proj <- toy_project(d, dir)
    flank <- 60
    run <- function(t) getFootprints(proj, d$positions, groupBy = "Clusters",
        minCells = 1, flank = flank, threads = t, genome = d$genome)
    fp <- run(1L)
    expect_identical(run(2L), fp)
    expect_identical(SummarizedExperiment::assayNames(fp), c("M1", "M2"))
    expect_identical(colnames(fp), c("g1", "g2", "g3"))
    expect_identical(fp$nCells, c(3L, 3L, 3L))
    rd <- SummarizedExperiment::rowData(fp)
    expect_identical(rd$x, rep(seq(-flank, flank), 2))
    for (m in c("M1", "M2")) for (g in c("g1", "g2", "g3")) {
        fr <- d$frags[d$groups[d$frags$barcode] == g, ]
        a <- SummarizedExperiment::assay(fp, m)[, g]
        expect_equal(unname(a[rd$type == "footprint"]),
                     ref_footprint(fr, d$positions[[m]], flank))
        expect_equal(unname(a[rd$type == "bias"]),
                     ref_bias(d$genome, fr, d$positions[[m]], flank, 6),
                     tolerance = 1e-12)
    }
    one <- getFootprints(proj, d$positions, useGroups = c("g2", "g3"),
        groupBy = "Clusters", minCells = 1, flank = flank, genome = d$genome,
        threads = 1)
    expect_identical(colnames(one), c("g2", "g3"))
    expect_equal(SummarizedExperiment::assay(one, "M1")[1:121, ],
                 SummarizedExperiment::assay(fp, "M1")[1:121, 2:3])
    # nTop keeps the best-scoring sites
    pos <- d$positions
    pos$M1$score <- seq_along(pos$M1)
    top <- getFootprints(proj, pos["M1"], groupBy = "Clusters", minCells = 1,
                         flank = flank, nTop = 5, threads = 1)
    fr <- d$frags[d$groups[d$frags$barcode] == "g1", ]
    best <- pos$M1[order(-pos$M1$score)[1:5]]
    expect_equal(unname(SummarizedExperiment::assay(top)[1:121, "g1"]),
                 ref_footprint(fr, best, flank))
    expect_error(getFootprints(proj, d$positions, groupBy = "Clusters"),
                 class = "epione_error_input", regexp = "minCells")
    expect_error(getFootprints(proj, d$positions, groupBy = "Nope"),
                 class = "epione_error_input", regexp = "cellColData")
    expect_error(getFootprints(proj, d$positions, minCells = 1, nTop = 3),
                 class = "epione_error_input", regexp = "score")
})

test_that("footprints from ArchR's own PBSmall Arrow match its fragments", {
    ref <- shared_path("data", "ref", "archr", "pbsmall")
    skip_if_not(file.exists(file.path(ref, "PBSmall.arrow.gz")),
                "shared ArchR reference absent")
    dir <- withr::local_tempdir()
    arrow <- file.path(dir, "PBSmall.arrow")
    R.utils_gunzip <- function(from, to) {
        con <- gzfile(from, "rb"); on.exit(close(con))
        writeBin(readBin(con, "raw", 5e7), to)
    }
    R.utils_gunzip(file.path(ref, "PBSmall.arrow.gz"), arrow)
    anno <- exampleAnnotation()
    proj <- ArchRProject(arrow, file.path(dir, "proj"), copyArrows = FALSE,
                         genomeAnnotation = anno$genomeAnnotation)
    cl <- utils::read.delim(file.path(ref, "clusters_umap.tsv.gz"))
    proj@cellColData$Clusters <- cl$Clusters[match(rownames(proj@cellColData),
                                                   cl$cellNames)]
    fr <- utils::read.delim(file.path(ref, "arrow_fragments.tsv.gz"))
    withr::local_seed(7)
    pick <- sample(nrow(fr), 80)
    pos <- GenomicRanges::GRanges(fr$chr[pick], IRanges::IRanges(
        fr$end[pick] - 3L, width = 8), strand = sample(c("+", "-"), 80, TRUE))
    fp <- getFootprints(proj, list(sites = pos), groupBy = "Clusters",
                        minCells = 10, flank = 250, threads = 2)
    rd <- SummarizedExperiment::rowData(fp)
    grp <- stats::setNames(cl$Clusters, cl$cellNames)
    for (g in colnames(fp)) {
        sub <- fr[grp[fr$cell] %in% g, ]
        sub$start0 <- sub$start - 1L
        expect_equal(unname(SummarizedExperiment::assay(fp)[
            rd$type == "footprint", g]), ref_footprint(sub, pos, 250),
            info = g)
    }
    expect_equal(sum(fp$nCells), sum(table(grp)[colnames(fp)]))
})

test_that("a paired-end BAM gives the footprints of its Tn5 fragments", {
    skip_if_not_installed("Rsamtools")
    set.seed(7)
    n <- 400
    pos <- sort(sample(1000:9000, n, replace = TRUE))   # leftmost mate, 1-based
    tlen <- sample(60:400, n, replace = TRUE)
    keep <- rep(c(TRUE, TRUE, TRUE, FALSE), length.out = n)  # 1 in 4 is a dup
    flag1 <- ifelse(keep, 99L, 99L + 1024L)                  # paired, proper
    mate <- pos + tlen - 50                                  # 50-bp reads
    rd <- function(i, flag, p, pn, t, mq = 60) paste("r" %s% i, flag, "chr1",
        p, mq, "50M", "=", pn, t, strrep("A", 50), strrep("I", 50), sep = "\t")
    `%s%` <- function(a, b) paste0(a, b)
    lines <- c(sprintf("@SQ\tSN:chr1\tLN:%d", 20000L),
        rd(seq_len(n), flag1, pos, mate, tlen),
        rd(seq_len(n), ifelse(keep, 147L, 147L + 1024L), mate, pos, -tlen),
        rd("low", 99L, 5000L, 5100L, 150L, mq = 5),          # MAPQ < 30
        rd("low", 147L, 5100L, 5000L, -150L, mq = 5))
    sam <- tempfile(fileext = ".sam")
    writeLines(lines, sam)
    bam <- suppressWarnings(Rsamtools::asBam(sam, tempfile(), indexDestination = TRUE))
    # The same fragments written plainly: start0 = pos - 1 + 4,
    # end = pos - 1 + tlen - 5, duplicates and the low-MAPQ pair left out.
    s0 <- pos[keep] - 1L + 4L
    tsv <- tempfile(fileext = ".tsv")
    o <- order(s0)
    utils::write.table(data.frame("chr1", s0[o], (pos[keep] - 1L + tlen[keep] -
        5L)[o], "bulk", 1L), tsv, sep = "\t", quote = FALSE,
        row.names = FALSE, col.names = FALSE)
    frag <- indexFragments(tsv, paste0(tsv, ".gz"))
    sites <- list(m = GenomicRanges::GRanges("chr1", IRanges::IRanges(
        c(3000, 5000, 7000), width = 8), strand = c("+", "-", "+")))
    a <- getFootprints(c(S = bam), sites, flank = 60)
    b <- getFootprints(c(S = frag), sites, flank = 60)
    expect_identical(SummarizedExperiment::assay(a), SummarizedExperiment::assay(b))
    expect_identical(a$nInsertions, 2 * sum(keep))
    fp <- SummarizedExperiment::rowData(a)$type == "footprint"
    expect_gt(sum(SummarizedExperiment::assay(a)[fp, ]), 0)
})
