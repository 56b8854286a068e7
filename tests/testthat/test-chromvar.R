# chromVAR engine against chromVAR 1.29's saved outputs
# (shared/data/ref/chromvar; tolerances from its README).

ref <- shared_path("data", "ref", "chromvar")
has_ref <- function() dir.exists(ref)

ref_matrix <- function(file) {
    d <- utils::read.delim(file.path(ref, file), check.names = FALSE)
    if (colnames(d)[1L] == "row") {
        m <- as.matrix(d[, -1L])
        rownames(m) <- d[[1L]]
    } else {
        m <- as.matrix(d)
    }
    m
}

mini <- function() {
    list(se = readRDS(file.path(ref, "inputs", "mini_counts.rds")),
         ix = readRDS(file.path(ref, "inputs", "mini_ix.rds")),
         bg = unname(ref_matrix("background/mini_bg_seed2017.tsv.gz")))
}

rel_err <- function(got, want) {
    ok <- is.finite(want) & is.finite(got)
    max(abs(got[ok] - want[ok]) / pmax(abs(want[ok]), 1e-300))
}

# Poisson counts with a GC bias and real signal: the first `n_signal`
# annotations are 1.6x more accessible in the first half of the cells.
synthetic <- function(n_cells = 1000L, n_peaks = 3000L, n_annot = 10L,
                      n_signal = 5L, seed = 7) {
    withr::local_seed(seed)
    rate <- stats::rgamma(n_peaks, shape = 0.7)
    depth <- round(exp(stats::rnorm(n_cells, log(2000), 0.4)))
    sets <- lapply(seq_len(n_annot), function(a)
        sort(sample.int(n_peaks, 200L)))
    boost <- rep(1, n_peaks)
    boost[unique(unlist(sets[seq_len(n_signal)]))] <- 1.6
    cols <- lapply(seq_len(n_cells), function(j) {
        r <- rate * if (j <= n_cells / 2) boost else 1
        stats::rpois(n_peaks, depth[j] * r / sum(r))
    })
    x <- Matrix::Matrix(do.call(cbind, cols), sparse = TRUE)
    x[Matrix::rowSums(x) == 0, 1L] <- 1
    anno <- Matrix::sparseMatrix(i = unlist(sets),
        j = rep(seq_len(n_annot), lengths(sets)), x = 1,
        dims = c(n_peaks, n_annot))
    list(counts = x, bias = round(stats::runif(n_peaks, 0.3, 0.8), 3),
         anno = anno)
}

test_that("whitening and bins equal chromVAR's intermediates", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    fpp <- Matrix::rowSums(SummarizedExperiment::assay(d$se, "counts"))
    m <- epione:::epi_chromvar_bin_model(fpp,
        SummarizedExperiment::rowData(d$se)$bias, 0.1, 50L)
    wh <- utils::read.delim(file.path(ref, "background/mini_whitened.tsv.gz"))
    expect_identical(m$x1, wh$whitened1)
    expect_identical(m$x2, wh$whitened2)
    expect_identical(m$bin, wh$bin)
    grid <- utils::read.delim(file.path(ref, "background/mini_bin_grid.tsv"))
    expect_identical(m$bins1, grid$bins1)
    expect_identical(m$bins2, grid$bins2)
})

test_that("getBackgroundPeaks is bit-exact with chromVAR for a seed", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    n <- nrow(d$se)
    for (s in c(2017L, 42L)) {
        want <- unname(ref_matrix(sprintf("background/mini_bg_seed%d.tsv.gz",
                                          s)))
        storage.mode(want) <- "integer"
        set.seed(s)
        got <- getBackgroundPeaks(d$se, threads = 1)
        state <- .Random.seed
        expect_identical(got, want)
        # the RNG advanced exactly n * niterations uniforms, as in chromVAR
        set.seed(s)
        invisible(stats::runif(n * 50))
        expect_identical(state, .Random.seed)
        set.seed(s)
        expect_identical(getBackgroundPeaks(d$se, threads = 2), want)
    }
})

