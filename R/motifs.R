# Motif matching: motifmatchr's matchMotifs() with the same arguments,
# defaults and answers (MOODS thresholds and scanner re-implemented in
# inst/include/epione/motifs.hpp), plus motif readers and bundled sets.

#' Find motif matches in sequences or genomic ranges
#'
#' @description Scans both strands of each sequence with every motif, as
#'   motifmatchr 1.29 (MOODS) does, and returns the same objects: hit sets,
#'   counts and positions are identical to motifmatchr's and scores agree to
#'   the last bit (checked against saved motifmatchr output). Motifs are
#'   converted as motifmatchr converts them: a frequency matrix (PFM) goes
#'   through `TFBSTools::toPWM()` (log2 odds, pseudocount 0.8), then every
#'   matrix is re-expressed against the background `bg`; the score threshold
#'   for `p.cutoff` comes from MOODS' dynamic programme over scores rounded
#'   to 1/2000.
#'
#'   MOODS quirks are reproduced on purpose: a motif shorter than `w` whose
#'   hit ends on the last base of a sequence (or before an `N`) is not
#'   reported; a PWM whose columns sum to 1 is scanned unchanged. `N`,
#'   IUPAC codes and `-` split a sequence into separately scanned pieces;
#'   a hit never covers them. Lower-case bases count as upper-case.
#'   With `moods.quirks = FALSE` the first two quirks are fixed: a motif
#'   shorter than `w` is reported wherever it fits, also at the end of a
#'   sequence and in pieces shorter than `w` (results then differ from
#'   motifmatchr's, by those extra hits only).
#'
#' @param pwms Motifs: a TFBSTools `PFMatrixList`, `PWMatrixList`,
#'   `PFMatrix` or `PWMatrix`, a list as returned by [getMotifs()] or
#'   [readMotifs()], or a plain named list of 4-row matrices (rows A, C, G,
#'   T). A matrix with no negative value is a count matrix (PFM); one with
#'   negative values holds log2 or natural-log odds against 0.25 each.
#' @param subject A `DNAStringSet`, a character vector of sequences, a
#'   `GRanges` (with `genome`) or a `RangedSummarizedExperiment` (its row
#'   ranges).
#' @param genome For a `GRanges` subject or `bg = "genome"`: the path of an
#'   indexed FASTA file (plain or bgzip, with `.fai`), an
#'   `Rsamtools::FaFile`, a `DNAStringSet` of named chromosomes or a
#'   `BSgenome`. FASTA files are read by HTSlib in C++, one range at a time.
#' @param out `"matches"`, `"scores"` or `"positions"` (see Value).
#' @param p.cutoff P-value cutoff of a hit (default 5e-05).
#' @param w Window length of MOODS' lookahead filter (default 7, 1 to 12).
#'   It changes which hits are reported only through the quirk above.
#' @param bg Background base frequencies: `"subject"` (those of the
#'   sequences scanned), `"genome"`, `"even"` (0.25 each) or four numbers
#'   for A, C, G, T summing to 1.
#' @param ranges Optional `GRanges`, one per sequence of a sequence
#'   subject, stored as row ranges and used for absolute positions.
#' @param threads Number of C++ threads; results do not depend on it.
#' @param verbose Show a progress bar.
#' @param moods.quirks `TRUE` (default) reproduces motifmatchr/MOODS
#'   exactly, quirks included; `FALSE` also reports the hits of motifs
#'   shorter than `w` that MOODS misses (see Description).
#' @param ... Unused; for methods.
#' @return For `"matches"`, a `SummarizedExperiment` (sequences x motifs)
#'   with the logical sparse (`lgCMatrix`) assay `motifMatches` and colData
#'   column `name`; for `"scores"` also `motifScores` (best hit score, at
#'   least the threshold) and `motifCounts` (hits on both strands), both
#'   `dgCMatrix`. Row ranges are the `GRanges` subject or `ranges`. For
#'   `"positions"`, a `GRangesList` (one `GRanges` per motif with `strand`
#'   and `score`) when ranges are known, else a list (per motif) of
#'   `IRangesList` (per sequence) with metadata columns `strand` and
#'   `score`, as motifmatchr returns.
#' @seealso `motifmatchr::matchMotifs()`, [getMotifs()], [readMotifs()]
#' @examples
#' motifs <- getMotifs("JASPAR2020")[c("MA0139.1", "MA0002.2")]
#' seqs <- c(ctcf = "TTGGCCACCAGGGGGCGCTAGTT", none = "ACGTACGTACGTACGTAAAA")
#' m <- matchMotifs(motifs, seqs, bg = "even", threads = 1)
#' as.matrix(motifMatches(m))
#' matchMotifs(motifs, seqs, bg = "even", out = "positions")[[1]]
#' @importFrom methods setGeneric setMethod
#' @importClassesFrom SummarizedExperiment RangedSummarizedExperiment
#' @importClassesFrom Matrix lgCMatrix dgCMatrix
#' @export
setGeneric("matchMotifs", function(pwms, subject, ...) standardGeneric("matchMotifs"))

