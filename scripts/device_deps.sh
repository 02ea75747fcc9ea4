#!/usr/bin/env bash
# The GPU machine (device tool) reaches no package registry and lacks the
# CPU-side libraries the project builds with. This downloads their Debian
# packages into .devdeps/debs/ (ignored by git; carry it with the run), and
# scripts/device_build.sh unpacks them there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devdeps/debs
cd .devdeps/debs
apt-get download nlohmann-json3-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 \
  libpcre2-posix3 libcli11-dev libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev \
  libopenblas0 libutf8proc-dev libutf8proc2 libgtest-dev libgmock-dev googletest \
  libbenchmark-dev libbenchmark1debian libgfortran5 pkgconf pkg-config libpkgconf3 pkgconf-bin
