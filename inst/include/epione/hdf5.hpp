// Small RAII layer over the HDF5 C API, enough to write and read ArchR's
// Arrow files: groups, 1-D/2-D numeric and fixed-length string datasets
// (with rhdf5's "rhdf5-NA.OK" attribute), compound "data.frame" datasets and
// their members. No R in here. Files are opened with file locking off so
// that several readers (and R sessions) can share one Arrow file.
#pragma once
#include <hdf5.h>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include "error.hpp"

namespace epione {
namespace h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
public:
    using Closer = herr_t (*)(hid_t);
    Handle() = default;
    Handle(hid_t id, Closer close) : id_(id), close_(close) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
    Handle& operator=(Handle&& o) noexcept {
        reset();
        id_ = o.id_;
        close_ = o.close_;
        o.id_ = -1;
        return *this;
    }
    ~Handle() { reset(); }
    void reset() {
        if (id_ >= 0 && close_) close_(id_);
        id_ = -1;
    }
    hid_t id() const { return id_; }
    operator hid_t() const { return id_; }

private:
    hid_t id_ = -1;
    Closer close_ = nullptr;
};

inline void check(herr_t status, const std::string& what) {
    if (status < 0) throw format_error("HDF5 failed to " + what);
}
inline hid_t checked(hid_t id, const std::string& what) {
    if (id < 0) throw format_error("HDF5 failed to " + what);
    return id;
}

// Silences HDF5's own error printing for the lifetime of the object: every
// failure becomes an epione exception with a message instead.
struct QuietErrors {
    H5E_auto2_t func = nullptr;
    void* data = nullptr;
    QuietErrors() {
        H5Eget_auto2(H5E_DEFAULT, &func, &data);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func, data); }
};

inline Handle no_lock_fapl() {
    Handle fapl(checked(H5Pcreate(H5P_FILE_ACCESS), "create access list"), H5Pclose);
    // Readers must not block each other (and NFS often lacks locks).
    H5Pset_file_locking(fapl, false, true);
    return fapl;
}

inline Handle create_file(const std::string& path) {
    Handle fapl = no_lock_fapl();
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) throw input_error("cannot create HDF5 file '" + path + "'; check that its folder exists and is writable");
    return Handle(f, H5Fclose);
}

inline Handle open_file(const std::string& path, bool write) {
    const unsigned mode = write ? H5F_ACC_RDWR : H5F_ACC_RDONLY;
    Handle fapl = no_lock_fapl();
    hid_t f = H5Fopen(path.c_str(), mode, fapl);
    // The same HDF5 library may already hold the file open in this process
    // (e.g. through rhdf5) with locking on; HDF5 then refuses an open whose
    // locking flag differs, so join that open with the default settings.
    if (f < 0) f = H5Fopen(path.c_str(), mode, H5P_DEFAULT);
    if (f < 0) throw format_error("cannot open '" + path + "' as an HDF5 (Arrow) file; it is missing, truncated or not HDF5");
    return Handle(f, H5Fclose);
}

inline bool exists(hid_t loc, const std::string& path) {
    // Check every prefix: H5Lexists fails on a missing intermediate group.
    std::size_t pos = 0;
    while (true) {
        pos = path.find('/', pos + 1);
        const std::string sub = path.substr(0, pos);
        if (!sub.empty() && H5Lexists(loc, sub.c_str(), H5P_DEFAULT) <= 0) return false;
        if (pos == std::string::npos) return true;
    }
}

// Creates the group and any missing parents.
inline void ensure_group(hid_t loc, const std::string& path) {
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        const std::string sub = path.substr(0, pos);
        if (sub.empty() || H5Lexists(loc, sub.c_str(), H5P_DEFAULT) > 0) continue;
        Handle g(checked(H5Gcreate2(loc, sub.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "create group '" + sub + "'"),
                 H5Gclose);
    }
}

inline void remove(hid_t loc, const std::string& path) {
    if (exists(loc, path)) check(H5Ldelete(loc, path.c_str(), H5P_DEFAULT), "delete '" + path + "'");
}

inline std::vector<std::string> list(hid_t loc, const std::string& group) {
    std::vector<std::string> out;
    Handle g(checked(H5Gopen2(loc, group.c_str(), H5P_DEFAULT), "open group '" + group + "'"), H5Gclose);
    H5G_info_t info;
    check(H5Gget_info(g, &info), "list group '" + group + "'");
    for (hsize_t k = 0; k < info.nlinks; ++k) {
        const ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, k, nullptr, 0, H5P_DEFAULT);
        std::string name(static_cast<std::size_t>(n), '\0');
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, k, &name[0], n + 1, H5P_DEFAULT);
        out.push_back(name);
    }
    return out;
}

