#include "quant/ggml_weight.hpp"

#include <cblas.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_matrix.hpp"
#include "kernels/cpu/ggml_gemv_int8.hpp"
#include "kernels/cpu/ggml_kernels.hpp"
#include "model/blas.hpp"

namespace uq {
namespace {

// Up to this many input rows the GEMV reads each W row once for all of them;
// beyond, unpacking tiles for sgemm wins.
constexpr std::int64_t kGemvMaxRows = 4;
// Rows of W unpacked to float32 per sgemm call (fits in L2).
constexpr std::int64_t kGemmTileBytes = 256 * 1024;

}  // namespace

GgmlWeight::GgmlWeight(GgmlType type, std::int64_t out_features, std::int64_t in_features,
                       std::span<const std::byte> bytes)
    : type_(type),
      out_features_(out_features),
      in_features_(in_features),
      row_bytes_(ggml_row_bytes(type, in_features)) {
  if (out_features < 0 || bytes.size() != row_bytes_ * static_cast<std::size_t>(out_features)) {
    fail("ggml ", ggml_type_name(type), " weight [", out_features, ", ", in_features,
         "]: ", bytes.size(), " bytes given, ", row_bytes_ * static_cast<std::size_t>(out_features),
         " expected");
  }
  data_.assign(bytes.begin(), bytes.end());
}

GgmlWeight GgmlWeight::quantize(GgmlType type, std::int64_t out_features, std::int64_t in_features,
                                const float* values) {
  const std::size_t row_bytes = ggml_row_bytes(type, in_features);
  std::vector<std::byte> packed(row_bytes * static_cast<std::size_t>(out_features));
  parallel_for(0, out_features, 16, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      ggml_quantize_row(type, values + r * in_features, in_features,
                        packed.data() + static_cast<std::size_t>(r) * row_bytes);
    }
  });
  return GgmlWeight(type, out_features, in_features, packed);
}

void GgmlWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  if (rows <= kGemvMaxRows) {
    matmul_gemv(x, rows, y);
  } else {
    matmul_gemm(x, rows, y);
  }
}

void GgmlWeight::matmul_gemv(const float* x, std::int64_t rows, float* y) const {
  const bool avx2 = cpu::best_kernel_isa() == cpu::KernelIsa::Avx2;
  if (cpu::ggml_int8_gemv_supports(type_) && !cpu::exact_gemv()) {
    // llama.cpp's arithmetic: activations rounded to int8 blocks, integer dots.
    const auto dot = avx2 ? cpu::ggml_int8_dot_simd(type_, cpu::best_dot_isa())
                          : cpu::ggml_int8_dot_scalar(type_);
    cpu::ggml_gemv_int8(dot, data_.data(), row_bytes_, out_features_, in_features_, x, rows, y);
    return;
  }
  const std::int64_t min_chunk =
      std::max<std::int64_t>(16, 32768 / std::max<std::int64_t>(in_features_, 1));
  // Exact float dot products: Q4_0 and Q8_0 have AVX2 kernels; the other
  // formats unpack block by block.
  using Dot = float (*)(const std::byte*, const float*, std::int64_t);
  Dot dot = nullptr;
  if (avx2 && type_ == GgmlType::Q4_0) dot = ggml_dot_q4_0_avx2;
  if (avx2 && type_ == GgmlType::Q8_0) dot = ggml_dot_q8_0_avx2;
  parallel_for(0, out_features_, min_chunk, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t o = lo; o < hi; ++o) {
      for (std::int64_t r = 0; r < rows; ++r) {
        const float* x_row = x + r * in_features_;
        y[r * out_features_ + o] = dot != nullptr
                                       ? dot(row(o), x_row, in_features_)
                                       : ggml_dot_row(type_, row(o), x_row, in_features_);
      }
    }
  });
}

void GgmlWeight::matmul_gemm(const float* x, std::int64_t rows, float* y) const {
  use_single_threaded_blas();
  const auto in = static_cast<blasint>(in_features_);
  const auto out = static_cast<blasint>(out_features_);
  const auto m = static_cast<blasint>(rows);
  const std::int64_t tile_rows = std::max<std::int64_t>(
      16, kGemmTileBytes / static_cast<std::int64_t>(std::max<std::int64_t>(in_features_, 1) *
                                                     static_cast<std::int64_t>(sizeof(float))));
  parallel_for(0, out_features_, 64, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> tile;
    for (std::int64_t first = lo; first < hi; first += tile_rows) {
      const std::int64_t count = std::min(tile_rows, hi - first);
      tile.resize(static_cast<std::size_t>(count * in_features_));
      dequantize_rows(first, count, tile.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<blasint>(count), in, 1.0f,
                  x, in, tile.data(), in, 0.0f, y + first, out);
    }
  });
}

void GgmlWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_features_) {
    fail("ggml weight: rows [", first, ", ", first + count, ") out of range 0..", out_features_);
  }
  for (std::int64_t r = 0; r < count; ++r) {
    ggml_dequantize_row(type_, row(first + r), in_features_, out + r * in_features_);
  }
}

std::string GgmlWeight::describe() const {
  return "ggml " + std::string(ggml_type_name(type_));
}

}  // namespace uq
