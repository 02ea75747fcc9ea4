#include "kernels/cpu/tiled_gemm.hpp"

#include <algorithm>
#include <vector>

#include <cblas.h>

#include "core/thread_pool.hpp"
#include "model/blas.hpp"

namespace uq::cpu {
namespace {

// A tile of this many float32 bytes stays in L2 while sgemm streams x past it.
constexpr std::int64_t kTileBytes = 512 << 10;
constexpr std::int64_t kMinTileRows = 16;

}  // namespace

void tiled_gemm(std::int64_t out, std::int64_t in, const float* x, std::int64_t rows, float* y,
                const RowTileDecoder& decode_rows) {
  use_single_threaded_blas();
  const std::int64_t tile_rows = std::max<std::int64_t>(
      kMinTileRows, kTileBytes / std::max<std::int64_t>(1, in * std::int64_t{sizeof(float)}));
  parallel_for(0, out, std::max(tile_rows, items_per_task(in * rows)),
               [&](std::int64_t lo, std::int64_t hi) {
                 // Reused across calls: a prompt runs this for every layer.
                 thread_local std::vector<float> scratch;
                 scratch.resize(static_cast<std::size_t>(std::min(tile_rows, hi - lo) * in));
                 for (std::int64_t first = lo; first < hi; first += tile_rows) {
                   const std::int64_t count = std::min(tile_rows, hi - first);
                   const float* tile = decode_rows(first, count, scratch.data());
                   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                               static_cast<blasint>(count), static_cast<blasint>(in), 1.0f, x,
                               static_cast<blasint>(in), tile, static_cast<blasint>(in), 0.0f,
                               y + first, static_cast<blasint>(out));
                 }
               });
}

}  // namespace uq::cpu
