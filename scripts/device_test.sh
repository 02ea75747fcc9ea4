#!/usr/bin/env bash
# On the GPU machine, in a copy of this checkout with .devdeps beside it: builds everything
# with CUDA (scripts/device_build.sh) and runs every GPU test (tests/cuda/test_*), one line of
# ok/FAILED per test binary, logs in $OUT. Exit status: non-zero when any test fails.
set -uo pipefail
out=${OUT:-/tmp/uq-device-out}
mkdir -p "$out"
[ -e .devdeps ] || ln -sfn ../.devdeps .devdeps
start=$SECONDS
status=0
# -k 0: a target that fails to build is reported, and the tests that did build still run.
bash scripts/device_build.sh -DUQ_CUDA=ON -- -- -k 0 > "$out/build.log" 2>&1 ||
  { grep -E "error|FAILED" "$out/build.log" | head -20; status=1; }
echo "build: $((SECONDS - start)) s"
source scripts/device_env.sh
build=${UQ_BUILD_DIR:-build-device}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# Every test of tests/cuda/ (one binary per source file), so a new GPU test is never left out.
for source in tests/cuda/test_*.cpp; do
  name=$(basename "$source" .cpp)
  test="$build/tests/$name"
  if [ ! -x "$test" ]; then
    echo "$name: FAILED (not built)"
    status=1
    continue
  fi
  t0=$SECONDS
  if "$test" > "$out/$name.log" 2>&1; then result=ok; else result=FAILED; status=1; fi
  echo "$name: $result ($(grep -c '^\[       OK' "$out/$name.log") ok, $((SECONDS - t0)) s)"
  [ "$result" = ok ] || grep -E "Failure|Expected|Which|actual|error" "$out/$name.log" | head -20
done
exit $status
