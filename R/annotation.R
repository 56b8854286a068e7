# Peak annotation: nearest gene and TSS, ArchR's peakType and finer genomic
# classes. The nearest-point and point-in-interval searches run in the C++
# core (inst/include/epione/annotation.hpp) by binary search.

#' Annotate peaks with their nearest gene, nearest TSS and genomic class
#'
#' @description Each peak is represented by one point, its centre
#' (`GenomicRanges::resize(peaks, 1, "center")`, as ArchR does) or, with
#' `anchor = "summit"`, the absolute position in `mcols(peaks)$summit`.
#' Adds the columns ArchR's `addReproduciblePeakSet()` writes
#' (`distToGeneStart`, `nearestGene`, `peakType`, `distToTSS`, `nearestTSS`;
#' computed as ArchR 1.0.3's `.fastAnnoPeaks()`, including its choice among
#' equally near genes) plus `nearestGeneId`, `nearestTSSGene` and a finer
#' class `type`.
#'
#' Differences from ArchR, on purpose: `distToTSS` is **signed** and
#' strand-aware (negative = upstream of the TSS on the TSS's strand; `*`
#' counts as `+`); its absolute value equals ArchR's unsigned `distToTSS`,
#' which is GenomicRanges' gap width `max(|summit - TSS| - 1, 0)`.
#'
#' `type`, in order of precedence: `"promoter"` (`distToTSS` inside
#' `promoter`), `"UTR"` (in an element of `geneAnnotation$UTRs`, only when
#' given), `"exonic"` (in an exon), `"first-intron"` (in a gene, between its
#' 5'-most merged exon and the next one), `"intronic"` (in a gene), `"genic"`
#' (in a gene when no exons are given), `"proximal"` (`|distToTSS| <=
#' proximal`), `"distal-intergenic"`.
#'
#' @param peaks A `GRanges`, or a `RangedSummarizedExperiment` whose
#'   `rowRanges` are annotated. Order is kept; peaks need not be sorted.
#' @param geneAnnotation An ArchR-style list (`list`, `SimpleList` or
#'   `GRangesList`) with `genes` (columns `symbol`, optional `gene_id`),
#'   optional `exons`, optional `TSS` (column `tx_name` or `symbol`) and
#'   optional `UTRs`; or a `GRanges` of genes (TSS = strand-aware gene start).
#' @param promoter Length-2 signed window around the TSS for
#'   `type == "promoter"`, default `c(-2000, 2000)`.
#' @param proximal Largest `|distToTSS|` for `type == "proximal"`.
#' @param promoterRegion ArchR's upstream/downstream extension of gene starts
#'   used for `peakType == "Promoter"` (ArchR default `c(2000, 100)`).
#' @param anchor `"center"` (default) or `"summit"` (uses
#'   `mcols(peaks)$summit`, an absolute 1-based position inside the peak).
#' @param threads Number of C++ threads; results do not depend on it.
#' @param ... Arguments of the methods (above).
#' @return `peaks` with the columns above added to `mcols` (or to
#'   `rowData` for a SummarizedExperiment). Peaks on chromosomes absent from
#'   the annotation get `NA` distances and genes, `peakType = "Distal"` and
#'   `type = "distal-intergenic"`, with a warning.
#' @seealso ArchR's `addReproduciblePeakSet()`,
#'   [GenomicRanges::distanceToNearest()]
#' @examples
#' genes <- GenomicRanges::GRanges("chr1",
#'     IRanges::IRanges(c(1000, 20000), width = 5000),
#'     strand = c("+", "-"), symbol = c("GENE1", "GENE2"))
#' peaks <- GenomicRanges::GRanges("chr1",
#'     IRanges::IRanges(c(500, 3000, 40000), width = 200))
#' annotatePeaks(peaks, genes, threads = 1)
#' @export
setGeneric("annotatePeaks",
    function(peaks, geneAnnotation, ...) standardGeneric("annotatePeaks"))

