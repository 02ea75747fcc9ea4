#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it (docs/PERFORMANCE.md,
# "GPTQ on the GPU", gives the full `run` command): builds uq, the GPU GPTQ test and benchmark,
# runs the test, then GPTQ of the 8B-shaped synthetic model (bench_gptq_cuda; extra arguments
# go to it, e.g. --layers 4). Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
start=$(date +%s)
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_cuda_gptq bench_gptq_cuda \
  > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(($(date +%s) - start)) s"
source scripts/device_env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
build=${UQ_BUILD_DIR:-build-device}
start=$(date +%s)
"$build/tests/test_cuda_gptq" 2>&1 | tee "$out/test_gptq.log" |
  grep -E "^\[  |Failure|error|Expected|Which|actual|val ppl|gpu " | head -60
echo "tests: $(($(date +%s) - start)) s"
"$build/bench/bench_gptq_cuda" "$@" 2>&1 | tee "$out/bench_gptq.txt"
