# scBasset: a sequence CNN whose last layer holds one weight vector and one
# intercept per cell (Yuan & Kelley 2022; calico/scBasset, scvi-tools
# SCBASSET). The network runs in the C++ core (inst/include/epione/cnn.hpp);
# this file checks inputs, drives the epochs and wraps the trained model.

#' A trained scBasset model
#'
#' @slot config Named list of layer sizes (see [scBasset()]).
#' @slot theta Trainable weights (float32 values held as doubles), laid out
#'   as `layers(model)` lists.
#' @slot state Batch-normalisation moving means and variances.
#' @slot cells,batches Cell names and batch levels.
#' @slot cellBatch Batch index (0-based) of each cell.
#' @slot dinuc Dinucleotide counts of the training sequences (5 x 4), used
#'   to draw background sequences for [motifActivity()].
#' @slot history `data.frame` with one row per epoch: `epoch`, `loss`,
#'   `val_loss`, `val_auroc`, `seconds`.
#' @slot test Held-out test-set loss and AUROC of the kept weights.
#' @exportClass scBassetModel
setClass("scBassetModel", representation(config = "list", theta = "numeric",
    state = "numeric", cells = "character", batches = "character",
    cellBatch = "integer", dinuc = "matrix", history = "data.frame",
    test = "numeric"))

setMethod("show", "scBassetModel", function(object) {
    d <- epi_cnn_describe(object@config)
    cat("scBassetModel:", length(object@cells), "cells,",
        format(d$n_params, big.mark = ","), "weights, stem",
        object@config$stem_filters, "filters, bottleneck",
        object@config$bottleneck, "\n")
    h <- object@history
    if (nrow(h)) {
        cat(sprintf("  %d epochs, best validation AUROC %.4f, test AUROC %.4f\n",
                    nrow(h), max(h$val_auroc, na.rm = TRUE), object@test[2]))
    }
})

# Layer sizes. "full" is the original; "cpu" keeps the depth and the
# bottleneck but uses 64 stem filters (64 -> 128 in the tower, 64 in the 1x1
# conv), about 16x fewer FLOPs, the profile timed in
# shared/data/ref/scbasset/torch_epoch_timing.py.
.scbasset_profile <- function(profile) {
    full <- list(seq_len = 1344L, stem_filters = 288L, stem_kernel = 17L,
        stem_pool = 3L, tower_start = 288L, tower_end = 512L,
        tower_repeat = 6L, tower_kernel = 5L, tower_pool = 2L,
        conv1x1 = 256L, bottleneck = 32L, dropout = 0.2, chunk = 8L,
        augment_batch = 1L)
    cpu <- utils::modifyList(full, list(stem_filters = 64L, tower_start = 64L,
        tower_end = 128L, conv1x1 = 64L))
    if (is.list(profile)) {
        bad <- setdiff(names(profile), names(full))
        if (length(bad) || is.null(names(profile))) {
            .abort("'profile' as a list may only set ",
                   paste(names(full), collapse = ", "), "; unknown: ",
                   paste(bad, collapse = ", "), ".")
        }
        cfg <- utils::modifyList(cpu, profile)
    } else {
        cfg <- switch(match.arg(profile, c("cpu", "full")), cpu = cpu,
                      full = full)
    }
    ints <- setdiff(names(cfg), "dropout")
    cfg[ints] <- lapply(cfg[ints], as.integer)
    cfg$dropout <- as.numeric(cfg$dropout)
    cfg
}

# One-hot codes (raw, n x seq_len) of the sequences, with the checks the
# core applies (length, alphabet) turned into classed errors.
.scbasset_codes <- function(sequences, seq_len) {
    if (!is.character(sequences)) sequences <- as.character(sequences)
    if (!length(sequences)) {
        .abort("there are no sequences: the peak set is empty; ",
               "pass a matrix with at least one peak (row).")
    }
    .core(epi_cnn_encode(unname(sequences), as.integer(seq_len)))
}