#' @rdname annotatePeaks
#' @export
setMethod("annotatePeaks", "GRanges", function(peaks, geneAnnotation,
        promoter = c(-2000, 2000), proximal = 10000,
        promoterRegion = c(2000, 100), anchor = c("center", "summit"),
        threads = getOption("epione.threads", 2L)) {
    anno <- .as_gene_annotation(geneAnnotation)
    .check_window(promoter, "promoter")
    .check_number(proximal, "proximal", min = 0)
    .check_window(promoterRegion, "promoterRegion", min = 0)
    pts <- .peak_points(peaks, match.arg(anchor))
    .annotate_points(peaks, pts, anno, promoter, proximal, promoterRegion,
                     .check_threads(threads))
})

#' @rdname annotatePeaks
#' @export
setMethod("annotatePeaks", "RangedSummarizedExperiment",
    function(peaks, geneAnnotation, ...) {
        SummarizedExperiment::rowRanges(peaks) <- annotatePeaks(
            SummarizedExperiment::rowRanges(peaks), geneAnnotation, ...)
        peaks
    })

.check_window <- function(x, name, min = -Inf) {
    if (!(is.numeric(x) && length(x) == 2L && all(is.finite(x)) &&
          all(x >= min) && (min >= 0 || x[1L] <= x[2L]))) {
        .abort("'", name, "' must be two finite numbers",
               if (min >= 0) " >= 0 (upstream, downstream)" else
                   " (from, to) with from <= to",
               ", not ", deparse1(x), ".")
    }
    x
}

# Normalises an ArchR-style annotation list or a GRanges of genes.
.as_gene_annotation <- function(x) {
    if (methods::is(x, "GRanges")) x <- list(genes = x)
    if (methods::is(x, "List") || methods::is(x, "GRangesList"))
        x <- as.list(x)
    if (!is.list(x) || !methods::is(x$genes, "GRanges")) {
        .abort("'geneAnnotation' must be a GRanges of genes or a list with ",
               "a GRanges 'genes' (and optionally 'exons', 'TSS', 'UTRs'), ",
               "e.g. ArchR's geneAnnoHg19 or readRDS() of an ArchR ",
               "geneAnnotation; got ", class(x)[1L], ".")
    }
    g <- x$genes
    if (is.null(g$symbol)) g$symbol <- g$gene_name
    if (is.null(g$symbol)) {
        .abort("'geneAnnotation$genes' needs a 'symbol' (or 'gene_name') ",
               "column; add one with mcols(genes)$symbol <- ...")
    }
    if (!length(g)) .abort("'geneAnnotation$genes' is empty.")
    tss <- x$TSS
    if (is.null(tss)) {
        tss <- GenomicRanges::resize(g, 1L, "start")
        tss$tx_name <- g$symbol
    }
    list(genes = g, exons = x$exons, TSS = tss, UTRs = x$UTRs)
}

.peak_points <- function(peaks, anchor) {
    if (!length(peaks)) .abort("'peaks' is empty; give at least one peak.")
    if (any(BiocGenerics::width(peaks) < 1L)) {
        .abort("'peaks' has ", sum(BiocGenerics::width(peaks) < 1L),
               " zero-width range(s), e.g. #",
               which(BiocGenerics::width(peaks) < 1L)[1L], "; drop them ",
               "with peaks[width(peaks) > 0] or give 1-bp summits.")
    }
    if (anchor == "center") {
        return(BiocGenerics::start(peaks) +
                   (BiocGenerics::width(peaks) - 1L) %/% 2L)
    }
    s <- S4Vectors::mcols(peaks)$summit
    if (is.null(s) || anyNA(s) || any(s < BiocGenerics::start(peaks)) ||
        any(s > BiocGenerics::end(peaks))) {
        .abort("anchor = \"summit\" needs mcols(peaks)$summit, an absolute ",
               "1-based position inside each peak (for a narrowPeak offset ",
               "use start(peaks) + offset); or use anchor = \"center\".")
    }
    as.integer(s)
}

