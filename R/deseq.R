# Differential accessibility with the negative-binomial model of DESeq2: user
# API (differentialAccessibility, DESeqFast, plots), then the engine that
# drives inst/include/epione/deseq.hpp.

#' Differential accessibility with DESeq2's negative-binomial GLM
#'
#' @description Runs DESeq2 1.38's default pipeline (`DESeq()` then
#' `results()`) in epione's C++ core: median-of-ratios size factors,
#' Cox-Reid gene-wise dispersions, parametric (or local/mean) trend, MAP
#' shrinkage, Wald or likelihood-ratio test, Cook's distances with outlier
#' replacement, independent filtering and Benjamini-Hochberg adjustment.
#' Answers match DESeq2 1.38.3 to about 1e-8 relative on the reference data
#' (`shared/data/ref/deseq2`).
#'
#' @param object A peaks x samples matrix of non-negative integer counts, a
#'   `SummarizedExperiment` with assay `counts` (or `assay.type`), or a
#'   `DESeq2::DESeqDataSet` (its design is used when `design` is missing).
#' @param design A formula over the columns of `colData`, e.g. `~ group` or
#'   `~ batch + condition`. The last term is tested by default.
#' @param contrast `NULL` (the last coefficient), a coefficient name as in
#'   `resultsNames`, `c(variable, numerator, denominator)`, or a numeric
#'   vector over the coefficients.
#' @param test `"Wald"` or `"LRT"` (likelihood-ratio test against `reduced`).
#' @param reduced For `test = "LRT"`, the reduced formula, e.g. `~ 1`.
#' @param fitType Dispersion trend: `"parametric"`, `"local"` (needs the
#'   package locfit) or `"mean"`.
#' @param sfType Size factors: `"ratio"` (median of ratios) or `"poscounts"`.
#' @param alpha Significance level used by independent filtering.
#' @param lfcThreshold Non-negative log2 fold-change threshold of the Wald
#'   test (`altHypothesis = "greaterAbs"`).
#' @param cooksCutoff `TRUE` (the F(0.99, p, m - p) quantile), `FALSE`, or a
#'   number.
#' @param minReplicatesForReplace Replace outlier counts and refit when a
#'   sample's group has at least this many samples (`Inf` to switch off).
#' @param independentFiltering Filter on the mean count before BH.
#' @param shrink `"none"` or `"normal"` (DESeq2's `lfcShrink(type =
#'   "normal")`, replacing log2FoldChange and lfcSE).
#' @param threads Number of C++ threads. Results do not depend on it.
#' @param verbose Print the steps.
#' @param details Also return DESeq2's per-peak fit columns of `mcols(dds)`
#'   (`baseVar`, coefficients, `SE_*`, Wald statistics and p-values,
#'   `betaConv`, `betaIter`, `deviance`, iteration counts). Off by default:
#'   at 200k peaks they are ~50 MB that most analyses never read.
#' @param normalizationFactors Optional peaks x samples matrix of positive
#'   normalization factors replacing the size factors (DESeq2's
#'   `normalizationFactors()`, e.g. for GC or length bias); a
#'   `DESeqDataSet`'s own are used when present.
#' @param ... Passed on to the method for `SummarizedExperiment`.
#' @return A `SummarizedExperiment` (the input's, or one built around the
#'   matrix) with `rowData` columns `baseMean`, `log2FoldChange`, `lfcSE`,
#'   `stat`, `pvalue`, `padj` followed by DESeq2's dispersion columns
#'   (`dispGeneEst`, `dispFit`, `dispMAP`, `dispersion`, `dispOutlier`),
#'   `allZero`, `maxCooks` (and `replace` when outliers were replaced; with
#'   `details = TRUE` the other `mcols(dds)` columns: `baseVar`,
#'   coefficients, `SE_*`, `betaConv`, `deviance`, ...), `colData` column
#'   `sizeFactor`, and fit details in
#'   `metadata(x)$differentialAccessibility` (size factors, dispersion
#'   function, prior variance, resultsNames, filter threshold).
#' @seealso [DESeqFast()] for a DESeqDataSet that DESeq2's own `results()`
#'   and `lfcShrink()` accept; [volcanoPlot()], [maPlot()];
#'   [DESeq2::DESeq()], [DESeq2::results()].
#' @examples
#' set.seed(1)
#' mu <- rgamma(500, 2, 0.05)
#' counts <- matrix(rnbinom(500 * 6, mu = mu, size = 5), ncol = 6)
#' group <- factor(rep(c("ctrl", "trt"), each = 3))
#' res <- differentialAccessibility(counts, ~ group,
#'     colData = data.frame(group = group), threads = 1)
#' head(SummarizedExperiment::rowData(res))
#' @importFrom methods setGeneric setMethod
#' @export
setGeneric("differentialAccessibility", function(object, ...)
    standardGeneric("differentialAccessibility"))

#' @rdname differentialAccessibility
#' @param colData For a matrix: a data frame of sample annotations (one row
#'   per column of `object`). Without it the design variables are looked up
#'   in the formula's environment.
#' @export
setMethod("differentialAccessibility", "ANY", function(object,
        design = ~ group, ..., colData = NULL) {
    # the SummarizedExperiment method's pipeline on the matrix itself; the
    # object returned is built once, with the results (.da_attach)
    .da_se(.count_parts(object, design, colData), design = design, ...)
})

# The SummarizedExperiment method; `object` may also be .count_parts().
.da_se <- function(
        object, design = ~ group, contrast = NULL, test = c("Wald", "LRT"),
        reduced = NULL, fitType = c("parametric", "local", "mean"),
        sfType = "ratio", alpha = 0.1, lfcThreshold = 0, cooksCutoff = TRUE,
        minReplicatesForReplace = 7, independentFiltering = TRUE,
        shrink = c("none", "normal"), threads = getOption("epione.threads", 2L),
        verbose = FALSE, details = FALSE, assay.type = "counts",
        normalizationFactors = NULL) {
    if (missing(design) && methods::is(object, "DESeqDataSet")) {
        design <- DESeq2::design(object)
    }
    a <- .da_args(test, fitType, sfType, shrink, alpha, lfcThreshold,
                  cooksCutoff, minReplicatesForReplace, independentFiltering,
                  threads, verbose)
    a$details <- .check_flag(details, "details")
    y <- .check_counts(.counts_of(object, assay.type))
    cd <- .coldata_of(object)
    X <- .design_matrix(design, cd)
    spec <- .resolve_contrast(contrast, X, cd)  # fail before fitting
    sf <- if (is.null(normalizationFactors)) .existing_sf(object) else
        .check_nf(normalizationFactors, dim(y))
    run <- .da_fit(y, cd, design, reduced, a, sf)
    .da_attach(object, run, y, cd, design, spec, a)
}

#' @rdname differentialAccessibility
#' @param assay.type The assay holding the counts.
#' @export
setMethod("differentialAccessibility", "SummarizedExperiment", .da_se)

# The counts (without dimnames: the assay as stored, no copy with names
# attached) and the sample table as a data.frame.
.counts_of <- function(object, assay.type) {
    if (inherits(object, "epione_counts")) return(object$counts)
    SummarizedExperiment::assay(object, assay.type, withDimnames = FALSE)
}
.coldata_of <- function(object) {
    if (inherits(object, "epione_counts")) return(object$colData)
    as.data.frame(SummarizedExperiment::colData(object))
}

# Normalises and checks the scalar arguments in one place.
.da_args <- function(test, fitType, sfType, shrink, alpha, lfcThreshold,
                     cooksCutoff, minRep, independentFiltering, threads,
                     verbose) {
    ok_cut <- isTRUE(cooksCutoff) || isFALSE(cooksCutoff) ||
        (is.numeric(cooksCutoff) && length(cooksCutoff) == 1L &&
             !is.na(cooksCutoff))
    if (!ok_cut) {
        .abort("'cooksCutoff' must be TRUE, FALSE or one number, not ",
               deparse1(cooksCutoff), ".")
    }
    if (!(is.numeric(minRep) && length(minRep) == 1L && minRep >= 3)) {
        .abort("'minReplicatesForReplace' must be one number >= 3 (use Inf ",
               "to switch replacement off), not ", deparse1(minRep), ".")
    }
    list(test = match.arg(test, c("Wald", "LRT")),
         fitType = match.arg(fitType, c("parametric", "local", "mean")),
         sfType = match.arg(sfType, c("ratio", "poscounts")),
         shrink = match.arg(shrink, c("none", "normal")),
         alpha = .check_number(alpha, "alpha", min = 0, max = 1),
         lfcThreshold = .check_number(lfcThreshold, "lfcThreshold", min = 0),
         cooksCutoff = cooksCutoff, minRep = minRep,
         independentFiltering = .check_flag(independentFiltering,
                                            "independentFiltering"),
         threads = .check_threads(threads),
         verbose = .check_flag(verbose, "verbose"))
}

# A DESeqDataSet's normalizationFactors, else its size factors, else NULL.
.existing_sf <- function(object) {
    if (!methods::is(object, "DESeqDataSet")) return(NULL)
    nf <- DESeq2::normalizationFactors(object)
    if (!is.null(nf)) return(.check_nf(nf, dim(object)))
    SummarizedExperiment::colData(object)[["sizeFactor"]]
}

