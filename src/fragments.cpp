// Glue for the fragment-file tools (bgzip + tabix index).
#include "glue.h"
#include <epione/fragments.hpp>

// [[Rcpp::export(rng = false)]]
double epi_fragments_index(std::string input, std::string output, bool sort) {
    return static_cast<double>(epione::fragments::bgzip_index(input, output, sort));
}
