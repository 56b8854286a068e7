// Small HTSlib tabix helpers shared by the fragment, coverage and footprint
// readers.
#pragma once
#include <htslib/tbx.h>
#include <cstdlib>
#include <string>
#include <vector>

namespace epione {

// Sequence names of a loaded tabix index, in index order.
inline std::vector<std::string> tabix_seqnames(tbx_t* idx) {
    int n = 0;
    const char** names = tbx_seqnames(idx, &n);
    std::vector<std::string> out(names, names + n);
    std::free(names);
    return out;
}

}  // namespace epione
