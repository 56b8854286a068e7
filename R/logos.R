# Sequence logos in plain ggplot2: each letter is a polygon in a unit box,
# scaled to its stack height (no ggseqlogo dependency).

#' Sequence logo of a motif
#'
#' @description Information-content (`"ic"`, bits: height of position =
#' `2 - entropy`, letters sized by probability) or probability (`"prob"`)
#' logo of a position frequency matrix, letters stacked smallest at the
#' bottom.
#' @param motif A 4 x L matrix with rows A, C, G, T (counts, probabilities,
#'   or natural-log odds against a uniform background when it has negative
#'   values, as chromVARmotifs PWMs), or a TFBSTools `PFMatrix`/`PWMatrix`
#'   (its `Matrix()`).
#' @param type `"ic"` (default) or `"prob"`.
#' @param title Plot title; default the motif's name when it has one.
#' @return A ggplot.
#' @examples
#' pfm <- rbind(A = c(8, 1, 0, 0, 5), C = c(1, 8, 0, 9, 2),
#'              G = c(0, 0, 10, 1, 2), T = c(1, 1, 0, 0, 1))
#' plotMotifLogo(pfm)
#' plotMotifLogo(pfm, type = "prob")
#' @export
plotMotifLogo <- function(motif, type = c("ic", "prob"), title = NULL) {
    type <- match.arg(type)
    if (is.null(title) && methods::is(motif, "XMatrix")) title <- motif@name
    p <- .motif_probabilities(motif)
    h <- if (type == "ic") {
        ent <- -colSums(ifelse(p > 0, p * log2(p), 0))
        sweep(p, 2L, 2 - ent, "*")
    } else p
    d <- .logo_polygons(h)
    ggplot2::ggplot(d, ggplot2::aes(.data$x, .data$y, group = .data$id,
                                    fill = .data$letter)) +
        ggplot2::geom_polygon() +
        ggplot2::scale_fill_manual(values = c(A = "#109648", C = "#255C99",
                                              G = "#F7B32B", T = "#D62839",
                                              hole = "white")) +
        ggplot2::scale_x_continuous(breaks = seq_len(ncol(p))) +
        ggplot2::labs(x = "Position", y = if (type == "ic") "Bits" else
            "Probability", title = title, fill = NULL) +
        ggplot2::coord_cartesian(ylim = c(0, if (type == "ic") 2 else 1)) +
        ggplot2::theme_classic(base_size = 10) +
        ggplot2::theme(legend.position = "none")
}

.motif_probabilities <- function(motif) {
    if (methods::is(motif, "XMatrix")) motif <- motif@profileMatrix
    if (!is.matrix(motif) || !is.numeric(motif) || nrow(motif) != 4L ||
        anyNA(motif) || !ncol(motif)) {
        .abort("'motif' must be a 4 x L numeric matrix (rows A, C, G, T) ",
               "or a TFBSTools PFMatrix/PWMatrix.")
    }
    if (!is.null(rownames(motif))) {
        if (!setequal(rownames(motif), c("A", "C", "G", "T")))
            .abort("'motif' rows must be named A, C, G, T.")
        motif <- motif[c("A", "C", "G", "T"), , drop = FALSE]
    }
    if (any(motif < 0)) motif <- exp(motif)   # log-odds vs uniform
    s <- colSums(motif)
    if (any(s <= 0)) .abort("'motif' has a column summing to 0.")
    p <- sweep(motif, 2L, s, "/")
    rownames(p) <- c("A", "C", "G", "T")
    p
}

# Outline of each letter in the unit square (x, y in [0, 1]).
.glyphs <- function() {
    # 5-degree steps include 90 and 270, so rings touch y = 0 and y = 1
    arc <- function(a0, a1, r) {
        t <- seq(a0, a1, by = if (a1 > a0) 5 else -5) * pi / 180
        cbind(0.5 + r * cos(t) * 1, 0.5 + r * sin(t))
    }
    ring <- function(a0, a1) rbind(arc(a0, a1, 0.5), arc(a1, a0, 0.3))
    list(
        A = list(rbind(c(0, 0), c(0.4, 1), c(0.6, 1), c(1, 0), c(0.78, 0),
                       c(0.69, 0.28), c(0.31, 0.28), c(0.22, 0)),
                 rbind(c(0.36, 0.42), c(0.64, 0.42), c(0.5, 0.82))),
        C = list(ring(40, 320)),
        G = list(ring(40, 360),
                 rbind(c(0.55, 0.42), c(1, 0.42), c(1, 0.55), c(0.55, 0.55))),
        T = list(rbind(c(0, 1), c(1, 1), c(1, 0.82), c(0.59, 0.82),
                       c(0.59, 0), c(0.41, 0), c(0.41, 0.82), c(0, 0.82))))
}

# One polygon row set per letter piece, stacked by increasing height.
.logo_polygons <- function(h) {
    g <- .glyphs()
    out <- list()
    id <- 0L
    for (j in seq_len(ncol(h))) {
        base <- 0
        for (b in names(sort(h[, j]))) {
            ht <- h[b, j]
            if (ht <= 0) next
            for (piece in g[[b]]) {
                id <- id + 1L
                hole <- b == "A" && nrow(piece) == 3L
                out[[id]] <- data.frame(x = j - 0.45 + 0.9 * piece[, 1L],
                    y = base + ht * piece[, 2L], id = id,
                    letter = if (hole) "hole" else b)
            }
            base <- base + ht
        }
    }
    d <- do.call(rbind, out)
    d$letter <- factor(d$letter, levels = c("A", "C", "G", "T", "hole"))
    d
}