#' @rdname matchMotifs
#' @export
setMethod("matchMotifs", "ANY", function(pwms, subject, genome = NULL,
        bg = c("subject", "genome", "even"),
        out = c("matches", "scores", "positions"), p.cutoff = 5e-05, w = 7,
        ranges = NULL, threads = getOption("epione.threads", 2L),
        verbose = FALSE, moods.quirks = TRUE) {
    out <- match.arg(out)
    .check_flag(moods.quirks, "moods.quirks")
    .check_number(p.cutoff, "p.cutoff", min = 0, max = 1)
    .check_number(w, "w", min = 1, max = 12, whole = TRUE)
    threads <- .check_threads(threads)
    motifs <- .as_motifs(pwms)
    subj <- .as_subject(subject, genome, ranges)
    bgv <- .motif_bg(bg, subj, genome, threads)
    mats <- .core(epi_motifs_convert(motifs$mats, motifs$kind, motifs$prior,
                                     bgv, 0.8))
    res <- .core(if (is.null(subj$path)) {
        epi_motifs_scan_strings(mats, subj$seqs, bgv, p.cutoff, w,
                                moods.quirks, out, threads, verbose)
    } else {
        r <- subj$table
        epi_motifs_scan_fasta(mats, subj$path, r$chrom, r$start0, r$end, bgv,
                              p.cutoff, w, moods.quirks, out, threads,
                              verbose)
    })
    if (out == "positions") return(.motif_positions(res, motifs, mats, subj))
    .motif_se(res, motifs, subj$ranges, out)
})

#' @rdname matchMotifs
#' @export
setMethod("matchMotifs", c(subject = "RangedSummarizedExperiment"),
    function(pwms, subject, ...) {
        matchMotifs(pwms, SummarizedExperiment::rowRanges(subject), ...)
    })

# --------------------------------------------------------------- motifs in
# Normalises motif input to list(mats, kind ("pfm"/"pwm"), prior (4 x n),
# ids (colData row names), names (TF names)).
.as_motifs <- function(pwms) {
    if (methods::is(pwms, "PFMatrix") || methods::is(pwms, "PWMatrix")) {
        pwms <- list(pwms)
    } else if (methods::is(pwms, "XMatrixList")) {
        pwms <- as.list(pwms)
    } else if (is.matrix(pwms)) {
        pwms <- list(motif1 = pwms)
    }
    if (!is.list(pwms) || length(pwms) == 0L) {
        .abort("'pwms' must be a non-empty list of motifs (PFMatrixList, ",
               "PWMatrixList, getMotifs() or a list of 4-row matrices), not ",
               if (is.list(pwms)) "an empty list" else class(pwms)[1L], ".")
    }
    ids <- names(pwms)
    if (is.null(ids)) ids <- rep("", length(pwms))
    parts <- Map(.as_one_motif, pwms, ids, seq_along(pwms))
    list(mats = stats::setNames(lapply(parts, `[[`, "mat"),
                                vapply(parts, `[[`, "", "id")),
         kind = vapply(parts, `[[`, "", "kind", USE.NAMES = FALSE),
         prior = vapply(parts, `[[`, numeric(4), "prior"),
         ids = if (is.null(names(pwms))) NULL else names(pwms),
         names = vapply(parts, `[[`, "", "name", USE.NAMES = FALSE))
}

.as_one_motif <- function(x, id, k) {
    if (methods::is(x, "PFMatrix") || methods::is(x, "PWMatrix")) {
        return(list(mat = .acgt_rows(x@profileMatrix, x@ID),
                    # PWMatrix extends PFMatrix in TFBSTools: test it first
                    kind = if (methods::is(x, "PWMatrix")) "pwm" else "pfm",
                    prior = .acgt_prior(x@bg, x@ID), id = x@ID,
                    name = x@name))
    }
    if (!is.matrix(x) || !is.numeric(x)) {
        .abort("motif ", k, " is a ", class(x)[1L], "; each motif must be a ",
               "numeric 4-row matrix (rows A, C, G, T) or a TFBSTools matrix.")
    }
    if (!nzchar(id)) id <- paste0("motif", k)
    nm <- attr(x, "name")
    m <- .acgt_rows(x, id)
    list(mat = m, kind = if (any(m < 0, na.rm = TRUE)) "pwm" else "pfm",
         prior = rep(0.25, 4), id = id,
         name = if (is.null(nm)) id else as.character(nm))
}