.check_nf <- function(nf, d) {
    nf <- as.matrix(nf)
    if (!is.numeric(nf) || !identical(dim(nf), as.integer(d)) ||
        anyNA(nf) || any(!is.finite(nf) | nf <= 0)) {
        .abort("normalizationFactors must be a positive, finite numeric ",
               "matrix with one value per count (", d[1], " x ", d[2],
               "), like DESeq2's normalizationFactors().")
    }
    storage.mode(nf) <- "double"
    dimnames(nf) <- NULL
    nf
}

# Counts as a dense matrix after DESeq2's input checks. Integer counts stay
# integer (the core reads both types): no n x m double copy.
.check_counts <- function(x) {
    if (!is.matrix(x)) x <- as.matrix(x)  # also a sparse Matrix
    if (!is.numeric(x)) {
        .abort("counts must be numeric, not ", class(x[1])[1], ".")
    }
    if (ncol(x) < 2L) {
        .abort("counts have ", ncol(x), " sample(s); differential testing ",
               "needs at least two samples and replicates in some group.")
    }
    bad <- epi_deseq_count_issues(x)
    if (bad[["na"]] > 0) {
        .abort("counts contain ", bad[["na"]], " NA value(s); remove those ",
               "peaks (e.g. x[complete.cases(x), ]) or replace the NAs.")
    }
    if (bad[["negative"]] > 0) {
        .abort("counts contain negative values; DESeq2's model needs ",
               "non-negative integer counts (raw reads per peak, not ",
               "normalized or log values).")
    }
    if (bad[["fraction"]] > 0) {
        .abort("counts contain non-integer values; use raw integer counts ",
               "(round() estimated counts first if you must).")
    }
    x
}

# A plain count matrix and its sample table, standing in for the
# SummarizedExperiment that .da_attach() builds around them with the
# results (made first and filled after, it cost twice as much: ~20 ms of
# S4 construction and setters at 50k peaks).
.count_parts <- function(x, design, colData) {
    x <- as.matrix(x)
    if (is.null(colData)) {
        env <- environment(design)
        vars <- all.vars(design)
        colData <- lapply(stats::setNames(vars, vars), function(v) {
            if (!exists(v, envir = env)) {
                .abort("design variable '", v, "' was not found; pass ",
                       "colData = data.frame(", v, " = ...).")
            }
            get(v, envir = env)
        })
        colData <- as.data.frame(colData, stringsAsFactors = TRUE)
    }
    colData <- as.data.frame(colData)
    if (nrow(colData) != ncol(x)) {
        .abort("colData has ", nrow(colData), " rows but the counts have ",
               ncol(x), " samples; give one row per sample.")
    }
    if (is.null(colnames(x)) && .row_names_info(colData) > 0L) {
        colnames(x) <- rownames(colData)  # the table's own names only
    }
    structure(list(counts = x, colData = colData), class = "epione_counts")
}

# The SummarizedExperiment returned for .count_parts(): counts, results in
# rowData, size factors in colData, details in metadata, in one call.
.count_se <- function(parts, rd, sf, md) {
    cd <- parts$colData
    if (!is.matrix(sf)) cd$sizeFactor <- sf
    SummarizedExperiment::SummarizedExperiment(list(counts = parts$counts),
        rowData = S4Vectors::DataFrame(rd, check.names = FALSE),
        colData = S4Vectors::DataFrame(cd, check.names = FALSE),
        metadata = list(differentialAccessibility = md))
}

# Model matrix with DESeq2's column names (Intercept, var_level_vs_ref) and
# its checks: variables present, full rank, replicates.
.design_matrix <- function(design, cd, what = "design") {
    if (!inherits(design, "formula")) {
        .abort("'", what, "' must be a formula such as ~ group, not ",
               deparse1(design), ".")
    }
    vars <- all.vars(design)
    miss <- setdiff(vars, names(cd))
    if (length(miss)) {
        .abort("the ", what, " uses ", paste(miss, collapse = ", "),
               " but colData has only: ", paste(names(cd), collapse = ", "),
               "; add the column(s) or change the formula.")
    }
    for (v in vars) {
        if (is.character(cd[[v]])) cd[[v]] <- factor(cd[[v]])
        if (is.factor(cd[[v]])) cd[[v]] <- droplevels(cd[[v]])
    }
    X <- stats::model.matrix(design, data = cd)
    nm <- colnames(X)
    nm[nm == "(Intercept)"] <- "Intercept"
    nm <- make.names(nm)
    for (v in vars[vapply(vars, function(v) is.factor(cd[[v]]), TRUE)]) {
        lv <- levels(cd[[v]])
        from <- make.names(paste0(v, lv[-1]))
        to <- make.names(paste0(v, "_", lv[-1], "_vs_", lv[1]))
        nm[nm %in% from] <- to[match(nm[nm %in% from], from)]
    }
    colnames(X) <- nm
    attr(X, "assign") <- attr(X, "contrasts") <- NULL
    if (qr(X)$rank < ncol(X)) {
        .abort("the model matrix of the ", what, " is not full rank: one or ",
               "more variables are linear combinations of the others (e.g. ",
               "batch confounded with condition); remove them from the ",
               "formula.", kind = "input")
    }
    X
}

.size_factors <- function(y, sfType, threads) {
    if (sfType == "ratio") return(.core(epi_deseq_size_factors(y, threads)))
    # poscounts: zeros skipped in the geometric mean, as DESeq2 does
    lg <- log(y)
    lg[!is.finite(lg)] <- 0
    gm <- exp(rowSums(lg) / ncol(y))
    use <- gm > 0
    sf <- apply(y[use, , drop = FALSE], 2L, function(c) {
        ok <- c > 0
        exp(stats::median((log(c) - log(gm[use]))[ok]))
    })
    sf / exp(mean(log(sf)))
}

# Design checks, size factors and the DESeq() pipeline.
.da_fit <- function(y, cd, design, reduced, a, sf = NULL) {
    X <- .design_matrix(design, cd)
    if (nrow(X) == ncol(X)) {
        .abort("the number of samples equals the number of coefficients, ",
               "so there are no replicates to estimate the dispersion; use ",
               "a design with fewer terms or add replicates.")
    }
    Xr <- NULL
    if (a$test == "LRT") {
        if (is.null(reduced)) {
            .abort("test = \"LRT\" needs a reduced formula, e.g. ",
                   "reduced = ~ 1.")
        }
        Xr <- .design_matrix(reduced, cd, "reduced design")
        if (ncol(X) - ncol(Xr) < 1) {
            .abort("the reduced design must have fewer coefficients than ",
                   "the full design; swap 'design' and 'reduced'?")
        }
    }
    if (is.null(sf)) sf <- .size_factors(y, a$sfType, a$threads)
    keep <- isTRUE(a$keep_assays)
    .deseq_engine(y, X, sf, a$fitType, a$test, Xr, a$minRep, a$threads,
                  a$verbose, keep,
                  if (!keep) .cooks_spec(X, a$minRep, a$cooksCutoff),
                  details = isTRUE(a$details) || keep)
}

# contrast -> list(name, sign) for a coefficient or a numeric vector.
.resolve_contrast <- function(contrast, X, cd) {
    nm <- colnames(X)
    if (is.null(contrast)) return(list(name = nm[length(nm)], sign = 1))
    if (is.numeric(contrast)) {
        if (length(contrast) != length(nm)) {
            .abort("a numeric contrast needs one weight per coefficient (",
                   paste(nm, collapse = ", "), "), not ", length(contrast), ".")
        }
        return(contrast)
    }
    if (is.character(contrast) && length(contrast) == 1L) {
        if (!contrast %in% nm) {
            .abort("'", contrast, "' is not a coefficient; available: ",
                   paste(nm, collapse = ", "), ".")
        }
        return(list(name = contrast, sign = 1))
    }
    if (!(is.character(contrast) && length(contrast) == 3L)) {
        .abort("'contrast' must be NULL, a coefficient name, ",
               "c(variable, numerator, denominator) or a numeric vector.")
    }
    v <- contrast[1]
    lv <- levels(factor(cd[[v]]))
    if (is.null(cd[[v]]) || !all(contrast[2:3] %in% lv)) {
        .abort("contrast c(\"", paste(contrast, collapse = "\", \""),
               "\") names a level that '", v, "' does not have; its levels ",
               "are: ", paste(lv, collapse = ", "), ".")
    }
    coef <- function(l) make.names(paste0(v, "_", l, "_vs_", lv[1]))
    if (contrast[3] == lv[1]) return(list(name = coef(contrast[2]), sign = 1))
    if (contrast[2] == lv[1]) return(list(name = coef(contrast[3]), sign = -1))
    out <- stats::setNames(numeric(length(nm)), nm)
    out[coef(contrast[2])] <- 1
    out[coef(contrast[3])] <- -1
    unname(out)
}

.two_group <- function(design, cd) {
    v <- all.vars(design)
    length(v) == 1L && is.factor(cd[[v]]) && nlevels(droplevels(cd[[v]])) == 2L
}