# Sequences for the peaks: given directly, or cut from `genome` (indexed
# FASTA path, or anything Biostrings::getSeq() reads) as windows of
# seq_len bp around the centre of each rowRanges() peak.
.scbasset_sequences <- function(x, sequences, genome, seq_len) {
    if (!is.null(sequences)) {
        if (length(sequences) != nrow(x)) {
            .abort("'sequences' has ", length(sequences), " entries but 'x' ",
                   "has ", nrow(x), " peaks; give one sequence per peak.")
        }
        return(sequences)
    }
    if (is.null(genome) || !methods::is(x, "RangedSummarizedExperiment")) {
        .abort("give 'sequences' (one per peak), or 'x' with rowRanges and ",
               "'genome' (an indexed FASTA file or a BSgenome).")
    }
    gr <- as.data.frame(SummarizedExperiment::rowRanges(x))
    mid <- (gr$start - 1 + gr$end) %/% 2
    start0 <- mid - seq_len %/% 2
    if (is.character(genome)) {
        genome <- .check_file(genome, "genome")
        return(.core(epi_cnn_fasta_windows(genome, as.character(gr$seqnames),
            start0, start0 + seq_len)))
    }
    win <- GenomicRanges::GRanges(gr$seqnames,
        IRanges::IRanges(start0 + 1, width = seq_len))
    as.character(Biostrings::getSeq(genome, win))
}

# Binary peaks x cells dgCMatrix (never densified).
.scbasset_binary <- function(x) {
    if (!nrow(x) || !ncol(x)) {
        .abort("'x' has ", nrow(x), " peaks and ", ncol(x), " cells: ",
               if (!nrow(x)) "the peak set is empty" else "there are no cells",
               "; scBasset needs at least one peak and one cell.")
    }
    x <- methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix")
    if (!methods::is(x, "dgCMatrix")) x <- methods::as(x, "dMatrix")
    x <- Matrix::drop0(x)
    if (any(x@x != 1)) {
        message("scBasset: 'x' is not binary; counting every non-zero ",
                "entry as accessible (binarised).")
        x@x[] <- 1
    }
    x
}

# Memory a training run needs, in bytes: weights with gradients and Adam
# moments, the activations of one batch, and the n_cells-wide final layer.
.scbasset_memory <- function(cfg, n_cells, batch_size) {
    d <- epi_cnn_describe(utils::modifyList(cfg, list(n_cells = n_cells)))
    cv <- d$convs
    act <- sum(cv$cout * cv$len_in * 4 + cv$cout * cv$len_in / cv$pool * 5)
    final <- n_cells * (cfg$bottleneck + 1) * 24 + batch_size * n_cells * 16
    c(total = d$n_params * 24 + batch_size * act * 1.5 + final,
      final = final)
}

.check_scbasset_memory <- function(cfg, n_cells, batch_size) {
    need <- .scbasset_memory(cfg, n_cells, batch_size)
    limit <- getOption("epione.scbasset.maxMemoryGB", 32) * 2^30
    if (need[["total"]] > limit) {
        .abort(sprintf(paste0("scBasset would need about %.1f GB (%.1f GB ",
            "for the final layer of %d cells); the limit is %.1f GB. ",
            "Lower 'batchSize', train on a subset of cells, or raise ",
            "options(epione.scbasset.maxMemoryGB =)."), need[["total"]] / 2^30,
            need[["final"]] / 2^30, n_cells, limit / 2^30), kind = "input")
    }
    invisible(need)
}

# 90/5/5 split of the peaks (as calico's split_train_test_val), from the
# run's seed; a tiny peak set keeps at least one validation peak.
.scbasset_split <- function(n, seed) {
    perm <- epi_cnn_permutation(n, seed)
    n_val <- max(1L, floor(n * 0.05))
    n_test <- if (n >= 3L) max(1L, floor(n * 0.05)) else 0L
    list(val = sort(perm[seq_len(n_val)]),
         test = sort(perm[n_val + seq_len(n_test)]),
         train = sort(perm[-seq_len(n_val + n_test)]))
}

# Validation on at most ~2e6 region x cell pairs keeps the per-epoch AUROC
# cheap for large cell numbers.
.scbasset_val_subset <- function(val, n_cells) {
    val[seq_len(min(length(val), max(1L, floor(2e6 / n_cells))))]
}

