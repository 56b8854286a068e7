test_that("every linked library answers", {
    info <- epioneInfo(threads = 2)
    expect_match(info$htslib, "^1\\.[0-9]+")
    expect_match(info$hdf5, "^1\\.[0-9]+\\.[0-9]+$")
    expect_true(info$hdf5_roundtrip)
    expect_true(info$blas$correct)
    expect_true(info$tbb_threads >= 1L && info$tbb_threads <= 2L)
})

test_that("TBB really runs two threads when asked", {
    # 64 tasks of 2 ms each: a two-thread arena uses both threads.
    expect_equal(epione:::epi_info_tbb_threads_used(1L, 64L), 1L)
    expect_equal(epione:::epi_info_tbb_threads_used(2L, 64L), 2L)
})

test_that("tabixSeqnames reads the index of the bundled fragments", {
    frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
    # Independent check: the chromosomes in file order from plain R.
    chroms <- unique(read.table(gzfile(frags), sep = "\t")$V1)
    expect_identical(tabixSeqnames(frags), chroms)
})

test_that("tabixSeqnames errors name the problem and the fix", {
    expect_error(tabixSeqnames(tempfile()), class = "epione_error_file",
                 regexp = "does not exist")
    plain <- tempfile(fileext = ".tsv.gz")
    con <- gzfile(plain, "w")
    writeLines("chr1\t1\t10\tA\t1", con)
    close(con)
    expect_error(tabixSeqnames(plain), class = "epione_error_file",
                 regexp = "tabix -p bed")
    expect_error(tabixSeqnames(NA_character_), class = "epione_error_input",
                 regexp = "'file'")
    expect_error(tabixSeqnames(1), class = "epione_error_input")
})

test_that("bad threads are classed errors naming the fix", {
    for (bad in list(0, -1, 1.5, NA, "2", c(1, 2), Inf)) {
        expect_error(epioneInfo(threads = bad), class = "epione_error_input",
                     regexp = "threads = 1")
    }
})
