#!/usr/bin/env bash
# On the GPU machine (no package registry there): configures the project in
# ${UQ_SOURCE:-this checkout} against the packages of scripts/device_deps.sh
# and builds it (CUDA on) into ${UQ_BUILD_DIR:-build-device}.
#   device_build.sh [extra cmake -D options...] [-- cmake --build options...]
set -euo pipefail
source "$(dirname "$0")/device_env.sh"
source_dir=${UQ_SOURCE:-$uq_root}
build=${UQ_BUILD_DIR:-$uq_root/build-device}
configure=() build_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do configure+=("$1"); shift; done
[ $# -gt 0 ] && shift && build_args=("$@")
cmake -S "$source_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${UQ_DEVICE_CMAKE_ARGS[@]}" \
  "${configure[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" "${build_args[@]}"
