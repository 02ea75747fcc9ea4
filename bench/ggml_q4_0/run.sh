#!/usr/bin/env bash
# Builds ggml's CPU backend in GGML_DIR/build (Release, native, CPU only) if it
# is not built yet, then this benchmark, and runs it. Extra arguments go to
# Google Benchmark, e.g. --benchmark_format=json --benchmark_out=ggml.json.
# Usage: bench/ggml_q4_0/run.sh GGML_DIR [benchmark args...]
set -euo pipefail
ggml_dir=$(realpath "${1:?usage: run.sh GGML_DIR [benchmark args...]}")
shift
here=$(cd "$(dirname "$0")" && pwd)
build=${GGML_BENCH_BUILD:-/tmp/ggml_q4_0_bench}
if [[ ! -f "$ggml_dir/build/src/libggml-cpu.a" ]]; then
  cmake -S "$ggml_dir" -B "$ggml_dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF >&2
  cmake --build "$ggml_dir/build" -j"$(nproc)" --target ggml ggml-base ggml-cpu >&2
fi
cmake -S "$here" -B "$build" -G Ninja -DGGML_DIR="$ggml_dir" >/dev/null
cmake --build "$build" >&2
"$build/ggml_q4_0_gemv" "$@"