.acgt_rows <- function(m, id) {
    rn <- rownames(m)
    if (nrow(m) != 4L && ncol(m) == 4L &&
        identical(toupper(colnames(m)), c("A", "C", "G", "T"))) {
        m <- t(m)
        rn <- rownames(m)
    }
    if (nrow(m) != 4L) {
        .abort("motif '", id, "' has ", nrow(m), " rows; a motif matrix ",
               "needs 4 rows (A, C, G, T).")
    }
    if (!is.null(rn)) {
        rn <- toupper(rn)
        if (!setequal(rn, c("A", "C", "G", "T"))) {
            .abort("motif '", id, "' has rows ", paste(rn, collapse = ","),
                   "; name them A, C, G, T.")
        }
        m <- m[match(c("A", "C", "G", "T"), rn), , drop = FALSE]
    }
    storage.mode(m) <- "double"
    m
}

.acgt_prior <- function(bg, id) {
    if (!is.null(names(bg))) bg <- bg[c("A", "C", "G", "T")]
    if (length(bg) != 4L || anyNA(bg) || any(bg <= 0)) {
        .abort("motif '", id, "' has an invalid background ",
               deparse1(bg), "; it needs 4 positive values.")
    }
    as.numeric(bg)
}

# --------------------------------------------------------------- subject in
# list(seqs = character or NULL, path/table for FASTA ranges, ranges).
.as_subject <- function(subject, genome, ranges) {
    if (methods::is(subject, "GRanges")) {
        if (is.null(genome)) {
            .abort("a GRanges subject needs 'genome': an indexed FASTA path, ",
                   "an Rsamtools::FaFile, a DNAStringSet or a BSgenome.")
        }
        GenomicRanges::strand(subject) <- "+"  # as motifmatchr
        path <- .fasta_path(genome)
        if (!is.null(path)) {
            return(list(path = path, table = .range_table(subject),
                        ranges = subject))
        }
        return(list(seqs = .genome_sequences(genome, subject),
                    ranges = subject))
    }
    seqs <- if (is.character(subject)) {
        subject
    } else if (methods::is(subject, "XStringSet") ||
               methods::is(subject, "XString")) {
        as.character(subject)
    } else {
        .abort("'subject' must be a DNAStringSet, a character vector, a ",
               "GRanges (with 'genome') or a RangedSummarizedExperiment, ",
               "not a ", class(subject)[1L], ".")
    }
    if (!length(seqs)) .abort("'subject' holds no sequences.")
    if (!is.null(ranges) && length(ranges) != length(seqs)) {
        .abort("'ranges' has ", length(ranges), " ranges for ",
               length(seqs), " sequences; give one range per sequence.")
    }
    list(seqs = unname(seqs), ranges = ranges)
}

.motif_bg <- function(bg, subj, genome, threads) {
    if (is.numeric(bg)) {
        if (length(bg) != 4L || anyNA(bg) || any(bg <= 0) ||
            abs(sum(bg) - 1) > 1e-6) {
            .abort("numeric 'bg' must be 4 positive frequencies (A, C, G, T) ",
                   "summing to 1, not ", deparse1(bg), ".")
        }
        if (!is.null(names(bg))) bg <- bg[c("A", "C", "G", "T")]
        return(as.numeric(bg))
    }
    bg <- match.arg(bg, c("subject", "genome", "even"))
    counts <- switch(bg,
        even = return(rep(0.25, 4)),
        genome = .genome_base_counts(genome, threads),
        subject = .core(if (is.null(subj$path)) {
            epi_motifs_count_strings(subj$seqs, threads)
        } else {
            r <- subj$table
            epi_motifs_count_fasta(subj$path, r$chrom, r$start0, r$end, threads)
        }))
    if (sum(counts) == 0) {
        .abort("the sequences contain no A, C, G or T, so bg = \"", bg,
               "\" is undefined; use bg = \"even\".")
    }
    as.numeric(counts / sum(counts))
}

# --------------------------------------------------------------- results out
.motif_coldata <- function(motifs) {
    S4Vectors::DataFrame(name = motifs$names, row.names = motifs$ids)
}

