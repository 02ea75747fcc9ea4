#include "kernels/cpu/bnb4_kernels.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/horizontal_sum.hpp"
#include "kernels/cpu/tiled_gemm.hpp"

namespace uq::cpu {
namespace {

constexpr std::int64_t kMaxGemvRows = kBnb4GemmMinRows;

float element(const Bnb4Matrix& w, std::int64_t index) {
  const std::uint8_t byte = w.packed[index / 2];
  const int nibble = index % 2 == 0 ? byte >> 4 : byte & 0xF;
  return w.code[nibble] * w.absmax[index / w.blocksize];
}

// The AVX2 kernels need every block inside one row and 8-element chunks.
bool avx2_shape_ok(const Bnb4Matrix& w) {
  return w.blocksize % 8 == 0 && w.in % w.blocksize == 0;
}

void gemv_rows_scalar(const Bnb4Matrix& w, const float* x, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y) {
  for (std::int64_t o = out_first; o < out_last; ++o) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * w.in;
      float sum = 0.0f;
      for (std::int64_t i = 0; i < w.in; ++i) sum += xr[i] * element(w, o * w.in + i);
      y[r * w.out + o] = sum;
    }
  }
}

// 8 weights' table indices from 4 packed bytes: byte k gives elements 2k
// (high nibble) and 2k+1 (low nibble).
inline __m256i unpack8(const std::uint8_t* bytes) {
  std::int32_t word;
  std::memcpy(&word, bytes, sizeof word);
  const __m128i duplicated =
      _mm_shuffle_epi8(_mm_cvtsi32_si128(word),
                       _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1));
  const __m256i widened = _mm256_cvtepu8_epi32(duplicated);
  const __m256i shifted = _mm256_srlv_epi32(widened, _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0));
  return _mm256_and_si256(shifted, _mm256_set1_epi32(0xF));
}

// code[index] for 8 indices: the low and high halves of the 16-entry table
// are each one permute; bit 3 of the index (moved to the sign bit) picks.
inline __m256 lookup8(__m256i index, __m256 table_low, __m256 table_high) {
  const __m256 low = _mm256_permutevar8x32_ps(table_low, index);
  const __m256 high = _mm256_permutevar8x32_ps(table_high, index);
  return _mm256_blendv_ps(low, high, _mm256_castsi256_ps(_mm256_slli_epi32(index, 28)));
}

void gemv_rows_avx2(const Bnb4Matrix& w, const float* x, std::int64_t rows, std::int64_t out_first,
                    std::int64_t out_last, float* y) {
  const __m256 table_low = _mm256_loadu_ps(w.code);
  const __m256 table_high = _mm256_loadu_ps(w.code + 8);
  const std::int64_t blocks = w.in / w.blocksize;
  for (std::int64_t o = out_first; o < out_last; ++o) {
    __m256 total[kMaxGemvRows];
    for (std::int64_t r = 0; r < rows; ++r) total[r] = _mm256_setzero_ps();
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t first = o * w.in + b * w.blocksize;
      __m256 partial[kMaxGemvRows];
      for (std::int64_t r = 0; r < rows; ++r) partial[r] = _mm256_setzero_ps();
      for (std::int64_t i = 0; i < w.blocksize; i += 8) {
        const __m256 weights = lookup8(unpack8(w.packed + (first + i) / 2), table_low, table_high);
        const std::int64_t column = b * w.blocksize + i;
        for (std::int64_t r = 0; r < rows; ++r) {
          partial[r] = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x + r * w.in + column), partial[r]);
        }
      }
      const __m256 scale = _mm256_set1_ps(w.absmax[first / w.blocksize]);
      for (std::int64_t r = 0; r < rows; ++r)
        total[r] = _mm256_fmadd_ps(partial[r], scale, total[r]);
    }
    for (std::int64_t r = 0; r < rows; ++r) y[r * w.out + o] = horizontal_sum(total[r]);
  }
}

void dequantize_scalar(const Bnb4Matrix& w, std::int64_t first, std::int64_t count, float* out) {
  for (std::int64_t i = 0; i < count * w.in; ++i) out[i] = element(w, first * w.in + i);
}

void dequantize_avx2(const Bnb4Matrix& w, std::int64_t first, std::int64_t count, float* out) {
  const __m256 table_low = _mm256_loadu_ps(w.code);
  const __m256 table_high = _mm256_loadu_ps(w.code + 8);
  const std::int64_t begin = first * w.in;
  for (std::int64_t i = 0; i < count * w.in; i += 8) {
    const std::int64_t index = begin + i;
    const __m256 values = lookup8(unpack8(w.packed + index / 2), table_low, table_high);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(values, _mm256_set1_ps(w.absmax[index / w.blocksize])));
  }
}

}  // namespace

void bnb4_gemv(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa) {
  const bool avx2 = isa == KernelIsa::Avx2 && avx2_shape_ok(w);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kMaxGemvRows) {
    const std::int64_t batch = std::min(kMaxGemvRows, rows - r0);
    const float* xb = x + r0 * w.in;
    float* yb = y + r0 * w.out;
    parallel_for(0, w.out, items_per_task(w.in * batch), [&](std::int64_t lo, std::int64_t hi) {
      if (avx2) {
        gemv_rows_avx2(w, xb, batch, lo, hi, yb);
      } else {
        gemv_rows_scalar(w, xb, batch, lo, hi, yb);
      }
    });
  }
}

void bnb4_dequantize_rows(const Bnb4Matrix& w, std::int64_t first, std::int64_t count, float* out,
                          KernelIsa isa) {
  if (isa == KernelIsa::Avx2 && avx2_shape_ok(w)) {
    dequantize_avx2(w, first, count, out);
  } else {
    dequantize_scalar(w, first, count, out);
  }
}

void bnb4_gemm(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y, KernelIsa isa) {
  tiled_gemm(w.out, w.in, x, rows, y, [&](std::int64_t first, std::int64_t count, float* tile) {
    bnb4_dequantize_rows(w, first, count, tile, isa);
    return static_cast<const float*>(tile);
  });
}

void bnb4_matmul(const Bnb4Matrix& w, const float* x, std::int64_t rows, float* y) {
  if (rows >= kBnb4GemmMinRows) {
    bnb4_gemm(w, x, rows, y, best_kernel_isa());
  } else {
    bnb4_gemv(w, x, rows, y, best_kernel_isa());
  }
}

}  // namespace uq::cpu
