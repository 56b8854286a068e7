# Genome access shared by capabilities that need DNA: an indexed FASTA
# (path or Rsamtools::FaFile) read by HTSlib faidx in C++, or sequences
# held in R (DNAStringSet, BSgenome). Internal.

# Path of an indexed FASTA given as a path or an Rsamtools::FaFile; NULL if
# `genome` is neither. Errors name the fix when the index is missing.
.fasta_path <- function(genome) {
    path <- if (is.character(genome) && length(genome) == 1L) {
        genome
    } else if (methods::is(genome, "FaFile")) {
        genome$path
    } else {
        return(NULL)
    }
    path <- .check_file(path, "genome")
    gz <- grepl("\\.b?gz$", path)
    if (!file.exists(paste0(path, ".fai")) ||
        (gz && !file.exists(paste0(path, ".gzi")))) {
        .abort("the FASTA file '", path, "' has no index ('", path,
               if (gz) ".fai'/'.gzi" else ".fai",
               "'); build it with Rsamtools::indexFa('", path,
               "') or `samtools faidx ", path, "`", kind = "file")
    }
    path
}

# Named sequence lengths of an indexed FASTA file.
.fasta_lengths <- function(path) .core(epi_fasta_lengths(path, FALSE))

# 0-based starts and ends of a GRanges (strand ignored).
.range_table <- function(ranges) {
    list(chrom = as.character(GenomicRanges::seqnames(ranges)),
         start0 = as.numeric(GenomicRanges::start(ranges)) - 1,
         end = as.numeric(GenomicRanges::end(ranges)))
}

# Plus-strand bases of `ranges` as a character vector, from an indexed
# FASTA (path/FaFile), a DNAStringSet of whole chromosomes or a BSgenome.
.genome_sequences <- function(genome, ranges) {
    path <- .fasta_path(genome)
    if (!is.null(path)) {
        r <- .range_table(ranges)
        return(.core(epi_fasta_fetch(path, r$chrom, r$start0, r$end)))
    }
    if (methods::is(genome, "DNAStringSet")) {
        r <- .range_table(ranges)
        .check_in_genome(r, stats::setNames(as.numeric(
            IRanges::width(genome)), names(genome)))
        chrom <- genome[r$chrom]
        return(as.character(IRanges::narrow(chrom, start = r$start0 + 1,
                                            end = r$end)))
    }
    if (methods::is(genome, "BSgenome")) {
        GenomicRanges::strand(ranges) <- "+"
        return(as.character(Biostrings::getSeq(genome, ranges)))
    }
    .abort("'genome' must be an indexed FASTA path, an Rsamtools::FaFile, ",
           "a named DNAStringSet of chromosomes or a BSgenome, not a ",
           class(genome)[1L], ".")
}

.check_in_genome <- function(r, lengths) {
    absent <- setdiff(unique(r$chrom), names(lengths))
    if (length(absent)) {
        .abort("sequence '", absent[1L], "' is absent from the genome (it has ",
               paste(utils::head(names(lengths), 5L), collapse = ", "),
               if (length(lengths) > 5L) ", ...", "); check the genome build ",
               "and chromosome naming (e.g. 'chr1' vs '1')")
    }
    bad <- which(r$start0 < 0 | r$end > lengths[r$chrom])
    if (length(bad)) {
        .abort("range ", bad[1L], " (", r$chrom[bad[1L]], ":",
               r$start0[bad[1L]] + 1, "-", r$end[bad[1L]], ") lies outside ",
               "the sequence, which has length ", lengths[r$chrom[bad[1L]]],
               "; drop or trim() such ranges first")
    }
    invisible(TRUE)
}

# A, C, G, T counts over a whole genome (motifmatchr's bg = "genome").
.genome_base_counts <- function(genome, threads) {
    path <- .fasta_path(genome)
    if (!is.null(path)) return(.core(epi_fasta_base_counts(path, threads)))
    if (methods::is(genome, "DNAStringSet")) {
        return(.core(epi_motifs_count_strings(as.character(genome), threads)))
    }
    if (methods::is(genome, "BSgenome")) {
        counts <- vapply(GenomicRanges::seqnames(genome), function(chr) {
            Biostrings::letterFrequency(genome[[chr]], c("A", "C", "G", "T"))
        }, numeric(4))
        return(rowSums(counts))
    }
    .abort("bg = \"genome\" needs 'genome': an indexed FASTA path, an ",
           "Rsamtools::FaFile, a DNAStringSet or a BSgenome.")
}
