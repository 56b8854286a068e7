# scBasset CNN: gradients against finite differences, the forward pass
# against a plain-R implementation of the architecture, determinism across
# threads, save/load, a small planted-motif simulation and bad input.

tiny_cfg <- list(seq_len = 48L, stem_filters = 6L, stem_kernel = 5L,
    stem_pool = 3L, tower_start = 6L, tower_end = 8L, tower_repeat = 2L,
    tower_kernel = 3L, tower_pool = 2L, conv1x1 = 4L, bottleneck = 3L,
    n_cells = 5L, n_batches = 2L, chunk = 2L, dropout = 0.2)

tiny_data <- function(n = 6L, L = 48L, cells = 5L) {
    withr::local_seed(11)
    seqs <- vapply(seq_len(n), function(i)
        paste(sample(c("A", "C", "G", "T", "N"), L, TRUE,
                     prob = c(.24, .24, .24, .24, .04)), collapse = ""), "")
    y <- Matrix::Matrix(matrix(rbinom(n * cells, 1, 0.4), cells, n),
                        sparse = TRUE)
    list(seqs = seqs, codes = epione:::epi_cnn_encode(seqs, L),
         p = as.numeric(y@p), i = y@i, theta = NULL)
}

loss_grad <- function(cfg, theta, d, threads = 1L, train = TRUE,
                      augment = TRUE) {
    epione:::epi_cnn_loss_grad(cfg, theta, d$codes, d$p, d$i,
        seq_along(d$seqs) - 1L, c(0L, 1L, 0L, 1L, 1L), 7, augment, train,
        threads)
}

test_that("every layer's gradient matches central finite differences", {
    d <- tiny_data()
    sl <- epione:::epi_cnn_describe(tiny_cfg)$slots
    withr::local_seed(3)
    theta <- rnorm(sum(sl$rows * sl$cols), sd = 0.5)
    g <- loss_grad(tiny_cfg, theta, d)$grad
    h <- 1e-5
    for (k in seq_len(nrow(sl))) {
        n <- sl$rows[k] * sl$cols[k]
        idx <- sl$offset[k] + sample.int(n, min(n, 5L))
        num <- vapply(idx, function(j) {
            up <- theta; up[j] <- up[j] + h
            dn <- theta; dn[j] <- dn[j] - h
            (loss_grad(tiny_cfg, up, d)$loss -
                 loss_grad(tiny_cfg, dn, d)$loss) / (2 * h)
        }, 0)
        expect_equal(g[idx], num, tolerance = 1e-6, info = sl$name[k])
    }
})

# The architecture written plainly in R: GELU -> conv ('same') -> BN
# (batch statistics) -> max-pool per block, then GELU -> flatten -> dense
# -> BN -> GELU -> cell weights (+ batch embedding) + intercept.
r_forward <- function(cfg, theta, seqs, cell_batch) {
    sl <- epione:::epi_cnn_describe(cfg)$slots
    w <- function(nm) {
        k <- match(nm, sl$name)
        matrix(theta[sl$offset[k] + seq_len(sl$rows[k] * sl$cols[k])],
               sl$rows[k], sl$cols[k])
    }
    gelu <- function(x) x * plogis(1.702 * x)
    onehot <- function(s) {
        b <- strsplit(s, "")[[1]]
        vapply(b, function(x) as.numeric(c("A", "C", "G", "T") == x), numeric(4))
    }
    acts <- lapply(seqs, onehot)
    cv <- epione:::epi_cnn_describe(cfg)$convs
    for (i in seq_len(nrow(cv))) {
        W <- w(sprintf("conv%d_kernel", i - 1L)); k <- cv$kernel[i]
        pad <- (k - 1) %/% 2
        z <- lapply(acts, function(a) {
            g <- cbind(matrix(0, nrow(a), pad), gelu(a), matrix(0, nrow(a), pad))
            vapply(seq_len(ncol(a)), function(l)
                W %*% as.vector(g[, l + 0:(k - 1), drop = FALSE]), numeric(nrow(W)))
        })
        z <- lapply(z, function(m) matrix(m, nrow(W)))
        all <- do.call(cbind, z)
        mu <- rowMeans(all); v <- rowMeans((all - mu)^2)
        gam <- w(sprintf("conv%d_bn_gamma", i - 1L))[, 1]
        bet <- w(sprintf("conv%d_bn_beta", i - 1L))[, 1]
        acts <- lapply(z, function(m) {
            y <- gam * (m - mu) / sqrt(v + 1e-3) + bet
            p <- cv$pool[i]
            vapply(seq_len(ncol(y) %/% p), function(j)
                apply(y[, (j - 1) * p + seq_len(p), drop = FALSE], 1, max),
                numeric(nrow(y)))
        })
        acts <- lapply(acts, function(m) matrix(m, nrow(W)))
    }
    h <- gelu(vapply(acts, as.vector, numeric(length(acts[[1]]))))
    u <- w("dense_kernel") %*% h
    mu <- rowMeans(u); v <- rowMeans((u - mu)^2)
    e <- gelu(w("dense_bn_gamma")[, 1] * (u - mu) / sqrt(v + 1e-3) +
                  w("dense_bn_beta")[, 1])
    cw <- w("cell_embedding") + w("batch_embedding")[cell_batch + 1L, ]
    cw %*% e + w("cell_bias")[, 1]
}

