# Gene and genome annotations in ArchR's shape (SimpleList of GRanges), built
# from GRanges or from BED-like tables, without TxDb/OrgDb/BSgenome.

#' Gene annotation for createArrowFiles (ArchR's geneAnnotation)
#'
#' Builds the `SimpleList(genes, exons, TSS)` that ArchR's
#' `createGeneAnnotation()` returns, from GRanges or from BED files
#' (0-based starts, as in `shared/data/annotation/`; columns chrom, start,
#' end, name, score, strand).
#'
#' @param genes GRanges of genes with a `symbol` column, or a BED file path
#'   whose 4th column is the gene symbol.
#' @param TSS GRanges of transcription start sites (1 bp) or a BED path;
#'   default: the strand-aware start of every gene.
#' @param exons Optional GRanges or BED path (not used by createArrowFiles).
#' @return A `SimpleList` with GRanges `genes` (column `symbol`), `exons`
#'   and `TSS`.
#' @seealso [ArchR::createGeneAnnotation()], [createGenomeAnnotation()]
#' @examples
#' ga <- createGeneAnnotation(
#'     genes = system.file("extdata", "hg19test2_genes.bed.gz",
#'                         package = "epione"),
#'     TSS = system.file("extdata", "hg19test2_TSS.bed.gz", package = "epione"))
#' ga$genes
#' @export
createGeneAnnotation <- function(genes, TSS = NULL, exons = NULL) {
    genes <- .as_granges(genes, "genes", name_col = "symbol")
    if (is.null(genes$symbol)) {
        .abort("'genes' needs a 'symbol' column (gene names).")
    }
    TSS <- if (is.null(TSS)) {
        GenomicRanges::resize(genes, 1L, "start")
    } else {
        .as_granges(TSS, "TSS", name_col = "tx_name")
    }
    exons <- if (is.null(exons)) GenomicRanges::GRanges() else
        .as_granges(exons, "exons", name_col = "symbol")
    S4Vectors::SimpleList(genes = genes, exons = exons, TSS = TSS)
}

#' Genome annotation for createArrowFiles (ArchR's genomeAnnotation)
#'
#' @param chromSizes GRanges of whole chromosomes (`1..length`), a named
#'   numeric vector of lengths, or a two-column `.chrom.sizes` file.
#' @param blacklist Optional GRanges or BED path of regions to ignore.
#' @param genome A label (ArchR stores the BSgenome name; epione does not
#'   need a BSgenome).
#' @return A `SimpleList(genome, chromSizes, blacklist)`.
#' @seealso [ArchR::createGenomeAnnotation()]
#' @examples
#' createGenomeAnnotation(
#'     chromSizes = system.file("extdata", "hg19test2.chrom.sizes",
#'                              package = "epione"))
#' @export
createGenomeAnnotation <- function(chromSizes, blacklist = NULL,
                                   genome = "nullGenome") {
    if (is.character(chromSizes) && length(chromSizes) == 1L) {
        tab <- utils::read.table(.check_file(chromSizes, "chromSizes"),
                                 sep = "\t", comment.char = "#")
        chromSizes <- stats::setNames(as.numeric(tab[[2]]), tab[[1]])
    }
    if (is.numeric(chromSizes)) {
        if (is.null(names(chromSizes)) || any(chromSizes < 1)) {
            .abort("'chromSizes' must be named positive chromosome lengths.")
        }
        chromSizes <- GenomicRanges::GRanges(names(chromSizes),
            IRanges::IRanges(1L, as.integer(chromSizes)))
    }
    if (!methods::is(chromSizes, "GRanges") || !length(chromSizes)) {
        .abort("'chromSizes' must be a GRanges, named lengths or a ",
               ".chrom.sizes file.")
    }
    blacklist <- if (is.null(blacklist)) GenomicRanges::GRanges() else
        .as_granges(blacklist, "blacklist")
    S4Vectors::SimpleList(genome = genome, chromSizes = chromSizes,
                          blacklist = blacklist)
}

# GRanges from a GRanges or a BED file (0-based start -> 1-based).
.as_granges <- function(x, what, name_col = "name") {
    if (methods::is(x, "GRanges")) return(x)
    if (!(is.character(x) && length(x) == 1L)) {
        .abort("'", what, "' must be a GRanges or the path of a BED file.")
    }
    tab <- utils::read.table(.check_file(x, what), sep = "\t",
        comment.char = "#", quote = "", stringsAsFactors = FALSE)
    if (ncol(tab) < 3L) {
        .abort("'", what, "' file needs at least 3 columns (chrom, start, ",
               "end).", kind = "format")
    }
    strand <- if (ncol(tab) >= 6L) tab[[6]] else "*"
    gr <- GenomicRanges::GRanges(tab[[1]],
        IRanges::IRanges(tab[[2]] + 1L, tab[[3]]), strand = strand)
    if (ncol(tab) >= 4L) S4Vectors::mcols(gr)[[name_col]] <- tab[[4]]
    gr
}

# The ArchR annotation objects: SimpleList with genes/TSS or chromSizes.
.check_gene_annotation <- function(x) {
    ok <- (methods::is(x, "List") || is.list(x)) &&
        all(c("genes", "TSS") %in% names(x)) &&
        methods::is(x$genes, "GRanges") && methods::is(x$TSS, "GRanges")
    if (!ok) {
        .abort("'geneAnnotation' must be a list with GRanges 'genes' and ",
               "'TSS'; build one with createGeneAnnotation().")
    }
    if (is.null(x$genes$symbol)) {
        .abort("geneAnnotation$genes needs a 'symbol' column.")
    }
    x
}

.check_genome_annotation <- function(x) {
    ok <- (methods::is(x, "List") || is.list(x)) &&
        methods::is(x$chromSizes, "GRanges")
    if (!ok) {
        .abort("'genomeAnnotation' must be a list with GRanges ",
               "'chromSizes'; build one with createGenomeAnnotation().")
    }
    if (is.null(x$blacklist)) x$blacklist <- GenomicRanges::GRanges()
    x
}

#' ArchR's hg19test2 annotation bundled with epione
#'
#' Genes, TSSs, chromosome sizes and blacklist of ArchR's `hg19test2` test
#' genome (hg19 chr5 + chr11; ArchR 1.0.3 `geneAnnoHg19test2` /
#' `genomeAnnoHg19test2`, MIT licence), the annotation that goes with the
#' bundled `PBSmall.tsv.gz` fragments.
#'
#' @return A list with `geneAnnotation` and `genomeAnnotation`, ready for
#'   [createArrowFiles()].
#' @examples
#' anno <- exampleAnnotation()
#' anno$genomeAnnotation$chromSizes
#' @export
exampleAnnotation <- function() {
    f <- function(x) system.file("extdata", x, package = "epione",
                                 mustWork = TRUE)
    list(geneAnnotation = createGeneAnnotation(
             genes = f("hg19test2_genes.bed.gz"),
             TSS = f("hg19test2_TSS.bed.gz")),
         genomeAnnotation = createGenomeAnnotation(
             chromSizes = f("hg19test2.chrom.sizes"),
             blacklist = f("hg19test2_blacklist.bed.gz")))
}
