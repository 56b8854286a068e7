# Runs the whole test suite against the installed epione and prints a final
# line "N passed, N failed, N skipped"; exits 1 on any failure.
# Usage, from the repository root: Rscript tools/run-tests.R
suppressPackageStartupMessages(library(testthat))
options(warn = 1)
res <- as.data.frame(testthat::test_dir("tests/testthat", package = "epione",
    load_package = "installed", reporter = "progress",
    stop_on_failure = FALSE))
passed <- sum(res$passed)
failed <- sum(res$failed) + sum(res$error)
skipped <- sum(res$skipped)
cat(sprintf("\n%d passed, %d failed, %d skipped\n", passed, failed,
            skipped))
if (failed > 0) quit(status = 1)