test_that("the forward pass matches a plain-R scBasset (no augmentation)", {
    d <- tiny_data()
    cfg <- utils::modifyList(tiny_cfg, list(dropout = 0))
    sl <- epione:::epi_cnn_describe(cfg)$slots
    withr::local_seed(5)
    theta <- rnorm(sum(sl$rows * sl$cols), sd = 0.5)
    got <- loss_grad(cfg, theta, d, augment = FALSE)$logits
    want <- r_forward(cfg, theta, d$seqs, c(0L, 1L, 0L, 1L, 1L))
    expect_equal(got, want, tolerance = 1e-10)
})

test_that("gradients and training do not depend on the thread count", {
    d <- tiny_data()
    sl <- epione:::epi_cnn_describe(tiny_cfg)$slots
    theta <- seq(-1, 1, length.out = sum(sl$rows * sl$cols))
    expect_identical(loss_grad(tiny_cfg, theta, d, 1L),
                     loss_grad(tiny_cfg, theta, d, 2L))
    sim <- withr::with_seed(1, simulateScBasset(60, 12, seq_len = 96))
    prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
                 tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4,
                 chunk = 4)
    run <- function(t) S4Vectors::metadata(scBasset(sim$counts, sim$sequences,
        profile = prof, epochs = 2, batchSize = 16, threads = t,
        verbose = FALSE))$scBasset
    m1 <- run(1L); m2 <- run(2L)
    expect_identical(m1@theta, m2@theta)
    expect_identical(m1@history$loss, m2@history$loss)
    # per-sequence augmentation is also thread-independent, and differs
    # from scBasset's per-minibatch draws
    prof$augment_batch <- 0L
    s1 <- run(1L)
    expect_identical(s1@theta, run(2L)@theta)
    expect_false(identical(s1@theta, m1@theta))
})

test_that("scBasset returns embeddings, intercepts and a model that round-trips", {
    sim <- withr::with_seed(2, simulateScBasset(80, 15, seq_len = 96))
    prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
                 tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
    batch <- rep(c("a", "b", "c"), 5)
    sce <- scBasset(sim$counts, Biostrings::DNAStringSet(sim$sequences),
                    batch = batch, profile = prof, epochs = 2, batchSize = 32,
                    threads = 1, verbose = FALSE)
    emb <- SingleCellExperiment::reducedDim(sce, "scBasset")
    expect_identical(dim(emb), c(15L, 4L))
    expect_identical(rownames(emb), colnames(sim$counts))
    m <- S4Vectors::metadata(sce)$scBasset
    expect_identical(unname(sce$scBasset_intercept),
                     unname(cellIntercept(m)))
    expect_identical(nrow(m@history), 2L)
    f <- withr::local_tempfile(fileext = ".h5")
    saveModel(m, f)
    m2 <- loadModel(f)
    expect_identical(m2@theta, m@theta)
    expect_identical(m2@config, m@config)
    p1 <- predict(m, sim$sequences[1:4], threads = 1)
    expect_identical(predict(m2, sim$sequences[1:4], threads = 1), p1)
    expect_true(all(p1 > 0 & p1 < 1))
    # predict = sigmoid(region embedding x (cell + batch weights) + intercept)
    e <- regionEmbedding(m, sim$sequences[1:4], threads = 1)
    w <- cellEmbedding(m) + epione:::.scbasset_weights(m, "batch_embedding")[
        as.integer(factor(batch)), ]
    expect_equal(unname(p1), unname(plogis(e %*% t(w) +
        rep(cellIntercept(m), each = 4))), tolerance = 1e-6)
    expect_s3_class(plotTrainingCurve(sce), "ggplot")
})