// rhdf5 marks every dataset it writes from an R vector with this attribute.
inline void mark_rhdf5(hid_t dset) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(checked(H5Acreate2(dset, "rhdf5-NA.OK", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT),
                        "create attribute"),
                H5Aclose);
    const int one = 1;
    check(H5Awrite(attr, H5T_NATIVE_INT, &one), "write attribute");
}

// Chunked + shuffled + deflated (level 4), chunks of at most 64k elements so
// huge datasets stay under HDF5's 4 GB chunk limit; empty ones contiguous.
inline Handle create_props(const std::vector<hsize_t>& dims, int level) {
    Handle dcpl(checked(H5Pcreate(H5P_DATASET_CREATE), "create property list"), H5Pclose);
    hsize_t total = 1;
    for (hsize_t d : dims) total *= d;
    if (total == 0 || level < 0) return dcpl;
    std::vector<hsize_t> chunk(dims);
    const hsize_t cap = 1 << 16;
    hsize_t last = dims.back();
    chunk.back() = std::min(last, cap);
    for (std::size_t k = 0; k + 1 < chunk.size(); ++k) chunk[k] = dims[k];
    check(H5Pset_chunk(dcpl, static_cast<int>(dims.size()), chunk.data()), "set chunking");
    check(H5Pset_shuffle(dcpl), "set shuffle");
    check(H5Pset_deflate(dcpl, static_cast<unsigned>(level)), "set deflate");
    return dcpl;
}

struct WriteOptions {
    int level = 4;          // deflate level; -1 = contiguous, uncompressed
    bool rhdf5_attr = true; // add "rhdf5-NA.OK" like rhdf5 does
};

// Writes `n_total` values of `mem_type` from `data` with HDF5 dims `dims`.
inline void write_raw(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type,
                      const std::vector<hsize_t>& dims, const void* data,
                      const WriteOptions& opt = {}) {
    const auto slash = name.find_last_of('/');
    if (slash != std::string::npos && slash > 0) ensure_group(file, name.substr(0, slash));
    remove(file, name);
    Handle space(checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                         "create dataspace"),
                 H5Sclose);
    Handle dcpl = create_props(dims, opt.level);
    Handle dset(checked(H5Dcreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "create dataset '" + name + "'"),
                H5Dclose);
    hsize_t total = 1;
    for (hsize_t d : dims) total *= d;
    if (total > 0) check(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write '" + name + "'");
    if (opt.rhdf5_attr) mark_rhdf5(dset);
}

inline void write_doubles(hid_t file, const std::string& name, const double* x,
                          std::vector<hsize_t> dims, const WriteOptions& opt = {}) {
    write_raw(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, dims, x, opt);
}
inline void write_ints(hid_t file, const std::string& name, const int* x,
                       std::vector<hsize_t> dims, const WriteOptions& opt = {}) {
    write_raw(file, name, H5T_STD_I32LE, H5T_NATIVE_INT, dims, x, opt);
}

inline Handle string_type(std::size_t size) {
    Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
    check(H5Tset_size(t, std::max<std::size_t>(size, 1)), "set string size");
    check(H5Tset_strpad(t, H5T_STR_NULLPAD), "set string padding");
    return t;
}

// Fixed-length, null-padded strings; `size` 0 = longest string (rhdf5's
// choice); ArchR's own datasets use longest + 1.
inline void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& s,
                          std::vector<hsize_t> dims, std::size_t size = 0,
                          const WriteOptions& opt = {}) {
    if (size == 0)
        for (const auto& v : s) size = std::max(size, v.size());
    size = std::max<std::size_t>(size, 1);
    std::vector<char> buf(s.size() * size, '\0');
    for (std::size_t k = 0; k < s.size(); ++k)
        std::memcpy(&buf[k * size], s[k].data(), std::min(size, s[k].size()));
    Handle t = string_type(size);
    write_raw(file, name, t, t, dims, buf.data(), opt);
}

// A column of a compound (data.frame) dataset.
struct Column {
    std::string name;
    enum Kind { Int, Double, String } kind;
    std::vector<int> i;
    std::vector<double> d;
    std::vector<std::string> s;
    std::size_t nrow() const {
        return kind == Int ? i.size() : kind == Double ? d.size() : s.size();
    }
};

