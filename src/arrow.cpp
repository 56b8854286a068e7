// Glue for the Arrow writer/reader: converts R tables to the core's structs
// and HDF5 datasets to R vectors. No statistics here.
#include "glue.h"
#include <epione/arrow.hpp>
#include <epione/hdf5.hpp>

namespace {

using epione::arrow::i64;
namespace h5 = epione::h5;

std::vector<epione::arrow::Chrom> as_chroms(Rcpp::DataFrame chroms, Rcpp::List chunks) {
    Rcpp::CharacterVector name = chroms["name"];
    Rcpp::NumericVector len = chroms["length"];
    std::vector<epione::arrow::Chrom> out(name.size());
    for (R_xlen_t k = 0; k < name.size(); ++k) {
        out[k].name = Rcpp::as<std::string>(name[k]);
        out[k].length = static_cast<i64>(len[k]);
        Rcpp::List ch = chunks[k];
        Rcpp::NumericVector st = ch["start"];
        Rcpp::IntegerVector rk = ch["rank"];
        out[k].chunk_start.assign(st.begin(), st.end());
        out[k].chunk_rank.assign(rk.begin(), rk.end());
    }
    return out;
}

std::unordered_map<std::string, epione::arrow::Intervals> as_intervals(Rcpp::DataFrame df) {
    std::unordered_map<std::string, epione::arrow::Intervals> out;
    if (df.nrows() == 0) return out;
    Rcpp::CharacterVector chr = df["chr"];
    Rcpp::NumericVector st = df["start"], en = df["end"];
    for (R_xlen_t k = 0; k < chr.size(); ++k)
        out[Rcpp::as<std::string>(chr[k])].add(static_cast<i64>(st[k]), static_cast<i64>(en[k]));
    for (auto& kv : out) kv.second.finish();
    return out;
}

Rcpp::List as_r(const epione::arrow::Csc& m) {
    return Rcpp::List::create(Rcpp::Named("i") = Rcpp::wrap(m.i), Rcpp::Named("p") = Rcpp::wrap(m.p),
                              Rcpp::Named("x") = Rcpp::wrap(m.x),
                              Rcpp::Named("dim") = Rcpp::IntegerVector::create(m.nrow, m.ncol));
}

struct TickProgress {
    glue::Progress bar;
    TickProgress(i64 n, bool verbose) : bar(n, verbose) {}
    void tick() {
        bar.tick();
        if (bar.aborted()) throw epione::input_error("interrupted by the user");
    }
};

}  // namespace

// Gene windows from the R table (one row per gene, grouped by chromosome)
// into one GeneChrom per chromosome, as the gene-score model reads them.
static std::vector<epione::arrow::GeneChrom> gene_chroms(Rcpp::DataFrame genes) {
    Rcpp::CharacterVector chr = genes["chr"];
    Rcpp::NumericVector rs = genes["regionStart"], re = genes["regionEnd"], tss = genes["tss"],
                        ws = genes["winStart"], we = genes["winEnd"], w = genes["weight"];
    Rcpp::IntegerVector minus = genes["minus"];
    std::vector<epione::arrow::GeneChrom> gcs;
    for (R_xlen_t k = 0; k < chr.size(); ++k) {
        const std::string c = Rcpp::as<std::string>(chr[k]);
        if (gcs.empty() || gcs.back().name != c) {
            gcs.emplace_back();
            gcs.back().name = c;
        }
        auto& g = gcs.back();
        g.region_start.push_back(static_cast<i64>(rs[k]));
        g.region_end.push_back(static_cast<i64>(re[k]));
        g.tss.push_back(static_cast<i64>(tss[k]));
        g.win_start.push_back(static_cast<i64>(ws[k]));
        g.win_end.push_back(static_cast<i64>(we[k]));
        g.minus.push_back(minus[k]);
        g.weight.push_back(w[k]);
        g.max_window = std::max<i64>(g.max_window, static_cast<i64>(we[k] - ws[k]));
    }
    return gcs;
}

// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_arrow_seqnames(std::string path) {
    epione::fragments::FragmentFile f(path, 1);
    return Rcpp::wrap(f.seqnames());
}

