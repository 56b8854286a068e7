#!/usr/bin/env bash
# Installs everything epione needs on Debian 12 (R 4.2), then epione itself.
# R packages named in DESCRIPTION (Imports, LinkingTo, Suggests) come from
# Debian's prebuilt r-cran-* / r-bioc-* packages where those exist, from
# CRAN (the repository R is configured with) otherwise. Safe to re-run.
#   EPIONE_DEPS_ONLY=1  skip installing epione itself
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

echo "== apt-get update"
$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq

# System pieces: compilers and R headers, OpenBLAS (fast BLAS/LAPACK for R
# and for epione's Armadillo code), libraries HTSlib/HDF5/TBB link against,
# pandoc for vignettes.
SYSTEM_DEBS="r-base-dev libopenblas-dev pkg-config pandoc zlib1g-dev
  libbz2-dev liblzma-dev libcurl4-openssl-dev libssl-dev libxml2-dev
  libhdf5-dev libtbb-dev"

echo "== R packages named in DESCRIPTION"
R_PKGS=$(Rscript tools/deps.R)
APT_DEBS=""
CRAN_PKGS=""
for pkg in $R_PKGS; do
    lc=$(echo "$pkg" | tr '[:upper:]' '[:lower:]')
    deb=""
    for cand in "r-cran-$lc" "r-bioc-$lc"; do
        if apt-cache show "$cand" >/dev/null 2>&1; then deb="$cand"; break; fi
    done
    if [ -n "$deb" ]; then APT_DEBS="$APT_DEBS $deb"; else CRAN_PKGS="$CRAN_PKGS $pkg"; fi
done
echo "   from Debian:$APT_DEBS"
echo "   from CRAN:  ${CRAN_PKGS:- (none)}"

echo "== apt-get install"
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $SYSTEM_DEBS $APT_DEBS

if [ -n "$CRAN_PKGS" ]; then
    echo "== CRAN install"
    Rscript tools/deps.R --install-cran $CRAN_PKGS
fi

echo "== check that every dependency loads"
Rscript tools/deps.R --check

if [ "${EPIONE_DEPS_ONLY:-0}" != "1" ]; then
    echo "== R CMD INSTALL ."
    # Two compile jobs: the machines this targets have two cores.
    MAKEFLAGS="${MAKEFLAGS:--j2}" R CMD INSTALL --no-multiarch .
    Rscript -e 'library(epione); str(epioneInfo())'
fi
echo "== done"