test_that("background peaks do not depend on threads or uniform chunks", {
    sc <- synthetic(n_cells = 40L, n_peaks = 3000L, n_annot = 2L)
    fpp <- Matrix::rowSums(sc$counts)
    draw <- function(threads, chunk) {
        set.seed(7)
        epione:::epi_chromvar_background(fpp, sc$bias, 20L, 0.1, 50L,
                                         threads, chunk)
    }
    want <- draw(1L, 2^22)
    expect_identical(draw(2L, 2^22), want)
    expect_identical(draw(2L, 997), want)   # many chunks of bins
    expect_identical(draw(1L, 20), want)    # one bin per chunk
    set.seed(7)
    expect_identical(getBackgroundPeaks(sc$counts, bias = sc$bias,
                                        niterations = 20), want)
})

test_that("peak totals equal Matrix::rowSums and check counts", {
    sc <- synthetic(n_cells = 50L, n_peaks = 300L, n_annot = 2L)
    x <- sc$counts
    expect_identical(epione:::.peak_totals(x, 2L), Matrix::rowSums(x))
    x@x <- x@x / 3                          # fractional: R's own sums
    expect_identical(epione:::.peak_totals(x, 2L), Matrix::rowSums(x))
    s <- epione:::epi_chromvar_peak_totals(x, 1L)
    expect_false(s$whole)
    x@x[4] <- NA
    expect_error(getBackgroundPeaks(x, bias = sc$bias),
                 class = "epione_error_input", regexp = "non-negative")
    x@x[4] <- -2
    expect_error(getBackgroundPeaks(x, bias = sc$bias),
                 class = "epione_error_input", regexp = "non-negative")
})

test_that("background peaks of ArchR's PBSmall have ArchR's distribution", {
    a <- shared_path("data", "fragments", "pbsmall", "archr_reference")
    skip_if_not(dir.exists(a), "PBSmall ArchR reference absent")
    rd <- utils::read.delim(file.path(a,
        "PBSmall_BackgroundPeaks_rowData.tsv.gz"))
    # ArchR passes cbind(rowSums, 1) to chromVAR, i.e. log10(value + 1)
    x <- cbind(rd$value, 1)
    set.seed(1)
    bg <- getBackgroundPeaks(x, bias = rd$GC, threads = 1)
    gc_mean <- rowMeans(matrix(rd$GC[bg], nrow(bg)))
    sum_mean <- rowMeans(matrix(rd$value[bg] + 1, nrow(bg)))
    # ArchR's own sample was drawn with another RNG state: compare the
    # per-peak background means (sampling error ~ sd / sqrt(50)).
    expect_gt(stats::cor(gc_mean, rd$bgdGCMean), 0.99)
    expect_gt(stats::cor(log(sum_mean), log(rd$bgdSumMean)), 0.99)
    expect_lt(stats::median(abs(gc_mean - rd$bgdGCMean) / rd$bgdGCSd), 0.5)
})

test_that("computeExpectations matches chromVAR in all four modes", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    want <- utils::read.delim(file.path(ref,
        "deviations/mini_expectations.tsv.gz"))
    expect_equal(computeExpectations(d$se), want$default, tolerance = 1e-14)
    expect_equal(computeExpectations(d$se, norm = TRUE), want$norm_TRUE,
                 tolerance = 1e-14)
    expect_equal(computeExpectations(d$se, group = "Cell_Type"),
                 want$group_Cell_Type, tolerance = 1e-14)
    expect_equal(computeExpectations(d$se, norm = TRUE, group = "Cell_Type"),
                 want$group_Cell_Type_norm_TRUE, tolerance = 1e-14)
})