.motif_se <- function(res, motifs, ranges, out) {
    keep <- if (out == "matches") "motifMatches" else
        c("motifScores", "motifMatches", "motifCounts")
    assays <- res[keep]
    args <- list(assays = assays, colData = .motif_coldata(motifs))
    if (!is.null(ranges)) args$rowRanges <- ranges
    do.call(SummarizedExperiment::SummarizedExperiment, args)
}

.motif_positions <- function(res, motifs, mats, subj) {
    widths <- vapply(mats, ncol, 1L)
    n <- length(mats)
    f <- factor(res$motif + 1L, levels = seq_len(n))
    ranges <- subj$ranges
    if (!is.null(ranges)) {
        s <- res$seq + 1L
        gr <- GenomicRanges::GRanges(GenomicRanges::seqnames(ranges)[s],
            IRanges::IRanges(start = GenomicRanges::start(ranges)[s] + res$pos,
                             width = widths[res$motif + 1L]),
            strand = res$strand, score = res$score)
        out <- GenomicRanges::GRangesList(unname(split(gr, f)))
        names(out) <- motifs$ids
        return(out)
    }
    # Hits come ordered by motif then sequence: one partition of all of
    # them by (motif, sequence), then a slice per motif, avoids split()
    # (which subsets once per group).
    n_seq <- length(subj$seqs)
    ir <- IRanges::IRanges(start = res$pos + 1, width = widths[res$motif + 1L])
    S4Vectors::mcols(ir) <- S4Vectors::DataFrame(strand = res$strand,
                                                 score = res$score)
    cell <- tabulate(res$motif * n_seq + res$seq + 1L, nbins = n * n_seq)
    all <- IRanges::relist(ir, IRanges::PartitioningByEnd(cumsum(cell)))
    out <- lapply(seq_len(n), function(j) all[(j - 1L) * n_seq + seq_len(n_seq)])
    names(out) <- motifs$ids
    out
}

#' Accessors for matchMotifs() results
#'
#' @param object The `SummarizedExperiment` returned by [matchMotifs()].
#' @return The `motifMatches` (`lgCMatrix`), `motifScores` or
#'   `motifCounts` (`dgCMatrix`) assay, sequences x motifs.
#' @seealso `motifmatchr::motifMatches()`
#' @examples
#' m <- matchMotifs(getMotifs("JASPAR2020")[1:3], "ACGTGTGGTTTACGA",
#'                  bg = "even", out = "scores", threads = 1)
#' motifMatches(m); motifScores(m); motifCounts(m)
#' @export
motifMatches <- function(object) .motif_assay(object, "motifMatches")

#' @rdname motifMatches
#' @export
motifScores <- function(object) .motif_assay(object, "motifScores")

#' @rdname motifMatches
#' @export
motifCounts <- function(object) .motif_assay(object, "motifCounts")

.motif_assay <- function(object, what) {
    if (!methods::is(object, "SummarizedExperiment") ||
        !what %in% SummarizedExperiment::assayNames(object)) {
        .abort("no '", what, "' assay: use matchMotifs(..., out = ",
               if (what == "motifMatches") "\"matches\"" else "\"scores\"",
               ").")
    }
    SummarizedExperiment::assay(object, what)
}

# --------------------------------------------------------------- motif files
#' Read motifs from JASPAR, MEME, HOMER or TRANSFAC text
#'
#' @param file Path of the motif file (may be gzip, bzip2 or xz compressed).
#' @param format `"jaspar"` (`>ID name` then rows `A [ ... ]`, brackets
#'   optional; also reads tab-separated log-odds rows), `"meme"` (MEME
#'   version 4 letter-probability matrices), `"homer"` (`>consensus name
#'   ...` then one row of A, C, G, T probabilities per position) or
#'   `"transfac"` (`ID`/`NA`/`P0` records ending in `//`).
#' @return A named list (names = motif IDs) of numeric 4-row matrices
#'   (rows A, C, G, T; one column per position), each with attribute `name`
#'   (the TF name). JASPAR and TRANSFAC counts are kept as counts.
#'   Probabilities (MEME, HOMER) are turned into counts by multiplying by
#'   the motif's `nsites` (MEME; 100 when absent and for HOMER), so that
#'   [matchMotifs()] treats them as frequency matrices with TFBSTools'
#'   pseudocount of 0.8.
#' @seealso [getMotifs()], `TFBSTools::readJASPARMatrix()`
#' @examples
#' f <- system.file("extdata", "motifs",
#'     "JASPAR2020_CORE_vertebrates_non-redundant_pfms_jaspar.txt.xz",
#'     package = "epione")
#' m <- readMotifs(f, "jaspar")
#' length(m); m[["MA0139.1"]]
#' @export
readMotifs <- function(file, format = c("jaspar", "meme", "homer", "transfac")) {
    file <- .check_file(file, "file")
    format <- match.arg(format)
    lines <- trimws(readLines(file, warn = FALSE))
    lines <- lines[nzchar(lines)]
    out <- switch(format, jaspar = .read_jaspar(lines),
                  meme = .read_meme(lines), homer = .read_homer(lines),
                  transfac = .read_transfac(lines))
    if (!length(out)) {
        .abort("no ", format, " motifs found in '", file, "'; check 'format'.",
               kind = "format")
    }
    out
}

