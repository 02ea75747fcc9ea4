#include "model/weight.hpp"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/thread_pool.hpp"
#include "model/blas.hpp"

namespace uq {
namespace {

// Rows of W dequantized at a time: a tile of 64 rows of a 4096-wide matrix is
// 1 MiB of float32, small enough to stay in cache while sgemm reads it.
constexpr std::int64_t kTileRows = 64;

}  // namespace

void Weight::matmul_transposed(const float* g, std::int64_t rows, float* x) const {
  use_single_threaded_blas();
  const std::int64_t out = out_features();
  const std::int64_t in = in_features();
  std::fill_n(x, rows * in, 0.0f);
  const std::int64_t tiles = (out + kTileRows - 1) / kTileRows;
  // Each chunk of tiles sums into its own buffer (kept under the chunk's first
  // tile); the buffers are added in tile order, so the result does not depend
  // on thread timing.
  std::vector<std::vector<float>> partials(static_cast<std::size_t>(tiles));
  parallel_for(0, tiles, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> tile(static_cast<std::size_t>(kTileRows * in));
    std::vector<float>& partial = partials[static_cast<std::size_t>(lo)];
    partial.assign(static_cast<std::size_t>(rows * in), 0.0f);
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t first = t * kTileRows;
      const std::int64_t count = std::min(kTileRows, out - first);
      dequantize_rows(first, count, tile.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(in), static_cast<blasint>(count), 1.0f, g + first,
                  static_cast<blasint>(out), tile.data(), static_cast<blasint>(in), 1.0f,
                  partial.data(), static_cast<blasint>(in));
    }
  });
  for (const auto& partial : partials) {
    for (std::size_t i = 0; i < partial.size(); ++i) x[i] += partial[i];
  }
}

}  // namespace uq
