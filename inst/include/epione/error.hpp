// Exceptions raised by the epione core. The R glue maps each kind to an R
// condition of class `epione_error_<kind>`; messages name the value and fix.
#pragma once
#include <stdexcept>
#include <string>

namespace epione {

struct error : std::runtime_error {
    using std::runtime_error::runtime_error;
    virtual const char* kind() const noexcept { return "internal"; }
};
// Bad argument values or shapes (caught at the R boundary in the normal case).
struct input_error : error {
    using error::error;
    const char* kind() const noexcept override { return "input"; }
};
// Malformed files: truncated gzip, unsorted fragments, bad HDF5 layout.
struct format_error : error {
    using error::error;
    const char* kind() const noexcept override { return "format"; }
};
// Missing or unusable files: no index, cannot open.
struct file_error : error {
    using error::error;
    const char* kind() const noexcept override { return "file"; }
};
// Numerical failure: singular matrix, non-convergence that cannot be handled.
struct numeric_error : error {
    using error::error;
    const char* kind() const noexcept override { return "numeric"; }
};

// The core asserts its preconditions with this; cheap, always on.
inline void require(bool ok, const std::string& what) {
    if (!ok) throw input_error(what);
}

}  // namespace epione