.motif_record <- function(rows, id, name, file_part) {
    m <- do.call(rbind, rows)
    if (is.null(m) || anyNA(m) || nrow(m) != 4L) {
        .abort("motif '", id, "' is malformed (", file_part, ").",
               kind = "format")
    }
    dimnames(m) <- list(c("A", "C", "G", "T"), NULL)
    attr(m, "name") <- name
    m
}

.numbers <- function(x) {
    x <- gsub("[][]", " ", x)
    suppressWarnings(as.numeric(strsplit(trimws(x), "[[:space:]]+")[[1L]]))
}

.read_jaspar <- function(lines) {
    head <- grep("^>", lines)
    out <- lapply(seq_along(head), function(k) {
        f <- strsplit(sub("^>", "", lines[head[k]]), "[[:space:]]+")[[1L]]
        body <- lines[seq_len(4L) + head[k]]
        rows <- lapply(sub("^[ACGTacgt][[:space:]]*", "", body), .numbers)
        if (length(unique(lengths(rows))) != 1L) rows <- list()
        .motif_record(rows, f[1L], if (length(f) > 1L) f[2L] else f[1L],
                      "expected 4 rows A, C, G, T of equal length")
    })
    stats::setNames(out, sub("^>([^[:space:]]+).*", "\\1", lines[head]))
}

.prob_record <- function(body, id, name, nsites) {
    rows <- lapply(body, .numbers)
    if (!length(rows) || any(lengths(rows) != 4L)) rows <- list(NA)
    p <- do.call(rbind, rows)
    .motif_record(lapply(seq_len(4L), function(b) p[, b] * nsites), id,
                  name, "expected rows of 4 probabilities")
}

.read_meme <- function(lines) {
    head <- grep("^MOTIF[[:space:]]", lines)
    ends <- c(head[-1L] - 1L, length(lines))
    out <- lapply(seq_along(head), function(k) {
        f <- strsplit(lines[head[k]], "[[:space:]]+")[[1L]]
        block <- lines[head[k]:ends[k]]
        lp <- grep("^letter-probability", block)
        if (!length(lp)) return(.motif_record(list(), f[2L], "", "no matrix"))
        w <- as.integer(sub(".*w=[[:space:]]*([0-9]+).*", "\\1", block[lp]))
        ns <- if (grepl("nsites=", block[lp])) as.numeric(sub(
            ".*nsites=[[:space:]]*([0-9.eE+-]+).*", "\\1", block[lp])) else 100
        .prob_record(block[lp + seq_len(w)], f[2L],
                     if (length(f) > 2L) f[3L] else f[2L], ns)
    })
    stats::setNames(out, sub("^MOTIF[[:space:]]+([^[:space:]]+).*", "\\1",
                             lines[head]))
}

.read_homer <- function(lines) {
    head <- grep("^>", lines)
    ends <- c(head[-1L] - 1L, length(lines))
    ids <- character(length(head))
    out <- lapply(seq_along(head), function(k) {
        f <- strsplit(sub("^>", "", lines[head[k]]), "\t")[[1L]]
        ids[k] <<- if (length(f) > 1L) f[2L] else f[1L]
        body <- if (ends[k] > head[k]) lines[(head[k] + 1L):ends[k]] else
            character()
        .prob_record(body, ids[k], ids[k], 100)
    })
    stats::setNames(out, ids)
}

