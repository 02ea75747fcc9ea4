#!/usr/bin/env bash
# One-time (idempotent) set-up: Debian packages for the build, and the Python
# oracle venv used only by the tests (the C++ library and `uq` never need Python).
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libpcre2-dev libcli11-dev libopenblas-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-venv python3-dev pybind11-dev  # the Python module (python/)
  ccache
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  librsvg2-dev fonts-dejavu-core  # PNG charts (uq bench --plot FILE.png)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The oracle venv is large (torch): keep it outside the clone so CI and later
# runs reuse it. UQ_SKIP_VENV=1 skips it (tests needing it then skip).
UQ_VENV="${UQ_VENV:-$HOME/.cache/unified_quantization/venv}"
PY_PACKAGES=(numpy safetensors torch transformers tokenizers "mlx[cpu]" mlx-lm bitsandbytes
             optimum-quanto pytest peft gguf llama-cpp-python pillow)
if [ "${UQ_SKIP_VENV:-0}" != 1 ]; then
  stamp="$UQ_VENV/.uq-packages"
  want="${PY_PACKAGES[*]}"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: preparing oracle venv at $UQ_VENV"
    [ -x "$UQ_VENV/bin/python" ] || /usr/bin/python3 -m venv "$UQ_VENV"
    "$UQ_VENV/bin/pip" install -q --upgrade pip
    # llama-cpp-python builds llama.cpp from source (once: the venv is cached).
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$UQ_VENV/bin/pip" install -q "${PY_PACKAGES[@]}"
    echo "$want" >"$stamp"
  fi
  # llama.cpp's own HF -> GGUF converter is not a PyPI package of its own; the
  # llama-cpp-python sdist (PyPI) vendors it. Its script, `conversion/` and
  # `gguf-py/` are unpacked beside the venv for the GGUF oracle tests.
  version="$("$UQ_VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
  converter="$HOME/.cache/unified_quantization/llama.cpp-$version"
  if [ ! -f "$converter/convert_hf_to_gguf.py" ]; then
    echo "setup: unpacking llama.cpp's convert_hf_to_gguf.py from llama-cpp-python $version"
    download="$(mktemp -d)"
    "$UQ_VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$download" \
      "llama-cpp-python==$version"
    mkdir -p "$converter.tmp"
    tar xzf "$download"/llama_cpp_python-*.tar.gz -C "$converter.tmp" --strip-components=3 \
      "llama_cpp_python-$version/vendor/llama.cpp/convert_hf_to_gguf.py" \
      "llama_cpp_python-$version/vendor/llama.cpp/conversion" \
      "llama_cpp_python-$version/vendor/llama.cpp/gguf-py"
    rm -rf "$download" "$converter" && mv "$converter.tmp" "$converter"
  fi
fi