// [[Rcpp::export(rng = false)]]
Rcpp::DataFrame epi_arrow_scan(std::string path, Rcpp::DataFrame chroms, Rcpp::List chunks,
                               Rcpp::List features, double min_size, double max_size,
                               double nuc_length, int threads, bool verbose) {
    epione::arrow::Source src{path, threads};
    { epione::fragments::FragmentFile check(path, 1); }  // format errors before threads start
    epione::arrow::Features feat;
    feat.window = as_intervals(features["window"]);
    feat.flank = as_intervals(features["flank"]);
    feat.promoter = as_intervals(features["promoter"]);
    feat.blacklist = as_intervals(features["blacklist"]);
    epione::arrow::FragmentFilter filt;
    filt.min_size = static_cast<i64>(min_size);
    filt.max_size = static_cast<i64>(max_size);
    filt.nuc_length = static_cast<i64>(nuc_length);
    const auto ch = as_chroms(chroms, chunks);
    TickProgress progress(static_cast<i64>(ch.size()), verbose);
    glue::TbbPar par(threads);
    auto bc = epione::arrow::scan(src, ch, feat, filt, par, progress);
    return Rcpp::DataFrame::create(
        Rcpp::Named("barcode") = Rcpp::wrap(bc.name), Rcpp::Named("nLines") = Rcpp::wrap(bc.lines),
        Rcpp::Named("nFrags") = Rcpp::wrap(bc.nfrags), Rcpp::Named("nMonoFrags") = Rcpp::wrap(bc.mono),
        Rcpp::Named("nDiFrags") = Rcpp::wrap(bc.di), Rcpp::Named("nMultiFrags") = Rcpp::wrap(bc.multi),
        Rcpp::Named("nWindow") = Rcpp::wrap(bc.window), Rcpp::Named("nFlank") = Rcpp::wrap(bc.flank),
        Rcpp::Named("ReadsInPromoter") = Rcpp::wrap(bc.promoter),
        Rcpp::Named("ReadsInBlacklist") = Rcpp::wrap(bc.blacklist),
        Rcpp::Named("firstChunk") = Rcpp::wrap(bc.first_chunk),
        Rcpp::Named("stringsAsFactors") = false);
}

// [[Rcpp::export(rng = false)]]
Rcpp::List epi_arrow_write(std::string path, std::string arrow, Rcpp::DataFrame chroms, Rcpp::List chunks,
                           Rcpp::LogicalVector tile_chrom, Rcpp::CharacterVector cells, double min_size,
                           double max_size, bool add_tiles, double tile_size, bool binarize,
                           bool add_genes, Rcpp::DataFrame genes, double gene_tile_size, double ceiling,
                           Rcpp::NumericVector model, double model_half, Rcpp::DataFrame blacklist,
                           int threads, bool verbose) {
    epione::arrow::Source src{path, threads};
    epione::arrow::WriteSpec spec;
    spec.chroms = as_chroms(chroms, chunks);
    spec.tile_chrom.assign(tile_chrom.begin(), tile_chrom.end());
    spec.cells = Rcpp::as<std::vector<std::string>>(cells);
    spec.filter.min_size = static_cast<i64>(min_size);
    spec.filter.max_size = static_cast<i64>(max_size);
    spec.add_tiles = add_tiles;
    spec.tile.tile_size = static_cast<i64>(tile_size);
    spec.tile.binarize = binarize;
    spec.add_gene_scores = add_genes;
    spec.gene.tile_size = static_cast<i64>(gene_tile_size);
    spec.gene.ceiling = ceiling;
    spec.gene.model.assign(model.begin(), model.end());
    spec.gene.model_half = static_cast<i64>(model_half);
    spec.blacklist = as_intervals(blacklist);
    if (add_genes && genes.nrows() > 0) spec.genes = gene_chroms(genes);
    h5::QuietErrors quiet;
    h5::Handle file = h5::open_file(arrow, true);
    TickProgress progress(static_cast<i64>(spec.chroms.size()), verbose);
    glue::TbbPar par(threads);
    auto res = epione::arrow::write(src, file, spec, par, progress);
    Rcpp::List gs(res.gene_scores.size());
    Rcpp::CharacterVector gnames(res.gene_scores.size());
    for (std::size_t k = 0; k < res.gene_scores.size(); ++k) {
        gs[k] = as_r(res.gene_scores[k]);
        gnames[k] = spec.genes[k].name;
    }
    gs.attr("names") = gnames;
    return Rcpp::List::create(Rcpp::Named("geneScores") = gs,
                              Rcpp::Named("sizeHist") = Rcpp::wrap(res.size_hist));
}