.read_transfac <- function(lines) {
    recs <- split(lines, cumsum(c(TRUE, utils::head(lines, -1L) == "//")))
    recs <- Filter(function(r) any(grepl("^P[0O][[:space:]]", r)), recs)
    out <- lapply(recs, function(r) {
        tag <- function(t) {
            x <- sub(paste0("^", t, "[[:space:]]+"), "", grep(paste0("^", t,
                "[[:space:]]"), r, value = TRUE))
            if (length(x)) x[1L] else NA_character_
        }
        id <- tag("ID")
        if (is.na(id)) id <- tag("AC")
        name <- tag("NA")
        p0 <- grep("^P[0O][[:space:]]", r)
        cols <- toupper(strsplit(r[p0], "[[:space:]]+")[[1L]][-1L])
        body <- r[-seq_len(p0)]
        body <- body[grepl("^[0-9]+[[:space:]]", body)]
        vals <- do.call(rbind, lapply(body, function(x) .numbers(x)[-1L][
            seq_along(cols)]))
        rows <- lapply(c("A", "C", "G", "T"), function(b) vals[, match(b, cols)])
        m <- .motif_record(rows, id, if (is.na(name)) id else name,
                           "expected P0 columns A C G T")
        structure(m, id = id)
    })
    out <- unname(out)
    ids <- vapply(out, function(m) attr(m, "id"), "")
    out <- lapply(out, function(m) `attr<-`(m, "id", NULL))
    stats::setNames(out, ids)
}

# --------------------------------------------------------------- bundled sets
.motif_cache <- new.env(parent = emptyenv())

#' Bundled motif collections
#'
#' @description `"JASPAR2020"`: JASPAR 2020 CORE vertebrates non-redundant,
#'   746 position frequency matrices (counts; CC BY 4.0, Fornes et al.
#'   2020). `"cisbp"`: chromVARmotifs' `human_pwms_v2`, 870 CIS-BP-derived
#'   human PWMs (natural-log odds against 0.25; chromVARmotifs is MIT, the
#'   underlying CIS-BP matrices fall under CIS-BP's terms, Weirauch et al.
#'   2014). Read from text in `inst/extdata/motifs/` on first use and
#'   cached. See `inst/extdata/motifs/SOURCE.md`.
#' @param collection `"JASPAR2020"` or `"cisbp"`.
#' @return A named list (names = motif IDs, e.g. `"MA0139.1"` or
#'   `"ENSG00000102974_LINE..._CTCF_D_N1"`) of 4-row matrices (rows A, C, G,
#'   T) with attribute `name` (TF symbol), accepted by [matchMotifs()].
#' @seealso [readMotifs()], [matchMotifs()]; `JASPAR2020::JASPAR2020`,
#'   `chromVARmotifs::human_pwms_v2`
#' @examples
#' j <- getMotifs("JASPAR2020")
#' length(j); attr(j[["MA0139.1"]], "name")
#' @export
getMotifs <- function(collection = c("JASPAR2020", "cisbp")) {
    collection <- match.arg(collection)
    if (is.null(.motif_cache[[collection]])) {
        file <- switch(collection,
            JASPAR2020 = "JASPAR2020_CORE_vertebrates_non-redundant_pfms_jaspar.txt.xz",
            cisbp = "chromVARmotifs_human_pwms_v2_logodds.txt.xz")
        path <- system.file("extdata", "motifs", file, package = "epione")
        lines <- trimws(readLines(path, warn = FALSE))
        lines <- lines[nzchar(lines) & !startsWith(lines, "#")]
        .motif_cache[[collection]] <- .read_jaspar(lines)
    }
    .motif_cache[[collection]]
}

