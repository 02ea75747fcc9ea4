#!/usr/bin/env bash
# Configures and builds into ${UQ_BUILD_DIR:-build} (Release, Ninja). The
# Python module is built for the oracle venv's interpreter when it exists.
# ccache (its cache kept under ~/.cache, like the venv) makes rebuilds cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${UQ_BUILD_DIR:-build}"
UQ_VENV="${UQ_VENV:-$HOME/.cache/unified_quantization/venv}"
extra=()
[ -x "$UQ_VENV/bin/python" ] && extra+=(-DPython_EXECUTABLE="$UQ_VENV/bin/python")
if command -v ccache >/dev/null; then
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/unified_quantization/ccache}"
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"  # hits across clones in other folders
  extra+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${UQ_BUILD_TYPE:-Release}" "${extra[@]}" \
  "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