# The epoch loop: train, evaluate on the validation peaks, keep the best
# weights, stop after `patience` epochs without a better validation AUROC
# (calico: EarlyStopping(min_delta = 1e-6, patience = 50)).
.scbasset_train <- function(net, codes, y_t, split, opt) {
    p <- as.numeric(y_t@p)
    val <- .scbasset_val_subset(split$val, y_t@Dim[1L])
    hist <- data.frame(epoch = integer(), loss = numeric(),
        val_loss = numeric(), val_auroc = numeric(), seconds = numeric())
    best <- list(auc = -Inf, w = epi_cnn_get(net), epoch = 0L)
    for (ep in seq_len(opt$epochs)) {
        t0 <- proc.time()[["elapsed"]]
        loss <- epi_cnn_train_epoch(net, codes, p, y_t@i, split$train,
            opt$batchSize, opt$seed, ep, opt$lr, TRUE, opt$threads)
        ev <- epi_cnn_evaluate(net, codes, p, y_t@i, val, opt$threads)
        hist[ep, ] <- list(ep, loss, ev[1L], ev[2L],
                           proc.time()[["elapsed"]] - t0)
        if (opt$verbose) {
            message(sprintf("scBasset epoch %d/%d: loss %.4f, val loss %.4f, val AUROC %.4f (%.1f s)",
                ep, opt$epochs, loss, ev[1L], ev[2L], hist$seconds[ep]))
        }
        if (!is.na(ev[2L]) && ev[2L] > best$auc + 1e-6) {
            best <- list(auc = ev[2L], w = epi_cnn_get(net), epoch = ep)
        } else if (opt$earlyStopping && ep - best$epoch >= opt$patience) {
            if (opt$verbose) message("scBasset: early stop at epoch ", ep)
            break
        }
    }
    list(history = hist, best = best$w)
}

.scbasset_fit <- function(x, sequences, batch, cfg, opt) {
    x <- .scbasset_binary(x)
    codes <- .scbasset_codes(sequences, cfg$seq_len)
    cells <- colnames(x) %||% paste0("cell", seq_len(ncol(x)))
    bl <- .scbasset_batch(batch, ncol(x))
    cfg$n_cells <- ncol(x)
    cfg$n_batches <- length(bl$levels)
    .check_scbasset_memory(cfg, ncol(x), opt$batchSize)
    split <- .scbasset_split(nrow(x), opt$seed)
    if (opt$verbose) {
        message(sprintf("scBasset: %d peaks (%d train, %d validation, %d test) x %d cells",
            nrow(x), length(split$train), length(split$val),
            length(split$test), ncol(x)))
    }
    net <- .core(epi_cnn_new(cfg, opt$seed, bl$index))
    y_t <- Matrix::t(x)   # cells x peaks: each peak's accessible cells
    fit <- .scbasset_train(net, codes, y_t, split, opt)
    net <- epi_cnn_restore(cfg, fit$best$theta, fit$best$state, bl$index)
    test <- if (length(split$test)) {
        epi_cnn_evaluate(net, codes, as.numeric(y_t@p), y_t@i, split$test,
                         opt$threads)
    } else c(NA_real_, NA_real_)
    methods::new("scBassetModel", config = cfg, theta = fit$best$theta,
        state = fit$best$state, cells = cells, batches = bl$levels,
        cellBatch = bl$index, dinuc = epi_cnn_dinuc(codes, cfg$seq_len),
        history = fit$history, test = c(loss = test[1L], auroc = test[2L]))
}

`%||%` <- function(a, b) if (is.null(a)) b else a

.scbasset_batch <- function(batch, n_cells) {
    if (is.null(batch)) return(list(levels = character(), index = integer()))
    if (length(batch) != n_cells || anyNA(batch)) {
        .abort("'batch' must give one non-missing batch label per cell (",
               n_cells, " cells), not ", length(batch), " values.")
    }
    f <- factor(batch)
    list(levels = levels(f), index = as.integer(f) - 1L)
}

