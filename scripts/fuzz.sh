#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-asan/ (scripts/asan_build.sh,
# the build the sanitizer tests use too) and runs each for a bounded time:
#   scripts/fuzz.sh [seconds per target, default 60] [target...]
# Starts from the committed seed corpus fuzz/corpus/<name>/ (copied, so runs do
# not grow the repository). Exits non-zero on any crash, leak, timeout or OOM;
# the failing input is left in build-asan/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
export UQ_ASAN_BUILD_DIR="${UQ_ASAN_BUILD_DIR:-build-asan}"
BUILD_DIR="$UQ_ASAN_BUILD_DIR"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in fuzz/fuzz_*.cpp; do
    name="$(basename "$source" .cpp)"
    targets+=("${name#fuzz_}")
  done
fi
bash scripts/asan_build.sh "${targets[@]/#/fuzz_}"

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