# Results into rowData, size factors into colData, details into metadata.
.da_attach <- function(object, fit, y, cd, design, spec, a) {
    res <- .deseq_results(fit, y, spec, a$alpha, a$lfcThreshold,
                          a$cooksCutoff, a$independentFiltering,
                          .two_group(design, cd))
    tab <- res$table
    bpv <- NULL
    if (a$shrink == "normal") {
        if (!is.list(spec)) {
            .abort("shrink = \"normal\" needs a coefficient or a ",
                   "c(variable, numerator, denominator) contrast.")
        }
        s <- .shrink_normal(fit, y, spec$name, a$threads)
        tab$log2FoldChange <- spec$sign * s$lfc
        tab$lfcSE <- s$se
        bpv <- s$betaPriorVar
    }
    new <- cbind(tab, fit$table[setdiff(names(fit$table), "baseMean")])
    md <- c(list(
        design = design, test = a$test, fitType = attr(fit$trend, "fitType"),
        contrast = spec, resultsNames = colnames(fit$X),
        sizeFactors = if (!is.matrix(fit$sizeFactors)) fit$sizeFactors,
        dispersionFunction = fit$trend,
        dispPriorVar = attr(fit$trend, "dispPriorVar"),
        varLogDispEsts = attr(fit$trend, "varLogDispEsts"),
        betaPriorVar = bpv, replaced = length(fit$replaced$rows)),
        res$metadata)
    if (inherits(object, "epione_counts")) {
        return(.count_se(object, new, fit$sizeFactors, md))
    }
    SummarizedExperiment::rowData(object) <- .merge_columns(
        SummarizedExperiment::rowData(object), new)
    if (!is.matrix(fit$sizeFactors)) object$sizeFactor <- fit$sizeFactors
    S4Vectors::metadata(object)$differentialAccessibility <- md
    object
}

# rd with the columns of `new` (a data.frame): existing ones replaced in
# place, the others appended in one cbind (a DataFrame `[[<-` per column
# costs ~1 ms each at 200k rows).
.merge_columns <- function(rd, new) {
    old <- intersect(names(new), names(rd))
    for (nm in old) rd[[nm]] <- new[[nm]]
    add <- new[setdiff(names(new), old)]
    if (!length(add)) return(rd)
    add <- S4Vectors::DataFrame(add, check.names = FALSE)
    if (ncol(rd) == 0L) {
        rownames(add) <- rownames(rd)
        return(add)
    }
    cbind(rd, add)
}

#' DESeq() computed by epione, returned as a DESeqDataSet
#'
#' @description A drop-in for `DESeq2::DESeq(dds)`: the same pipeline run by
#' epione's C++ engine, stored in the slots, `mcols`, assays (`mu`, `H`,
#' `cooks`, `replaceCounts`) and attributes where DESeq2 keeps them, so that
#' `DESeq2::results()`, `sizeFactors()`, `dispersions()`, `mcols()` and
#' `lfcShrink(type = "normal")` work on the result and agree with
#' `DESeq2::DESeq()` (DESeq2 1.38). Needs the package DESeq2.
#'
#' @param object A `DESeqDataSet` with raw counts and a design formula.
#' @param test,reduced,fitType,sfType,minReplicatesForReplace,threads As in
#'   [differentialAccessibility()] (and [DESeq2::DESeq()]).
#' @param quiet Suppress messages.
#' @return A `DESeqDataSet`, like the one `DESeq2::DESeq()` returns.
#' @seealso [differentialAccessibility()], [DESeq2::DESeq()]
#' @examples
#' if (requireNamespace("DESeq2", quietly = TRUE)) {
#'     dds <- DESeq2::makeExampleDESeqDataSet(n = 500, m = 6)
#'     dds <- DESeqFast(dds, threads = 1)
#'     head(DESeq2::results(dds))
#' }
#' @export
DESeqFast <- function(object, test = c("Wald", "LRT"), fitType = c(
        "parametric", "local", "mean"), sfType = "ratio", reduced = NULL,
        minReplicatesForReplace = 7, threads = getOption("epione.threads", 2L),
        quiet = FALSE) {
    if (!requireNamespace("DESeq2", quietly = TRUE)) {
        .abort("DESeqFast() needs the Bioconductor package DESeq2; install ",
               "it, or use differentialAccessibility().", kind = "dependency")
    }
    if (!methods::is(object, "DESeqDataSet")) {
        .abort("DESeqFast() takes a DESeqDataSet (see ",
               "DESeq2::DESeqDataSetFromMatrix()); for a matrix or ",
               "SummarizedExperiment use differentialAccessibility().")
    }
    a <- .da_args(test, fitType, sfType, "none", 0.1, 0, TRUE,
                  minReplicatesForReplace, TRUE, threads, !quiet)
    y <- .check_counts(DESeq2::counts(object))
    cd <- as.data.frame(SummarizedExperiment::colData(object))
    a$keep_assays <- TRUE  # mu and H only for the DESeqDataSet (memory)
    fit <- .da_fit(y, cd, DESeq2::design(object), reduced, a,
                   .existing_sf(object))
    fit$design_text <- vapply(c(list(DESeq2::design(object)), reduced),
        function(f) paste(as.character(f), collapse = " "), "")
    .as_dds(object, fit, y)
}

# Writes a fit where DESeq2 keeps it (nbinomWaldTest / nbinomLRT /
# refitWithoutOutliers).
.as_dds <- function(dds, fit, y) {
    if (is.matrix(fit$sizeFactors)) {
        DESeq2::normalizationFactors(dds) <- fit$sizeFactors
    } else {
        DESeq2::sizeFactors(dds) <- fit$sizeFactors
    }
    tab <- fit$table
    inter <- match("dispMAP", names(tab))
    type <- ifelse(seq_along(tab) <= inter | names(tab) == "replace",
                   "intermediate", "results")
    mc <- S4Vectors::DataFrame(tab, check.names = FALSE)
    S4Vectors::mcols(mc) <- S4Vectors::DataFrame(type = type,
        description = .mcols_descriptions(names(tab), fit))
    old <- S4Vectors::mcols(dds)
    old <- old[, setdiff(names(old), names(tab)), drop = FALSE]
    S4Vectors::mcols(dds) <- cbind(old, mc)
    dds@dispersionFunction <- fit$trend
    assays <- SummarizedExperiment::assays(dds, withDimnames = FALSE)
    assays[["mu"]] <- fit$mu
    assays[["H"]] <- fit$H
    assays[["cooks"]] <- fit$cooks
    if (length(fit$replaced$rows)) {
        rc <- y
        rc[fit$replaced$rows, ] <- fit$replaced$counts
        storage.mode(rc) <- "integer"
        assays[["replaceCounts"]] <- rc
        assays[["replaceCooks"]] <- fit$cooks
    }
    SummarizedExperiment::assays(dds, withDimnames = FALSE) <- assays
    if (any(fit$replaceable) || !is.null(fit$table$replace)) {
        dds$replaceable <- fit$replaceable
    }
    attr(dds, "betaPrior") <- FALSE
    attr(dds, "betaPriorVar") <- rep(1e6, ncol(fit$X))
    attr(dds, "modelMatrix") <- fit$X
    attr(dds, "modelMatrixType") <- "standard"
    attr(dds, "test") <- fit$test
    attr(dds, "dispModelMatrix") <- fit$X
    if (fit$test == "LRT") attr(dds, "reducedModelMatrix") <- fit$Xr
    dds
}

# DESeq2's mcols descriptions; resultsNames() searches "log2 fold change".
.mcols_descriptions <- function(cols, fit) {
    fixed <- c(baseMean = "mean of normalized counts for all samples",
        baseVar = "variance of normalized counts for all samples",
        allZero = "all counts for a gene are zero",
        dispGeneEst = "gene-wise estimates of dispersion",
        dispGeneIter = "number of iterations for gene-wise",
        dispFit = "fitted values of dispersion",
        dispersion = "final estimate of dispersion",
        dispIter = "number of iterations",
        dispOutlier = "dispersion flagged as outlier",
        dispMAP = "maximum a posteriori estimate",
        betaConv = "convergence of betas",
        betaIter = "iterations for betas",
        deviance = "deviance for the fitted model",
        maxCooks = "maximum Cook's distance for row",
        replace = "had counts replaced",
        fullBetaConv = "convergence of betas for full model",
        reducedBetaConv = "convergence of betas for reduced model")
    if (fit$test == "LRT") {
        fixed[["betaIter"]] <- "iterations for betas for full model"
        fixed[["deviance"]] <- "deviance of the full model"
    }
    nm <- colnames(fit$X)
    sp <- gsub("_", " ", nm)
    lrt <- paste0("'", fit$design_text, "'")
    more <- c(stats::setNames(paste("log2 fold change (MLE):", sp), nm),
        stats::setNames(paste("standard error:", sp), paste0("SE_", nm)),
        stats::setNames(paste("Wald statistic:", sp),
                        paste0("WaldStatistic_", nm)),
        stats::setNames(paste("Wald test p-value:", sp),
                        paste0("WaldPvalue_", nm)),
        LRTStatistic = paste("LRT statistic:", paste(lrt, collapse = " vs ")),
        LRTPvalue = paste("LRT p-value:", paste(lrt, collapse = " vs ")))
    all <- c(fixed, more)
    unname(ifelse(cols %in% names(all), all[cols], cols))
}

