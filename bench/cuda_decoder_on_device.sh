#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it (docs/PERFORMANCE.md,
# "CUDA decoder", gives the full `run` command): builds uq and the CUDA tests, runs the decoder
# and GEMV tests, the 14336x4096 GEMV benchmark, the decode attention benchmark, the per-stage
# profile of a decode step, then
# the 8B-shaped synthetic benchmark. Logs
# go to $OUT. UQ_SKIP_TESTS=1 / UQ_SKIP_PROFILE=1 / UQ_SKIP_BENCH=1 leave those parts out;
# UQ_PROFILE_FORMATS and
# UQ_BENCH_FORMATS choose the formats.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
start=$SECONDS
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_cuda_decoder_kernels \
  test_cuda_model test_affine_gemv bench_cuda_gemv bench_cuda_attention > "$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
echo "build: $((SECONDS - start)) s"
source scripts/device_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
build=${UQ_BUILD_DIR:-build-device}
if [ "${UQ_SKIP_TESTS:-0}" != 1 ]; then
  "$build/tests/test_cuda_decoder_kernels" 2>&1 | tee "$out/test_kernels.log" | grep -E "^\[  |Failure|error|Expected|Which|actual" | head -60
  "$build/tests/test_cuda_model" 2>&1 | tee "$out/test_model.log" | grep -E "^\[  |Failure|error|Expected|Which|actual" | head -60
  "$build/tests/test_affine_gemv" 2>&1 | tee "$out/test_gemv.log" | grep -E "^\[  (PASSED|FAILED)|Failure|Expected|actual" | head -30
fi
# The 14336x4096 4-bit GEMV against cuBLAS bf16 and the copy bandwidth, rows 1..512.
"$build/bench/bench_cuda_gemv" --quick 2>&1 | tee "$out/gemv.txt" | tail -12
# One layer's RoPE + KV store + attention of a decode step at 512, 2048 and 4096 keys.
"$build/bench/bench_cuda_attention" 2>&1 | tee "$out/attention.txt"
# Per-layer stage times do not depend on the layer count: 8 layers keep the model's generation short.
if [ "${UQ_SKIP_PROFILE:-0}" != 1 ]; then
  "$build/uq" bench --synthetic llama3-8b --layers 8 --device cuda \
    --formats "${UQ_PROFILE_FORMATS:-bf16,4}" --profile-decode 512,2048 2>&1 | tee "$out/profile.txt"
fi
if [ "${UQ_SKIP_BENCH:-0}" != 1 ]; then
  "$build/uq" bench --synthetic llama3-8b --device cuda --formats "${UQ_BENCH_FORMATS:-bf16,8,4,3}" \
    --input-shape 1,512 --decode-tokens 64 2>&1 | tee "$out/bench.txt"
fi