test_that("computeDeviations(method = 'sample') matches chromVAR", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    got <- computeDeviations(d$se, d$ix, d$bg, method = "sample",
                             threads = 1)
    want_z <- ref_matrix("deviations/mini_bgseed2017_z.tsv.gz")
    want_d <- ref_matrix("deviations/mini_bgseed2017_deviations.tsv.gz")
    expect_s4_class(got, "chromVARDeviations")
    expect_identical(dimnames(deviationScores(got)), dimnames(want_z))
    expect_identical(is.na(deviationScores(got)), is.na(want_z))
    expect_lt(rel_err(deviationScores(got), want_z), 1e-12)
    expect_lt(rel_err(deviations(got), want_d), 1e-12)
    rd <- utils::read.delim(file.path(ref,
        "deviations/mini_bgseed2017_rowdata.tsv"))
    got_rd <- SummarizedExperiment::rowData(got)
    expect_equal(got_rd$fractionMatches, rd$fractionMatches,
                 tolerance = 1e-15)
    expect_equal(got_rd$fractionBackgroundOverlap,
                 rd$fractionBackgroundOverlap, tolerance = 1e-14)
    expect_identical(unname(got_rd$name), rd$name)
    # threads do not change a bit; other annotation containers agree
    expect_identical(computeDeviations(d$se, d$ix, d$bg, method = "sample",
                                       threads = 2), got)
    m <- SummarizedExperiment::assay(d$ix, "motifMatches")
    alt <- computeDeviations(SummarizedExperiment::assay(d$se, "counts"),
        m, d$bg, method = "sample", threads = 2)
    expect_identical(unname(deviationScores(alt)),
                     unname(deviationScores(got)))
    sets <- lapply(seq_len(ncol(m)), function(j) which(m[, j]))
    alt2 <- computeDeviations(d$se, sets, d$bg, method = "sample")
    expect_identical(unname(deviations(alt2)), unname(deviations(got)))
})

test_that("sample deviations do not depend on the counts' scale", {
    # Whole counts take the blocked integer sweep, others the general one;
    # deviations and z are invariant under scaling the counts (cells whose
    # expected count crosses 1 change their NA status, so compare the rest).
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    want_z <- ref_matrix("deviations/mini_bgseed2017_z.tsv.gz")
    x <- SummarizedExperiment::assay(d$se, "counts") * 2.5
    got <- deviationScores(computeDeviations(x, d$ix, d$bg,
                                             method = "sample"))
    expect_true(all(is.na(want_z)[is.na(got)]))
    expect_lt(rel_err(unname(got), unname(want_z)), 1e-12)
    # several cell blocks and annotation chunks
    sc <- synthetic(n_cells = 300L, n_peaks = 2000L, n_annot = 45L)
    set.seed(5)
    bg <- getBackgroundPeaks(sc$counts, bias = sc$bias, niterations = 50)
    z1 <- deviationScores(computeDeviations(sc$counts, sc$anno, bg,
                                            method = "sample"))
    z2 <- deviationScores(computeDeviations(sc$counts * 1.5, sc$anno, bg,
                                            method = "sample"))
    ok <- !is.na(z1) & !is.na(z2)
    expect_gt(mean(ok), 0.9)
    expect_lt(max(abs(z1[ok] - z2[ok]) / pmax(abs(z1[ok]), 1e-8)), 1e-10)
})

test_that("computeVariability matches chromVAR", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    dev <- computeDeviations(d$se, d$ix, d$bg, method = "sample")
    want <- utils::read.delim(file.path(ref,
        "deviations/mini_bgseed2017_variability.tsv"))
    got <- computeVariability(dev, bootstrap_error = FALSE)
    expect_equal(got$variability, want$variability, tolerance = 1e-13)
    expect_equal(got$p_value, want$p_value, tolerance = 1e-12)
    expect_equal(got$p_value_adj, want$p_value_adj, tolerance = 1e-12)
    # bootstrap bounds: chromVAR's came from other random streams, so they
    # agree statistically (1000 resamples of 35 cells)
    wb <- utils::read.delim(file.path(ref,
        "deviations/mini_bgseed2017_variability_bootstrap_RNGseed2017.tsv"))
    set.seed(1)
    b1 <- computeVariability(dev, threads = 1)
    expect_equal(b1$bootstrap_lower_bound, wb$bootstrap_lower_bound,
                 tolerance = 0.05)
    expect_equal(b1$bootstrap_upper_bound, wb$bootstrap_upper_bound,
                 tolerance = 0.05)
    set.seed(1)
    expect_identical(computeVariability(dev, threads = 2), b1)
})

