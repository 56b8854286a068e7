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

# Gene-wise dispersions for `rows` (1-based) of y: rough start, the mean
# used for the dispersion (linear shortcut or GLM), line search, grid.
.deseq_gene_est <- function(y, X, sf, rows, bm, bv, opt, threads) {
    hat <- tcrossprod(qr.Q(qr(X)))
    init <- .core(epi_deseq_gene_init(y, sf, X, hat, rows - 1L, bm, bv, opt,
                                      threads))
    mu <- init$mu
    if (nrow(unique(X)) != ncol(X)) {
        fit <- .deseq_glm(y, X, sf, rows, init$alpha_init, rep(1e-6, ncol(X)),
                          FALSE, threads)
        mu <- fit$mu
        mu[mu < opt[["minmu"]]] <- opt[["minmu"]]
    }
    g <- .core(epi_deseq_gene_disp(y, X, rows - 1L, mu, init$alpha_init, opt,
                                   threads))
    c(g, list(mu = mu))
}

# DESeq2 parametricDispersionFit: Gamma-family GLM of the gene-wise
# estimates on 1/mean, iterated on the rows with residuals in (1e-4, 15).
.parametric_fit <- function(means, disps) {
    coefs <- c(0.1, 1)
    iter <- 0
    repeat {
        residuals <- disps / (coefs[1] + coefs[2] / means)
        good <- which((residuals > 1e-4) & (residuals < 15))
        fit <- suppressWarnings(stats::glm(disps[good] ~ I(1 / means[good]),
            family = stats::Gamma(link = "identity"), start = coefs))
        oldcoefs <- coefs
        coefs <- stats::coefficients(fit)
        if (!all(coefs > 0)) stop("parametric dispersion fit failed")
        if ((sum(log(coefs / oldcoefs)^2) < 1e-6) & fit$converged) break
        iter <- iter + 1
        if (iter > 10) stop("dispersion fit did not converge")
    }
    names(coefs) <- c("asymptDisp", "extraPois")
    f <- function(q) coefs[1] + coefs[2] / q
    attr(f, "coefficients") <- coefs
    f
}

.local_fit <- function(means, disps, minDisp) {
    if (!requireNamespace("locfit", quietly = TRUE)) {
        .abort("fitType = \"local\" needs the package 'locfit'; install it ",
               "or use fitType = \"parametric\" or \"mean\".",
               kind = "dependency")
    }
    if (all(disps < minDisp * 10)) return(function(means) minDisp)
    use <- disps >= minDisp * 10
    d <- data.frame(logDisps = log(disps), logMeans = log(means))
    fit <- locfit::locfit(logDisps ~ logMeans, data = d[use, , drop = FALSE],
                          weights = means[use])
    function(means) exp(stats::predict(fit, data.frame(logMeans = log(means))))
}

