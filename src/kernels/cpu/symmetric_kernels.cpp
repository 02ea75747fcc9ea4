#include "kernels/cpu/symmetric_kernels.hpp"

#include <algorithm>

#include "core/thread_pool.hpp"
#include "kernels/cpu/tiled_gemm.hpp"

namespace uq::cpu {

namespace detail {

void symmetric_gemv_rows_scalar(const SymmetricMatrix& w, const float* x, std::int64_t rows,
                                std::int64_t out_first, std::int64_t out_last, float* y) {
  for (std::int64_t o = out_first; o < out_last; ++o) {
    const std::uint8_t* row = w.codes + o * w.bytes_per_row();
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * w.in;
      float dot = 0.0f;
      for (std::int64_t i = 0; i < w.in; ++i) dot += static_cast<float>(w.code(row, i)) * xr[i];
      y[r * w.out + o] = w.scales[o] * dot;
    }
  }
}

void symmetric_dequantize_rows_scalar(const SymmetricMatrix& w, std::int64_t first,
                                      std::int64_t count, float* out) {
  for (std::int64_t o = first; o < first + count; ++o) {
    const std::uint8_t* row = w.codes + o * w.bytes_per_row();
    float* dst = out + (o - first) * w.in;
    for (std::int64_t i = 0; i < w.in; ++i)
      dst[i] = w.scales[o] * static_cast<float>(w.code(row, i));
  }
}

}  // namespace detail

void symmetric_gemv(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y,
                    KernelIsa isa) {
  parallel_for(0, w.out, items_per_task(w.in * rows), [&](std::int64_t lo, std::int64_t hi) {
    if (isa == KernelIsa::Avx2) {
      detail::symmetric_gemv_rows_avx2(w, x, rows, lo, hi, y);
    } else {
      detail::symmetric_gemv_rows_scalar(w, x, rows, lo, hi, y);
    }
  });
}

void symmetric_dequantize_rows(const SymmetricMatrix& w, std::int64_t first, std::int64_t count,
                               float* out, KernelIsa isa) {
  parallel_for(first, first + count, items_per_task(w.in), [&](std::int64_t lo, std::int64_t hi) {
    float* dst = out + (lo - first) * w.in;
    if (isa == KernelIsa::Avx2) {
      detail::symmetric_dequantize_rows_avx2(w, lo, hi - lo, dst);
    } else {
      detail::symmetric_dequantize_rows_scalar(w, lo, hi - lo, dst);
    }
  });
}

void symmetric_gemm(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y,
                    KernelIsa isa) {
  tiled_gemm(w.out, w.in, x, rows, y, [&](std::int64_t first, std::int64_t count, float* tile) {
    symmetric_dequantize_rows(w, first, count, tile, isa);
    return static_cast<const float*>(tile);
  });
}

void symmetric_matmul(const SymmetricMatrix& w, const float* x, std::int64_t rows, float* y) {
  if (rows >= kSymmetricGemmMinRows) {
    symmetric_gemm(w, x, rows, y, best_kernel_isa());
  } else {
    symmetric_gemv(w, x, rows, y, best_kernel_isa());
  }
}

}  // namespace uq::cpu
