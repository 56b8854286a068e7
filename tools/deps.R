# Helper for tools/install-deps.sh.
#   Rscript tools/deps.R                      list DESCRIPTION's R packages
#   Rscript tools/deps.R --install-cran PKG.. install from CRAN if missing
#   Rscript tools/deps.R --check              fail unless all are installed
args <- commandArgs(trailingOnly = TRUE)
base_pkgs <- c("R", "methods", "stats", "utils", "grDevices", "graphics",
               "tools", "parallel", "grid", "splines", "stats4")
desc <- read.dcf("DESCRIPTION")
fields <- intersect(c("Depends", "Imports", "LinkingTo", "Suggests"),
                    colnames(desc))
deps <- unlist(strsplit(desc[1L, fields], ","))
deps <- trimws(sub("\\(.*\\)", "", deps))
deps <- setdiff(unique(deps[nzchar(deps)]), base_pkgs)

installed <- function(p) nzchar(system.file(package = p))
if (!length(args)) {
    cat(deps, sep = "\n")
} else if (args[1L] == "--install-cran") {
    repos <- getOption("repos")
    if (!length(repos) || any(repos == "@CRAN@")) {
        stop("No CRAN repository is configured; set options(repos = ...) ",
             "in Rprofile.site and re-run.")
    }
    todo <- Filter(Negate(installed), args[-1L])
    if (length(todo)) install.packages(todo, Ncpus = 2L)
    missing <- Filter(Negate(installed), todo)
    if (length(missing)) {
        stop("Could not install from CRAN: ", paste(missing, collapse = ", "))
    }
} else if (args[1L] == "--check") {
    missing <- Filter(Negate(installed), deps)
    if (length(missing)) {
        stop("Dependencies still missing: ", paste(missing, collapse = ", "))
    }
    cat("all", length(deps), "dependencies installed\n")
}