#' Volcano and MA plots of differential accessibility results
#'
#' @description ggplot2 plots of [differentialAccessibility()] results (or
#' any table with DESeq2's columns): the volcano plot shows log2 fold change
#' against -log10 p-value, the MA plot log2 fold change against the mean of
#' normalized counts. Significant peaks (padj < alpha) are coloured and the
#' `n_labels` most significant are labelled.
#'
#' @param x A `SummarizedExperiment` from [differentialAccessibility()], a
#'   `DESeqResults`, or a data frame with columns `baseMean`,
#'   `log2FoldChange`, `pvalue` and `padj`.
#' @param alpha Adjusted p-value threshold for colouring.
#' @param lfcThreshold Absolute log2 fold change drawn as dashed lines.
#' @param n_labels Number of top peaks (smallest padj) to label.
#' @param label Column holding the labels (e.g. a nearest-gene annotation
#'   column carried in rowData); default the row names.
#' @return A `ggplot` object.
#' @importFrom ggplot2 .data
#' @examples
#' set.seed(1)
#' counts <- matrix(rnbinom(3000, mu = 50, size = 5), ncol = 6,
#'                  dimnames = list(paste0("peak", 1:500), NULL))
#' counts[1:20, 4:6] <- counts[1:20, 4:6] * 4
#' cd <- data.frame(group = factor(rep(c("a", "b"), each = 3)))
#' res <- differentialAccessibility(counts, ~ group, colData = cd,
#'                                  threads = 1)
#' volcanoPlot(res)
#' maPlot(res)
#' @export
volcanoPlot <- function(x, alpha = 0.1, lfcThreshold = 0, n_labels = 10,
                        label = NULL) {
    d <- .plot_data(x, alpha, n_labels, label)
    d$y <- -log10(d$pvalue)
    g <- ggplot2::ggplot(d, ggplot2::aes(x = .data$log2FoldChange,
                                         y = .data$y)) +
        ggplot2::geom_point(ggplot2::aes(colour = .data$significant),
                            size = 0.6, alpha = 0.6) +
        ggplot2::labs(x = "log2 fold change", y = "-log10 p-value",
                      colour = paste0("padj < ", alpha))
    .plot_finish(g, d, lfcThreshold, vertical = TRUE)
}

#' @rdname volcanoPlot
#' @export
maPlot <- function(x, alpha = 0.1, lfcThreshold = 0, n_labels = 10,
                   label = NULL) {
    d <- .plot_data(x, alpha, n_labels, label)
    d$y <- d$log2FoldChange
    g <- ggplot2::ggplot(d, ggplot2::aes(x = .data$baseMean, y = .data$y)) +
        ggplot2::geom_point(ggplot2::aes(colour = .data$significant),
                            size = 0.6, alpha = 0.6) +
        ggplot2::scale_x_log10() +
        ggplot2::geom_hline(yintercept = 0, colour = "grey40") +
        ggplot2::labs(x = "mean of normalized counts", y = "log2 fold change",
                      colour = paste0("padj < ", alpha))
    .plot_finish(g, d, lfcThreshold, vertical = FALSE)
}

.plot_data <- function(x, alpha, n_labels, label) {
    if (methods::is(x, "SummarizedExperiment")) {
        x <- SummarizedExperiment::rowData(x)
    }
    d <- as.data.frame(x)
    need <- c("baseMean", "log2FoldChange", "pvalue", "padj")
    if (!all(need %in% names(d))) {
        .abort("the results lack column(s) ",
               paste(setdiff(need, names(d)), collapse = ", "),
               "; run differentialAccessibility() first.")
    }
    lab <- if (is.null(label)) rownames(d) else as.character(d[[label]])
    if (is.null(lab)) lab <- as.character(seq_len(nrow(d)))
    d$label <- lab
    d <- d[!is.na(d$pvalue) & d$baseMean > 0, , drop = FALSE]
    d$significant <- !is.na(d$padj) & d$padj < alpha
    top <- utils::head(order(d$padj, d$pvalue), n_labels)
    d$show <- seq_len(nrow(d)) %in% top[d$significant[top]]
    d
}

.plot_finish <- function(g, d, lfcThreshold, vertical) {
    if (lfcThreshold > 0) {
        g <- g + if (vertical) {
            ggplot2::geom_vline(xintercept = c(-1, 1) * lfcThreshold,
                                linetype = "dashed")
        } else {
            ggplot2::geom_hline(yintercept = c(-1, 1) * lfcThreshold,
                                linetype = "dashed")
        }
    }
    g + ggplot2::geom_text(data = d[d$show, , drop = FALSE],
                           ggplot2::aes(label = .data$label), size = 3,
                           vjust = -0.6, check_overlap = TRUE) +
        ggplot2::scale_colour_manual(values = c(`FALSE` = "grey60",
                                                `TRUE` = "firebrick")) +
        ggplot2::theme_bw()
}
# ---- the engine ------------------------------------------------------------
# The DESeq2 1.38 pipeline (shared/data/ref/deseq2/SPEC.md), orchestrated in
# R around the C++ core: per-row work (dispersions, IRLS, Cook's) runs in
# inst/include/epione/deseq.hpp; the few global steps (trend, prior
# variance, filtering) stay in R, written as DESeq2 writes them.

.deseq_opt <- function(m) {
    c(minDisp = 1e-8, maxDisp = max(10, m), kappa_0 = 1, dispTol = 1e-6,
      maxit = 100, minmu = 0.5)
}

# For each sample: does its model-matrix row occur >= n times (DESeq2
# nOrMoreInCell)?
.n_or_more_in_cell <- function(X, n) {
    key <- apply(X, 1L, paste0, collapse = "\r")
    as.vector(table(key)[key] >= n)
}

.cells <- function(X) {
    key <- apply(X, 1L, paste0, collapse = "\r")
    match(key, unique(key)) - 1L
}

# Gene-wise dispersions for `rows` (1-based) of y (per-row vectors in and
# out are nrow(y) long, NA outside `rows`: see .deseq_pass): rough start,
# the mean used for the dispersion (linear shortcut or GLM), line search,
# grid. The linear-model means are recomputed per row in C++ (`lin`), so
# the rows x samples matrix `mu` exists only for the GLM mean or when
# `want_mu`.
.deseq_gene_est <- function(y, X, sf, rows, bm, bv, opt, threads,
                            want_mu = FALSE) {
    Q <- qr.Q(qr(X))
    # beyond 24 samples the m x m product per row costs more than the
    # factored Q Q' (DESeq2's own bits are kept for small designs)
    lin <- list(hat = tcrossprod(Q),
                q = if (nrow(X) > 24L) Q else matrix(0, 0, 0))
    glm_mu <- nrow(unique(X)) != ncol(X)
    init <- .core(epi_deseq_gene_init(y, sf, X, lin$hat, lin$q, rows,
        bm, bv, opt, want_mu && !glm_mu, threads, nrow(y)))
    mu <- if (want_mu && !glm_mu) init$mu
    if (glm_mu) {
        fit <- .deseq_glm(y, X, sf, rows, init$alpha_init, rep(1e-6, ncol(X)),
                          FALSE, threads)
        mu <- fit$mu
        mu[mu < opt[["minmu"]]] <- opt[["minmu"]]
    }
    g <- .core(epi_deseq_gene_disp(y, sf, X, lin$hat, lin$q, rows,
        mu %||% matrix(0, 0, 0), init$alpha_init, opt, threads, nrow(y)))
    c(g, list(mu = mu, lin = lin))
}

# DESeq2 parametricDispersionFit: Gamma-family GLM of the gene-wise
# estimates above `min_use` on 1/mean, iterated on the rows with residuals
# in (1e-4, 15); the rounds run in C++ (no n-length R temporaries). NULL
# where DESeq2 stops with an error and falls back to the local fit.
.parametric_fit <- function(means, disps, min_use, threads) {
    fit <- epi_deseq_parametric_trend(means, disps, min_use, threads)
    if (fit[3] != 1) return(NULL)
    coefs <- c(asymptDisp = fit[1], extraPois = fit[2])
    f <- .curve(function(q) v[1] + v[2] / q, coefs)
    attr(f, "coefficients") <- coefs
    f
}

# `f` with an environment that holds only `v` (a closure made in the
# pipeline would keep every peak's means and dispersions alive in the
# returned object's dispersion function).
.curve <- function(f, v) {
    environment(f) <- list2env(list(v = v), parent = asNamespace("epione"))
    f
}

.local_fit <- function(means, disps, minDisp) {
    if (!requireNamespace("locfit", quietly = TRUE)) {
        .abort("fitType = \"local\" needs the package 'locfit'; install it ",
               "or use fitType = \"parametric\" or \"mean\".",
               kind = "dependency")
    }
    if (all(disps < minDisp * 10)) return(.curve(function(means) v, minDisp))
    use <- disps >= minDisp * 10
    d <- data.frame(logDisps = log(disps), logMeans = log(means))
    fit <- locfit::locfit(logDisps ~ logMeans, data = d[use, , drop = FALSE],
                          weights = means[use])
    .curve(function(means) {
        # only positive means (NA: rows not fitted, 0: all-zero rows)
        out <- rep(NA_real_, length(means))
        ok <- which(means > 0)
        out[ok] <- exp(stats::predict(v, data.frame(
            logMeans = log(means[ok]))))
        out
    }, fit)
}

