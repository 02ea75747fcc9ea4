#!/usr/bin/env bash
# All set-up, build, and the main job on the bundled model: describe it, measure
# it, quantize it (mixed precision, mlx layout), and measure the quantized model
# against the original.
set -euo pipefail
cd "$(dirname "$0")/.."
UQ_SKIP_VENV=1 bash scripts/setup.sh   # the demo needs no Python
bash scripts/build.sh
UQ=./build/uq
MODEL=models/tiny-llama
OUT=out/tiny-llama-mlx-4bit
PROMPT="In the beginning God created the heaven and the earth."

echo "== uq info"
$UQ info
echo
echo "== the float model: perplexity on data/val.txt and a greedy continuation"
$UQ eval "$MODEL" --data data/val.txt
$UQ generate "$MODEL" -p "$PROMPT" -n 32
echo
echo "== quantize: 4-bit affine (mlx layout), embeddings and lm_head at 8 bits, layer 0 at 6"
$UQ quantize "$MODEL" -o "$OUT" --backend mlx --bits 4 \
  --layer-bits embed=8 --layer-bits lm_head=8 --layer-bits model.layers.0=6
echo
echo "== the quantized model against the original"
$UQ eval "$OUT" --data data/val.txt --reference "$MODEL"
$UQ generate "$OUT" -p "$PROMPT" -n 32
echo
echo "== every backend against the float model (chart: out/demo-bench.svg and .png)"
$UQ bench "$MODEL" --data data/val.txt --input-shape 1,512 --bits 4 --eval-windows 8 \
  --plot out/demo-bench.svg --plot out/demo-bench.png
