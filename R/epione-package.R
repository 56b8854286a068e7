#' epione: fast chromatin accessibility analysis
#'
#' ArchR-, chromVAR-, motifmatchr- and DESeq2-compatible functions computed
#' by a header-only C++ core. Set the default number of C++ threads with
#' `options(epione.threads = n)`; every threaded function also takes
#' `threads`.
#'
#' @keywords internal
#' @useDynLib epione, .registration = TRUE
#' @importFrom Rcpp evalCpp
#' @importFrom RcppParallel RcppParallelLibs
#' @importFrom utils sessionInfo
#' @importFrom uwot umap
"_PACKAGE"
