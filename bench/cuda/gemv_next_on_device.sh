#!/usr/bin/env bash
# One device call for the persistent GEMV changes of issue #4 (bench/cuda/NOTES.md, session 6:
# caller-owned x-fragment scratch, the code bias folded into the bias term). On the GPU machine,
# in a copy of this checkout with .devdeps beside it: builds the targets, runs the three CUDA
# test programs, bench_cuda_gemv over all shapes, then the 8B-shaped decode benchmark (bf16 and
# 4-bit) with its stage profile. Everything is teed into $OUT; a failing test does not stop the
# measurements (the logs say what failed).
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
start=$SECONDS
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_affine_gemv test_cuda_model \
  test_cuda_decoder_kernels bench_cuda_gemv > "$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
echo "build: $((SECONDS - start)) s"
source scripts/device_env.sh
build=${UQ_BUILD_DIR:-build-device}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv |
  tee "$out/gpu.txt"
for test in test_affine_gemv test_cuda_model test_cuda_decoder_kernels; do
  "$build/tests/$test" 2>&1 | tee "$out/$test.log" |
    grep -E "^\[  (PASSED|FAILED)|Failure|Expected|Which|actual|Value of" | head -30
done
echo "tests: $((SECONDS - start)) s"
"$build/bench/bench_cuda_gemv" --json "$out/bench_cuda_gemv.json" 2>&1 |
  tee "$out/bench_cuda_gemv.log"
echo "gemv bench: $((SECONDS - start)) s"
synthetic=("$build/uq" bench --synthetic llama3-8b --device cuda --formats bf16,4)
# The profile's event nodes between stages keep any two stages from overlapping.
"${synthetic[@]}" --layers 8 --profile-decode 512,2048 2>&1 | tee "$out/profile.txt" |
  grep -vE "^\s*$"
"${synthetic[@]}" --input-shape 1,512 --decode-tokens 64 2>&1 | tee "$out/decode.txt" | tail -4
echo "total: $((SECONDS - start)) s"
