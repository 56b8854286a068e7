// Non-owning views over contiguous memory. The core never owns R memory:
// the glue lends vectors as spans; index_t is 64-bit for anything that
// grows with the data (nnz, fragments, cells x peaks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "error.hpp"

namespace epione {

using index_t = std::int64_t;

template <class T>
struct Span {
    T* ptr = nullptr;
    index_t len = 0;
    Span() = default;
    Span(T* p, index_t n) : ptr(p), len(n) {}
    T& operator[](index_t k) const { return ptr[k]; }
    index_t size() const { return len; }
    T* begin() const { return ptr; }
    T* end() const { return ptr + len; }
    Span subspan(index_t from, index_t n) const { return Span(ptr + from, n); }
};

// Column-major dense matrix view (R's layout).
template <class T>
struct DenseView {
    T* ptr = nullptr;
    index_t nrow = 0, ncol = 0;
    T& operator()(index_t r, index_t c) const { return ptr[r + c * nrow]; }
    Span<T> col(index_t c) const { return Span<T>(ptr + c * nrow, nrow); }
};

template <class S>
void require_size(const S& s, index_t n, const char* name) {
    if (static_cast<index_t>(s.size()) != n)
        throw input_error(std::string(name) + " has length " +
                          std::to_string(s.size()) + " but " +
                          std::to_string(n) + " was expected");
}

}  // namespace epione