#' scBasset: sequence-based cell and region embeddings for scATAC-seq
#'
#' Trains the scBasset convolutional network (Yuan & Kelley 2022; the
#' architecture of calico/scBasset and scvi-tools `SCBASSET`): each peak's
#' DNA sequence (1,344 bp, one-hot, random +-3 bp shift and reverse
#' complement during training) goes through a stem convolution, a tower of
#' six convolution blocks and a 32-unit bottleneck; a final dense layer with
#' one weight vector and one intercept per cell predicts which cells have
#' the peak accessible (binary cross-entropy). The per-cell weights are the
#' cell embedding. With `batch`, a per-batch vector is added to each cell's
#' weights (scvi-tools' batch term). Adam (lr 0.01, beta 0.95/0.9995, eps
#' 1e-7), minibatches of peaks, a 90/5/5 train/validation/test split of the
#' peaks and early stopping on the validation AUROC follow the original.
#'
#' Profiles: `"full"` is the original (stem 288 filters, tower 288 -> 512,
#' 1x1 conv 256; 4.6 M weights plus 33 per cell); `"cpu"` keeps the layout
#' but uses 64 stem filters, a 64 -> 128 tower and a 64-filter 1x1 conv
#' (about 16x fewer FLOPs; 0.34 M weights plus 33 per cell), the profile to
#' use on a laptop. A named list overrides single sizes of the cpu profile
#' (`seq_len`, `stem_filters`, `stem_kernel`, `stem_pool`, `tower_start`,
#' `tower_end`, `tower_repeat`, `tower_kernel`, `tower_pool`, `conv1x1`,
#' `bottleneck`, `dropout`, `chunk`, `augment_batch`); `seq_len` must be
#' divisible by `stem_pool * tower_pool^tower_repeat`. Training augments
#' sequences with a random shift of up to 3 bp and a random reverse
#' complement; as in scBasset (basenji's StochasticShift and
#' StochasticReverseComplement layers) one shift and one flip are drawn per
#' minibatch (`augment_batch = 1`, the default); `augment_batch = 0` draws
#' them per sequence.
#'
#' Results depend only on `seed`, not on `threads`: the batch is cut into
#' fixed chunks of samples and partial sums are combined in chunk order.
#'
#' @param x Peaks x cells counts: a `dgCMatrix`/matrix, or a
#'   (Ranged)SummarizedExperiment / SingleCellExperiment (`assay.type`).
#'   Non-binary values are binarised with a message.
#' @param sequences One sequence per peak (`DNAStringSet` or character),
#'   each `seq_len` (1,344) bp of A/C/G/T/N. If `NULL`, cut from `genome`
#'   around the centres of `rowRanges(x)`.
#' @param genome Path to an indexed FASTA file, or a BSgenome / FaFile.
#' @param batch Optional batch label per cell (vector, or the name of a
#'   `colData` column).
#' @param profile `"cpu"` (default), `"full"`, or a named list of sizes.
#' @param epochs Maximum number of epochs.
#' @param batchSize Peaks per minibatch.
#' @param lr Adam learning rate.
#' @param earlyStopping Stop when the validation AUROC has not improved for
#'   `patience` epochs; the weights of the best epoch are kept either way.
#' @param seed Seed of the run (weights, split, shuffling, augmentation,
#'   dropout); `NULL` draws one from R's RNG.
#' @param threads Number of C++ threads.
#' @param verbose Print one line per epoch.
#' @param patience Epochs without improvement before stopping (50 as in
#'   calico's training script).
#' @param ... Passed to the matrix method.
#' @param assay.type Assay of a SummarizedExperiment to use.
#' @return A `SingleCellExperiment` (cells as columns) with
#'   `reducedDim(, "scBasset")` (cells x bottleneck cell embedding),
#'   `colData` column `scBasset_intercept` and the model
#'   ([scBassetModel-class]) in `metadata(sce)$scBasset`.
#' @seealso [motifActivity()], [regionEmbedding()], [saveModel()],
#'   [plotTrainingCurve()]
#' @references Yuan H, Kelley DR (2022) scBasset: sequence-based modeling of
#'   single-cell ATAC-seq using convolutional neural networks. Nat Methods.
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' sce <- scBasset(sim$counts, sim$sequences, profile = prof, epochs = 2,
#'                 threads = 1, verbose = FALSE)
#' dim(SingleCellExperiment::reducedDim(sce, "scBasset"))
#' @export
setGeneric("scBasset", function(x, ...) standardGeneric("scBasset"))

#' @rdname scBasset
setMethod("scBasset", "ANY", function(x, sequences = NULL, genome = NULL,
        batch = NULL, profile = c("cpu", "full"), epochs = 1000,
        batchSize = 128, lr = 0.01, earlyStopping = TRUE, seed = 1,
        threads = getOption("epione.threads", 2L), verbose = TRUE,
        patience = 50, assay.type = "counts") {
    cfg <- .scbasset_profile(profile)
    opt <- .scbasset_options(epochs, batchSize, lr, earlyStopping, seed,
                             threads, verbose, patience)
    sequences <- .scbasset_sequences(x, sequences, genome, cfg$seq_len)
    model <- .scbasset_fit(.assay_or_matrix(x, assay.type), sequences, batch, cfg, opt)
    .scbasset_sce(x, model)
})

#' @rdname scBasset
setMethod("scBasset", "SummarizedExperiment", function(x, ...,
        batch = NULL, assay.type = "counts") {
    if (is.character(batch) && length(batch) == 1L && ncol(x) != 1L) {
        batch <- SummarizedExperiment::colData(x)[[batch]]
    }
    methods::callNextMethod(x = x, ..., batch = batch,
                            assay.type = assay.type)
})

.assay_or_matrix <- function(x, assay.type = "counts") {
    if (!methods::is(x, "SummarizedExperiment")) return(x)
    nm <- SummarizedExperiment::assayNames(x)
    SummarizedExperiment::assay(x, if (assay.type %in% nm) assay.type else 1L)
}

