#!/usr/bin/env bash
# The docs/ACCURACY.md table: the bundled model quantized at 2/3/4 bits g64
# with rtn/hqq/awq/gptq (decoder linears only; embeddings and lm_head float),
# calibrated on data/train.txt, evaluated on data/val.txt with `uq eval`.
# Usage: bench/calibration_table.sh [UQ_BINARY] [WORK_DIR]
set -euo pipefail
uq=${1:-build/uq}
work=${2:-$(mktemp -d)}
samples=${SAMPLES:-128}
ctx=${CTX:-256}
model=models/tiny-llama
printf '| bits | method | val ppl | gap closed | quantize s |\n|---|---|---|---|---|\n'
float_ppl=$("$uq" eval "$model" --data data/val.txt --json --quiet | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
for bits in 2 3 4; do
  rtn_ppl=
  for method in rtn hqq awq gptq; do
    args=(--method "$method")
    if [[ $method == awq || $method == gptq ]]; then
      args+=(--calibration-data data/train.txt --calibration-samples "$samples"
             --calibration-ctx "$ctx" --seed 0)
    fi
    out="$work/$method-b$bits"
    seconds=$("$uq" quantize "$model" -o "$out" --bits "$bits" --group-size 64 \
      --layer-bits embed=16 --layer-bits lm_head=16 "${args[@]}" --json --quiet |
      python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["seconds"])')
    ppl=$("$uq" eval "$out" --data data/val.txt --json --quiet |
      python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
    [[ $method == rtn ]] && rtn_ppl=$ppl
    closed=$(python3 -c "r=$rtn_ppl; f=$float_ppl; p=$ppl; print('%.0f%%' % (100*(r-p)/(r-f)) if r>f else '-')")
    printf '| %s | %s | %s | %s | %s |\n' "$bits" "$method" "$ppl" "$closed" "$seconds"
  done
done
printf '\nfloat (bf16) val ppl: %s\n' "$float_ppl"
