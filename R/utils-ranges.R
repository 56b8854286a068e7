# Small GenomicRanges helpers shared by several capabilities.

# Widens each range by `upstream` / `downstream` bases relative to its
# strand (unstranded ranges count as +), as ArchR's extendGR does.
.extend_gr <- function(gr, upstream, downstream) {
    minus <- as.logical(GenomicRanges::strand(gr) == "-")
    s <- GenomicRanges::start(gr)
    e <- GenomicRanges::end(gr)
    s2 <- ifelse(minus, s - downstream, s - upstream)
    e2 <- ifelse(minus, e + upstream, e + downstream)
    GenomicRanges::ranges(gr) <- IRanges::IRanges(s2, e2)
    gr
}