.scbasset_options <- function(epochs, batchSize, lr, earlyStopping, seed,
                              threads, verbose, patience) {
    if (is.null(seed)) seed <- .draw_seed()
    list(epochs = as.integer(.check_number(epochs, "epochs", 1, 1e6, TRUE)),
         batchSize = as.integer(.check_number(batchSize, "batchSize", 2,
                                              1e5, TRUE)),
         lr = .check_number(lr, "lr", 0, 10),
         earlyStopping = .check_flag(earlyStopping, "earlyStopping"),
         seed = .check_number(seed, "seed", 0, 2^52, TRUE),
         threads = .check_threads(threads),
         verbose = .check_flag(verbose, "verbose"),
         patience = as.integer(.check_number(patience, "patience", 1, 1e6,
                                             TRUE)))
}

.scbasset_sce <- function(x, model) {
    sce <- if (methods::is(x, "SingleCellExperiment")) x else if
        (methods::is(x, "SummarizedExperiment")) {
        methods::as(x, "SingleCellExperiment")
    } else {
        SingleCellExperiment::SingleCellExperiment(list(counts = x))
    }
    if (is.null(colnames(sce))) colnames(sce) <- model@cells
    SingleCellExperiment::reducedDim(sce, "scBasset") <- cellEmbedding(model)
    sce$scBasset_intercept <- cellIntercept(model)
    S4Vectors::metadata(sce)$scBasset <- model
    sce
}

# ---- the trained model ---------------------------------------------------

.scbasset_net <- function(model) {
    epi_cnn_restore(model@config, model@theta, model@state, model@cellBatch)
}

.scbasset_weights <- function(model, name) {
    s <- epi_cnn_describe(model@config)$slots
    k <- match(name, s$name)
    matrix(model@theta[s$offset[k] + seq_len(s$rows[k] * s$cols[k])],
           s$rows[k], s$cols[k])
}

#' Cell embeddings and intercepts of a trained scBasset model
#'
#' @param model An [scBassetModel-class].
#' @return `cellEmbedding()`: cells x bottleneck matrix (the final layer's
#'   per-cell weights, without the batch term); `cellIntercept()`: named
#'   numeric vector of per-cell intercepts (biases; they track sequencing
#'   depth).
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' sce <- scBasset(sim$counts, sim$sequences, profile = prof, epochs = 1,
#'                 threads = 1, verbose = FALSE)
#' head(cellEmbedding(S4Vectors::metadata(sce)$scBasset))
#' @export
cellEmbedding <- function(model) {
    w <- .scbasset_weights(model, "cell_embedding")
    dimnames(w) <- list(model@cells, paste0("scBasset", seq_len(ncol(w))))
    w
}

#' @rdname cellEmbedding
#' @export
cellIntercept <- function(model) {
    stats::setNames(.scbasset_weights(model, "cell_bias")[, 1L], model@cells)
}

#' Region embeddings and predictions of a trained scBasset model
#'
#' `regionEmbedding()` returns the 32-d bottleneck output (after its GELU;
#' inference mode: moving BN statistics, no dropout or augmentation) of
#' each sequence; `predict()` the probability (or logit) of accessibility
#' of each sequence in each cell.
#'
#' @param object,model An [scBassetModel-class].
#' @param sequences `DNAStringSet` or character vector of sequences of the
#'   model's length (1,344 bp by default).
#' @param type `"response"` (probabilities) or `"link"` (logits).
#' @param normalize If `TRUE`, leave out the per-cell intercepts (depth),
#'   as scBasset's `imputation_Y_normalize`.
#' @param threads Number of C++ threads.
#' @param ... Unused.
#' @return `regionEmbedding()`: sequences x bottleneck matrix.
#'   `predict()`: sequences x cells matrix (dense: mind its size).
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' m <- S4Vectors::metadata(scBasset(sim$counts, sim$sequences,
#'     profile = prof, epochs = 1, threads = 1, verbose = FALSE))$scBasset
#' dim(regionEmbedding(m, sim$sequences[1:5]))
#' dim(predict(m, sim$sequences[1:5]))
#' @importFrom stats predict
#' @export
regionEmbedding <- function(model, sequences,
                            threads = getOption("epione.threads", 2L)) {
    codes <- .scbasset_codes(sequences, model@config$seq_len)
    e <- .core(epi_cnn_embed(.scbasset_net(model), codes,
                             .check_threads(threads)))
    dimnames(e) <- list(names(sequences), NULL)
    e
}

