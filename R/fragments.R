#' Compress and index a fragment file (bgzip + tabix)
#'
#' Writes a BGZF copy of a fragment file (plain text or gzip, columns chrom,
#' start, end, barcode[, count]) and its tabix index (`.tbi`), through
#' HTSlib; what [createArrowFiles()] needs when it reports a missing index
#' or a plain-gzip file. Lines are checked (4+ columns, whole numbers,
#' `0 <= start < end`) and must be sorted by chromosome and start unless
#' `sort = TRUE`, which sorts the whole file in memory.
#'
#' @param input Path of the fragment file.
#' @param output Path of the bgzip output (default: `input` with `.gz`
#'   replaced by `.bgz.gz`).
#' @param sort Sort in memory (chromosomes in order of appearance, then
#'   start, end) instead of requiring sorted input.
#' @return The output path, invisibly; `paste0(output, ".tbi")` is written
#'   too.
#' @examples
#' txt <- tempfile(fileext = ".tsv")
#' writeLines(c("chr1\t200\t300\tAAA\t1", "chr1\t100\t250\tCCC\t1"), txt)
#' out <- indexFragments(txt, tempfile(fileext = ".tsv.gz"), sort = TRUE)
#' tabixSeqnames(out)
#' @export
indexFragments <- function(input, output = NULL, sort = FALSE) {
    input <- .check_file(input, "input")
    if (is.null(output)) output <- paste0(sub("\\.gz$", "", input), ".bgz.gz")
    .check_string(output, "output")
    if (normalizePath(output, mustWork = FALSE) == input) {
        .abort("'output' must differ from 'input'.")
    }
    .core(epi_fragments_index(input, output, .check_flag(sort, "sort")))
    invisible(output)
}
