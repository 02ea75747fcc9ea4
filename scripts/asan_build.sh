#!/usr/bin/env bash
# Builds build-asan/ once for both reliability checks: clang with ASan + UBSan
# and libFuzzer coverage (UQ_FUZZ=ON) on the library, `uq`, the tests and the
# fuzz targets. scripts/sanitize.sh runs the tests from it and scripts/fuzz.sh
# the fuzzers, so the library is compiled once, not once per check.
#   asan_build.sh [ninja target...]   (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${UQ_ASAN_BUILD_DIR:-build-asan}"
launcher=()
if command -v ccache >/dev/null; then  # as in build.sh: the cache lives under ~/.cache
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/unified_quantization/ccache}" CCACHE_BASEDIR="$PWD"
  # Debug info would put the clone's folder into every hash: clones elsewhere could not hit.
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# -O1 and line tables only: sanitizer reports keep file:line, the build takes less time.
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" -DUQ_FUZZ=ON \
  -DUQ_BUILD_TESTS=ON -DUQ_BUILD_BENCH=OFF -DUQ_CUDA=OFF -DUQ_PYTHON=OFF "${launcher[@]}" >/dev/null
if [ $# -gt 0 ]; then
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "$@"
else
  cmake --build "$BUILD_DIR" -j"$(nproc)"
fi
