#!/usr/bin/env bash
# All set-up, build, and the whole test suite (ctest), then the reliability
# checks: the suite under ASan+UBSan and TSan (scripts/sanitize.sh) and a short
# run of every fuzz target (scripts/fuzz.sh, UQ_FUZZ_SECONDS each, default 20).
# UQ_SKIP_RELIABILITY=1 stops after ctest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# Tests run side by side, one thread each: oversubscribing 2 cores costs more than it gains.
(cd "${UQ_BUILD_DIR:-build}" &&
  UQ_NUM_THREADS="${UQ_NUM_THREADS:-1}" ctest --output-on-failure -j"$(nproc)" --timeout 900)
if [ "${UQ_SKIP_RELIABILITY:-0}" != 1 ]; then
  started=$SECONDS
  bash scripts/sanitize.sh address thread
  bash scripts/fuzz.sh "${UQ_FUZZ_SECONDS:-20}"
  echo "test.sh: sanitizers and fuzzing took $((SECONDS - started)) s"
fi
