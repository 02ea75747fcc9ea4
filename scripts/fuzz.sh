#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs each
# for a bounded time: scripts/fuzz.sh [seconds per target, default 60] [target...].
# Starts from the committed seed corpus fuzz/corpus/<name>/ (copied, so runs do
# not grow the repository). Exits non-zero on any crash, leak, timeout or OOM;
# the failing input is left in build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
BUILD_DIR="${UQ_FUZZ_BUILD_DIR:-build-fuzz}"

launcher=()
if command -v ccache >/dev/null; then  # as in build.sh: the cache lives under ~/.cache
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/unified_quantization/ccache}" CCACHE_BASEDIR="$PWD"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DUQ_FUZZ=ON -DUQ_BUILD_TESTS=OFF -DUQ_BUILD_BENCH=OFF -DUQ_CUDA=OFF -DUQ_PYTHON=OFF "${launcher[@]}" \
  >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in fuzz/fuzz_*.cpp; do
    name="$(basename "$source" .cpp)"
    targets+=("${name#fuzz_}")
  done
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

mkdir -p "$BUILD_DIR/artifacts"
status=0
for target in "${targets[@]}"; do
  corpus="$BUILD_DIR/corpus/$target"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  log="$BUILD_DIR/fuzz_$target.log"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory.
  if "$BUILD_DIR/fuzz/fuzz_$target" "$corpus" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD_DIR/artifacts/$target-" >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')"
    echo "fuzz $target: ok, $runs executions in ${SECONDS_PER_TARGET} s"
  else
    echo "fuzz $target: FAILED (log $log)"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 || true
    status=1
  fi
done
exit $status