#' @rdname regionEmbedding
#' @export
setMethod("predict", "scBassetModel", function(object, sequences,
        type = c("response", "link"), normalize = FALSE,
        threads = getOption("epione.threads", 2L), ...) {
    type <- match.arg(type)
    e <- regionEmbedding(object, sequences, threads)
    w <- .scbasset_weights(object, "cell_embedding")
    if (length(object@batches)) {
        w <- w + .scbasset_weights(object, "batch_embedding")[
            object@cellBatch + 1L, , drop = FALSE]
    }
    z <- e %*% t(w)
    if (!normalize) z <- sweep(z, 2L, cellIntercept(object), "+")
    dimnames(z) <- list(names(sequences), object@cells)
    if (type == "response") stats::plogis(z) else z
})

#' Save and load a trained scBasset model (HDF5)
#'
#' Weights are stored as float32 (the precision they were trained in);
#' sizes, cell names, batches, the training history and the background
#' model for [motifActivity()] travel with them.
#'
#' @param model An [scBassetModel-class].
#' @param file Path of the HDF5 file.
#' @return `saveModel()`: `file`, invisibly. `loadModel()`: the model.
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' m <- S4Vectors::metadata(scBasset(sim$counts, sim$sequences,
#'     profile = prof, epochs = 1, threads = 1, verbose = FALSE))$scBasset
#' f <- tempfile(fileext = ".h5")
#' saveModel(m, f)
#' loadModel(f)
#' @export
saveModel <- function(model, file) {
    stopifnot(methods::is(model, "scBassetModel"))
    .check_string(file, "file")
    cfg <- model@config
    h <- as.list(model@history)
    names(h) <- paste0("history_", names(h))
    x <- c(list(format = "epione-scBasset-1",
        config_names = names(cfg), config_values = as.numeric(unlist(cfg)),
        theta = model@theta, state = model@state, cells = model@cells,
        batches = model@batches, cellBatch = model@cellBatch,
        dinuc = as.numeric(model@dinuc), test = unname(model@test)), h)
    .core(epi_cnn_h5_write(path.expand(file), x))
    invisible(file)
}

#' @rdname saveModel
#' @export
loadModel <- function(file) {
    file <- .check_file(file, "file")
    hn <- paste0("history_", c("epoch", "loss", "val_loss", "val_auroc",
                               "seconds"))
    x <- .core(epi_cnn_h5_read(file, c("format", "config_names",
        "config_values", "theta", "state", "cells", "batches", "cellBatch",
        "dinuc", "test", hn)))
    cfg <- as.list(x$config_values)
    names(cfg) <- x$config_names
    ints <- setdiff(names(cfg), "dropout")
    cfg[ints] <- lapply(cfg[ints], as.integer)
    h <- as.data.frame(x[hn])
    names(h) <- sub("^history_", "", hn)
    h$epoch <- as.integer(h$epoch)
    methods::new("scBassetModel", config = cfg, theta = x$theta,
        state = x$state, cells = x$cells, batches = x$batches,
        cellBatch = x$cellBatch, dinuc = matrix(x$dinuc, 5L, 4L),
        history = h, test = c(loss = x$test[1L], auroc = x$test[2L]))
}

#' Training curve of an scBasset model
#'
#' @param model An [scBassetModel-class] (or the SingleCellExperiment
#'   [scBasset()] returned).
#' @return A ggplot: training loss, validation loss and validation AUROC by
#'   epoch.
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' sce <- scBasset(sim$counts, sim$sequences, profile = prof, epochs = 3,
#'                 threads = 1, verbose = FALSE)
#' plotTrainingCurve(sce)
#' @importFrom ggplot2 .data
#' @export
plotTrainingCurve <- function(model) {
    if (methods::is(model, "SummarizedExperiment")) {
        model <- S4Vectors::metadata(model)$scBasset
    }
    h <- model@history
    long <- data.frame(epoch = rep(h$epoch, 3L),
        value = c(h$loss, h$val_loss, h$val_auroc),
        metric = rep(c("loss", "loss", "validation AUROC"), each = nrow(h)),
        set = rep(c("train", "validation", "validation"), each = nrow(h)))
    ggplot2::ggplot(long, ggplot2::aes(.data$epoch, .data$value,
                                       colour = .data$set)) +
        ggplot2::geom_line() + ggplot2::geom_point(size = 0.8) +
        ggplot2::facet_wrap(~metric, scales = "free_y") +
        ggplot2::labs(x = "epoch", y = NULL, colour = NULL) +
        ggplot2::theme_bw()
}

# ---- motif injection -----------------------------------------------------