# The dispersion trend as a function of the mean (estimateDispersionsFit),
# with DESeq2's fallback from "parametric" to "local".
.deseq_trend <- function(means, disps, fitType, minDisp, verbose,
                         threads = 1L) {
    use <- disps > 100 * minDisp  # (NA: rows not fitted)
    if (!any(use, na.rm = TRUE)) {
        .abort("all gene-wise dispersion estimates are within 2 orders of ",
               "magnitude of the minimum, so no trend can be fitted; the ",
               "data look Poisson. Check the counts, or use more samples.",
               kind = "numeric")
    }
    if (fitType == "parametric") {
        f <- .parametric_fit(means, disps, 100 * minDisp, threads)
        if (is.null(f)) {
            message("-- note: fitType='parametric', but the dispersion trend ",
                    "was not well captured by the function: y = a/x + b, and ",
                    "a local regression fit was automatically substituted.")
            fitType <- "local"
        }
    }
    if (fitType == "local") {
        use <- which(use)
        f <- .local_fit(means[use], disps[use], minDisp)
    }
    if (fitType == "mean") {
        meanDisp <- mean(disps[disps > 10 * minDisp], na.rm = TRUE,
                         trim = 0.001)
        f <- .curve(function(means) v, meanDisp)
        attr(f, "mean") <- meanDisp
    }
    attr(f, "fitType") <- fitType
    f
}

# DESeq2 estimateDispersionsPriorVar. For 1 <= m - p <= 3 DESeq2 matches a
# simulated distribution under set.seed(2); reproducing its answer needs
# that stream, so the caller's RNG state is saved and restored around it.
.disp_prior_var <- function(resid, varLog, m, p) {
    if ((m - p) <= 3 && m > p) return(.disp_prior_var_mc(resid, m, p))
    if (m > p) return(max(varLog - trigamma((m - p) / 2), 0.25))
    varLog
}

.disp_prior_var_mc <- function(obsDist, m, p) {
    genv <- globalenv()
    old <- if (exists(".Random.seed", genv, inherits = FALSE))
        get(".Random.seed", genv) else NULL
    on.exit(if (is.null(old)) rm(".Random.seed", envir = genv) else
        assign(".Random.seed", old, envir = genv))
    set.seed(2)
    brks <- -20:20 / 2
    obsDist <- obsDist[obsDist > min(brks) & obsDist < max(brks)]
    grid <- seq(from = 0, to = 8, length = 200)
    obsHist <- graphics::hist(obsDist, breaks = brks, plot = FALSE)
    kl <- vapply(grid, function(x) {
        r <- log(stats::rchisq(10000, df = (m - p))) +
            stats::rnorm(10000, 0, sqrt(x)) - log(m - p)
        r <- r[r > min(brks) & r < max(brks)]
        h <- graphics::hist(r, breaks = brks, plot = FALSE)
        z <- c(obsHist$density, h$density)
        small <- min(z[z > 0])
        sum(obsHist$density * (log(obsHist$density + small) -
                                   log(h$density + small)))
    }, numeric(1))
    lofit <- stats::loess(kl ~ grid, span = 0.2)
    fine <- seq(from = 0, to = 8, length = 1000)
    max(fine[which.min(stats::predict(lofit, fine))], 0.25)
}

# Dispersions of the non-all-zero rows `nz`: gene-wise, trend, prior, MAP.
.deseq_dispersions <- function(y, X, sf, nz, bm, bv, fitType, threads,
                               verbose, want_mu = FALSE) {
    m <- ncol(y)
    opt <- .deseq_opt(m)
    g <- .deseq_gene_est(y, X, sf, nz, bm, bv, opt, threads, want_mu)
    trend <- .deseq_trend(bm, g$dispGeneEst, fitType, opt[["minDisp"]],
                          verbose, threads)
    dispFit <- .trend_at(trend, bm, nz)
    min_use <- 100 * opt[["minDisp"]]
    vld <- epi_deseq_var_log_disp(g$dispGeneEst, dispFit, min_use)
    attr(trend, "varLogDispEsts") <- vld
    # the residuals (a lazy argument) are only built for m - p <= 3
    attr(trend, "dispPriorVar") <- .disp_prior_var(
        (log(g$dispGeneEst) - log(dispFit))[which(g$dispGeneEst >= min_use)],
        vld, m, ncol(X))
    map <- .deseq_map(y, X, sf, nz, g, dispFit, trend, opt, threads)
    list(gene = g, dispFit = dispFit, trend = trend, map = map)
}

# The trend at the means of `rows`, NA elsewhere (length(bm) values).
.trend_at <- function(trend, bm, rows) {
    f <- trend(bm)
    if (length(f) != length(bm)) f <- rep_len(f, length(bm))  # "mean"
    if (length(rows) < length(bm)) {
        f[.other_rows(rows, length(bm))] <- NA_real_
    }
    f
}

# The rows of 1:n not in `rows` (few: the all-zero peaks), without the
# n-length integer vector that -rows makes.
.other_rows <- function(rows, n) {
    other <- rep(TRUE, n)
    other[rows] <- FALSE
    which(other)
}

.deseq_map <- function(y, X, sf, rows, g, dispFit, trend, opt, threads) {
    .core(epi_deseq_map(y, sf, X, g$lin$hat, g$lin$q, rows,
                        g$mu %||% matrix(0, 0, 0), g$dispGeneEst, dispFit,
                        attr(trend, "dispPriorVar"),
                        attr(trend, "varLogDispEsts"), opt, threads, nrow(y)))
}

# NB GLM of `rows` (1-based) with dispersions `alpha` and ridge `lambda`
# (log2 scale), as fitNbinomGLMs: IRLS in C++, the closed form for an
# intercept-only design, and optim() for the rows IRLS could not fit.
# `alpha` and every per-row output are nrow(y) long (NA outside `rows`).
.deseq_glm <- function(y, X, sf, rows, alpha, lambda, want_hat, threads,
                       minmu = 0.5, cells = NULL, want_mu = TRUE,
                       ck_spec = NULL) {
    p <- ncol(X)
    if (p == 1L && all(X == 1) && all(lambda <= 1e-6)) {
        return(lapply(.deseq_glm_intercept(y, sf, rows, alpha[rows]),
                      .fill_rows, n = nrow(y), rows = rows))
    }
    qx <- qr(X)
    ls_op <- backsolve(qr.R(qx), t(qr.Q(qx)))
    # with `cells`, Cook's distances are computed inside the fit, so the
    # rows x samples mu and hat matrices need not exist (memory)
    sparse <- !is.null(cells) && !is.null(ck_spec)
    f <- .core(epi_deseq_fit_glm(y, sf, X, rows, alpha,
        lambda / log(2)^2, ls_op, want_hat, 1e-8, 100L, minmu, threads,
        want_mu, if (is.null(cells)) integer() else cells,
        if (sparse) ck_spec$masks else matrix(0L, 0, 0),
        if (sparse) ck_spec$keep_above else Inf, log2(exp(1)),
        sparse && isTRUE(ck_spec$bound), nrow(y)))
    ck <- if (sparse) {
        mx <- f$cooks_max
        colnames(mx) <- colnames(ck_spec$masks)
        # rows refitted by optim below get exact maxima
        list(max = mx, rows = f$kept_rows, kept = f$kept,
             bounded = setdiff(f$bounded, f$redo))
    } else if (!is.null(cells)) f$cooks
    # beta and beta_var arrive as log2 coefficients and standard errors
    out <- list(beta = f$beta, se = f$beta_var,
                conv = f$iter < 100L, iter = f$iter,
                mu = if (want_mu) f$mu, hat = if (want_hat) f$hat,
                logLike = f$logLike, cooks = ck)
    for (k in f$redo) {  # (row numbers of y)
        out <- .deseq_optim_row(out, k, y[k, ], .sf_rows(sf, k), X, alpha[k],
                                lambda, !anyNA(f$beta[k, ]), ls_op, minmu)
        if (is.null(cells)) next
        # Cook's from the optim mean and the IRLS hat, as in the unfused path
        h <- .core(epi_deseq_fit_glm(y, sf, X, k, alpha[k],
            lambda / log(2)^2, ls_op, TRUE, 1e-8, 100L, minmu, 1L, FALSE,
            integer(), matrix(0L, 0, 0), Inf))$hat
        out$cooks <- .ck_set_row(out$cooks, k, .core(epi_deseq_cooks(y, sf,
            k, cells, ncol(X), matrix(out$last_mu, 1L), h, 1L)),
            ck_spec)
    }
    out
}

# DESeq2 fitNbinomGLMsOptim for one row: L-BFGS-B on the log2 scale. Its
# start quirk (the natural-log least-squares start used as log2) is kept.
.deseq_optim_row <- function(out, k, yk, sf, X, alpha, lambda, stable,
                             ls_op, minmu) {
    large <- 30
    start <- if (stable && all(abs(out$beta[k, ]) < large)) out$beta[k, ] else
        as.vector(ls_op %*% log(yk / sf + 0.1))
    obj <- function(b) {
        mu <- as.numeric(sf * 2^(X %*% b))
        v <- -(sum(stats::dnbinom(yk, mu = mu, size = 1 / alpha, log = TRUE)) +
                   sum(stats::dnorm(b, 0, sqrt(1 / lambda), log = TRUE)))
        if (is.finite(v)) v else 1e300
    }
    o <- stats::optim(start, obj, method = "L-BFGS-B", lower = -large,
                      upper = large)
    if (o$convergence == 0) out$conv[k] <- TRUE
    out$beta[k, ] <- o$par
    mu <- as.numeric(sf * 2^(X %*% o$par))
    if (!is.null(out$mu)) out$mu[k, ] <- mu
    out$last_mu <- mu
    mu[mu < minmu] <- minmu
    w <- (mu^-1 + alpha)^-1
    xtwx <- crossprod(X, X * w)
    inv <- solve(xtwx + diag(lambda / log(2)^2, ncol(X)))
    out$se[k, ] <- log2(exp(1)) * sqrt(pmax(diag(inv %*% xtwx %*% inv), 0))
    out$logLike[k] <- sum(stats::dnbinom(yk, mu = mu, size = 1 / alpha,
                                         log = TRUE))
    out
}

