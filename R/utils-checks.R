# Argument checks at the R boundary; each names the argument and the fix.

.check_flag <- function(x, name) {
    if (!(is.logical(x) && length(x) == 1L && !is.na(x))) {
        .abort("'", name, "' must be TRUE or FALSE, not ", deparse1(x), ".")
    }
    x
}

.check_string <- function(x, name) {
    if (!(is.character(x) && length(x) == 1L && !is.na(x) && nzchar(x))) {
        .abort("'", name, "' must be one non-empty character string, not ",
               deparse1(x), ".")
    }
    x
}

.check_file <- function(path, name) {
    .check_string(path, name)
    if (!file.exists(path)) {
        .abort("'", name, "' names a file that does not exist: '", path,
               "'. Check the path (working directory: '", getwd(), "').",
               kind = "file")
    }
    normalizePath(path)
}

.check_number <- function(x, name, min = -Inf, max = Inf, whole = FALSE) {
    ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && x >= min &&
        x <= max && (!whole || x == round(x))
    if (!ok) {
        .abort("'", name, "' must be one ", if (whole) "whole " else "",
               "number in [", min, ", ", max, "], not ", deparse1(x), ".")
    }
    x
}