test_that("the analytical null is the limit of the sampled one", {
    sc <- synthetic()
    set.seed(3)
    bg <- getBackgroundPeaks(sc$counts, bias = sc$bias, niterations = 50)
    samp <- computeDeviations(sc$counts, sc$anno, bg, method = "sample")
    ana <- computeDeviations(sc$counts, sc$anno, bias = sc$bias)
    zs <- deviationScores(samp)
    za <- deviationScores(ana)
    r <- vapply(seq_len(nrow(zs)), function(i)
        stats::cor(zs[i, ], za[i, ], use = "complete.obs"), 0)
    # 50 draws leave ~10% noise in the sampled sd, which caps the
    # agreement: two sampled runs with different seeds agree less (0.97 on
    # pure noise) than either does with the analytical limit.
    expect_gt(min(r[1:5]), 0.99)      # annotations with signal (var z ~4)
    expect_gt(min(r), 0.975)          # pure noise
    expect_identical(is.na(za), is.na(zs))
    # with many more draws the sampled null converges to the analytical one
    big <- getBackgroundPeaks(sc$counts, bias = sc$bias, niterations = 400)
    zb <- deviationScores(computeDeviations(sc$counts, sc$anno[, 6:7], big,
                                            method = "sample"))
    r2 <- vapply(1:2, function(i)
        stats::cor(zb[i, ], za[5 + i, ], use = "complete.obs"), 0)
    expect_gt(min(r2), 0.995)
    expect_identical(computeDeviations(sc$counts, sc$anno, bias = sc$bias,
                                       threads = 1), ana)
})

test_that("bad input gives classed errors that name the fix", {
    sc <- synthetic(n_cells = 60L, n_peaks = 400L, n_annot = 3L)
    x <- sc$counts
    b <- sc$bias
    b[3] <- NA
    expect_error(getBackgroundPeaks(x, bias = b),
                 class = "epione_error_input", regexp = "addGCBias|Drop")
    b[3] <- 1.5
    expect_error(getBackgroundPeaks(x, bias = b),
                 class = "epione_error_input", regexp = "\\[0, 1\\]")
    expect_error(getBackgroundPeaks(x), class = "epione_error_input",
                 regexp = "bias")
    z <- x
    z[5, ] <- 0
    expect_error(getBackgroundPeaks(z, bias = sc$bias),
                 class = "epione_error_input", regexp = "remove them")
    expect_error(computeDeviations(z, sc$anno, bias = sc$bias),
                 class = "epione_error_input", regexp = "remove them")
    neg <- x
    neg[1, 1] <- -1
    expect_error(computeExpectations(neg), class = "epione_error_input",
                 regexp = "non-negative")
    set.seed(1)
    bg <- getBackgroundPeaks(x, bias = sc$bias, niterations = 10)
    expect_error(computeDeviations(x, sc$anno, bg[-1, ], method = "sample"),
                 class = "epione_error_input", regexp = "getBackgroundPeaks")
    bad <- bg
    bad[1, 1] <- nrow(x) + 1L
    expect_error(computeDeviations(x, sc$anno, bad, method = "sample"),
                 class = "epione_error_input", regexp = "getBackgroundPeaks")
    expect_error(computeDeviations(x, sc$anno[-1, ], bg, method = "sample"),
                 class = "epione_error_input", regexp = "same peak set")
    expect_error(computeDeviations(x, sc$anno, method = "sample"),
                 class = "epione_error_input", regexp = "background_peaks")
    expect_error(computeDeviations(x, sc$anno, bg, method = "sample",
                                   threads = 0),
                 class = "epione_error_input", regexp = "threads")
    flat <- rep(0.5, nrow(x))
    expect_error(getBackgroundPeaks(x, bias = flat),
                 class = "epione_error_numeric", regexp = "bias")
})

