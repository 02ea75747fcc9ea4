#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it: builds uq and the
# decoder tests, runs them, then measures the decode-step overlap switches (docs/PERFORMANCE.md,
# "CUDA decoder (H200)"): the stage profile, an 8-layer 8B-shaped decode under each of
#   UQ_CUDA_PDL=1/0 (programmatic dependent launch) x UQ_CUDA_L2_PREFETCH=1/0 (bf16 GEMV),
# then the 32-layer benchmark with both on. Logs go to $OUT.
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
# The profile's event nodes between stages keep any two stages from overlapping; if a capture
# with programmatic launches and event nodes is refused, the profile runs with PDL off.
synthetic=("$build/uq" bench --synthetic llama3-8b --device cuda)
{ "${synthetic[@]}" --layers 8 --formats bf16,4 --profile-decode 512,2048 ||
  UQ_CUDA_PDL=0 "${synthetic[@]}" --layers 8 --formats bf16,4 --profile-decode 512,2048; } \
  2>&1 | tee "$out/profile.txt" | grep -vE "^\s*$"
for mode in "1 1" "1 0" "0 0"; do
  read -r pdl prefetch <<<"$mode"
  echo "## 8 layers: UQ_CUDA_PDL=$pdl UQ_CUDA_L2_PREFETCH=$prefetch"
  UQ_CUDA_PDL=$pdl UQ_CUDA_L2_PREFETCH=$prefetch "${synthetic[@]}" --layers 8 \
    --formats bf16,4 --input-shape 1,512 --decode-tokens 64 2>&1 | tail -4
done | tee "$out/modes.txt"
echo "## 32 layers, both on"
"${synthetic[@]}" --formats bf16,4 --input-shape 1,512 --decode-tokens 64 2>&1 |
  tee "$out/bench.txt" | tail -4
echo "total: $((SECONDS - start)) s"
