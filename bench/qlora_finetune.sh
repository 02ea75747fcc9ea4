#!/usr/bin/env bash
# The QLoRA "must show" run (issue 7): the bundled model quantized to 4-bit
# g64 (mlx), LoRA rank 16 / alpha 32 on all seven projections, lr 1e-3,
# batch 16, ctx 256, 300 steps on data/finetune_train.txt; validation
# perplexity on data/finetune_val.txt before and after, tokens/s, peak RSS.
# Usage: bench/qlora_finetune.sh [BUILD_DIR] [THREADS] [DEVICE]
#   (about 10-35 min on 1-2 cores; DEVICE cuda: seconds on an H200)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
threads="${2:-1}"
device="${3:-cpu}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$build/uq" quantize "$root/models/tiny-llama" -o "$work/q4" --bits 4 --group-size 64 \
  --backend mlx --quiet
"$build/uq" finetune "$work/q4" --data "$root/data/finetune_train.txt" \
  --val "$root/data/finetune_val.txt" -o "$work/adapter" --lora-rank 16 --lora-alpha 32 \
  --lr 1e-3 --batch 16 --ctx 256 --steps 300 --log-every 10 --threads "$threads" \
  --device "$device" --json
"$build/uq" eval "$work/q4" --adapter "$work/adapter" --data "$root/data/finetune_val.txt" \
  --ctx 256 --threads "$threads" --device cpu --quiet --json
echo "quantized model: $(du -sb "$work/q4" | cut -f1) bytes on disk"