// rhdf5 writes a data.frame as a compound dataset {nrow}, one member per
// column, strings sized to the longest value (rhdf5 deflates at level 6;
// level 1 + shuffle is ~5x faster on multi-million-row tile tables).
inline void write_compound(hid_t file, const std::string& name, const std::vector<Column>& cols) {
    if (cols.empty()) throw input_error("a data.frame to write needs at least one column");
    const std::size_t n = cols[0].nrow();
    std::vector<std::size_t> size(cols.size()), offset(cols.size());
    std::size_t row = 0;
    for (std::size_t c = 0; c < cols.size(); ++c) {
        if (cols[c].nrow() != n) throw input_error("data.frame columns differ in length");
        if (cols[c].kind == Column::Int) size[c] = sizeof(int);
        else if (cols[c].kind == Column::Double) size[c] = sizeof(double);
        else {
            std::size_t m = 1;
            for (const auto& v : cols[c].s) m = std::max(m, v.size());
            size[c] = m;
        }
        offset[c] = row;
        row += size[c];
    }
    Handle type(H5Tcreate(H5T_COMPOUND, row), H5Tclose);
    std::vector<Handle> strs;
    for (std::size_t c = 0; c < cols.size(); ++c) {
        hid_t member = cols[c].kind == Column::Int ? H5T_STD_I32LE
                       : cols[c].kind == Column::Double ? H5T_IEEE_F64LE : -1;
        if (member < 0) {
            strs.push_back(string_type(size[c]));
            member = strs.back();
        }
        check(H5Tinsert(type, cols[c].name.c_str(), offset[c], member), "build compound type");
    }
    std::vector<char> buf(n * row, '\0');
    for (std::size_t r = 0; r < n; ++r) {
        char* at = &buf[r * row];
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const Column& col = cols[c];
            if (col.kind == Column::Int) std::memcpy(at + offset[c], &col.i[r], sizeof(int));
            else if (col.kind == Column::Double) std::memcpy(at + offset[c], &col.d[r], sizeof(double));
            else std::memcpy(at + offset[c], col.s[r].data(), std::min(size[c], col.s[r].size()));
        }
    }
    // The in-memory layout equals the file layout (little-endian host).
    const auto slash = name.find_last_of('/');
    if (slash != std::string::npos && slash > 0) ensure_group(file, name.substr(0, slash));
    remove(file, name);
    const hsize_t dims[1] = {static_cast<hsize_t>(n)};
    Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (n > 0) {
        const hsize_t chunk[1] = {std::min<hsize_t>(n, 1 << 14)};
        H5Pset_chunk(dcpl, 1, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 1);
    }
    Handle dset(checked(H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "create dataset '" + name + "'"),
                H5Dclose);
    if (n > 0) check(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write '" + name + "'");
}

// ---- reading -------------------------------------------------------------

struct Dataset {
    Handle dset, type, space;
    std::vector<hsize_t> dims;
    hsize_t size() const {
        hsize_t n = 1;
        for (hsize_t d : dims) n *= d;
        return n;
    }
};

inline Dataset open_dataset(hid_t file, const std::string& name) {
    Dataset d;
    if (!exists(file, name)) throw format_error("the Arrow file has no dataset '" + name + "'");
    d.dset = Handle(checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "open '" + name + "'"), H5Dclose);
    d.type = Handle(H5Dget_type(d.dset), H5Tclose);
    d.space = Handle(H5Dget_space(d.dset), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(d.space);
    d.dims.assign(static_cast<std::size_t>(std::max(rank, 0)), 0);
    if (rank > 0) H5Sget_simple_extent_dims(d.space, d.dims.data(), nullptr);
    return d;
}

inline H5T_class_t type_class(const Dataset& d) { return H5Tget_class(d.type); }

