#!/usr/bin/env bash
# The test suite under sanitizers: scripts/sanitize.sh [address|thread ...]
# (default: both).
#  address: ASan + UBSan on everything (library, `uq`, tests) in build-asan/
#           (clang, built by scripts/asan_build.sh, shared with the fuzzers),
#           then ctest; any report fails its test. UQ_ASAN_EXCLUDE (a ctest -E
#           regex) skips tests, by default the Python-oracle ones (they exercise
#           the same C++ paths as the reference tests and spend their time in Python)
#           and the whole-text perplexity runs (the same code as the short
#           reference-model tests, at 100x the tokens).
#  thread:  TSan in build-tsan/ for the tests that run threads (TSAN_TESTS).
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(address thread)

# Left out under ASan: tests that spend their time in Python oracles or in
# whole-text evaluations, fine-tuning, calibration and GB-sized checkpoints
# through `uq`; the same C++ paths run under ASan in the unit and shorter e2e
# tests, and the parsers under the fuzzers.
ASAN_EXCLUDE='Oracle|Perplexity|Simulation|SeedMixed|CompareBackends|Bench|MigrationDoc|StreamingCli|CalibrationCli|CalibratedStreaming|Finetune\.|Gguf\.'
# Tests that start threads, and the executables that hold them.
TSAN_TARGETS=(test_thread_pool test_tokenizer test_concurrent_generation)
TSAN_TESTS='^ThreadPool\.|Concurrent'

export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

launcher=()
if command -v ccache >/dev/null; then  # as in build.sh: the cache lives under ~/.cache
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/unified_quantization/ccache}" CCACHE_BASEDIR="$PWD"
  # Debug info would put the clone's folder into every hash: clones elsewhere could not hit.
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

for mode in "${modes[@]}"; do
  case "$mode" in
    address)
      bash scripts/asan_build.sh
      (cd build-asan && ctest --output-on-failure -j"$(nproc)" --timeout 1800 \
        -E "${UQ_ASAN_EXCLUDE:-$ASAN_EXCLUDE}")
      ;;
    thread)
      cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUQ_SANITIZE=thread \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DUQ_BUILD_BENCH=OFF -DUQ_CUDA=OFF -DUQ_PYTHON=OFF "${launcher[@]}" >/dev/null
      cmake --build build-tsan -j"$(nproc)" --target "${TSAN_TARGETS[@]}"
      (cd build-tsan && ctest --output-on-failure -j"$(nproc)" --timeout 1800 -R "$TSAN_TESTS")
      ;;
    *)
      echo "sanitize.sh: unknown mode '$mode' (address or thread)" >&2
      exit 2
      ;;
  esac
done