# fitNbinomGLMs' closed form for ~ 1: beta = log2 of the mean normalized count.
.deseq_glm_intercept <- function(y, sf, rows, alpha) {
    nf <- .sf_rows(sf, rows)
    z <- y[rows, , drop = FALSE] / nf
    beta <- log2(rowMeans(z))
    mu <- 2^beta * nf
    w <- (mu^-1 + alpha)^-1
    xtwx <- rowSums(w)
    list(beta = matrix(beta, ncol = 1L),
         se = matrix(log2(exp(1)) * sqrt(1 / xtwx), ncol = 1L),
         conv = rep(TRUE, length(rows)), iter = rep(1L, length(rows)),
         mu = mu, hat = w / xtwx,
         logLike = rowSums(stats::dnbinom(y[rows, , drop = FALSE], mu = mu,
                                          size = 1 / alpha, log = TRUE)))
}

# Wald or LRT fit of `rows` with final dispersions `disp`.
# `cooks`: compute Cook's distances inside the fit; `keep`: return mu and
# hat (needed when they are not fused away or kept as assays).
.deseq_test <- function(y, X, sf, rows, disp, test, Xr, threads,
                        cooks = FALSE, keep = TRUE, ck_spec = NULL) {
    full <- .deseq_glm(y, X, sf, rows, disp, rep(1e-6, ncol(X)), keep,
                       threads, cells = if (cooks) .cells(X), want_mu = keep,
                       ck_spec = ck_spec)
    if (test == "LRT") {
        red <- .deseq_glm(y, Xr, sf, rows, disp, rep(1e-6, ncol(Xr)), FALSE,
                          threads, want_mu = FALSE)
        full$LRTStatistic <- 2 * (full$logLike - red$logLike)
        full$LRTPvalue <- stats::pchisq(full$LRTStatistic,
                                        df = ncol(X) - ncol(Xr),
                                        lower.tail = FALSE)
        full$reducedConv <- red$conv
    }
    full
}

# ---- Cook's distances without the rows x samples matrix -----------------
# Only three per-row maxima are ever read (over all samples: replacement;
# over samples with >= 3 replicates: maxCooks; the same without replaceable
# samples: maxCooks after replacement) plus the full rows of the few peaks
# above the cutoff (replacement, and results()' two-group rule). So the fit
# returns those ("epi_cooks": max, rows, kept) instead of the matrix unless
# DESeqFast() keeps the assay. The helpers read both forms.

# Masks and the keep threshold: min(qf(.99, p, m - p), a numeric
# cooksCutoff), the smallest cutoff that will look at full rows. `bound`:
# when every sample is replaceable, DESeq2 reports maxCooks as NA once any
# peak is refitted, so the maxima only meet cutoffs and the fit may return
# upper bounds (distances at the robust dispersion's floor) for rows well
# below them; .resolve_cooks_bounds() makes them exact if no peak is
# refitted after all.
.cooks_spec <- function(X, minRep, cooksCutoff) {
    m <- nrow(X)
    p <- ncol(X)
    use3 <- .n_or_more_in_cell(X, 3)
    repl <- .n_or_more_in_cell(X, minRep)
    # "all" and "kept" serve outlier replacement only; without replaceable
    # samples each would be an unused n-vector of maxima
    masks <- if (any(repl)) {
        cbind(all = rep(TRUE, m), use3 = use3, kept = use3 & !repl)
    } else {
        cbind(use3 = use3)
    }
    storage.mode(masks) <- "integer"
    keep <- if (m <= p) Inf else stats::qf(0.99, p, m - p)
    if (is.numeric(cooksCutoff)) keep <- min(keep, cooksCutoff)
    list(masks = masks, keep_above = keep, bound = m > p && all(repl))
}

# Per-row maximum over the samples of mask `name` (flags `use`).
.ck_max <- function(ck, name, use) {
    if (is.matrix(ck)) return(epi_deseq_row_max(ck, use))
    ck$max[, name]
}

# The full Cook's rows `i` (they must be above the keep threshold).
.ck_rows <- function(ck, i) {
    if (is.matrix(ck)) return(ck[i, , drop = FALSE])
    ck$kept[match(i, ck$rows), , drop = FALSE]
}

# Row k's Cook's distances (a 1 x m matrix) written into either form.
.ck_set_row <- function(ck, k, v, spec) {
    if (is.matrix(ck)) {
        ck[k, ] <- v
        return(ck)
    }
    ck$max[k, ] <- vapply(seq_len(ncol(spec$masks)), function(c) {
        epi_deseq_row_max(v, spec$masks[, c] == 1L)
    }, numeric(1))
    old <- match(k, ck$rows)
    if (!is.na(old)) {
        ck$rows <- ck$rows[-old]
        ck$kept <- ck$kept[-old, , drop = FALSE]
    }
    big <- epi_deseq_row_max(v, rep(TRUE, ncol(v)))
    if (!is.na(big) && big > spec$keep_above) {
        ck$rows <- c(ck$rows, k)
        ck$kept <- rbind(ck$kept, v)
    }
    ck
}

# Max Cook's distance over the samples with >= 3 replicates (recordMaxCooks).
.max_cooks <- function(cooks, X) {
    use <- .n_or_more_in_cell(X, 3)
    n <- if (is.matrix(cooks)) nrow(cooks) else nrow(cooks$max)
    if (nrow(X) <= ncol(X) || !any(use)) return(rep(NA_real_, n))
    v <- .ck_max(cooks, "use3", use)
    # not exact (.cooks_spec); (an empty assignment would still copy v)
    if (is.list(cooks) && length(cooks$bounded)) v[cooks$bounded] <- NA
    v
}

# Exact Cook's maxima for the rows whose fused fit returned bounds (see
# .cooks_spec()), for when DESeq2 keeps maxCooks (no peak refitted): the
# same fit again without the bound, so the bits of an unbounded run.
.resolve_cooks_bounds <- function(out, y, threads) {
    b <- if (is.list(out$cooks)) out$cooks$bounded
    if (!length(b)) return(out)
    spec <- out$ck_spec
    spec$bound <- FALSE
    X <- out$X
    ck <- .deseq_glm(y, X, out$sizeFactors, b, out$table$dispersion,
                     rep(1e-6, ncol(X)), FALSE, threads, cells = .cells(X),
                     want_mu = FALSE, ck_spec = spec)$cooks
    out$cooks$max[b, ] <- ck$max[b, ]
    out$cooks$bounded <- integer()
    out$table$maxCooks[b] <- .max_cooks(ck, X)[b]
    out
}

# One pass of the pipeline on `rows` of y, given the trend (NULL: fit it).
# Every per-row vector (matrix) in and out is nrow(y) long, NA outside
# `rows` (the C++ glue gathers and scatters them): expanding the results to
# all rows afterwards would double the n-vectors of a run.
.deseq_pass <- function(y, X, sf, rows, fitType, test, Xr, threads, verbose,
                        trend = NULL, keep = FALSE, ck_spec = NULL,
                        st = NULL) {
    if (is.null(st)) {
        st <- .core(epi_deseq_base_stats(y, sf, rows, threads, nrow(y)))
    }
    opt <- .deseq_opt(ncol(y))
    if (is.null(trend)) {  # LRT's Cook's distances use the dispersion mu
        d <- .deseq_dispersions(y, X, sf, rows, st$baseMean, st$baseVar,
                                fitType, threads, verbose, test == "LRT")
    } else {
        g <- .deseq_gene_est(y, X, sf, rows, st$baseMean, st$baseVar, opt,
                             threads)
        dispFit <- .trend_at(trend, st$baseMean, rows)
        d <- list(gene = g, dispFit = dispFit, trend = trend,
                  map = .deseq_map(y, X, sf, rows, g, dispFit, trend, opt,
                                   threads))
    }
    fused <- test == "Wald"
    fit <- .deseq_test(y, X, sf, rows, d$map$dispersion, test, Xr, threads,
                       cooks = fused, keep = keep || !fused, ck_spec = ck_spec)
    cooks <- fit$cooks
    if (is.null(cooks)) {  # LRT, or the closed form of ~ 1
        cooks <- .core(epi_deseq_cooks(y, sf, rows, .cells(X), ncol(X),
                                       fit$mu, fit$hat, threads, nrow(y)))
    }
    fit$cooks <- NULL
    list(stats = st, disp = d, fit = fit, cooks = cooks)
}

