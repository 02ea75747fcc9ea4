#!/usr/bin/env bash
# Builds and runs the CUDA tests and GEMV benchmark with plain nvcc/g++ command lines: the GPU
# machine lacks the CPU-side packages the full CMake project needs (PCRE2, OpenBLAS, ...).
#   run_on_device.sh build DIR   compile test_affine_gemv and bench_cuda_gemv (sm_90) into DIR
#   run_on_device.sh run DIR     run them (building first if DIR has no working binaries);
#                                logs and bench.json go to $OUT (DIR when OUT is unset)
# GTEST_SRC: GoogleTest's source folder (default /usr/src/googletest/googletest).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:?mode: build or run}
dir=$(mkdir -p "${2:?output folder}" && cd "$2" && pwd)
cuda=${CUDA_HOME:-/usr/local/cuda}
gtest=${GTEST_SRC:-/usr/src/googletest/googletest}
out=${OUT:-$dir}

build() {
  mkdir -p "$dir/obj"
  local cxx="g++ -std=c++20 -O3 -Wall -Wextra -I$root/src -isystem $cuda/include -DUQ_HAVE_CUDA=1"
  local nvcc="$cuda/bin/nvcc -std=c++20 -O3 -arch=sm_90 -I$root/src -DUQ_HAVE_CUDA=1 -Xcompiler=-Wall,-Wextra --Werror=all-warnings"
  local pids=() lib_objs=()
  for f in "$root"/src/kernels/cuda/*.cu; do
    $nvcc -c "$f" -o "$dir/obj/$(basename "$f").o" & pids+=($!)
    lib_objs+=("$dir/obj/$(basename "$f").o")
  done
  for f in "$root"/src/kernels/cuda/*.cpp; do
    $cxx -c "$f" -o "$dir/obj/$(basename "$f").o" & pids+=($!)
    lib_objs+=("$dir/obj/$(basename "$f").o")
  done
  g++ -O2 -isystem "$gtest/include" -I"$gtest" -c "$gtest/src/gtest-all.cc" -o "$dir/obj/gtest-all.o" &
  pids+=($!)
  g++ -O2 -isystem "$gtest/include" -c "$gtest/src/gtest_main.cc" -o "$dir/obj/gtest_main.o" &
  pids+=($!)
  $cxx -isystem "$gtest/include" -c "$root/tests/cuda/test_affine_gemv.cpp" -o "$dir/obj/test.o" &
  pids+=($!)
  $cxx -c "$root/bench/cuda/bench_cuda_gemv.cpp" -o "$dir/obj/bench.o" & pids+=($!)
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ $failed = 0 ] || { echo "build failed" >&2; exit 1; }
  local libs="-L$cuda/lib64 -lcudart_static -lcublas -lpthread -ldl -lrt -Wl,-rpath,$cuda/lib64"
  g++ -o "$dir/test_affine_gemv" "$dir/obj/test.o" "${lib_objs[@]}" "$dir/obj/gtest-all.o" \
    "$dir/obj/gtest_main.o" $libs
  g++ -o "$dir/bench_cuda_gemv" "$dir/obj/bench.o" "${lib_objs[@]}" $libs
}

run() {
  if [ ! -e "$cuda/lib64/libcublas.so.13" ]; then  # fall back to PyTorch's copy of cuBLAS
    local torch_cublas
    torch_cublas=$(python3 -c 'import nvidia.cublas as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' || true)
    export LD_LIBRARY_PATH=${torch_cublas}:${LD_LIBRARY_PATH:-}
  fi
  if ! "$dir/test_affine_gemv" --gtest_list_tests > /dev/null 2>&1; then build; fi
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu \
    --format=csv | tee "$out/gpu.txt"
  "$dir/test_affine_gemv" 2>&1 | tee "$out/test.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED|Failure|error" || true
  # Failures are in the logs; the benchmark runs regardless.
  compute-sanitizer --tool memcheck "$dir/test_affine_gemv" \
    --gtest_filter='*MoreThanSixteen*:Bits/AffineGemvCuda.*/2' 2>&1 | tee "$out/memcheck.log" | tail -3 || true
  "$dir/bench_cuda_gemv" --json "$out/bench.json" 2>&1 | tee "$out/bench.log"
}

"$mode"