template <class T>
std::vector<T> read_numbers(hid_t file, const std::string& name, hid_t mem_type) {
    Dataset d = open_dataset(file, name);
    std::vector<T> out(d.size());
    if (!out.empty())
        check(H5Dread(d.dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "read '" + name + "'");
    return out;
}
inline std::vector<double> read_doubles(hid_t file, const std::string& name) {
    return read_numbers<double>(file, name, H5T_NATIVE_DOUBLE);
}
inline std::vector<int> read_ints(hid_t file, const std::string& name) {
    return read_numbers<int>(file, name, H5T_NATIVE_INT);
}

// Values [offset, offset + count) of a vector dataset (rank 1, or rank 2
// with one extent 1, as rhdf5 writes R vectors), read as one hyperslab so a
// slice of a large stored matrix never loads the whole dataset.
template <class T>
std::vector<T> read_slice(hid_t file, const std::string& name, hid_t mem_type, hsize_t offset,
                          hsize_t count) {
    Dataset d = open_dataset(file, name);
    if (d.dims.empty() || d.dims.size() > 2 || (d.dims.size() == 2 && d.dims[0] != 1 && d.dims[1] != 1))
        throw format_error("'" + name + "' is not a vector dataset");
    if (offset + count > d.size())
        throw format_error("'" + name + "' is shorter than the slice asked for");
    std::vector<T> out(count);
    if (count == 0) return out;
    std::vector<hsize_t> start(d.dims.size(), 0), cnt(d.dims.size(), 1);
    const std::size_t along = d.dims.size() == 2 && d.dims[0] != 1 ? 0 : d.dims.size() - 1;
    start[along] = offset;
    cnt[along] = count;
    check(H5Sselect_hyperslab(d.space, H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr),
          "select a slice of '" + name + "'");
    const hsize_t n = count;
    Handle mem(checked(H5Screate_simple(1, &n, nullptr), "create a memory space"), H5Sclose);
    check(H5Dread(d.dset, mem_type, mem, d.space, H5P_DEFAULT, out.data()), "read a slice of '" + name + "'");
    return out;
}

inline std::vector<std::string> unpack_strings(const std::vector<char>& buf, std::size_t size, std::size_t n) {
    std::vector<std::string> out(n);
    for (std::size_t k = 0; k < n; ++k) {
        const char* at = &buf[k * size];
        std::size_t len = 0;
        while (len < size && at[len] != '\0') ++len;
        out[k].assign(at, len);
    }
    return out;
}

inline std::vector<std::string> read_strings(hid_t file, const std::string& name) {
    Dataset d = open_dataset(file, name);
    if (H5Tis_variable_str(d.type) > 0) {
        std::vector<char*> ptrs(d.size(), nullptr);
        Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mt, H5T_VARIABLE);
        if (!ptrs.empty())
            check(H5Dread(d.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "read '" + name + "'");
        std::vector<std::string> out(ptrs.size());
        for (std::size_t k = 0; k < ptrs.size(); ++k) out[k] = ptrs[k] ? ptrs[k] : "";
        if (!ptrs.empty()) H5Dvlen_reclaim(mt, d.space, H5P_DEFAULT, ptrs.data());
        return out;
    }
    const std::size_t size = H5Tget_size(d.type);
    Handle mt = string_type(size);
    std::vector<char> buf(d.size() * size);
    if (!buf.empty())
        check(H5Dread(d.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read '" + name + "'");
    return unpack_strings(buf, size, d.size());
}

// Reads compound members one at a time (HDF5 converts by member name).
inline std::vector<Column> read_compound(hid_t file, const std::string& name) {
    Dataset d = open_dataset(file, name);
    if (type_class(d) != H5T_COMPOUND) throw format_error("'" + name + "' is not a table (compound) dataset");
    const int nm = H5Tget_nmembers(d.type);
    const std::size_t n = d.size();
    std::vector<Column> out;
    for (int m = 0; m < nm; ++m) {
        char* cname = H5Tget_member_name(d.type, static_cast<unsigned>(m));
        Column col;
        col.name = cname;
        H5free_memory(cname);
        Handle ft(H5Tget_member_type(d.type, static_cast<unsigned>(m)), H5Tclose);
        const H5T_class_t cls = H5Tget_class(ft);
        std::size_t msize;
        Handle memb;
        if (cls == H5T_INTEGER) {
            col.kind = Column::Int;
            memb = Handle(H5Tcopy(H5T_NATIVE_INT), H5Tclose);
            msize = sizeof(int);
        } else if (cls == H5T_FLOAT) {
            col.kind = Column::Double;
            memb = Handle(H5Tcopy(H5T_NATIVE_DOUBLE), H5Tclose);
            msize = sizeof(double);
        } else if (cls == H5T_STRING && H5Tis_variable_str(ft) <= 0) {
            col.kind = Column::String;
            msize = H5Tget_size(ft);
            memb = string_type(msize);
        } else {
            continue;  // enums (logicals) and other types: rhdf5 drops them too
        }
        Handle mt(H5Tcreate(H5T_COMPOUND, msize), H5Tclose);
        check(H5Tinsert(mt, col.name.c_str(), 0, memb), "build member type");
        std::vector<char> buf(n * msize);
        if (n > 0) check(H5Dread(d.dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read '" + name + "'");
        if (col.kind == Column::Int) {
            col.i.resize(n);
            if (n) std::memcpy(col.i.data(), buf.data(), n * sizeof(int));
        } else if (col.kind == Column::Double) {
            col.d.resize(n);
            if (n) std::memcpy(col.d.data(), buf.data(), n * sizeof(double));
        } else {
            col.s = unpack_strings(buf, msize, n);
        }
        out.push_back(std::move(col));
    }
    return out;
}

}  // namespace h5
}  // namespace epione
