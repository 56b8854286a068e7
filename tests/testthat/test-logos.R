pfm <- rbind(A = c(8, 1, 0, 0, 5), C = c(1, 8, 0, 9, 2),
             G = c(0, 0, 10, 1, 2), T = c(1, 1, 0, 0, 1))

stack_tops <- function(p) {
    d <- ggplot2::layer_data(p)
    tapply(d$y, round(d$x), max)
}

test_that("information-content logo stacks are 2 - entropy bits high", {
    q <- sweep(pfm, 2, colSums(pfm), "/")
    ic <- 2 + colSums(ifelse(q > 0, q * log2(q), 0))
    expect_equal(unname(c(stack_tops(plotMotifLogo(pfm)))), unname(ic),
                 tolerance = 1e-12)
    expect_equal(unname(c(stack_tops(plotMotifLogo(pfm, type = "prob")))),
                 rep(1, 5), tolerance = 1e-12)
    # log-odds input (chromVARmotifs style) gives the same probabilities
    lo <- log(q * 4 + 1e-300)
    expect_equal(unname(stack_tops(plotMotifLogo(log((pfm + 0.01) / 10)))),
                 unname(stack_tops(plotMotifLogo(pfm + 0.01))),
                 tolerance = 1e-12)
})

test_that("letters are stacked smallest first and coloured by base", {
    d <- ggplot2::layer_data(plotMotifLogo(pfm, type = "prob"))
    col3 <- d[round(d$x) == 3, ]
    expect_identical(unique(col3$fill), "#F7B32B")      # only G at position 3
    expect_s3_class(plotMotifLogo(pfm), "ggplot")
})

test_that("TFBSTools matrices are accepted", {
    skip_if_not_installed("TFBSTools")
    m <- TFBSTools::PFMatrix(ID = "X1", name = "TEST", profileMatrix = pfm)
    p <- plotMotifLogo(m)
    expect_identical(p$labels$title, "TEST")
})

test_that("bad motifs are classed errors", {
    expect_error(plotMotifLogo(pfm[1:3, ]), class = "epione_error_input",
                 regexp = "4 x L")
    bad <- pfm
    rownames(bad) <- c("A", "C", "G", "U")
    expect_error(plotMotifLogo(bad), class = "epione_error_input",
                 regexp = "A, C, G, T")
    expect_error(plotMotifLogo(pfm * 0), class = "epione_error_input",
                 regexp = "summing to 0")
})