# --------------------------------------------------------------- ArchR project
#' Add motif annotations to a project's peak set (ArchR's addMotifAnnotations)
#'
#' Finds the positions of a motif set in every peak of the project's peak
#' set with [matchMotifs()] (`out = "positions"`, `p.cutoff = cutOff`,
#' `w = width`, background = the peaks' own base composition), and stores,
#' as ArchR 1.0.3 does, a peaks x motifs match matrix (a peak matches a
#' motif when one of its hits overlaps the peak, strand ignored) and the
#' hit positions under `annoName`. Motifs without any hit are dropped
#' (ArchR does the same). Motif names follow ArchR: the TF symbol made
#' syntactic plus `_<index>` (e.g. `CEBPB_1`); the original IDs are kept
#' in `motifSummary`.
#'
#' Motif sets: `"cisbp"` is chromVARmotifs' `human_pwms_v2` (ArchR's
#' default for human); `"cisbptest"` is its six-motif subset that ArchR's
#' PBSmall test project uses; `"JASPAR2020"` is epione's bundled JASPAR 2020
#' CORE vertebrates non-redundant set (ArchR queries the JASPAR2020
#' database by `species` and `collection` instead, which gives a different
#' list); `motifPWMs` takes any motif list [matchMotifs()] accepts.
#'
#' @param ArchRProj An [EpioneProject-class] with a peak set
#'   ([addPeakSet()]).
#' @param motifSet `"cisbp"` (default, as ArchR), `"cisbptest"` or
#'   `"JASPAR2020"`; ignored when `motifPWMs` is given.
#' @param annoName Name of the annotation (default `"Motif"`).
#' @param species,collection,version Accepted for ArchR compatibility:
#'   only human (`"Homo sapiens"`), `version = 2` CIS-BP motifs and the
#'   bundled JASPAR collection are available.
#' @param motifPWMs Optional motifs (a `PWMatrixList`, `PFMatrixList` or
#'   named list of 4-row matrices) instead of `motifSet`.
#' @param cutOff P-value cut-off of a hit (ArchR's default 5e-05).
#' @param width MOODS window width `w` (default 7).
#' @param force Replace an existing annotation named `annoName`.
#' @param genome The genome the peaks are on: an indexed FASTA path, an
#'   `Rsamtools::FaFile`, a `BSgenome` or a `DNAStringSet`. Default: the
#'   project's `genomeAnnotation$genome` when it is one of those or names
#'   an installed BSgenome package or an existing FASTA file.
#' @param threads Number of C++ threads; results do not depend on it.
#' @param verbose Print the steps.
#' @param ... `name` is accepted as an alias of `annoName`.
#' @return The project, with `peakAnnotation[[annoName]]` holding `Name`,
#'   the paths `Matches` (an RDS of a `RangedSummarizedExperiment` peaks x
#'   motifs with logical sparse assay `matches`) and `Positions` (an RDS of
#'   a `GRangesList` of hits), `motifs` and `motifSummary`; read them with
#'   [getMatches()], [getPositions()], [getPeakAnnotation()].
#' @seealso [ArchR::addMotifAnnotations()], [matchMotifs()],
#'   [addDeviationsMatrix()]
#' @examples
#' proj <- methods::new("EpioneProject", projectMetadata =
#'     S4Vectors::SimpleList(outputDirectory = tempdir()))
#' set.seed(1)
#' chr <- paste(sample(c("A", "C", "G", "T"), 5000, TRUE), collapse = "")
#' genome <- c(chrT = chr)
#' peaks <- GenomicRanges::GRanges("chrT",
#'     IRanges::IRanges(seq(1, 4501, by = 500), width = 400))
#' proj <- addPeakSet(proj, peaks)
#' proj <- addMotifAnnotations(proj, motifSet = "cisbptest",
#'     genome = Biostrings::DNAStringSet(genome), cutOff = 1e-3,
#'     threads = 1, verbose = FALSE)
#' getMatches(proj)
#' getPositions(proj)
#' @export
addMotifAnnotations <- function(ArchRProj, motifSet = "cisbp",
        annoName = "Motif", species = NULL, collection = "CORE",
        motifPWMs = NULL, cutOff = 5e-05, width = 7, version = 2,
        force = FALSE, genome = NULL,
        threads = getOption("epione.threads", 2L), verbose = TRUE, ...) {
    .check_project(ArchRProj)
    dots <- list(...)
    if (!is.null(dots$name)) annoName <- dots$name
    .check_string(annoName, "annoName")
    .check_flag(force, "force")
    .check_flag(verbose, "verbose")
    if (annoName %in% names(ArchRProj@peakAnnotation) && !force) {
        .abort("the project already has a peak annotation '", annoName,
               "'; use force = TRUE to replace it.", kind = "input")
    }
    peaks <- .project_peaks(ArchRProj)
    set <- .archr_motif_set(motifSet, motifPWMs, species, version)
    genome <- .project_genome(ArchRProj, genome)
    if (verbose) message("Finding motif positions (", length(set$motifs),
                         " motifs, ", length(peaks), " peaks)")
    pos <- matchMotifs(set$motifs, peaks, genome = genome, out = "positions",
                       p.cutoff = cutOff, w = width, threads = threads)
    names(pos) <- names(set$motifs)
    n_hits <- lengths(pos)
    if (all(n_hits == 0L)) {
        .abort("no motif hit in any peak; check the peak set and that ",
               "'genome' is the genome of the peaks.", kind = "input")
    }
    keep <- n_hits > 0L
    if (verbose && any(!keep)) message("Dropping motifs without a hit: ",
        paste(names(pos)[!keep], collapse = ", "))
    pos <- pos[keep]
    matches <- .positions_to_matches(peaks, pos)
    summary <- set$summary
    if (!is.null(summary)) summary <- summary[names(pos), , drop = FALSE]
    .add_peak_annotation(ArchRProj, annoName, matches, pos,
        extra = list(motifs = set$motifs[keep], motifSummary = summary,
                     date = Sys.Date()), force = force)
}

