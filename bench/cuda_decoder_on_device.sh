#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it (docs/PERFORMANCE.md,
# "CUDA decoder", gives the full `run` command): builds uq and the CUDA tests, runs the decoder
# tests, then the 8B-shaped synthetic benchmark. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_cuda_decoder_kernels \
  test_cuda_model > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
source scripts/device_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
build=${UQ_BUILD_DIR:-build-device}
"$build/tests/test_cuda_decoder_kernels" 2>&1 | tee "$out/test_kernels.log" | grep -E "^\[  |Failure|error|Expected|Which|actual" | head -60
"$build/tests/test_cuda_model" 2>&1 | tee "$out/test_model.log" | grep -E "^\[  |Failure|error|Expected|Which|actual" | head -60
"$build/uq" bench --synthetic llama3-8b --device cuda --formats "${UQ_BENCH_FORMATS:-bf16,8,4,3}" \
  --input-shape 1,512 --decode-tokens 64 2>&1 | tee "$out/bench.txt"