test_that("edge cases follow chromVAR's documented NA rules", {
    sc <- synthetic(n_cells = 60L, n_peaks = 400L, n_annot = 3L)
    x <- sc$counts
    x[, 2] <- 0                       # a cell without fragments
    x <- Matrix::drop0(x)
    anno <- cbind(sc$anno, 0)         # an annotation without peaks
    set.seed(1)
    bg <- getBackgroundPeaks(x, bias = sc$bias, niterations = 10)
    for (method in c("sample", "analytical")) {
        d <- computeDeviations(x, anno, bg, method = method,
                               bias = sc$bias)
        expect_true(all(is.na(deviationScores(d)[4, ])))
        expect_true(all(is.na(deviations(d)[, 2])))   # expected 0 < 1
        expect_false(anyNA(deviationScores(d)[1:3, -2]))
        expect_identical(SummarizedExperiment::rowData(d)$fractionMatches[4],
                         0)
    }
    # non-integer counts are used as they are (as chromVAR does): scaling
    # all counts by 2 doubles expected and observed alike
    d1 <- computeDeviations(x, sc$anno, bg, method = "sample")
    d2 <- computeDeviations(x * 2, sc$anno, bg, method = "sample")
    expect_equal(deviations(d2)[, -2], deviations(d1)[, -2],
                 tolerance = 1e-12)
    d3 <- computeDeviations(x * 0.5 + 0.25 * (x > 0), sc$anno, bg,
                            method = "sample")
    expect_true(all(is.finite(deviations(d3)[, -c(1:2)])))
})

test_that("plots are ggplot objects", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    dev <- computeDeviations(d$se, d$ix, d$bg, method = "sample")
    set.seed(1)
    v <- computeVariability(dev, bootstrap_samples = 50)
    expect_s3_class(plotVariability(v), "ggplot")
    p <- plotVarDev(dev, n = 2)
    expect_s3_class(p, "ggplot")
    expect_identical(p$data$rank, 1:3)
})

test_that("addGCBias reads GC from a FASTA as ArchR/BSgenome hg19 did", {
    sq <- shared_path("data", "sequences", "human_hg19_chr11")
    skip_if_not(dir.exists(sq), "shared hg19 chr11 sequence absent")
    # one record per segment, named as the segment; peaks shifted into it
    seg <- readLines(file.path(sq, "hg19_chr11_segments.fa.gz"))
    hdr <- grep("^>", seg)
    fa <- tempfile(fileext = ".fa")
    body <- seg[(hdr[2] + 1):length(seg)]
    writeLines(c(">seg2", body), fa)
    pk <- utils::read.delim(file.path(sq, "hg19_chr11_accessible_peaks.tsv"))
    pk <- pk[grepl("PBSmall", pk$name), ]
    off <- 113930315 - 1
    rr <- GenomicRanges::GRanges("seg2", IRanges::IRanges(pk$start0 + 1 - off,
                                                          pk$end - off))
    se <- SummarizedExperiment::SummarizedExperiment(
        assays = list(counts = matrix(1, nrow(pk), 2)), rowRanges = rr)
    gc <- SummarizedExperiment::rowData(addGCBias(se, fa))$bias
    # ArchR stores GC rounded to 4 digits (PBSmall peakSet, idx 968-970)
    expect_identical(round(gc, 4), c(0.4711, 0.5210, 0.5768))
    # plain count, written independently
    s <- paste(body, collapse = "")
    one <- strsplit(toupper(substr(s, pk$start0[1] + 1 - off,
                                   pk$end[1] - off)), "")[[1]]
    expect_identical(gc[1], mean(one %in% c("G", "C")))
    bad <- GenomicRanges::GRanges("chrZ", IRanges::IRanges(1, 10))
    se2 <- SummarizedExperiment::SummarizedExperiment(
        assays = list(counts = matrix(1, 1, 2)), rowRanges = bad)
    expect_error(addGCBias(se2, fa), class = "epione_error_input",
                 regexp = "sequence names")
    expect_error(addGCBias(se2, tempfile()), class = "epione_error_file")
})

