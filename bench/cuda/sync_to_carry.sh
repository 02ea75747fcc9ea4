#!/usr/bin/env bash
# Copies what run_on_device.sh needs into DEST, a git-ignored folder of the checkout that the
# device tool sends (name it in `carry`): sources, GoogleTest's source, and the binaries of
# `run_on_device.sh build build-gpu` as one xz archive (the tool sends at most 64 MiB; the two
# binaries share most of their bytes, which a large xz dictionary finds).
# On the device: tar xJf DEST/bins.tar.xz -C DEST/build-gpu &&
#   GTEST_SRC=DEST/googletest bash DEST/bench/cuda/run_on_device.sh run DEST/build-gpu
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:?destination folder}
rm -rf "$dest"
mkdir -p "$dest/src" "$dest/tests" "$dest/bench" "$dest/build-gpu"
cp -r "$root/src/core" "$root/src/kernels" "$dest/src/"
cp -r "$root/tests/cuda" "$dest/tests/"
cp -r "$root/bench/cuda" "$dest/bench/"
cp -r "${GTEST_SRC:-/usr/src/googletest/googletest}" "$dest/googletest"
(cd "$root/build-gpu" && tar cf - test_affine_gemv bench_cuda_gemv) |
  xz -6 --lzma2=dict=64MiB -T2 > "$dest/bins.tar.xz"
du -sh "$dest"
