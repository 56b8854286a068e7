#' Versions and health of epione's compiled libraries
#'
#' Reports the HTSlib and HDF5 versions compiled into epione, checks that a
#' dense product through R's BLAS gives the right answer, and how many
#' threads TBB actually used. Each line calls into the library it names, so
#' this is also a quick test of an installation.
#'
#' @param threads Number of threads to try in the TBB check.
#' @return A named list: `htslib` and `hdf5` (version strings), `blas`
#'   (the BLAS R uses, from `sessionInfo()`, and whether a product through it
#'   was correct), `tbb_threads` (distinct threads used, at most `threads`).
#' @examples
#' epioneInfo(threads = 1)
#' @export
epioneInfo <- function(threads = getOption("epione.threads", 2L)) {
    threads <- .check_threads(threads)
    a <- matrix(as.numeric(1:6), 3L, 2L)
    blas_ok <- isTRUE(all.equal(epi_info_blas_crossprod(a), crossprod(a)))
    h5 <- tempfile(fileext = ".h5")
    on.exit(unlink(h5), add = TRUE)
    h5_ok <- identical(epi_info_hdf5_roundtrip(h5, 1:10), 1:10)
    list(htslib = epi_info_htslib_version(),
         hdf5 = epi_info_hdf5_version(),
         hdf5_roundtrip = h5_ok,
         blas = list(library = sessionInfo()$BLAS, correct = blas_ok),
         tbb_threads = epi_info_tbb_threads_used(threads, 64L))
}

#' Sequence names in a tabix-indexed file
#'
#' Reads the tabix index (`.tbi`) of a bgzip-compressed file such as a 10x
#' fragment file with HTSlib and lists the sequences (chromosomes) it holds,
#' in index order.
#'
#' @param file Path to a bgzip-compressed, tabix-indexed file; the index is
#'   expected at `paste0(file, ".tbi")`.
#' @return A character vector of sequence names.
#' @examples
#' frags <- system.file("extdata", "PBSmall.tsv.gz", package = "epione")
#' tabixSeqnames(frags)
#' @export
tabixSeqnames <- function(file) {
    file <- .check_file(file, "file")
    if (!file.exists(paste0(file, ".tbi"))) {
        .abort("'file' has no tabix index ('", file, ".tbi'). Sort and ",
               "index it with `sort -k1,1 -k2,2n | bgzip` and ",
               "`tabix -p bed file`.", kind = "file")
    }
    .core(epi_info_tabix_seqnames(file))
}