// TileMatrix Info/FeatureDF (seqnames, idx, start) and Info/Params
// (seqnames, length, tileSize) for the given chromosomes.
// [[Rcpp::export(rng = false)]]
void epi_arrow_tile_info(std::string arrow, Rcpp::CharacterVector chr, Rcpp::NumericVector len,
                         double tile_size) {
    h5::QuietErrors quiet;
    h5::Handle file = h5::open_file(arrow, true);
    h5::Column s{"seqnames", h5::Column::String}, idx{"idx", h5::Column::Int}, st{"start", h5::Column::Double};
    h5::Column ps{"seqnames", h5::Column::String}, pl{"length", h5::Column::Int}, pt{"tileSize", h5::Column::Double};
    const i64 ts = static_cast<i64>(tile_size);
    for (R_xlen_t k = 0; k < chr.size(); ++k) {
        const std::string c = Rcpp::as<std::string>(chr[k]);
        const i64 n = static_cast<i64>(len[k]) / ts + 1;
        for (i64 t = 1; t <= n; ++t) {
            s.s.push_back(c);
            idx.i.push_back(static_cast<int>(t));
            st.d.push_back(static_cast<double>((t - 1) * ts));
        }
        ps.s.push_back(c);
        pl.i.push_back(static_cast<int>(len[k]));
        pt.d.push_back(tile_size);
    }
    h5::write_compound(file, "TileMatrix/Info/FeatureDF", {s, idx, st});
    h5::write_compound(file, "TileMatrix/Info/Params", {ps, pl, pt});
}

// [[Rcpp::export(rng = false)]]
void epi_arrow_h5_create(std::string path) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::create_file(path);
}

// Writes an R vector with the given HDF5 dims (C order, i.e. reversed R
// dims). Strings are fixed length `strsize` (0 = longest).
// [[Rcpp::export(rng = false)]]
void epi_arrow_h5_write(std::string path, std::string name, SEXP x, Rcpp::NumericVector dims,
                        int strsize, int level) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, true);
    std::vector<hsize_t> d(dims.begin(), dims.end());
    h5::WriteOptions opt;
    opt.level = level;
    switch (TYPEOF(x)) {
    case REALSXP: h5::write_doubles(f, name, REAL(x), d, opt); break;
    case INTSXP: case LGLSXP: h5::write_ints(f, name, INTEGER(x), d, opt); break;
    case STRSXP:
        h5::write_strings(f, name, Rcpp::as<std::vector<std::string>>(x), d,
                          static_cast<std::size_t>(strsize), opt);
        break;
    default: throw epione::input_error("cannot write an R object of this type to HDF5");
    }
}

// [[Rcpp::export(rng = false)]]
void epi_arrow_h5_write_df(std::string path, std::string name, Rcpp::List df) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, true);
    Rcpp::CharacterVector nm = df.names();
    std::vector<h5::Column> cols;
    for (R_xlen_t k = 0; k < df.size(); ++k) {
        SEXP v = df[k];
        h5::Column c{Rcpp::as<std::string>(nm[k]), h5::Column::Int};
        if (TYPEOF(v) == INTSXP) c.i.assign(INTEGER(v), INTEGER(v) + XLENGTH(v));
        else if (TYPEOF(v) == REALSXP) { c.kind = h5::Column::Double; c.d.assign(REAL(v), REAL(v) + XLENGTH(v)); }
        else if (TYPEOF(v) == STRSXP) { c.kind = h5::Column::String; c.s = Rcpp::as<std::vector<std::string>>(v); }
        else continue;  // logical columns are dropped, as rhdf5 does
        cols.push_back(std::move(c));
    }
    h5::write_compound(f, name, cols);
}

// [[Rcpp::export(rng = false)]]
void epi_arrow_h5_group(std::string path, std::string name, bool replace) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, true);
    if (replace) h5::remove(f, name);
    h5::ensure_group(f, name);
}