# A named list of 4 x width probability matrices (rows A, C, G, T) from a
# matrix, a list of matrices, or TFBSTools PFMatrix(List)/PWMatrix(List).
.as_pfm_list <- function(motifs) {
    if (is.matrix(motifs)) motifs <- list(motif = motifs)
    if (methods::is(motifs, "XMatrix")) motifs <- list(motifs)
    out <- lapply(seq_along(motifs), function(k) .as_pfm(motifs[[k]]))
    nm <- names(motifs)
    if (is.null(nm)) {
        nm <- vapply(seq_along(motifs), function(k) {
            m <- motifs[[k]]
            if (methods::is(m, "XMatrix")) m@ID else paste0("motif", k)
        }, "")
    }
    if (!length(out)) .abort("'motifs' is empty; give at least one motif.")
    stats::setNames(out, nm)
}

.as_pfm <- function(m) {
    pwm <- methods::is(m, "PWMatrix")
    if (methods::is(m, "XMatrix")) m <- m@profileMatrix
    m <- as.matrix(m)
    if (!is.numeric(m) || nrow(m) != 4L || anyNA(m) || !ncol(m)) {
        .abort("each motif must be a 4-row numeric matrix (A, C, G, T) ",
               "or a TFBSTools PFMatrix/PWMatrix.")
    }
    if (!is.null(rownames(m)) && all(c("A", "C", "G", "T") %in% rownames(m))) {
        m <- m[c("A", "C", "G", "T"), , drop = FALSE]
    }
    if (pwm) m <- 0.25 * 2^m   # log2 odds against a uniform background
    if (any(m < 0)) .abort("motif matrices must be counts or probabilities (>= 0).")
    sweep(m, 2L, pmax(colSums(m), 1e-12), "/")
}

#' TF activity per cell by motif injection (scBasset)
#'
#' scBasset's motif-injection score (calico/scBasset `motif_score`):
#' `nSeqs` background sequences are drawn from the dinucleotide composition
#' of the training peaks (a first-order Markov chain, like the
#' dinucleotide-shuffled peaks of the original); for each motif, an
#' instance sampled from its matrix is inserted at the centre of every
#' background sequence. Each cell's activity is the mean depth-normalised
#' predicted accessibility (sigmoid of region embedding x cell weights,
#' intercept left out) with the motif minus without it; `z` standardises
#' it across cells (population SD, as numpy).
#'
#' @param model An [scBassetModel-class] or the SingleCellExperiment
#'   [scBasset()] returned.
#' @param motifs Named list of 4 x width matrices (rows A, C, G, T; counts
#'   or probabilities), or a TFBSTools PFMatrixList / PWMatrixList.
#' @param nSeqs Number of background sequences.
#' @param seed Seed of the background and motif instances; `NULL` draws one
#'   from R's RNG.
#' @param threads Number of C++ threads.
#' @return A SummarizedExperiment (motifs x cells) with assays
#'   `deviations` (activity difference) and `z` (per-motif z-scores across
#'   cells), shaped like chromVAR's [computeDeviations()] output.
#' @examples
#' sim <- simulateScBasset(n_peaks = 120, n_cells = 24, seq_len = 96)
#' prof <- list(seq_len = 96, stem_filters = 8, tower_start = 8,
#'              tower_end = 12, tower_repeat = 5, conv1x1 = 8, bottleneck = 4)
#' sce <- scBasset(sim$counts, sim$sequences, profile = prof, epochs = 1,
#'                 threads = 1, verbose = FALSE)
#' act <- motifActivity(sce, sim$motifs, nSeqs = 50, threads = 1)
#' SummarizedExperiment::assay(act, "z")[, 1:4]
#' @export
motifActivity <- function(model, motifs, nSeqs = 1000, seed = NULL,
                          threads = getOption("epione.threads", 2L)) {
    if (methods::is(model, "SummarizedExperiment")) {
        model <- S4Vectors::metadata(model)$scBasset
    }
    stopifnot(methods::is(model, "scBassetModel"))
    pfms <- .as_pfm_list(motifs)
    nSeqs <- as.integer(.check_number(nSeqs, "nSeqs", 1, 1e6, TRUE))
    threads <- .check_threads(threads)
    if (is.null(seed)) seed <- .draw_seed()
    L <- model@config$seq_len
    net <- .scbasset_net(model)
    w <- t(.scbasset_weights(model, "cell_embedding"))
    score <- function(codes) {
        colMeans(stats::plogis(epi_cnn_embed(net, codes, threads) %*% w))
    }
    bg <- score(epi_cnn_background(model@dinuc, nSeqs, L, seed,
                                   matrix(0, 0L, 0L)))
    dev <- t(vapply(pfms, function(m) {
        score(epi_cnn_background(model@dinuc, nSeqs, L, seed, m)) - bg
    }, numeric(length(bg))))
    if (length(pfms) == 1L) dev <- matrix(dev, 1L)
    z <- (dev - rowMeans(dev)) / sqrt(rowMeans((dev - rowMeans(dev))^2))
    dimnames(dev) <- dimnames(z) <- list(names(pfms), model@cells)
    SummarizedExperiment::SummarizedExperiment(
        assays = list(deviations = dev, z = z),
        rowData = S4Vectors::DataFrame(name = names(pfms),
                                       width = vapply(pfms, ncol, 1L)))
}

