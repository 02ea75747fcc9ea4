#include "calibration/hessian.hpp"

#include <cblas.h>

#include <algorithm>

#include "core/thread_pool.hpp"
#include "model/blas.hpp"

namespace uq {
namespace {

constexpr std::int64_t kTile = 64;  // rows of H per sgemm

// Σ_o aₒᵀ M bₒ for A, B [out, in], M [in, in] in float.
double bilinear_sum(const float* a, const float* b, std::int64_t out, std::int64_t in,
                    const std::vector<float>& matrix) {
  std::vector<float> product(static_cast<std::size_t>(out * in));
  const std::int64_t chunks = (out + kTile - 1) / kTile;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  parallel_for(0, chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t c = lo; c < hi; ++c) {
      const std::int64_t first = c * kTile;
      const auto rows = static_cast<int>(std::min(kTile, out - first));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, static_cast<int>(in),
                  static_cast<int>(in), 1.0f, a + first * in, static_cast<int>(in), matrix.data(),
                  static_cast<int>(in), 0.0f, product.data() + first * in, static_cast<int>(in));
      double sum = 0.0;
      for (std::int64_t i = first * in; i < (first + rows) * in; ++i) {
        sum += static_cast<double>(product[static_cast<std::size_t>(i)]) * b[i];
      }
      partial[static_cast<std::size_t>(c)] = sum;
    }
  });
  double total = 0.0;
  for (const double value : partial) total += value;
  return total;
}

}  // namespace

HessianAccumulator::HessianAccumulator(std::int64_t columns)
    : columns_(columns), sum_(static_cast<std::size_t>(columns * columns), 0.0) {}

void HessianAccumulator::add(const float* x, std::int64_t rows) {
  if (rows <= 0) return;
  use_single_threaded_blas();
  const std::int64_t n = columns_;
  const std::int64_t tiles = (n + kTile - 1) / kTile;
  parallel_for(0, tiles, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> product(static_cast<std::size_t>(kTile * n));
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t first = t * kTile;
      const auto tile_rows = static_cast<int>(std::min(kTile, n - first));
      // product = x[:, first:first+tile]ᵀ x
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, tile_rows, static_cast<int>(n),
                  static_cast<int>(rows), 1.0f, x + first, static_cast<int>(n), x,
                  static_cast<int>(n), 0.0f, product.data(), static_cast<int>(n));
      double* target = sum_.data() + first * n;
      for (std::int64_t i = 0; i < tile_rows * n; ++i) {
        target[i] += static_cast<double>(product[static_cast<std::size_t>(i)]);
      }
    }
  });
  rows_ += rows;
}

std::vector<double> HessianAccumulator::hessian() const {
  std::vector<double> result(sum_.size(), 0.0);
  if (rows_ == 0) return result;
  const double factor = 2.0 / static_cast<double>(rows_);
  for (std::size_t i = 0; i < sum_.size(); ++i) result[i] = sum_[i] * factor;
  return result;
}

double relative_output_error(const float* weights, const float* quantized, std::int64_t out,
                             std::int64_t in, const std::vector<double>& hessian) {
  use_single_threaded_blas();
  std::vector<float> matrix(hessian.begin(), hessian.end());
  std::vector<float> difference(static_cast<std::size_t>(out * in));
  for (std::size_t i = 0; i < difference.size(); ++i) difference[i] = weights[i] - quantized[i];
  const double reference = bilinear_sum(weights, weights, out, in, matrix);
  if (reference <= 0.0) return 0.0;
  return bilinear_sum(difference.data(), difference.data(), out, in, matrix) / reference;
}

}  // namespace uq
