#!/usr/bin/env bash
# All set-up, build, and the whole test suite (ctest). Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${UQ_BUILD_DIR:-build}"
# Tests run side by side, one thread each: oversubscribing 2 cores costs more than it gains.
UQ_NUM_THREADS="${UQ_NUM_THREADS:-1}" ctest --output-on-failure -j"$(nproc)" --timeout 900