.annotate_points <- function(peaks, pts, anno, promoter, proximal, region,
                             threads) {
    sets <- c(list(peaks), Filter(Negate(is.null), anno))
    lv <- unique(unlist(lapply(sets, .chr_runs)))
    code <- function(gr) .chr_codes(gr, lv)
    qc <- code(peaks)
    inside <- function(gr) .core(epi_annotation_within(qc, pts, code(gr),
        BiocGenerics::start(gr), BiocGenerics::end(gr), length(lv), threads))
    nearest <- function(gr) .core(epi_annotation_nearest(qc, pts, code(gr),
        BiocGenerics::start(GenomicRanges::resize(gr, 1L, "start")),
        length(lv), threads))
    g <- anno$genes
    ng <- nearest(g)
    nt <- nearest(anno$TSS)
    miss <- is.na(nt$hit) | is.na(ng$hit)
    if (any(miss)) {
        .warn(sum(miss), " peak(s) lie on chromosomes without genes/TSSs in ",
              "'geneAnnotation' (e.g. ", lv[qc[miss][1L]], "); their nearest ",
              "gene and distances are NA. Check the genome build and ",
              "seqlevelsStyle() of peaks and annotation.")
    }
    m <- S4Vectors::mcols(peaks)
    m$distToGeneStart <- ng$distance
    m$nearestGene <- unname(as.character(g$symbol))[ng$hit]
    if (!is.null(g$gene_id)) m$nearestGeneId <-
        unname(as.character(g$gene_id))[ng$hit]
    m$peakType <- .archr_peak_type(g, anno$exons, region, inside)
    m$distToTSS <- .signed_distance(anno$TSS, nt, pts)
    tssName <- if (!is.null(anno$TSS$symbol)) anno$TSS$symbol else
        anno$TSS$tx_name
    if (!is.null(tssName))
        m$nearestTSS <- unname(as.character(tssName))[nt$hit]
    m$type <- .fine_type(m$distToTSS, anno, promoter, proximal, inside)
    S4Vectors::mcols(peaks) <- m
    peaks
}

# ArchR .fastAnnoPeaks(): Promoter > Exonic/Intronic (in a gene) > Distal.
.archr_peak_type <- function(genes, exons, region, inside) {
    prom <- .extend_gr(GenomicRanges::resize(genes, 1L, "start"),
                       region[1L], region[2L])
    og <- inside(genes)
    oe <- if (is.null(exons)) rep(FALSE, length(og)) else inside(exons)
    type <- rep("Distal", length(og))
    type[og & oe] <- "Exonic"
    type[og & !oe] <- "Intronic"
    type[inside(prom)] <- "Promoter"
    type
}

.signed_distance <- function(tss, nt, pts) {
    tpos <- BiocGenerics::start(GenomicRanges::resize(tss, 1L, "start"))
    raw <- pts - tpos[nt$hit]
    minus <- as.character(BiocGenerics::strand(tss))[nt$hit] == "-"
    raw[minus %in% TRUE] <- -raw[minus %in% TRUE]
    as.integer(sign(raw) * nt$distance)
}

.fine_type <- function(dist, anno, promoter, proximal, inside) {
    type <- rep("distal-intergenic", length(dist))
    near <- !is.na(dist)
    type[near & abs(dist) <= proximal] <- "proximal"
    ingene <- inside(anno$genes)
    if (is.null(anno$exons)) {
        type[ingene] <- "genic"
    } else {
        type[ingene] <- "intronic"
        intron1 <- .first_introns(anno$exons)
        if (length(intron1)) type[ingene & inside(intron1)] <- "first-intron"
        type[inside(anno$exons)] <- "exonic"
    }
    if (!is.null(anno$UTRs)) type[inside(anno$UTRs)] <- "UTR"
    type[near & dist >= promoter[1L] & dist <= promoter[2L]] <- "promoter"
    type
}

