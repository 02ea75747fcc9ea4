#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it (docs/PERFORMANCE.md,
# "QLoRA fine-tuning on the GPU"): builds uq, the GPU training tests and bench_cuda_finetune;
# runs the tests, the 300-step recipe with --device cuda (bench/qlora_finetune.sh), then
# the 8B-shaped synthetic training benchmark in FP32 and TF32. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
ln -sfn ../.devdeps .devdeps
start=$(date +%s)
bash scripts/device_build.sh -DUQ_CUDA=ON -- --target uq_cli test_cuda_training \
  bench_cuda_finetune > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(($(date +%s) - start)) s"
source scripts/device_env.sh
build=${UQ_BUILD_DIR:-build-device}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
timeout 200 "$build/tests/test_cuda_training" 2>&1 | tee "$out/test_training.log" |
  grep -E "^\[  |Failure|error|Expected|Which|actual|gradients:|GPU recipe|step" | head -60
start=$(date +%s)
timeout 150 bash bench/qlora_finetune.sh "$build" 16 cuda > "$out/recipe.log" 2>&1
echo "recipe: $(($(date +%s) - start)) s (quantize + 300 steps + validations + eval)"
grep -v "^step [0-9]*/300 loss" "$out/recipe.log" | tail -8
timeout 100 "$build/bench/bench_cuda_finetune" --batch 8 --tf32 2>&1 | tee "$out/bench.txt"
timeout 100 "$build/bench/bench_cuda_finetune" --batch 8 --steps 2 2>&1 | tee -a "$out/bench.txt"
