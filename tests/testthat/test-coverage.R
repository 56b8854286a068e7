# Pseudobulk coverage from fragment files against a plain R count of the
# same fragments (ArchR 1.0.3 getGroupBW rules), and BigWig round trips.

loci_fragments <- function() {
    system.file("extdata", "multiome_loci_fragments.tsv.gz",
                package = "epione", mustWork = TRUE)
}
# ArchR's .createGroupBW counting written plainly: insertions at start + 1
# and end, bin trunc(pos / tileSize), at most `ceiling` per cell and bin.
plain_coverage <- function(path, groups, tileSize, ceiling) {
    f <- utils::read.delim(gzfile(path), header = FALSE,
                           stringsAsFactors = FALSE)
    names(groups) <- sub("^.*#", "", names(groups))
    f <- f[f$V4 %in% names(groups), ]
    ins <- data.frame(chr = c(f$V1, f$V1), cell = c(f$V4, f$V4),
                      bin = c(trunc((f$V2 + 1) / tileSize),
                              trunc(f$V3 / tileSize)))
    per_cell <- stats::aggregate(list(n = rep(1, nrow(ins))), ins, sum)
    per_cell$n <- pmin(per_cell$n, ceiling)
    per_cell$group <- unname(groups[per_cell$cell])
    out <- stats::aggregate(list(reads = per_cell$n),
                            per_cell[c("group", "chr", "bin")], sum)
    nfr <- table(f$V4)
    list(tiles = out, nFrags = nfr)
}

test_that("groupCoverages counts insertions as ArchR's getGroupBW", {
    ex <- p2gExampleData()
    path <- loci_fragments()
    cov <- groupCoverages(path, ex$clusters, tileSize = 100, ceiling = 1,
                          maxCells = NULL, threads = 1)
    want <- plain_coverage(path, ex$clusters, 100, 1)
    got <- as.data.frame(unlist(cov))
    got$group <- rep(names(cov), lengths(cov))
    key <- function(g, chr, start) paste(g, chr, start)
    w <- want$tiles
    m <- match(key(w$group, w$chr, w$bin * 100 + 1),
               key(got$group, got$seqnames, got$start))
    expect_false(anyNA(m))
    expect_equal(nrow(got), nrow(w))
    expect_equal(got$reads[m], w$reads)
    # nFrags normalisation: reads * 1e4 / fragments of the group's cells
    cells <- sub("^.*#", "", names(ex$clusters))
    nf <- as.numeric(want$nFrags[cells])
    nf[is.na(nf)] <- 0
    per_group <- tapply(nf, ex$clusters, sum)
    g1 <- names(cov)[1]
    expect_equal(cov[[g1]]$score, cov[[g1]]$reads * 1e4 / per_group[[g1]])
    expect_identical(groupCoverages(path, ex$clusters, ceiling = 1,
                                    maxCells = NULL, threads = 2), cov)
})

test_that("regions, normBy and the default ceiling work", {
    ex <- p2gExampleData()
    path <- loci_fragments()
    region <- GenomicRanges::GRanges("chr2", IRanges::IRanges(86700000,
                                                              86900000))
    cov <- groupCoverages(path, ex$clusters, region = region,
                          normMethod = "ReadsInTSS",
                          normBy = stats::setNames(rep(2, length(ex$clusters)),
                                                   names(ex$clusters)),
                          maxCells = NULL, threads = 1)
    all <- unlist(cov)
    expect_true(all(as.character(GenomicRanges::seqnames(all)) == "chr2"))
    n <- S4Vectors::metadata(cov)$nCells
    expect_equal(cov[[1]]$score, cov[[1]]$reads * 1e4 / (2 * n[[1]]))
    want <- plain_coverage(path, ex$clusters, 100, 4)$tiles
    got <- groupCoverages(path, ex$clusters, maxCells = NULL, threads = 1)
    expect_equal(sum(unlist(got)$reads), sum(want$reads))
})