# First intron of each gene: the gap between its 5'-most merged exon and the
# next merged exon (ArchR's exon table has no transcript ids, so introns are
# taken on the union of a gene's exons).
.first_introns <- function(exons) {
    key <- exons$gene_id
    if (is.null(key)) key <- exons$symbol
    if (is.null(key)) return(GenomicRanges::GRanges())
    # one pseudo-chromosome per gene: reduce() then merges within genes
    key <- factor(as.character(key))
    u <- GenomicRanges::reduce(GenomicRanges::GRanges(key,
        IRanges::ranges(exons), strand = BiocGenerics::strand(exons)))
    chr <- as.character(GenomicRanges::seqnames(exons))[match(
        levels(key), as.character(key))]
    sn <- GenomicRanges::seqnames(u)
    n <- S4Vectors::runLength(sn)
    off <- cumsum(n) - n
    gene <- as.character(S4Vectors::runValue(sn))
    ok <- n >= 2L
    off <- off[ok]
    n <- n[ok]
    gene <- gene[ok]
    minus <- as.character(BiocGenerics::strand(u))[off + 1L] == "-"
    i1 <- ifelse(minus, off + n, off + 1L)
    i2 <- ifelse(minus, off + n - 1L, off + 2L)
    s <- BiocGenerics::start(u)
    e <- BiocGenerics::end(u)
    lo <- ifelse(minus, e[i2], e[i1])
    hi <- ifelse(minus, s[i1], s[i2])
    keep <- hi - lo > 1L
    GenomicRanges::GRanges(chr[match(gene, levels(key))][keep],
        IRanges::IRanges(lo[keep] + 1L, hi[keep] - 1L))
}

# Chromosome names in use, and integer codes over levels `lv`, from the Rle
# runs (avoids expanding seqnames of large annotations to strings).
.chr_runs <- function(gr) {
    unique(as.character(S4Vectors::runValue(GenomicRanges::seqnames(gr))))
}
.chr_codes <- function(gr, lv) {
    sn <- GenomicRanges::seqnames(gr)
    rep.int(match(as.character(S4Vectors::runValue(sn)), lv),
            S4Vectors::runLength(sn))
}

#' @importFrom methods setGeneric setMethod is
#' @importClassesFrom GenomicRanges GRanges
#' @importClassesFrom SummarizedExperiment RangedSummarizedExperiment
NULL

#' DNA sequences of peaks
#'
#' @description Reads each peak's reference sequence (reverse-complemented
#' for `-` strand peaks), optionally re-centred to a fixed `width` around the
#' peak centre as the bulk ATAC tutorial does (`seqlen = 200`). An indexed
#' FASTA (path or `Rsamtools::FaFile`, plain or bgzip) is read by HTSlib's
#' faidx in the C++ core, one region at a time, so the genome is never held
#' in memory; a `BSgenome` or `DNAStringSet` is read with Biostrings.
#'
#' @param peaks A `GRanges` or a `RangedSummarizedExperiment` (its
#'   `rowRanges`).
#' @param genome A `BSgenome`, an `Rsamtools::FaFile`, the path of an
#'   indexed FASTA file (`.fai` beside it, and `.gzi` if bgzipped), or a
#'   named `DNAStringSet` of chromosomes.
#' @param width `NULL` (the peaks as given) or one whole number: every peak
#'   is resized to `width` bp about its centre
#'   (`GenomicRanges::resize(peaks, width, fix = "center")`).
#' @param buildIndex For a FASTA file without its index: `FALSE` (default)
#'   stops with an error saying how to build it; `TRUE` lets HTSlib write
#'   the `.fai` (and `.gzi`) beside the file, as `samtools faidx` does.
#' @return A `DNAStringSet`, one sequence per peak in input order, named
#'   `chr:start-end` (1-based, after resizing); soft-masked (lower-case)
#'   bases come back upper case, as from `Biostrings::getSeq()`.
#'   Errors of class `epione_error_file` for a FASTA without index and
#'   `epione_error_input` for a chromosome absent from the genome or a range
#'   past its end.
#' @seealso [annotatePeaks()], `motifmatchr::matchMotifs()`
#' @examples
#' chrom <- Biostrings::DNAStringSet(c(chrT = "ACGTACGTTTGGCCAAACGT"))
#' peaks <- GenomicRanges::GRanges("chrT",
#'     IRanges::IRanges(c(3, 10), width = 6),
#'     strand = c("+", "-"))
#' getPeakSequences(peaks, chrom)
#' getPeakSequences(peaks, chrom, width = 4)
#' fa <- tempfile(fileext = ".fa")
#' Biostrings::writeXStringSet(chrom, fa)
#' getPeakSequences(peaks, fa, buildIndex = TRUE)
#' @export
getPeakSequences <- function(peaks, genome, width = NULL,
                             buildIndex = FALSE) {
    if (methods::is(peaks, "RangedSummarizedExperiment"))
        peaks <- SummarizedExperiment::rowRanges(peaks)
    if (!methods::is(peaks, "GRanges"))
        .abort("'peaks' must be a GRanges or RangedSummarizedExperiment.")
    .check_flag(buildIndex, "buildIndex")
    if (!is.null(width)) {
        .check_number(width, "width", min = 1, whole = TRUE)
        peaks <- GenomicRanges::resize(peaks, as.integer(width),
                                       fix = "center")
    }
    if (buildIndex) .build_fasta_index(genome) else .need_fasta_index(genome)
    if (methods::is(genome, "BSgenome")) {
        si <- GenomeInfoDb::seqinfo(genome)
        .check_in_genome(.range_table(peaks), stats::setNames(
            as.numeric(GenomeInfoDb::seqlengths(si)),
            GenomeInfoDb::seqnames(si)))
    }
    minus <- as.character(BiocGenerics::strand(peaks)) == "-"
    # .genome_sequences reads plus-strand bases: faidx in C++ for a FASTA
    # file, Biostrings for sequences held in R; both check the ranges.
    # evaluated first: an error inside S4 dispatch would lose its class
    chars <- .genome_sequences(genome, peaks)
    seqs <- Biostrings::DNAStringSet(chars)
    if (any(minus))
        seqs[minus] <- Biostrings::reverseComplement(seqs[minus])
    names(seqs) <- paste0(GenomicRanges::seqnames(peaks), ":",
        BiocGenerics::start(peaks), "-", BiocGenerics::end(peaks))
    seqs
}

