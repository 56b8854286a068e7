# Prints linker flags for src/Makevars: `Rscript tools/link-flags.R hdf5|tbb`.
# Rhdf5lib and RcppParallel normally bundle HDF5 and TBB; Debian's builds of
# them use the system libraries instead and report paths that do not exist
# (Rhdf5lib) or nothing (RcppParallel), so fall back to the system ones.
what <- commandArgs(trailingOnly = TRUE)[1L]
flags <- switch(what,
    hdf5 = {
        x <- paste(utils::capture.output(
            Rhdf5lib::pkgconfig("PKG_C_LIBS")), collapse = " ")
        libs <- regmatches(x, gregexpr("[^\" ]+\\.a", x))[[1L]]
        if (length(libs) && all(file.exists(libs))) x
        else paste(system("pkg-config --libs hdf5", intern = TRUE),
                   "-lz -lm -ldl")
    },
    tbb = {
        x <- paste(utils::capture.output(RcppParallel::LdFlags()),
                   collapse = " ")
        if (nzchar(trimws(x))) x else "-ltbb"
    },
    stop("unknown library '", what, "'"))
cat(flags)