ari <- function(a, b) {
    tab <- table(a, b); c2 <- function(x) sum(choose(x, 2))
    e <- c2(rowSums(tab)) * c2(colSums(tab)) / choose(length(a), 2)
    (c2(tab) - e) / ((c2(rowSums(tab)) + c2(colSums(tab))) / 2 - e)
}

test_that("planted motifs: the embedding separates the groups and motif injection finds them", {
    sim <- withr::with_seed(42, simulateScBasset(1500, 45, seq_len = 96,
                                                 effect = 4))
    prof <- list(seq_len = 96, stem_filters = 16, stem_kernel = 9,
                 tower_start = 16, tower_end = 32, tower_repeat = 5,
                 conv1x1 = 16, bottleneck = 8)
    sce <- scBasset(sim$counts, sim$sequences, profile = prof, epochs = 15, batchSize = 32,
                    seed = 3, threads = 2, verbose = FALSE)
    emb <- SingleCellExperiment::reducedDim(sce, "scBasset")
    km <- withr::with_seed(1, kmeans(scale(emb), 3, nstart = 20))
    expect_gte(ari(km$cluster, sim$group), 0.9)
    act <- motifActivity(sce, sim$motifs, nSeqs = 200, seed = 1, threads = 2)
    z <- SummarizedExperiment::assay(act, "z")
    by_group <- t(apply(z, 1, function(r) tapply(r, sim$group, mean)))
    # each planted motif is most active in the group it drives
    expect_identical(unname(apply(by_group, 1, which.max)), 1:3)
})

test_that("bad input gives classed errors that name the fix", {
    sim <- withr::with_seed(4, simulateScBasset(20, 6, seq_len = 96))
    prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
                 tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
    fit <- function(x = sim$counts, s = sim$sequences, ...)
        scBasset(x, s, profile = prof, epochs = 1, threads = 1,
                 verbose = FALSE, ...)
    short <- sim$sequences; short[3] <- substr(short[3], 1, 90)
    expect_error(fit(s = short), class = "epione_error_input",
                 regexp = "sequence 3 has 90 bp.*resize")
    odd <- sim$sequences; substr(odd[2], 5, 5) <- "R"
    expect_error(fit(s = odd), class = "epione_error_input",
                 regexp = "only A, C, G, T and N")
    expect_error(fit(s = sim$sequences[-1]), class = "epione_error_input",
                 regexp = "one sequence per peak")
    expect_error(fit(x = sim$counts[0, ], s = character()),
                 class = "epione_error_input", regexp = "peak set is empty")
    counts <- sim$counts; counts@x[] <- 3
    expect_message(fit(x = counts), "binarised")
    withr::local_options(epione.scbasset.maxMemoryGB = 1e-4)
    expect_error(fit(), class = "epione_error_input",
                 regexp = "final layer of 6 cells.*batchSize")
    expect_error(fit(batch = c("a", "b")), class = "epione_error_input",
                 regexp = "one non-missing batch label per cell")
    expect_error(scBasset(sim$counts, sim$sequences, profile = list(foo = 1)),
                 class = "epione_error_input", regexp = "may only set")
})

test_that("sequences are cut from a FASTA around the peak centres", {
    withr::local_seed(9)
    chr <- paste(sample(c("A", "C", "G", "T"), 500, TRUE), collapse = "")
    fa <- withr::local_tempfile(fileext = ".fa")
    writeLines(c(">chrT", substring(chr, seq(1, 500, 60),
                                    pmin(seq(60, 560, 60), 500))), fa)
    gr <- GenomicRanges::GRanges("chrT", IRanges::IRanges(c(101, 201),
                                                          c(150, 300)))
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = Matrix::Matrix(1, 2, 3, sparse = TRUE)),
        rowRanges = gr)
    got <- epione:::.scbasset_sequences(se, NULL, fa, 96L)
    mid <- (c(100, 200) + c(150, 300)) %/% 2       # 0-based centre
    expect_identical(got, substring(chr, mid - 48 + 1, mid + 48))
    far <- GenomicRanges::GRanges("chrT", IRanges::IRanges(480, 500))
    SummarizedExperiment::rowRanges(se)[1] <- far
    expect_error(epione:::.scbasset_sequences(se, NULL, fa, 96L),
                 class = "epione_error_input", regexp = "outside the FASTA")
})
