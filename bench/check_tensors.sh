#!/usr/bin/env bash
# What --check-tensors costs (docs/PERFORMANCE.md, "--check-tensors"): an 8B-shaped bf16
# checkpoint cut to LAYERS layers (uq synth), read once into the page cache, then REPS times each:
# `cat` of the shards (the page-cache read, the baseline), `uq generate -n 1` without and with
# --check-tensors. The scan's cost is the difference of the last two.
#   usage: [LAYERS=2] [REPS=3] bench/check_tensors.sh [WORK_DIR] [UQ]
set -euo pipefail
work=${1:-/tmp/uq-check-tensors-bench}
uq=${2:-build/uq}
trap 'rm -rf "$work"' EXIT
nproc
"$uq" synth --preset llama3-8b --layers "${LAYERS:-2}" -o "$work" --quiet --device cpu
cat "$work"/*.safetensors > /dev/null
seconds() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }
for _ in $(seq "${REPS:-3}"); do
  read_s=$(seconds sh -c "cat '$work'/*.safetensors > /dev/null")
  plain_s=$(seconds "$uq" generate "$work" -p Hi -n 1 --device cpu)
  checked_s=$(seconds "$uq" generate "$work" -p Hi -n 1 --device cpu --check-tensors)
  echo "cat ${read_s} s, generate ${plain_s} s, generate --check-tensors ${checked_s} s"
done