# ArchR's match matrix: peaks x motifs, TRUE where a hit overlaps the peak
# (findOverlaps, strand ignored, so a hit also counts for an overlapping
# neighbour peak, as in ArchR).
.positions_to_matches <- function(peaks, pos) {
    all <- unlist(pos, use.names = FALSE)
    motif <- rep(seq_along(pos), lengths(pos))
    ov <- GenomicRanges::findOverlaps(peaks, all, ignore.strand = TRUE)
    ij <- unique(cbind(S4Vectors::queryHits(ov),
                       motif[S4Vectors::subjectHits(ov)]))
    m <- Matrix::sparseMatrix(i = ij[, 1L], j = ij[, 2L],
        x = rep(TRUE, nrow(ij)), dims = c(length(peaks), length(pos)),
        dimnames = list(NULL, names(pos)))
    SummarizedExperiment::SummarizedExperiment(
        assays = list(matches = m), rowRanges = peaks)
}

# Motifs of an ArchR motifSet, renamed as ArchR's .summarizeChromVARMotifs
# does: syntactic TF symbol (for CIS-BP IDs the token after "LINE...") and
# "_<index>".
.archr_motif_set <- function(motifSet, motifPWMs, species, version) {
    if (!is.null(motifPWMs)) {
        motifs <- .as_motifs(motifPWMs)
        mats <- Map(function(m, nm) structure(m, name = nm), motifs$mats,
                    motifs$names)
        names(mats) <- if (is.null(motifs$ids)) names(motifs$mats) else
            motifs$ids
        return(list(motifs = mats, summary = NULL))
    }
    .check_string(motifSet, "motifSet")
    if (!is.null(species) && !grepl("homo sapiens", tolower(species))) {
        .abort("only human motifs are bundled (species = 'Homo sapiens'); ",
               "pass other motifs with motifPWMs =.", kind = "input")
    }
    key <- tolower(motifSet)
    motifs <- switch(key,
        cisbp = , cisbptest = {
            if (!identical(as.numeric(version), 2)) {
                .abort("only CIS-BP version 2 motifs (chromVARmotifs ",
                       "human_pwms_v2) are bundled; use version = 2.")
            }
            m <- getMotifs("cisbp")
            if (key == "cisbptest") m <- m[grep(
                "PAX5|CEBPA|CEBPB|IRF4|ETS1|EOMES", names(m))]
            m
        },
        jaspar2020 = getMotifs("JASPAR2020"),
        .abort("motifSet '", motifSet, "' is not available; use \"cisbp\", ",
               "\"cisbptest\", \"JASPAR2020\" or motifPWMs =.", kind = "input"))
    ids <- names(motifs)
    tf <- vapply(seq_along(motifs), function(k) {
        nm <- make.names(attr(motifs[[k]], "name"))
        if (grepl("LINE", nm)) {
            parts <- strsplit(ids[k], "_", fixed = TRUE)[[1L]]
            nm <- parts[grep("LINE", parts)[1L] + 1L]
        }
        sub("\\.$", "", nm)
    }, "")
    names(motifs) <- paste0(tf, "_", seq_along(motifs))
    summary <- S4Vectors::DataFrame(name = tf, ID = ids, strand = "+",
                                    row.names = names(motifs))
    list(motifs = motifs, summary = summary)
}

.project_peaks <- function(ArchRProj) {
    .check_project(ArchRProj)
    ps <- ArchRProj@peakSet
    if (is.null(ps) || !length(ps)) {
        .abort("the project has no peak set; add one with addPeakSet() ",
               "(and a PeakMatrix with addPeakMatrix()).", kind = "input")
    }
    ps
}

# The genome for sequence steps: the argument, else the project's
# genomeAnnotation$genome when it is a sequence object, an existing FASTA
# path or the name of an installed BSgenome package (ArchR evaluates that
# name). NULL when required = FALSE and none is found.
.project_genome <- function(ArchRProj, genome = NULL, required = TRUE) {
    if (!is.null(genome)) return(genome)
    g <- ArchRProj@genomeAnnotation$genome
    if (!is.null(g) && !is.character(g)) return(g)
    if (is.character(g) && length(g) == 1L && !is.na(g)) {
        if (file.exists(g)) return(normalizePath(g))
        if (requireNamespace(g, quietly = TRUE)) {
            return(getExportedValue(g, g))
        }
    }
    if (!required) return(NULL)
    .abort("no genome sequence: pass genome = (an indexed FASTA path, an ",
           "Rsamtools::FaFile, a BSgenome or a DNAStringSet); the project's ",
           "genomeAnnotation$genome ('", if (is.null(g)) "" else g[1L],
           "') is neither a FASTA file nor an installed BSgenome package.",
           kind = "input")
}