#' Simulated scATAC-seq peaks whose accessibility is driven by planted motifs
#'
#' Random sequences; each of `length(motifs)` cell groups opens the peaks
#' that carry its group's motif (an instance sampled from the matrix,
#' planted with probability `p_plant` per peak at a random position). The
#' probability of a peak being accessible in a cell is
#' `plogis(depth_cell + effect * has_motif_of_group)`. Uses R's RNG: call
#' `set.seed()` first for a reproducible simulation.
#'
#' @param n_peaks,n_cells,seq_len Sizes.
#' @param motifs Named list of 4 x width probability matrices; by default
#'   three made-up motifs (`AP1like`, `ETSlike`, `EBOXlike`).
#' @param p_plant Probability that a peak carries a given motif.
#' @param copies Instances of the motif planted in a peak that carries it
#'   (more copies make long sequences easier to learn).
#' @param effect Log-odds increase of accessibility for a group's motif.
#' @param depth Mean and SD of the per-cell log-odds intercept.
#' @return A list: `counts` (peaks x cells binary dgCMatrix), `sequences`
#'   (character), `group` (factor per cell, levels = motif names),
#'   `motifs`, `planted` (peaks x motifs logical matrix).
#' @examples
#' sim <- simulateScBasset(n_peaks = 50, n_cells = 10, seq_len = 96)
#' table(sim$group)
#' @export
simulateScBasset <- function(n_peaks = 2000, n_cells = 90, seq_len = 1344,
                             motifs = NULL, p_plant = 0.3, effect = 3,
                             depth = c(-2.5, 0.3), copies = 1L) {
    if (is.null(motifs)) motifs <- .sim_motifs()
    k <- length(motifs)
    base <- matrix(sample(c("A", "C", "G", "T"), n_peaks * seq_len, TRUE),
                   seq_len, n_peaks)
    planted <- matrix(stats::runif(n_peaks * k) < p_plant, n_peaks, k,
                      dimnames = list(NULL, names(motifs)))
    for (j in seq_len(k)) {
        m <- motifs[[j]]
        for (p in rep(which(planted[, j]), each = copies)) {
            at <- sample.int(seq_len - ncol(m) + 1L, 1L) - 1L
            base[at + seq_len(ncol(m)), p] <- apply(m, 2L, function(pr)
                sample(c("A", "C", "G", "T"), 1L, prob = pr))
        }
    }
    group <- factor(rep_len(names(motifs), n_cells), levels = names(motifs))
    eta <- stats::rnorm(n_cells, depth[1L], depth[2L])
    lin <- matrix(eta, n_peaks, n_cells, byrow = TRUE) +
        effect * planted[, as.integer(group), drop = FALSE]
    hit <- which(matrix(stats::runif(n_peaks * n_cells), n_peaks) <
                     stats::plogis(lin), arr.ind = TRUE)
    counts <- Matrix::sparseMatrix(hit[, 1L], hit[, 2L], x = 1,
        dims = c(n_peaks, n_cells),
        dimnames = list(paste0("peak", seq_len(n_peaks)),
                        paste0("cell", seq_len(n_cells))))
    list(counts = counts, sequences = apply(base, 2L, paste, collapse = ""),
         group = group, motifs = motifs, planted = planted)
}

.sim_motifs <- function() {
    pfm <- function(s) {
        ch <- strsplit(s, "")[[1L]]
        m <- vapply(ch, function(b) ifelse(c("A", "C", "G", "T") == b, 0.94, 0.02),
                    numeric(4))
        dimnames(m) <- list(c("A", "C", "G", "T"), NULL)
        m
    }
    list(AP1like = pfm("ATGAGTCAT"), ETSlike = pfm("ACCGGAAGT"),
         EBOXlike = pfm("GCCACGTGG"))
}
