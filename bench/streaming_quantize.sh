#!/usr/bin/env bash
# Streaming quantization benchmark (docs/PERFORMANCE.md, "Streaming quantization"):
# an 8B-shaped bf16 checkpoint (uq synth --preset llama3-8b, ~16 GB) quantized
# to mlx 4-bit with --memory-efficient, input evicted from the page cache
# first; the baseline is the disk's raw read speed of the same shards, also
# cold. Needs ~21 GB free under WORK_DIR; removes everything it wrote.
#   usage: [PRESET=llama3-8b] bench/streaming_quantize.sh [WORK_DIR] [UQ]
set -euo pipefail
work=${1:-/work/uq-streaming-bench}
uq=${2:-build/uq}
mkdir -p "$work"
trap 'rm -rf "$work/in" "$work/out"' EXIT
df -h "$work" | tail -1
nproc
grep -E 'MemTotal|MemAvailable' /proc/meminfo

# Clean pages of a file leave the page cache with POSIX_FADV_DONTNEED (dd iflag=nocache).
evict() { for f in "$work"/in/*.safetensors; do dd if="$f" iflag=nocache count=0 status=none; done; }

/usr/bin/time -f "synth: %e s wall, max RSS %M KiB" \
  "$uq" synth --preset "${PRESET:-llama3-8b}" -o "$work/in" --seed 1 --quiet
du -sb "$work/in" | awk '{printf "checkpoint: %.2f GB\n", $1/1e9}'

evict
start=$(date +%s.%N)
cat "$work"/in/*.safetensors > /dev/null
end=$(date +%s.%N)
python3 -c "import os,sys; b=sum(os.path.getsize(os.path.join('$work/in',f)) for f in os.listdir('$work/in') if f.endswith('.safetensors')); t=$end-$start; print(f'cold read (cat > /dev/null): {b/1e9:.2f} GB in {t:.1f} s = {b/1e9/t:.2f} GB/s')"

evict
/usr/bin/time -f "quantize: %e s wall, %U s user, %S s sys, max RSS %M KiB" \
  "$uq" quantize "$work/in" -o "$work/out" --backend mlx --bits 4 --memory-efficient \
  --chunk-size 1024 --quiet --json > "$work/summary.json"
python3 -c "
import json, os
s = json.load(open('$work/summary.json'))
b = sum(os.path.getsize(os.path.join('$work/in', f)) for f in os.listdir('$work/in') if f.endswith('.safetensors'))
o = sum(os.path.getsize(os.path.join('$work/out', f)) for f in os.listdir('$work/out'))
print(f\"streamed: {s['streamed']}, {s['seconds']:.1f} s, {b/1e9/s['seconds']:.2f} GB/s of input, \"
      f\"peak RSS {s['peak_rss_bytes']/2**30:.2f} GiB, output {o/1e9:.2f} GB, {s['bits_per_weight']:.3f} bits/weight\")"
ls "$work/out"
