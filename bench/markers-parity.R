# One-off parity check: epione's marker tests, bias matching and marker
# heatmap against ArchR 1.0.3's own internal functions on the same inputs
# (ArchR's presto-based Wilcoxon is not runnable here: presto is not
# installed; the Wilcoxon is checked against stats::wilcox.test in the tests).
#
#   R_LIBS=/work/reflib:.lib Rscript bench/markers-parity.R
#
# Result 2026-11-29: matching cells and backgrounds identical for all
# groups; t-test p max rel diff 7e-14, means identical, variances 7e-16;
# binomial p and Log2FC identical; plotMarkerHeatmap(returnMatrix = TRUE)
# identical (plain and transposed, two cut-offs).
suppressMessages({library(ArchR); library(epione)})
set.seed(1)  # the inputs; ArchR matching below re-seeds as it does itself
m <- Matrix::rsparsematrix(400, 300, 0.25)
m@x <- round(abs(m@x) * 3) + 1
m[1:20, 1:100] <- m[1:20, 1:100] + 4
colnames(m) <- paste0("c", 1:300)
cd <- data.frame(Clusters = rep(c("C1","C2","C3"), each = 100),
                 nFrags = Matrix::colSums(m) * 10, TSSEnrichment = runif(300, 4, 20),
                 row.names = colnames(m))
nf <- epione:::.marker_norm(m, cd, NULL, 1e4)
# ArchR's matching
set.seed(1)  # the inputs; ArchR matching below re-seeds as it does itself
mo_a <- ArchR:::.matchBiasCellGroups(input = S4Vectors::DataFrame(cd), groups = cd$Clusters,
    useGroups = NULL, bgdGroups = NULL, bias = c("TSSEnrichment", "log10(nFrags)"),
    k = 100, n = 500, bufferRatio = 0.8, closest = FALSE, logFile = {lf <- tempfile(); file.create(lf); lf})
mo_e <- withr::with_seed(1, epione:::.match_bias_groups(cd, cd$Clusters, NULL, NULL,
    c("TSSEnrichment", "log10(nFrags)"), 100, 500, 0.8))
for (g in c("C1","C2","C3")) {
  ca <- mo_a[[2]]$cells[mo_a[[1]][[g]]$cells]; ba <- mo_a[[2]]$cells[mo_a[[1]][[g]]$bgd]
  ce <- colnames(m)[mo_e[[g]]$cells]; be <- colnames(m)[mo_e[[g]]$bgd]
  cat(g, "matching identical cells:", identical(ca, ce), " bgd:", identical(ba, be), "\n")
  fg <- match(ca, colnames(m)); bg <- match(ba, colnames(m))
  mat1 <- Matrix::t(Matrix::t(m[, fg]) * nf[fg]); mat2 <- Matrix::t(Matrix::t(m[, bg]) * nf[bg])
  ta <- ArchR:::.sparseMatTTest(mat1, mat2)
  te <- epione:::.marker_test("ttest", m, Matrix::t(m), fg, bg, nf, 2L)
  rel <- function(a, b) max(abs(a - b) / pmax(abs(b), 1e-300), na.rm = TRUE)
  cat("  ttest max rel diff pval", rel(te$pval, ta$pval), " mean1", rel(te$mean1, ta$mean1),
      " var1", rel(te$var1, ta$var1), " var2", rel(te$var2, ta$var2), " log2FC", max(abs(te$log2FC - ta$log2FC)),
      " NA same:", identical(is.na(te$pval), is.na(ta$pval)), "\n")
  mb <- m; mb@x[] <- 1
  ba_ <- ArchR:::.sparseMatBinomTest(mb[, fg], mb[, bg])
  be_ <- epione:::.marker_test("binomial", mb, Matrix::t(mb), fg, bg, NULL, 2L)
  cat("  binomial max rel diff pval", rel(be_$pval, ba_$pval), " log2FC", max(abs(be_$log2FC - ba_$log2FC)), "\n")
}
se <- SummarizedExperiment::SummarizedExperiment(list(counts = m), colData = S4Vectors::DataFrame(cd))
SummarizedExperiment::rowData(se)$seqnames <- "chr1"; SummarizedExperiment::rowData(se)$name <- paste0("f", 1:400)
mk <- getMarkerFeatures(se, verbose = FALSE)
S4Vectors::metadata(mk)$Params <- list(useMatrix = "PeakMatrix")
lf <- tempfile(); file.create(lf)
for (tr in c(FALSE, TRUE)) {
  ha <- suppressMessages(ArchR::plotMarkerHeatmap(mk, returnMatrix = TRUE, transpose = tr, logFile = lf))
  he <- plotMarkerHeatmap(mk, returnMatrix = TRUE, transpose = tr)
  cat("heatmap transpose =", tr, " dims", dim(ha), dim(he), " identical:", identical(ha, he), " max diff", max(abs(ha - he)), "\n")
}
ha <- suppressMessages(ArchR::plotMarkerHeatmap(mk, cutOff = "Pval <= 0.2", returnMatrix = TRUE, logFile = lf))
he <- plotMarkerHeatmap(mk, cutOff = "Pval <= 0.2", returnMatrix = TRUE)
cat("heatmap Pval<=0.2 dims", dim(ha), " identical:", identical(ha, he), "\n")