test_that("sample deviations reproduce ArchR's PBSmall MotifMatrix", {
    a <- shared_path("data", "fragments", "pbsmall", "archr_reference")
    skip_if_not(dir.exists(a), "PBSmall ArchR reference absent")
    pm <- methods::as(Matrix::readMM(file.path(a, "PBSmall_PeakMatrix.mtx.gz")),
                      "CsparseMatrix")
    mm <- Matrix::readMM(file.path(a, "PBSmall_motifMatches.mtx.gz"))
    bg <- as.matrix(utils::read.delim(file.path(a,
        "PBSmall_BackgroundPeaks_idx.tsv.gz")))
    read_m <- function(f) {
        d <- utils::read.delim(file.path(a, f), check.names = FALSE)
        unname(as.matrix(d[, -1L]))
    }
    d <- computeDeviations(pm, mm, bg, method = "sample", threads = 2)
    expect_equal(unname(deviationScores(d)),
                 read_m("PBSmall_MotifMatrix_z.tsv.gz"), tolerance = 1e-12)
    expect_equal(unname(deviations(d)),
                 read_m("PBSmall_MotifMatrix_deviations.tsv.gz"),
                 tolerance = 1e-12)
})

test_that("embedding and heatmap helpers summarise z as documented", {
    skip_if_not(has_ref(), "shared chromVAR reference absent")
    d <- mini()
    dev <- computeDeviations(d$se, d$ix, d$bg, method = "sample")
    xy <- cbind(seq_len(ncol(dev)), seq_len(ncol(dev)))
    expect_s3_class(plotDeviationsEmbedding(dev, xy, n = 2), "ggplot")
    expect_error(plotDeviationsEmbedding(dev, xy[-1, ]),
                 class = "epione_error_input", regexp = "one row per cell")
    g <- d$se$Cell_Type
    p <- plotDeviationsHeatmap(dev, g)
    z <- deviationScores(dev)
    want <- mean(z["MA0107.1_RELA", g == "GM"])
    got <- p$data$z[p$data$annotation == "MA0107.1_RELA" &
                    p$data$group == "GM"]
    expect_equal(got, want)
})

# ---- ArchR project wrappers against ArchR's saved PBSmall project -------

archr_ref <- shared_path("data", "fragments", "pbsmall", "archr_reference")
has_archr_ref <- function() dir.exists(archr_ref)

archr_tsv <- function(f) utils::read.delim(file.path(archr_ref, f),
                                           check.names = FALSE)

archr_peaks <- function() {
    ps <- archr_tsv("PBSmall_peakSet.bed.gz")
    GenomicRanges::GRanges(ps$chrom, IRanges::IRanges(ps$start + 1L, ps$end),
                           GC = ps$GC)
}

# The PBSmall project as ArchR's test project was built (minFrags = 100:
# the same 127 cells), with ArchR's peak set and a PeakMatrix.
# z and deviations of a MotifMatrix SE equal ArchR's saved PBSmall ones.
expect_archr_motif_matrix <- function(se, tolerance) {
    cells <- paste0("PBSmall#", readLines(file.path(archr_ref,
                                                    "PBSmall_cells.txt")))
    for (a in c("z", "deviations")) {
        want <- as.matrix(archr_tsv(paste0("PBSmall_MotifMatrix_", a,
                                           ".tsv.gz"))[, -1L])
        got <- as.matrix(SummarizedExperiment::assay(se, a))[, cells]
        expect_equal(unname(got), unname(want), tolerance = tolerance)
    }
}

pbsmall_env <- new.env()
pbsmall_project <- function() {
    if (is.null(pbsmall_env$dir)) {
        dir <- withr::local_tempdir(.local_envir = pbsmall_env)
        arrow <- pbsmall_arrow(dir, addTileMatrix = FALSE,
                               addGeneScoreMatrix = FALSE)
        proj <- ArchRProject(arrow, file.path(dir, "proj"))
        pbsmall_env$proj <- addPeakMatrix(addPeakSet(proj, archr_peaks()))
        pbsmall_env$dir <- dir
    }
    pbsmall_env$proj
}

