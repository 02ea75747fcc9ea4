#!/usr/bin/env bash
# All set-up, build, and the main job on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
UQ_SKIP_VENV=1 bash scripts/setup.sh   # the demo needs no Python
bash scripts/build.sh
UQ=./build/uq
MODEL=models/tiny-llama

echo "== uq info"
$UQ info
echo
echo "== perplexity of the float model on data/val.txt"
$UQ eval "$MODEL" --data data/val.txt
echo
echo "== greedy continuation"
$UQ generate "$MODEL" -p "In the beginning God created the heaven and the earth." -n 32
echo
echo "== every backend against the float model (chart: build/demo-bench.svg)"
$UQ bench "$MODEL" --data data/val.txt --input-shape 1,512 --bits 4 --eval-windows 8 \
  --plot build/demo-bench.svg