# The whole DESeq() run on a dense count matrix (integer or double).
# Returns the per-row table (DESeq2's mcols names, NA for all-zero rows),
# assays and the dispersion function; see .deseq_table(). With `ck_spec`
# (.cooks_spec()) the Cook's distances come back as "epi_cooks" maxima.
.deseq_engine <- function(y, X, sf, fitType, test, Xr, minRep, threads,
                          verbose, keep_assays = FALSE, ck_spec = NULL,
                          details = TRUE) {
    n <- nrow(y)
    if (verbose) message("estimating dispersions and fitting the model")
    st <- .core(epi_deseq_base_stats(y, sf, seq_len(n), threads))
    nz <- which(st$baseMean > 0)  # (counts >= 0, size factors > 0)
    if (!length(nz)) {
        .abort("every peak has zero counts in every sample; there is ",
               "nothing to test. Check that the right count matrix was ",
               "given.", kind = "input")
    }
    pass <- .deseq_pass(y, X, sf, nz, fitType, test, Xr, threads, verbose,
                        keep = keep_assays, ck_spec = ck_spec, st = st)
    if (test == "LRT") {  # nbinomLRT computes Cook's with the dispersion mu
        pass$cooks <- .core(epi_deseq_cooks(y, sf, nz, .cells(X),
            ncol(X), pass$disp$gene$mu, pass$fit$hat, threads, n))
    }
    tt <- .deseq_table(pass, n, nz, X, test, details)
    tab <- tt$table
    tab$baseMean <- st$baseMean
    if (details) tab$baseVar <- st$baseVar
    out <- list(table = tab, coef = tt$coef, details = details,
                cooks = pass$cooks,
                mu = if (keep_assays) pass$fit$mu,
                H = if (keep_assays) pass$fit$hat,
                trend = pass$disp$trend, sizeFactors = sf, X = X, Xr = Xr,
                test = test, replaceable = rep(FALSE, ncol(y)),
                ck_spec = ck_spec)
    if (any(.n_or_more_in_cell(X, minRep))) {
        out <- .deseq_replace(out, y, minRep, fitType, threads, verbose)
    }
    out
}

# Size factors (vector) or normalization factors (matrix) of `rows`, as a
# length(rows) x samples matrix (a vector for one row).
.sf_rows <- function(sf, rows) {
    if (is.matrix(sf)) return(sf[rows, , drop = length(rows) == 1L])
    if (length(rows) == 1L) return(sf)
    matrix(rep(sf, each = length(rows)), length(rows))
}

# x (a vector, or a matrix with a row per element of `rows`) as n rows, NA
# outside `rows`.
.fill_rows <- function(x, n, rows) {
    if (length(rows) == n) return(x)
    if (!is.matrix(x)) {
        out <- rep(x[NA_integer_], n)
        out[rows] <- x
        return(out)
    }
    out <- matrix(x[NA_integer_], n, ncol(x))
    out[rows, ] <- x
    out
}

# mcols(dds)-like data.frame for all n rows from one pass on rows `nz` (its
# per-row values are n long already, NA for all-zero peaks), and `coef`:
# the log2 coefficients and SEs (n x p) and, for the LRT, its statistic
# and p-value, which results()
# reads. Without `details` the table keeps only the dispersion columns,
# maxCooks and allZero: the per-coefficient columns of mcols(dds) cost
# ~4 n-vectors per coefficient that differentialAccessibility() does not
# return unless asked.
.deseq_table <- function(pass, n, nz, X, test, details = TRUE) {
    d <- pass$disp
    f <- pass$fit
    # (the iteration counts as doubles only when returned: 2 n-vectors)
    cols <- list(baseMean = pass$stats$baseMean,
        baseVar = if (details) pass$stats$baseVar,
        dispGeneEst = d$gene$dispGeneEst,
        dispGeneIter = if (details) as.numeric(d$gene$dispGeneIter),
        dispFit = d$dispFit, dispersion = d$map$dispersion,
        dispIter = if (details) as.numeric(d$map$dispIter),
        dispOutlier = d$map$dispOutlier, dispMAP = d$map$dispMAP)
    cols <- cols[!vapply(cols, is.null, TRUE)]
    cols <- c(cols, if (details) .deseq_detail_cols(f, colnames(X), test),
              list(maxCooks = .max_cooks(pass$cooks, X)))
    coef <- list(beta = f$beta, se = f$se)
    if (!identical(colnames(coef$beta), colnames(X))) {  # (closed form)
        colnames(coef$beta) <- colnames(coef$se) <- colnames(X)
    }
    if (test == "LRT") {
        coef$LRTStatistic <- f$LRTStatistic
        coef$LRTPvalue <- f$LRTPvalue
    }
    cols$allZero <- rep(length(nz) < n, n)
    if (length(nz) < n) cols$allZero[nz] <- FALSE
    first <- c("baseMean", if (details) "baseVar", "allZero")
    cols <- cols[c(first, setdiff(names(cols), first))]
    list(table = structure(cols, class = "data.frame",
                           row.names = .set_row_names(n)),
         coef = coef)
}

# mcols(dds)'s per-coefficient and convergence columns of a fit.
.deseq_detail_cols <- function(f, nm, test) {
    # coefficients, SEs and (Wald) statistics and p-values, one vector each
    cc <- epi_deseq_coef_cols(f$beta, f$se, test == "Wald")
    p <- length(nm)
    out <- c(stats::setNames(cc[seq_len(p)], nm),
             stats::setNames(cc[p + seq_len(p)], paste0("SE_", nm)))
    tests <- if (test == "Wald") {
        c(stats::setNames(cc[2L * p + seq_len(p)],
                          paste0("WaldStatistic_", nm)),
          stats::setNames(cc[3L * p + seq_len(p)], paste0("WaldPvalue_", nm)),
          list(betaConv = f$conv, betaIter = as.numeric(f$iter)))
    } else {
        list(LRTStatistic = f$LRTStatistic, LRTPvalue = f$LRTPvalue,
             fullBetaConv = f$conv, reducedBetaConv = f$reducedConv,
             betaIter = as.numeric(f$iter))
    }
    c(out, tests, list(deviance = -2 * f$logLike))
}

# Rows `i` of each element of `coef` (matrices or vectors; NA indices
# give NA rows).
.coef_rows <- function(coef, i) {
    lapply(coef, function(v) if (is.matrix(v)) v[i, , drop = FALSE] else v[i])
}

# refitWithoutOutliers: counts with Cook's distance above qf(.99, p, m - p)
# in samples with >= minRep replicates are replaced by the trimmed mean
# times the size factor, and those rows refitted with the old trend.
.deseq_replace <- function(out, y, minRep, fitType, threads, verbose) {
    X <- out$X
    p <- ncol(X)
    m <- ncol(y)
    if (m <= p) return(out)
    cutoff <- stats::qf(0.99, p, m - p)
    replace <- .ck_max(out$cooks, "all", rep(TRUE, m)) > cutoff
    out$table$replace <- replace
    out$replaceable <- .n_or_more_in_cell(X, minRep)
    rows <- which(replace)
    if (!length(rows)) return(.resolve_cooks_bounds(out, y, threads))
    sf <- out$sizeFactors
    tbm <- .core(epi_deseq_trimmed_mean(y, sf, rows, 0.2, threads))
    ysub <- y[rows, , drop = FALSE]
    idx <- .ck_rows(out$cooks, rows) > cutoff &
        rep(out$replaceable, each = length(rows))
    ysub[idx] <- as.integer(tbm * .sf_rows(sf, rows))[idx]
    out$replaced <- list(rows = rows, counts = ysub)
    if (is.matrix(sf)) sf <- sf[rows, , drop = FALSE]
    st <- .core(epi_deseq_base_stats(ysub, sf, seq_along(rows), threads))
    newZero <- rowSums(ysub) == 0
    out$table$baseMean[rows] <- st$baseMean
    if (out$details) out$table$baseVar[rows] <- st$baseVar
    out$table$allZero[rows] <- newZero
    refit <- which(!newZero)
    if (verbose && length(refit)) {
        message("-- replacing outliers and refitting for ", length(refit),
                " peaks (minReplicatesForReplace = ", minRep, ")")
    }
    if (length(refit)) {
        pass <- .deseq_pass(ysub, X, sf, refit, fitType, out$test, out$Xr,
                            threads, verbose, trend = out$trend,
                            ck_spec = out$ck_spec)
        sub <- .deseq_table(pass, length(rows), refit, X, out$test,
                            out$details)
        keep <- setdiff(names(sub$table), "replace")
        out$table[rows[refit], keep] <- sub$table[refit, keep]
        out$coef <- .coef_set_rows(out$coef, rows[refit],
                                   .coef_rows(sub$coef, refit))
    }
    res_cols <- .deseq_result_cols(out$table)
    out$table[rows[newZero], res_cols] <- NA
    out$coef <- .coef_set_rows(out$coef, rows[newZero],
        .coef_rows(out$coef, rep(NA_integer_, sum(newZero))))
    # DESeq2 recomputes maxCooks only when it refitted some peak
    if (!length(refit)) return(.resolve_cooks_bounds(out, y, threads))
    out$table$maxCooks <- if (all(out$replaceable)) NA_real_ else
        .max_cooks_replaced(out$cooks, X, out$replaceable)
    out
}

# maxCooks after replacement: the replaceable samples' distances count as
# 0 (DESeq2 zeroes those columns before recordMaxCooks).
.max_cooks_replaced <- function(cooks, X, replaceable) {
    use <- .n_or_more_in_cell(X, 3)
    if (is.matrix(cooks)) {
        cooks[, replaceable] <- 0
        return(.max_cooks(cooks, X))
    }
    if (nrow(X) <= ncol(X) || !any(use)) return(rep(NA_real_, nrow(cooks$max)))
    v <- cooks$max[, "kept"]
    if (any(use & replaceable)) v <- pmax(v, 0)
    v
}