# The dispersion trend as a function of the mean (estimateDispersionsFit),
# with DESeq2's fallback from "parametric" to "local".
.deseq_trend <- function(means, disps, fitType, minDisp, verbose) {
    use <- disps > 100 * minDisp
    if (!any(use)) {
        .abort("all gene-wise dispersion estimates are within 2 orders of ",
               "magnitude of the minimum, so no trend can be fitted; the ",
               "data look Poisson. Check the counts, or use more samples.",
               kind = "numeric")
    }
    if (fitType == "parametric") {
        f <- tryCatch(.parametric_fit(means[use], disps[use]),
                      error = function(e) NULL)
        if (is.null(f)) {
            message("-- note: fitType='parametric', but the dispersion trend ",
                    "was not well captured by the function: y = a/x + b, and ",
                    "a local regression fit was automatically substituted.")
            fitType <- "local"
        }
    }
    if (fitType == "local") f <- .local_fit(means[use], disps[use], minDisp)
    if (fitType == "mean") {
        meanDisp <- mean(disps[disps > 10 * minDisp], na.rm = TRUE,
                         trim = 0.001)
        f <- function(means) meanDisp
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

# Dispersions of the non-all-zero rows: gene-wise, trend, prior, MAP.
.deseq_dispersions <- function(y, X, sf, nz, bm, bv, fitType, threads,
                               verbose) {
    m <- ncol(y)
    opt <- .deseq_opt(m)
    g <- .deseq_gene_est(y, X, sf, nz, bm, bv, opt, threads)
    trend <- .deseq_trend(bm, g$dispGeneEst, fitType, opt[["minDisp"]],
                          verbose)
    dispFit <- rep_len(trend(bm), length(nz))
    above <- g$dispGeneEst >= 100 * opt[["minDisp"]]
    resid <- log(g$dispGeneEst) - log(dispFit)
    attr(trend, "varLogDispEsts") <- stats::mad(resid[above], na.rm = TRUE)^2
    attr(trend, "dispPriorVar") <- .disp_prior_var(
        resid[above], attr(trend, "varLogDispEsts"), m, ncol(X))
    map <- .deseq_map(y, X, nz, g, dispFit, trend, opt, threads)
    list(gene = g, dispFit = dispFit, trend = trend, map = map)
}

.deseq_map <- function(y, X, rows, g, dispFit, trend, opt, threads) {
    .core(epi_deseq_map(y, X, rows - 1L, g$mu, g$dispGeneEst, dispFit,
                        attr(trend, "dispPriorVar"),
                        attr(trend, "varLogDispEsts"), opt, threads))
}

# NB GLM of `rows` (1-based) with dispersions `alpha` and ridge `lambda`
# (log2 scale), as fitNbinomGLMs: IRLS in C++, the closed form for an
# intercept-only design, and optim() for the rows IRLS could not fit.
.deseq_glm <- function(y, X, sf, rows, alpha, lambda, want_hat, threads,
                       minmu = 0.5) {
    p <- ncol(X)
    if (p == 1L && all(X == 1) && all(lambda <= 1e-6)) {
        return(.deseq_glm_intercept(y, sf, rows, alpha))
    }
    qx <- qr(X)
    ls_op <- backsolve(qr.R(qx), t(qr.Q(qx)))
    f <- .core(epi_deseq_fit_glm(y, sf, X, rows - 1L, alpha,
        lambda / log(2)^2, ls_op, want_hat, 1e-8, 100L, minmu, threads))
    out <- list(beta = f$beta * log2(exp(1)),
                se = log2(exp(1)) * sqrt(pmax(f$beta_var, 0)),
                conv = f$iter < 100L, iter = f$iter, mu = f$mu,
                hat = if (want_hat) f$hat, logLike = f$logLike)
    stable <- rowSums(is.na(f$beta)) == 0
    varpos <- rowSums(f$beta_var <= 0) == 0
    redo <- which(!out$conv | !stable | !varpos)
    for (k in redo) {
        out <- .deseq_optim_row(out, k, y[rows[k], ], sf, X, alpha[k], lambda,
                                stable[k], ls_op, minmu)
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
    out$mu[k, ] <- mu
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
    z <- y[rows, , drop = FALSE] / rep(sf, each = length(rows))
    beta <- log2(rowMeans(z))
    mu <- outer(2^beta, sf)
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
.deseq_test <- function(y, X, sf, rows, disp, test, Xr, threads) {
    full <- .deseq_glm(y, X, sf, rows, disp, rep(1e-6, ncol(X)), TRUE,
                       threads)
    if (test == "LRT") {
        red <- .deseq_glm(y, Xr, sf, rows, disp, rep(1e-6, ncol(Xr)), FALSE,
                          threads)
        full$LRTStatistic <- 2 * (full$logLike - red$logLike)
        full$LRTPvalue <- stats::pchisq(full$LRTStatistic,
                                        df = ncol(X) - ncol(Xr),
                                        lower.tail = FALSE)
        full$reducedConv <- red$conv
    }
    full
}

# Max Cook's distance over the samples with >= 3 replicates (recordMaxCooks).
.max_cooks <- function(cooks, X) {
    use <- .n_or_more_in_cell(X, 3)
    if (nrow(X) <= ncol(X) || !any(use)) return(rep(NA_real_, nrow(cooks)))
    c <- cooks[, use, drop = FALSE]
    out <- do.call(pmax, c(lapply(seq_len(ncol(c)), function(j) c[, j]),
                           list(na.rm = FALSE)))
    out
}

# One pass of the pipeline on `rows` of y, given the trend (NULL: fit it).
.deseq_pass <- function(y, X, sf, rows, fitType, test, Xr, threads, verbose,
                        trend = NULL) {
    st <- .core(epi_deseq_base_stats(y, sf, rows - 1L, threads))
    opt <- .deseq_opt(ncol(y))
    if (is.null(trend)) {
        d <- .deseq_dispersions(y, X, sf, rows, st$baseMean, st$baseVar,
                                fitType, threads, verbose)
    } else {
        g <- .deseq_gene_est(y, X, sf, rows, st$baseMean, st$baseVar, opt,
                             threads)
        dispFit <- rep_len(trend(st$baseMean), length(rows))
        d <- list(gene = g, dispFit = dispFit, trend = trend,
                  map = .deseq_map(y, X, rows, g, dispFit, trend, opt, threads))
    }
    fit <- .deseq_test(y, X, sf, rows, d$map$dispersion, test, Xr, threads)
    cooks <- .core(epi_deseq_cooks(y, sf, rows - 1L, .cells(X), ncol(X),
                                   fit$mu, fit$hat, threads))
    list(stats = st, disp = d, fit = fit, cooks = cooks)
}

# The whole DESeq() run on a dense count matrix (double). Returns the
# per-row table (DESeq2's mcols names, NA for all-zero rows), assays and
# the dispersion function; see .deseq_table().
.deseq_engine <- function(y, X, sf, fitType, test, Xr, minRep, threads,
                          verbose) {
    n <- nrow(y)
    allZero <- rowSums(y) == 0
    nz <- which(!allZero)
    if (!length(nz)) {
        .abort("every peak has zero counts in every sample; there is ",
               "nothing to test. Check that the right count matrix was ",
               "given.", kind = "input")
    }
    if (verbose) message("estimating dispersions and fitting the model")
    pass <- .deseq_pass(y, X, sf, nz, fitType, test, Xr, threads, verbose)
    if (test == "LRT") {  # nbinomLRT computes Cook's with the dispersion mu
        pass$cooks <- .core(epi_deseq_cooks(y, sf, nz - 1L, .cells(X),
            ncol(X), pass$disp$gene$mu, pass$fit$hat, threads))
    }
    tab <- .deseq_table(pass, n, nz, X, test)
    st <- .core(epi_deseq_base_stats(y, sf, seq_len(n) - 1L, threads))
    tab$baseMean <- st$baseMean
    tab$baseVar <- st$baseVar
    out <- list(table = tab, cooks = .fill_rows(pass$cooks, n, nz),
                mu = .fill_rows(pass$fit$mu, n, nz),
                H = .fill_rows(pass$fit$hat, n, nz),
                trend = pass$disp$trend, sizeFactors = sf, X = X, Xr = Xr,
                test = test, replaceable = rep(FALSE, ncol(y)))
    if (any(.n_or_more_in_cell(X, minRep))) {
        out <- .deseq_replace(out, y, minRep, fitType, threads, verbose)
    }
    out
}

.fill_rows <- function(x, n, rows) {
    out <- matrix(NA_real_, n, ncol(x))
    out[rows, ] <- x
    out
}

# mcols(dds)-like data.frame for all n rows from one pass on rows `nz`.
.deseq_table <- function(pass, n, nz, X, test) {
    d <- pass$disp
    f <- pass$fit
    cols <- list(baseMean = pass$stats$baseMean, baseVar = pass$stats$baseVar,
        dispGeneEst = d$gene$dispGeneEst, dispGeneIter = d$gene$dispGeneIter,
        dispFit = d$dispFit, dispersion = d$map$dispersion,
        dispIter = d$map$dispIter, dispOutlier = d$map$dispOutlier,
        dispMAP = d$map$dispMAP)
    nm <- colnames(X)
    beta <- stats::setNames(lapply(seq_along(nm), function(k) f$beta[, k]), nm)
    se <- stats::setNames(lapply(seq_along(nm), function(k) f$se[, k]),
                          paste0("SE_", nm))
    if (test == "Wald") {
        st <- lapply(seq_along(nm), function(k) f$beta[, k] / f$se[, k])
        pv <- lapply(st, function(s) 2 * stats::pnorm(abs(s), lower.tail = FALSE))
        names(st) <- paste0("WaldStatistic_", nm)
        names(pv) <- paste0("WaldPvalue_", nm)
        tests <- c(st, pv, list(betaConv = f$conv, betaIter = f$iter))
    } else {
        tests <- list(LRTStatistic = f$LRTStatistic, LRTPvalue = f$LRTPvalue,
                      fullBetaConv = f$conv, reducedBetaConv = f$reducedConv,
                      betaIter = f$iter)
    }
    cols <- c(cols, beta, se, tests,
              list(deviance = -2 * f$logLike, maxCooks = .max_cooks(pass$cooks, X)))
    tab <- as.data.frame(lapply(cols, function(v) {
        out <- rep(v[1][NA], n)
        out[nz] <- v
        out
    }), optional = TRUE)
    tab$allZero <- seq_len(n) %in% nz == FALSE
    tab[, c("baseMean", "baseVar", "allZero",
            setdiff(names(tab), c("baseMean", "baseVar", "allZero")))]
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
    replace <- rowSums(out$cooks > cutoff) > 0
    out$table$replace <- replace
    out$replaceable <- .n_or_more_in_cell(X, minRep)
    rows <- which(replace)
    if (!length(rows)) return(out)
    sf <- out$sizeFactors
    tbm <- .core(epi_deseq_trimmed_mean(y, sf, rows - 1L, 0.2, threads))
    ysub <- y[rows, , drop = FALSE]
    idx <- out$cooks[rows, , drop = FALSE] > cutoff &
        rep(out$replaceable, each = length(rows))
    ysub[idx] <- as.integer(outer(tbm, sf))[idx]
    out$replaced <- list(rows = rows, counts = ysub)
    st <- .core(epi_deseq_base_stats(ysub, sf, seq_along(rows) - 1L, threads))
    newZero <- rowSums(ysub) == 0
    out$table$baseMean[rows] <- st$baseMean
    out$table$baseVar[rows] <- st$baseVar
    out$table$allZero[rows] <- newZero
    refit <- which(!newZero)
    if (verbose && length(refit)) {
        message("-- replacing outliers and refitting for ", length(refit),
                " peaks (minReplicatesForReplace = ", minRep, ")")
    }
    if (length(refit)) {
        pass <- .deseq_pass(ysub, X, sf, refit, fitType, out$test, out$Xr,
                            threads, verbose, trend = out$trend)
        sub <- .deseq_table(pass, length(rows), refit, X, out$test)
        keep <- setdiff(names(sub), "replace")
        out$table[rows[refit], keep] <- sub[refit, keep]
    }
    res_cols <- .deseq_result_cols(out$table)
    out$table[rows[newZero], res_cols] <- NA
    cooks <- out$cooks
    out$table$maxCooks <- if (all(out$replaceable)) NA_real_ else {
        cooks[, out$replaceable] <- 0
        .max_cooks(cooks, X)
    }
    out
}

# The columns DESeq2 marks as type "results" in mcols(dds).
.deseq_result_cols <- function(tab) {
    first <- match("dispMAP", names(tab)) + 1L
    setdiff(names(tab)[first:ncol(tab)], "replace")
}