with_archr_motifs <- function(proj) {
    mm <- methods::as(Matrix::readMM(file.path(archr_ref,
        "PBSmall_motifMatches.mtx.gz")), "CsparseMatrix")
    mm <- methods::as(mm, "lMatrix")
    colnames(mm) <- readLines(file.path(archr_ref,
                                        "PBSmall_motifMatches_motifs.txt"))
    se <- SummarizedExperiment::SummarizedExperiment(list(matches = mm),
        rowRanges = getPeakSet(proj))
    epione:::.add_peak_annotation(proj, "Motif", se, force = TRUE)
}

archr_bgd_idx <- function() {
    m <- as.matrix(archr_tsv("PBSmall_BackgroundPeaks_idx.tsv.gz"))
    matrix(as.integer(m), nrow(m))
}

test_that("ArchR's saved background peaks are reproduced from its inputs", {
    skip_if_not(has_archr_ref(), "PBSmall ArchR reference absent")
    rd <- archr_tsv("PBSmall_BackgroundPeaks_rowData.tsv.gz")
    set.seed(99)
    kind <- RNGkind()
    state <- .Random.seed
    # ArchR's project paired chr11's row sums with chr5's peaks (a bug
    # fixed in 1.0.3): its saved 'value' column is what chromVAR got.
    run <- function(t) epione:::.bgd_peaks_se(archr_peaks(), rd$value,
        rd$GC, 50, 0.1, 50, seed = 1, threads = t)
    got <- run(1L)
    expect_identical(unname(SummarizedExperiment::assay(got)),
                     archr_bgd_idx())
    cols <- as.data.frame(SummarizedExperiment::rowData(got))[names(rd)]
    expect_equal(cols, rd, ignore_attr = TRUE, tolerance = 1e-12)
    expect_identical(run(2L), got)
    # the caller's random state is left as it was
    expect_identical(RNGkind(), kind)
    expect_identical(.Random.seed, state)
})

test_that("addBgdPeaks uses the PeakMatrix row sums and saves like ArchR", {
    skip_if_not(has_archr_ref(), "PBSmall ArchR reference absent")
    proj <- pbsmall_project()
    proj <- addBgdPeaks(proj, force = TRUE, threads = 2)
    path <- S4Vectors::metadata(getPeakSet(proj))$bgdPeaks
    expect_identical(path, normalizePath(file.path(
        proj@projectMetadata$outputDirectory, "Background-Peaks.rds")))
    expect_identical(proj@projectMetadata$bgdPeaks, path)
    bgd <- getBgdPeaks(proj)
    expect_identical(bgd, readRDS(path))
    pm <- Matrix::readMM(file.path(archr_ref, "PBSmall_PeakMatrix.mtx.gz"))
    rd <- SummarizedExperiment::rowData(bgd)
    expect_identical(as.numeric(rd$value), Matrix::rowSums(pm))
    expect_identical(rd$GC, archr_peaks()$GC)
    want <- epione:::.bgd_peaks_se(archr_peaks(), Matrix::rowSums(pm),
        archr_peaks()$GC, 50, 0.1, 50, seed = 1, threads = 1)
    expect_identical(SummarizedExperiment::assay(bgd),
                     SummarizedExperiment::assay(want))
    expect_error(addBgdPeaks(proj), class = "epione_error_input",
                 regexp = "force = TRUE")
    expect_error(addBgdPeaks(proj, method = "ArchR", force = TRUE),
                 class = "epione_error_input", regexp = "chromVAR")
    gone <- proj
    S4Vectors::metadata(gone@peakSet)$bgdPeaks <- tempfile()
    expect_error(getBgdPeaks(gone), class = "epione_error_file",
                 regexp = "addBgdPeaks")
    nogc <- proj
    nogc@peakSet$GC <- NULL
    S4Vectors::metadata(nogc@peakSet) <- list()
    nogc@projectMetadata$bgdPeaks <- NULL
    expect_error(getBgdPeaks(nogc), class = "epione_error_input",
                 regexp = "genome =")
})