// [[Rcpp::export(rng = false)]]
bool epi_arrow_h5_exists(std::string path, std::string name) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, false);
    return h5::exists(f, name);
}

// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector epi_arrow_h5_ls(std::string path, std::string group) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, false);
    if (!h5::exists(f, group)) return Rcpp::CharacterVector(0);
    return Rcpp::wrap(h5::list(f, group));
}

// Reads a dataset as an R vector (numbers as double or integer, strings as
// character); a compound dataset becomes a list of columns.
// [[Rcpp::export(rng = false)]]
SEXP epi_arrow_h5_read(std::string path, std::string name) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, false);
    h5::Dataset d = h5::open_dataset(f, name);
    const H5T_class_t cls = h5::type_class(d);
    if (cls == H5T_COMPOUND) {
        auto cols = h5::read_compound(f, name);
        Rcpp::List out(cols.size());
        Rcpp::CharacterVector nm(cols.size());
        for (std::size_t k = 0; k < cols.size(); ++k) {
            nm[k] = cols[k].name;
            if (cols[k].kind == h5::Column::Int) out[k] = Rcpp::wrap(cols[k].i);
            else if (cols[k].kind == h5::Column::Double) out[k] = Rcpp::wrap(cols[k].d);
            else out[k] = Rcpp::wrap(cols[k].s);
        }
        out.attr("names") = nm;
        return out;
    }
    if (cls == H5T_STRING) return Rcpp::wrap(h5::read_strings(f, name));
    if (cls == H5T_INTEGER && H5Tget_size(d.type) <= 4) return Rcpp::wrap(h5::read_ints(f, name));
    if (cls == H5T_INTEGER || cls == H5T_FLOAT) return Rcpp::wrap(h5::read_doubles(f, name));
    throw epione::format_error("dataset '" + name + "' has a type epione cannot read");
}

// Writes one chromosome block of a sparse matrix group (layout v2) with its
// stored summaries, from a dgCMatrix.
// [[Rcpp::export(rng = false)]]
void epi_arrow_write_sparse(std::string path, std::string group, Rcpp::S4 mat) {
    Rcpp::IntegerVector dim = mat.slot("Dim"), p = mat.slot("p"), i = mat.slot("i");
    Rcpp::NumericVector x = mat.slot("x");
    epione::arrow::Csc m;
    m.nrow = dim[0];
    m.ncol = dim[1];
    m.p.assign(p.begin(), p.end());
    m.i.assign(i.begin(), i.end());
    m.x.assign(x.begin(), x.end());
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(path, true);
    h5::ensure_group(f, group);
    epione::arrow::write_sparse(f, group, m);
}

namespace {
std::unordered_map<std::string, int> cell_map(Rcpp::CharacterVector cells) {
    std::unordered_map<std::string, int> m;
    for (R_xlen_t k = 0; k < cells.size(); ++k) m.emplace(Rcpp::as<std::string>(cells[k]), static_cast<int>(k));
    return m;
}
}  // namespace

// TileMatrix blocks from the fragments stored in an Arrow file.
// [[Rcpp::export(rng = false)]]
void epi_arrow_tiles_from_arrow(std::string arrow, Rcpp::CharacterVector cells, Rcpp::CharacterVector chr,
                                Rcpp::NumericVector len, double tile_size, bool binarize,
                                Rcpp::DataFrame blacklist) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(arrow, true);
    const auto ids = cell_map(cells);
    const auto bl = as_intervals(blacklist);
    epione::arrow::TileOptions opt;
    opt.tile_size = static_cast<i64>(tile_size);
    opt.binarize = binarize;
    for (R_xlen_t k = 0; k < chr.size(); ++k) {
        const std::string c = Rcpp::as<std::string>(chr[k]);
        const auto fr = epione::arrow::read_arrow_fragments(f, c, ids);
        auto it = bl.find(c);
        const epione::arrow::Intervals* b = it == bl.end() ? nullptr : &it->second;
        const auto m = epione::arrow::blacklisted_tiles(fr, static_cast<int>(cells.size()),
                                                        static_cast<i64>(len[k]), opt, b);
        epione::arrow::write_sparse(f, "TileMatrix/" + c, m);
    }
}