# Writes a missing .fai (and .gzi) with HTSlib for a FASTA path or FaFile.
.build_fasta_index <- function(genome) {
    path <- if (is.character(genome) && length(genome) == 1L) genome else
        if (methods::is(genome, "FaFile")) genome$path
    if (is.null(path)) return(invisible(NULL))
    .core(epi_fasta_lengths(.check_file(path, "genome"), TRUE))
    invisible(path)
}

.need_fasta_index <- function(genome) {
    path <- if (is.character(genome) && length(genome) == 1L) genome else
        if (methods::is(genome, "FaFile")) genome$path
    if (is.null(path) || !file.exists(path)) return(invisible(NULL))
    tryCatch(.fasta_path(genome), epione_error_file = function(e) {
        .abort(conditionMessage(e), ", or call getPeakSequences(..., ",
               "buildIndex = TRUE)", kind = "file")
    })
}

# A genome as chromosome lengths plus a reader of unstranded ranges; an
# indexed FASTA (path or FaFile) is read by HTSlib faidx (fasta.hpp).
.as_genome <- function(genome) {
    path <- .fasta_path(genome)
    if (!is.null(path)) {
        return(list(lengths = .fasta_lengths(path),
                    get = function(gr) .genome_sequences(path, gr)))
    }
    if (methods::is(genome, "DNAStringSet")) {
        return(list(lengths = stats::setNames(BiocGenerics::width(genome),
                                              names(genome)),
            get = function(gr) .genome_sequences(genome, gr)))
    }
    if (methods::is(genome, "BSgenome")) {
        si <- GenomeInfoDb::seqinfo(genome)
        return(list(lengths = stats::setNames(GenomeInfoDb::seqlengths(si),
                                              GenomeInfoDb::seqnames(si)),
            get = function(gr) .genome_sequences(genome, gr)))
    }
    .abort("'genome' must be a BSgenome, Rsamtools::FaFile, indexed FASTA ",
           "path or named DNAStringSet, not ", class(genome)[1L], ".")
}
