#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it: builds uq and the
# decoder tests, runs them, then measures programmatic dependent launch (docs/PERFORMANCE.md,
# "CUDA decoder (H200)"): the stage profile, an 8-layer 8B-shaped decode with UQ_CUDA_PDL=1
# and =0, then the 32-layer benchmark with it on. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
start=$SECONDS
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_cuda_decoder_kernels \
  test_cuda_model > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $((SECONDS - start)) s"
source scripts/device_env.sh
build=${UQ_BUILD_DIR:-build-device}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for test in test_cuda_decoder_kernels test_cuda_model; do
  "$build/tests/$test" 2>&1 | tee "$out/$test.log" |
    grep -E "^\[  (PASSED|FAILED)|Failure|Expected|Which|actual" | head -30
done
echo "tests: $((SECONDS - start)) s"
synthetic=("$build/uq" bench --synthetic llama3-8b --device cuda)
# The profile's event nodes between stages keep any two stages from overlapping.
"${synthetic[@]}" --layers 8 --formats bf16,4 --profile-decode 512,2048 2>&1 |
  tee "$out/profile.txt" | grep -vE "^\s*$"
for pdl in 1 0; do
  echo "## 8 layers: UQ_CUDA_PDL=$pdl"
  UQ_CUDA_PDL=$pdl "${synthetic[@]}" --layers 8 --formats bf16,4 --input-shape 1,512 \
    --decode-tokens 64 2>&1 | tail -4
done | tee "$out/modes.txt"
echo "## 32 layers, PDL on"
"${synthetic[@]}" --formats bf16,4 --input-shape 1,512 --decode-tokens 64 2>&1 |
  tee "$out/bench.txt" | tail -4
echo "total: $((SECONDS - start)) s"