// Raw gene scores from the fragments stored in an Arrow file.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_arrow_genes_from_arrow(std::string arrow, Rcpp::CharacterVector cells, Rcpp::DataFrame genes,
                                      double gene_tile_size, double ceiling, Rcpp::NumericVector model,
                                      double model_half, Rcpp::DataFrame blacklist) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(arrow, false);
    const auto ids = cell_map(cells);
    const auto bl = as_intervals(blacklist);
    epione::arrow::GeneScoreOptions opt;
    opt.tile_size = static_cast<i64>(gene_tile_size);
    opt.ceiling = ceiling;
    opt.model.assign(model.begin(), model.end());
    opt.model_half = static_cast<i64>(model_half);
    const std::vector<epione::arrow::GeneChrom> gcs = gene_chroms(genes);
    Rcpp::List out(gcs.size());
    Rcpp::CharacterVector nm(gcs.size());
    for (std::size_t k = 0; k < gcs.size(); ++k) {
        const auto fr = epione::arrow::read_arrow_fragments(f, gcs[k].name, ids);
        auto it = bl.find(gcs[k].name);
        out[k] = as_r(epione::arrow::gene_scores(fr, static_cast<int>(cells.size()), gcs[k], opt,
                                                 it == bl.end() ? nullptr : &it->second));
        nm[k] = gcs[k].name;
    }
    out.attr("names") = nm;
    return out;
}

// PeakMatrix (or any feature matrix) blocks from the stored fragments;
// returns insertions in features and total insertions per cell.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_arrow_features_from_arrow(std::string arrow, std::string group, Rcpp::CharacterVector cells,
                                         Rcpp::DataFrame features, double ceiling, bool binarize) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(arrow, true);
    const auto ids = cell_map(cells);
    const int nc = static_cast<int>(cells.size());
    Rcpp::CharacterVector chr = features["seqnames"];
    Rcpp::NumericVector st = features["start"], en = features["end"];
    Rcpp::IntegerVector idx = features["idx"];
    std::vector<std::string> order;
    std::unordered_map<std::string, epione::arrow::FeatureChrom> fc;
    for (R_xlen_t k = 0; k < chr.size(); ++k) {
        const std::string c = Rcpp::as<std::string>(chr[k]);
        if (!fc.count(c)) order.push_back(c);
        auto& x = fc[c];
        x.start.push_back(static_cast<i64>(st[k]));
        x.end.push_back(static_cast<i64>(en[k]));
        x.idx.push_back(idx[k]);
        x.max_width = std::max<i64>(x.max_width, static_cast<i64>(en[k] - st[k]));
        x.nrow = std::max(x.nrow, idx[k]);
    }
    std::vector<double> inside(nc, 0.0), total(nc, 0.0);
    for (const auto& c : order) {
        const auto fr = epione::arrow::read_arrow_fragments(f, c, ids);
        const auto m = epione::arrow::feature_counts(fr, nc, fc[c], ceiling, binarize, inside, total);
        // ArchR stores colSums/rowSums only for feature matrices; the log2
        // summaries are harmless extras that keep one writer.
        epione::arrow::write_sparse(f, group + "/" + c, m);
    }
    return Rcpp::List::create(Rcpp::Named("inPeaks") = Rcpp::wrap(inside),
                              Rcpp::Named("total") = Rcpp::wrap(total));
}

// Rows (per-chromosome maps, -1 = skip) and ascending 0-based columns of a
// stored sparse matrix, as dgCMatrix parts.
// [[Rcpp::export(rng = false)]]
Rcpp::List epi_arrow_read_cells(std::string arrow, std::string group, Rcpp::CharacterVector chroms,
                                Rcpp::List row_maps, int n_rows, Rcpp::IntegerVector cols) {
    h5::QuietErrors quiet;
    h5::Handle f = h5::open_file(arrow, false);
    std::vector<std::vector<int>> maps(row_maps.size());
    for (R_xlen_t k = 0; k < row_maps.size(); ++k) {
        Rcpp::IntegerVector m = row_maps[k];
        maps[k].assign(m.begin(), m.end());
    }
    const auto m = epione::arrow::read_cells(f, group, Rcpp::as<std::vector<std::string>>(chroms), maps,
                                             n_rows, std::vector<int>(cols.begin(), cols.end()));
    return as_r(m);
}
