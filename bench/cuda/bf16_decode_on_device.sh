#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it, ONE call validates and
# measures the bf16 decode GEMV (bench/cuda/NOTES.md, "bf16 decode GEMV"): builds uq and the
# decoder tests, prints the bf16 kernels' register use, runs the tests (every mode, K split and
# shape against float64; the whole model against the CPU), then the bf16 stage profile at
# context 512 and the 32-layer 8B-shaped decode benchmark for bf16 and 4-bit. Logs go to $OUT.
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
# Registers per thread decide the blocks per SM (expected: 32 at 1 row -> 4 blocks of 512
# threads; 64 at 2 rows -> 2).
if command -v cuobjdump > /dev/null; then
  cuobjdump -res-usage "$build/libuq.a" 2>/dev/null | grep -A1 "bf16_gemv_kernel" |
    tee "$out/registers.txt"
fi
for test in test_cuda_decoder_kernels test_cuda_model; do
  "$build/tests/$test" 2>&1 | tee "$out/$test.log" |
    grep -E "^\[  (PASSED|FAILED)|Failure|Expected|Which|actual|not deterministic" | head -30
done
echo "tests: $((SECONDS - start)) s"
synthetic=("$build/uq" bench --synthetic llama3-8b --device cuda)
echo "## bf16 stage profile, context 512 (norm and SwiGLU stages ~0: fused into the GEMVs)"
"${synthetic[@]}" --formats bf16 --profile-decode 512 2>&1 | tee "$out/profile.txt" |
  grep -vE "^\s*$"
echo "## 32 layers, bf16 and 4-bit, context 512, 64 decode tokens"
"${synthetic[@]}" --formats bf16,4 --input-shape 1,512 --decode-tokens 64 2>&1 |
  tee "$out/bench.txt" | tail -6
echo "total: $((SECONDS - start)) s"
