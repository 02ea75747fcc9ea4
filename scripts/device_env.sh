# Sourced on the GPU machine: unpacks the packages of scripts/device_deps.sh
# into /opt/uq-deps (once) and points the build, pkg-config and the loader
# at them. Sets UQ_DEVICE_CMAKE_ARGS for configuring against them.
uq_deps=/opt/uq-deps
uq_arch=x86_64-linux-gnu
uq_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -d "$uq_deps/usr" ]; then
  mkdir -p "$uq_deps"
  for deb in "$uq_root"/.devdeps/debs/*.deb; do dpkg -x "$deb" "$uq_deps"; done
fi
export PATH="$uq_deps/usr/bin:$PATH"
export PKG_CONFIG_SYSROOT_DIR="$uq_deps"
export PKG_CONFIG_LIBDIR="$uq_deps/usr/lib/$uq_arch/pkgconfig:$uq_deps/usr/share/pkgconfig"
export LD_LIBRARY_PATH="$uq_deps/usr/lib/$uq_arch:$uq_deps/usr/lib/$uq_arch/openblas-pthread:${LD_LIBRARY_PATH:-}"
UQ_DEVICE_CMAKE_ARGS=(-DCMAKE_PREFIX_PATH="$uq_deps/usr"
  -DBLAS_LIBRARIES="$uq_deps/usr/lib/$uq_arch/openblas-pthread/libopenblas.so"
  -DOPENBLAS_INCLUDE_DIR="$uq_deps/usr/include/$uq_arch/openblas-pthread" -DUQ_PYTHON=OFF)