test_that("addDeviationsMatrix reproduces ArchR's PBSmall MotifMatrix", {
    skip_if_not(has_archr_ref(), "PBSmall ArchR reference absent")
    proj <- with_archr_motifs(pbsmall_project())
    bgd <- SummarizedExperiment::SummarizedExperiment(
        list(bgdPeaks = archr_bgd_idx()), rowRanges = archr_peaks())
    run <- function(t) {
        p <- addDeviationsMatrix(proj, bgdPeaks = bgd, threads = t,
                                 verbose = FALSE, force = TRUE)
        list(p = p, se = getMatrixFromProject(p, "MotifMatrix",
                                              verbose = FALSE))
    }
    r1 <- run(1L)
    se <- r1$se
    expect_identical(SummarizedExperiment::assayNames(se),
                     c("deviations", "z"))
    expect_archr_motif_matrix(se, 1e-8)
    expect_identical(rownames(se), readLines(file.path(archr_ref,
        "PBSmall_motifMatches_motifs.txt")))
    expect_identical(run(2L)$se, se)
    # getVarDeviations: ArchR's pooled variance; one sample = var(z)
    z <- as.matrix(archr_tsv("PBSmall_MotifMatrix_z.tsv.gz")[, -1L])
    v <- apply(z, 1L, stats::var)
    names(v) <- archr_tsv("PBSmall_MotifMatrix_z.tsv.gz")[[1L]]
    tab <- getVarDeviations(r1$p, plot = FALSE)
    expect_identical(tab$name, names(sort(v, decreasing = TRUE)))
    expect_equal(tab$combinedVars, unname(sort(v, decreasing = TRUE)),
                 tolerance = 1e-10)
    expect_identical(tab$rank, seq_len(6L))
    expect_s3_class(getVarDeviations(r1$p, n = 3), "ggplot")
    expect_error(addDeviationsMatrix(r1$p, bgdPeaks = bgd, verbose = FALSE),
                 class = "epione_error_file", regexp = "force = TRUE")
})

test_that("ArchR's own MotifMatrix reads from its Arrow file", {
    skip_if_not(has_archr_ref(), "PBSmall ArchR reference absent")
    dir <- withr::local_tempdir()
    utils::unzip(shared_path("data", "fragments", "pbsmall",
        "PBSmall_ArchRProject.zip"), files = "PBSmall/ArrowFiles/PBSmall.arrow",
        exdir = dir)
    af <- file.path(dir, "PBSmall", "ArrowFiles", "PBSmall.arrow")
    se <- getMatrixFromArrow(af, "MotifMatrix", verbose = FALSE)
    expect_archr_motif_matrix(se, 1e-12)
    proj <- ArchRProject(af, file.path(dir, "proj"), copyArrows = FALSE)
    full <- getMatrixFromProject(proj, "MotifMatrix", verbose = FALSE)
    expect_identical(SummarizedExperiment::assayNames(full),
                     c("deviations", "z"))
    tab <- getVarDeviations(proj, plot = FALSE)
    z <- as.matrix(archr_tsv("PBSmall_MotifMatrix_z.tsv.gz")[, -1L])
    expect_equal(sort(tab$combinedVars),
                 sort(unname(apply(z, 1L, stats::var))), tolerance = 1e-10)
})

test_that("project wrappers give classed errors that name the fix", {
    skip_if_not(has_archr_ref(), "PBSmall ArchR reference absent")
    proj <- pbsmall_project()
    bare <- proj
    bare@peakSet <- NULL
    expect_error(addBgdPeaks(bare), class = "epione_error_input",
                 regexp = "addPeakSet")
    expect_error(addDeviationsMatrix(bare), class = "epione_error_input",
                 regexp = "addPeakSet")
    noanno <- proj
    noanno@peakAnnotation <- S4Vectors::SimpleList()
    expect_error(addDeviationsMatrix(noanno), class = "epione_error_input",
                 regexp = "addMotifAnnotations")
    expect_error(getVarDeviations(proj, "NoSuchMatrix"),
                 class = "epione_error_input", regexp = "addDeviationsMatrix")
    expect_error(addDeviationsMatrix(with_archr_motifs(proj), out = "x"),
                 class = "epione_error_input", regexp = "deviations")
})