test_that("exportGroupBW writes BigWigs that read back", {
    skip_if_not_installed("rtracklayer")
    ex <- p2gExampleData()
    cov <- groupCoverages(loci_fragments(), ex$clusters, maxCells = NULL,
                          threads = 1)
    out <- exportGroupBW(cov, file.path(tempdir(), "bw"))
    expect_true(all(file.exists(out)))
    back <- rtracklayer::import.bw(out[[1]])
    back <- back[back$score != 0]
    expect_equal(sum(back$score * IRanges::width(back)) / 100,
                 sum(cov[[1]]$score), tolerance = 1e-6)
})

test_that("bad coverage inputs are classed errors that name the fix", {
    ex <- p2gExampleData()
    path <- loci_fragments()
    expect_error(groupCoverages(path, unname(ex$clusters)),
                 class = "epione_error_input", regexp = "named vector")
    expect_error(groupCoverages(path, ex$clusters, normMethod = "ReadsInTSS"),
                 class = "epione_error_input", regexp = "normBy")
    expect_error(groupCoverages("no/such/file.tsv.gz", ex$clusters),
                 class = "epione_error_file", regexp = "Check the path")
    noidx <- file.path(tempdir(), "noidx.tsv.gz")
    file.copy(path, noidx, overwrite = TRUE)
    expect_error(groupCoverages(noidx, ex$clusters),
                 class = "epione_error_format", regexp = "tabix -p bed")
})

test_that("groupCoverages matches ArchR's getGroupBW BigWigs on PBSmall", {
    skip_if_not(has_shared(), "shared PBSmall fragments absent")
    skip_if_not_installed("rtracklayer")
    fix <- function(f) utils::read.delim(gzfile(test_path("fixtures", f)),
                                         stringsAsFactors = FALSE)
    cells <- fix("archr_groupbw_pbsmall_cells.tsv.gz")
    want <- fix("archr_groupbw_pbsmall_chr11_3Mb.tsv.gz")
    frag <- shared_path("data", "fragments", "pbsmall", "PBSmall.tsv.gz")
    cov <- groupCoverages(frag, stats::setNames(cells$Clusters,
        cells$cellNames), normMethod = "ReadsInTSS",
        normBy = stats::setNames(cells$ReadsInTSS, cells$cellNames),
        threads = 2)
    # expand ArchR's merged BigWig runs to 100-bp tiles
    n <- (want$end - want$start + 1) / 100
    w <- data.frame(group = rep(want$group, n), start = unlist(mapply(
        function(s, k) s + 100 * (seq_len(k) - 1), want$start, n)),
        score = rep(want$score, n))
    got <- do.call(rbind, lapply(names(cov), function(g) {
        gr <- cov[[g]][as.character(GenomicRanges::seqnames(cov[[g]])) ==
                       "chr11" & GenomicRanges::start(cov[[g]]) < 3e6]
        data.frame(group = g, start = GenomicRanges::start(gr),
                   score = gr$score)
    }))
    key <- function(d) paste(d$group, d$start)
    expect_setequal(key(got), key(w))
    m <- match(key(w), key(got))
    expect_equal(got$score[m], w$score, tolerance = 1e-6)  # float32 BigWig
})

# ---- project forms ----------------------------------------------------------

pbsmall_project <- function() {
    d <- file.path(tempdir(), "cov-pbsmall")
    dir.create(d, showWarnings = FALSE)
    anno <- exampleAnnotation()
    a <- pbsmall_arrow(d, addTileMatrix = FALSE, addGeneScoreMatrix = FALSE)
    ArchRProject(a, file.path(d, "proj"), copyArrows = FALSE,
                 geneAnnotation = anno$geneAnnotation,
                 genomeAnnotation = anno$genomeAnnotation)
}

