#include "kernels/cpu/affine_kernels.hpp"

#include <algorithm>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/tiled_gemm.hpp"
#include "quant/affine.hpp"

namespace uq::cpu {

namespace detail {

std::vector<float> group_sums(const AffineMatrix& w, const float* x, std::int64_t rows) {
  const auto groups = w.groups_per_row();
  std::vector<float> sums(static_cast<std::size_t>(rows * groups));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t g = 0; g < groups; ++g) {
      const float* begin = x + r * w.in + g * w.group_size;
      float sum = 0.0f;
      for (int i = 0; i < w.group_size; ++i) sum += begin[i];
      sums[r * groups + g] = sum;
    }
  }
  return sums;
}

void gemv_rows_scalar(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y) {
  const auto groups = w.groups_per_row();
  for (std::int64_t o = out_first; o < out_last; ++o) {
    const std::uint32_t* codes = w.codes + o * w.words_per_row();
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * w.in;
      float total = 0.0f;
      for (std::int64_t g = 0; g < groups; ++g) {
        float dot = 0.0f;
        for (std::int64_t i = g * w.group_size; i < (g + 1) * w.group_size; ++i) {
          dot += static_cast<float>(unpack_code(codes, i, w.bits)) * xr[i];
        }
        total += load_param(w.scales, w.param_dtype, o * groups + g) * dot +
                 load_param(w.biases, w.param_dtype, o * groups + g) * xsum[r * groups + g];
      }
      y[r * w.out + o] = total;
    }
  }
}

void dequantize_rows_scalar(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                            float* out) {
  const auto groups = w.groups_per_row();
  for (std::int64_t o = first; o < first + count; ++o) {
    const std::uint32_t* codes = w.codes + o * w.words_per_row();
    float* row = out + (o - first) * w.in;
    for (std::int64_t i = 0; i < w.in; ++i) {
      const auto g = o * groups + i / w.group_size;
      row[i] = load_param(w.scales, w.param_dtype, g) *
                   static_cast<float>(unpack_code(codes, i, w.bits)) +
               load_param(w.biases, w.param_dtype, g);
    }
  }
}

}  // namespace detail

void affine_gemv(const AffineMatrix& w, const float* x, std::int64_t rows, float* y,
                 KernelIsa isa) {
  const auto xsum = detail::group_sums(w, x, rows);
  auto* kernel = isa == KernelIsa::Avx2 ? &detail::gemv_rows_avx2 : &detail::gemv_rows_scalar;
  parallel_for(0, w.out, items_per_task(w.in * rows), [&](std::int64_t first, std::int64_t last) {
    kernel(w, x, xsum.data(), rows, first, last, y);
  });
}

void affine_dequantize_rows(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                            float* out, KernelIsa isa) {
  auto* kernel =
      isa == KernelIsa::Avx2 ? &detail::dequantize_rows_avx2 : &detail::dequantize_rows_scalar;
  parallel_for(0, count, items_per_task(w.in), [&](std::int64_t lo, std::int64_t hi) {
    kernel(w, first + lo, hi - lo, out + lo * w.in);
  });
}

void affine_gemm(const AffineMatrix& w, const float* x, std::int64_t rows, float* y,
                 KernelIsa isa) {
  tiled_gemm(w.out, w.in, x, rows, y, [&](std::int64_t first, std::int64_t count, float* tile) {
    affine_dequantize_rows(w, first, count, tile, isa);
    return static_cast<const float*>(tile);
  });
}

void affine_matmul(const AffineMatrix& w, const float* x, std::int64_t rows, float* y) {
  if (rows >= kAffineGemmMinRows) {
    affine_gemm(w, x, rows, y, best_kernel_isa());
  } else if (!exact_gemv() && int8_gemv_supports(w)) {
    affine_gemv_int8(w, x, rows, y, best_dot_isa());
  } else {
    affine_gemv(w, x, rows, y, best_kernel_isa());
  }
}

}  // namespace uq::cpu