# `coef` with rows `i` replaced by those of `new` (same layout).
.coef_set_rows <- function(coef, i, new) {
    if (!length(i)) return(coef)
    for (k in names(coef)) {
        if (is.matrix(coef[[k]])) coef[[k]][i, ] <- new[[k]] else
            coef[[k]][i] <- new[[k]]
    }
    coef
}

# The columns DESeq2 marks as type "results" in mcols(dds).
.deseq_result_cols <- function(tab) {
    first <- match("dispMAP", names(tab)) + 1L
    setdiff(names(tab)[first:ncol(tab)], "replace")
}

# ---- results(): coefficient or contrast, Cook's filter, filtering, BH -----

# LFC, SE, stat and p-value for a coefficient name or a numeric contrast.
.deseq_contrast <- function(fit, y, contrast, lfcThreshold) {
    cf <- fit$coef
    # lfc, se, and the Wald stat and p-value in one C++ pass
    r <- if (is.list(contrast)) {
        epi_deseq_wald(cf$beta, cf$se, match(contrast$name, colnames(cf$beta)),
                       contrast$sign)
    } else {
        epi_deseq_wald(matrix(as.vector(cf$beta %*% contrast)),
                       matrix(.contrast_se(fit, y, contrast)), 1L, 1)
    }
    if (fit$test == "LRT") {
        r$stat <- cf$LRTStatistic
        r$pvalue <- cf$LRTPvalue
    } else if (lfcThreshold > 0) {  # DESeq2 altHypothesis = "greaterAbs"
        z <- (abs(r$lfc) - lfcThreshold) / r$se
        r$stat <- sign(r$lfc) * pmax(z, 0)
        r$pvalue <- pmin(1, 2 * stats::pnorm(z, lower.tail = FALSE))
    }
    r
}

# sqrt(c' Sigma c) with Sigma the sandwich covariance at the final fit.
.contrast_se <- function(fit, y, cvec) {
    X <- fit$X
    lam <- rep(1e-6, ncol(X)) / log(2)^2
    beta <- fit$coef$beta
    mu <- pmax(2^(beta %*% t(X)) * .sf_rows(fit$sizeFactors,
                                             seq_len(nrow(beta))), 0.5)
    w <- mu / (1 + fit$table$dispersion * mu)
    vapply(seq_len(nrow(w)), function(i) {
        if (anyNA(w[i, ])) return(NA_real_)
        xtwx <- crossprod(X, X * w[i, ])
        inv <- solve(xtwx + diag(lam, ncol(X)))
        sqrt(max(drop(cvec %*% (inv %*% xtwx %*% inv) %*% cvec), 0)) *
            log2(exp(1))
    }, numeric(1))
}

# Cook's filter of results(): p-value NA where maxCooks > cutoff, except
# (single two-level factor) when >= 3 counts exceed the outlier count.
.cooks_filter <- function(fit, y, pvalue, cooksCutoff, two_group) {
    m <- ncol(y)
    p <- ncol(fit$X)
    if (isFALSE(cooksCutoff) || m <= p) return(pvalue)
    cutoff <- if (isTRUE(cooksCutoff)) stats::qf(0.99, p, m - p) else
        cooksCutoff
    out <- which(fit$table$maxCooks > cutoff)  # which() drops the NAs
    if (two_group && length(out)) {
        ck <- .ck_rows(fit$cooks, out)
        out <- out[!.outlier_count_kept(ck, y[out, , drop = FALSE])]
    }
    pvalue[out] <- NA
    pvalue
}

# DESeq2's two-group exception, for all flagged rows at once: keep a row
# when >= 3 of its counts exceed the count of its largest Cook's distance
# (which.max: first maximum, NAs ignored; an all-NA row is not kept).
.outlier_count_kept <- function(ck, yo) {
    na <- is.na(ck)
    ck[na] <- -Inf
    col <- max.col(ck, ties.method = "first")
    oc <- yo[cbind(seq_len(nrow(yo)), col)]
    rowSums(yo > oc) >= 3 & rowSums(!na) > 0
}

# DESeq2 pvalueAdjustment: BH after filtering on baseMean at the quantile
# that maximises rejections (lowess fit, f = 1/5, 50 thetas).
.independent_filter <- function(filter, pvalue, alpha) {
    lowerQ <- mean(filter == 0)
    upperQ <- if (lowerQ < 0.95) 0.95 else 1
    theta <- seq(lowerQ, upperQ, length = 50)
    cutoffs <- epi_deseq_quantile(filter, theta)  # stats::quantile's values
    # p.adjust(method = "BH") of each filtered subset from one stable sort
    # (order(decreasing = TRUE)): a subset of a stable order is the
    # subset's own stable order.
    numRej <- .core(epi_deseq_num_rej(pvalue, filter, cutoffs, alpha))
    padj_of <- function(j) {
        .core(epi_deseq_bh_subset(pvalue, filter, unname(cutoffs[j])))
    }
    lo <- stats::lowess(numRej ~ theta, f = 1 / 5)
    j <- if (max(numRej) <= 10) 1L else {
        pos <- numRej > 0
        res <- if (all(numRej == 0)) 0 else numRej[pos] - lo$y[pos]
        thresh <- max(lo$y) - sqrt(mean(res^2))
        if (any(numRej > thresh)) which(numRej > thresh)[1] else 1L
    }
    # named as quantile() names it (the name depends on that prob alone)
    threshold <- stats::setNames(cutoffs[j],
                                 names(stats::quantile(0, theta[j])))
    list(padj = padj_of(j), filterThreshold = threshold,
         filterTheta = theta[j],
         filterNumRej = data.frame(theta = theta, numRej = numRej),
         lo.fit = lo, alpha = alpha)
}

# The results() table (DESeq2 column names) and its metadata.
.deseq_results <- function(fit, y, contrast, alpha, lfcThreshold,
                           cooksCutoff, independentFiltering, two_group) {
    r <- .deseq_contrast(fit, y, contrast, lfcThreshold)
    tab <- fit$table
    pvalue <- .cooks_filter(fit, y, r$pvalue, cooksCutoff, two_group)
    zero <- which(tab$allZero & !is.na(tab$replace %||% NA) & tab$replace)
    if (length(zero)) {  # replaced rows that became all zero
        r$lfc[zero] <- 0; r$se[zero] <- 0; r$stat[zero] <- 0; pvalue[zero] <- 1
    }
    meta <- list()
    if (independentFiltering) {
        f <- .independent_filter(tab$baseMean, pvalue, alpha)
        padj <- f$padj
        meta <- f
        meta$padj <- NULL
    } else {
        padj <- stats::p.adjust(pvalue, method = "BH")
        meta$alpha <- alpha
    }
    meta$lfcThreshold <- lfcThreshold
    out <- data.frame(baseMean = tab$baseMean, log2FoldChange = r$lfc,
                      lfcSE = r$se, stat = r$stat, pvalue = pvalue,
                      padj = padj)
    list(table = out, metadata = meta)
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# ---- lfcShrink(type = "normal") -------------------------------------------

# Hmisc::wtd.quantile as DESeq2 carries it (normwt = TRUE, type "quantile"),
# quirks included: tied values are pooled through their printed names.
.wtd_quantile <- function(x, w, prob) {
    keep <- !(is.na(w) | w == 0)
    x <- x[keep]
    w <- w[keep]
    s <- !is.na(x + w)
    x <- x[s]
    w <- w[s]
    w <- w * length(x) / sum(w)
    i <- order(x)
    x <- x[i]
    w <- w[i]
    if (anyDuplicated(x)) {
        w <- tapply(w, x, sum)
        x <- as.numeric(names(w))
        names(w) <- NULL
    }
    n <- sum(w)
    ord <- 1 + (n - 1) * prob
    low <- pmax(floor(ord), 1)
    high <- pmin(low + 1, n)
    ord <- ord %% 1
    q <- stats::approx(cumsum(w), x, xout = c(low, high), method = "constant",
                       f = 1, rule = 2)$y
    (1 - ord) * q[1] + ord * q[2]
}

# Love et al. (2014) normal prior: per-coefficient prior variance from the
# weighted upper quantile of the MLE LFCs, then a ridge refit.
.shrink_normal <- function(fit, y, coef, threads) {
    tab <- fit$table
    nz <- which(!tab$allZero)
    w <- 1 / (1 / tab$baseMean[nz] + tab$dispFit[nz])
    nm <- colnames(fit$X)
    bpv <- vapply(nm, function(v) {
        x <- fit$coef$beta[nz, v]
        use <- abs(x) < 10
        if (!any(use)) return(1e6)
        (.wtd_quantile(abs(x[use]), w[use], 0.95) / stats::qnorm(0.975))^2
    }, numeric(1))
    bpv[nm == "Intercept"] <- 1e6
    g <- .deseq_glm(y, fit$X, fit$sizeFactors, nz, tab$dispersion,
                    1 / bpv, FALSE, threads, want_mu = FALSE)
    k <- match(coef, nm)
    list(lfc = g$beta[, k], se = g$se[, k], betaPriorVar = bpv)
}
