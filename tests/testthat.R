library(testthat)
library(epione)

test_check("epione")