test_that("getGroupBW on a project writes ArchR's BigWigs (PBSmall)", {
    skip_if_not_installed("rtracklayer")
    fix <- function(f) utils::read.delim(gzfile(test_path("fixtures", f)),
                                         stringsAsFactors = FALSE)
    cells <- fix("archr_groupbw_pbsmall_cells.tsv.gz")
    want <- fix("archr_groupbw_pbsmall_chr11_3Mb.tsv.gz")
    proj <- pbsmall_project()
    cc <- rownames(proj@cellColData)
    expect_setequal(cc, cells$cellNames)
    proj@cellColData$Clusters <- cells$Clusters[match(cc, cells$cellNames)]
    # ArchR's normaliser is the project's own ReadsInTSS column
    expect_equal(proj@cellColData$ReadsInTSS,
                 cells$ReadsInTSS[match(cc, cells$cellNames)],
                 tolerance = 1e-12)
    out <- getGroupBW(proj, groupBy = "Clusters", verbose = FALSE)
    expect_identical(dirname(out[[1]]), file.path(
        proj@projectMetadata$outputDirectory, "GroupBigWigs", "Clusters"))
    expect_identical(names(out), sort(unique(cells$Clusters)))
    got <- do.call(rbind, lapply(names(out), function(g) {
        gr <- rtracklayer::import.bw(out[[g]], which = GenomicRanges::GRanges(
            "chr11", IRanges::IRanges(1, 3e6 - 1)))
        gr <- gr[gr$score != 0]
        data.frame(group = g, start = GenomicRanges::start(gr),
                   end = GenomicRanges::end(gr), score = gr$score)
    }))
    # compare per base: expand both to 100-bp tiles
    tiles <- function(d) {
        n <- (d$end - d$start + 1) / 100
        data.frame(key = paste(rep(d$group, n), unlist(mapply(function(s, k)
            s + 100 * (seq_len(k) - 1), d$start, n))), score = rep(d$score, n))
    }
    g <- tiles(got)
    w <- tiles(want[want$start < 3e6, ])
    expect_setequal(g$key, w$key)
    expect_equal(g$score[match(w$key, g$key)], w$score, tolerance = 1e-6)
})

test_that("addGroupCoverages writes ArchR-layout insertion coverages", {
    ex <- p2gExampleProject(file.path(tempdir(), "cov-groups"))
    proj <- ex$proj
    set.seed(1)
    proj <- addGroupCoverages(proj, minCells = 20, verbose = FALSE)
    gc <- proj@projectMetadata$GroupCoverages$Clusters
    meta <- gc$coverageMetadata
    expect_true(all(file.exists(meta$File)))
    expect_identical(unique(meta$Group), sort(unique(getCellColData(
        ex$proj, "Clusters", drop = TRUE))))
    # first replicate against a plain count of its cells' fragments
    cells <- gc$Params$cellGroups[[meta$Group[1]]][[1]]
    f <- utils::read.delim(gzfile(system.file("extdata",
        "multiome_loci_fragments.tsv.gz", package = "epione")),
        header = FALSE)
    f <- f[paste0("MO#", f$V4) %in% cells, ]
    h5 <- function(p) epione:::.h5read(meta$File[1], p)
    expect_identical(h5("Class"), "ArrowCoverage")
    for (chr in unique(f$V1)) {
        cov <- S4Vectors::Rle(h5(paste0("Coverage/", chr, "/Values")),
                              h5(paste0("Coverage/", chr, "/Lengths")))
        ff <- f[f$V1 == chr, ]
        pos <- c(ff$V2 + 1, ff$V3)
        tab <- table(pos)
        expect_equal(as.numeric(cov[as.numeric(names(tab))]),
                     as.numeric(tab))
        expect_equal(sum(cov), length(pos))
    }
    expect_equal(meta$nInsertions[1], 2 * nrow(f))
    expect_error(addGroupCoverages(proj, minCells = 20, verbose = FALSE),
                 class = "epione_error_input", regexp = "force = TRUE")
})

test_that("getGroupBW errors name the fix", {
    ex <- p2gExampleProject(file.path(tempdir(), "cov-bad"))
    expect_error(getGroupBW(ex$proj, groupBy = "nope"),
                 class = "epione_error_input", regexp = "available")
    expect_error(getGroupBW(ex$proj, normMethod = "bad"),
                 class = "epione_error_input", regexp = "one of")
})
