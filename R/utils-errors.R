# Classed conditions. Every error epione raises has class
# c("epione_error_<kind>", "epione_error", "error", "condition") and a
# message that says what was wrong and what to do about it.

.abort <- function(..., kind = "input", call = NULL, parent = NULL) {
    cond <- errorCondition(paste0(...),
        class = c(paste0("epione_error_", kind), "epione_error"),
        call = call)
    if (!is.null(parent)) cond$parent <- parent
    stop(cond)
}

.warn <- function(..., kind = "input") {
    warning(warningCondition(paste0(...),
        class = c(paste0("epione_warning_", kind), "epione_warning")))
}

# Runs a call into the C++ core. The core throws epione::<kind>_error, which
# Rcpp signals with the C++ class name; re-signal it as
# epione_error_<kind> with the same message.
.core <- function(expr) {
    tryCatch(expr, error = function(e) {
        cls <- grep("^epione::[a-z]+_error$", class(e), value = TRUE)
        if (!length(cls)) stop(e)
        kind <- sub("^epione::([a-z]+)_error$", "\\1", cls[1L])
        .abort(conditionMessage(e), kind = kind, parent = e)
    })
}
