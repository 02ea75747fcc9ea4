#include "kernels/cpu/float8_kernels.hpp"
#include "kernels/cpu/horizontal_sum.hpp"

#include <immintrin.h>

namespace uq::cpu {
namespace {

// 8 consecutive codes decoded to fp32 lanes.
inline __m256 decode8(const std::uint8_t* codes, DType format) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes));
  if (format == DType::F8_E5M2) {
    return _mm256_cvtph_ps(_mm_unpacklo_epi8(_mm_setzero_si128(), bytes));
  }
  const __m256i lanes = _mm256_cvtepu8_epi32(bytes);
  const __m256i magnitude = _mm256_slli_epi32(_mm256_and_si256(lanes, _mm256_set1_epi32(0x7f)), 20);
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(lanes, _mm256_set1_epi32(0x80)), 24);
  // Exponent bias 7 -> 127: times 2^120 (also exact for the subnormal codes).
  return _mm256_mul_ps(_mm256_castsi256_ps(_mm256_or_si256(magnitude, sign)),
                       _mm256_set1_ps(0x1p120f));
}

void gemv_rows_scalar(const Float8Matrix& w, const float* x, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y) {
  for (std::int64_t o = out_first; o < out_last; ++o) {
    const std::uint8_t* codes = w.codes + o * w.in;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * w.in;
      float sum = 0.0f;
      for (std::int64_t i = 0; i < w.in; ++i) sum += w.decode[codes[i]] * row[i];
      y[r * w.out + o] = sum * w.scales[o];
    }
  }
}

void gemv_rows_avx2(const Float8Matrix& w, const float* x, std::int64_t rows,
                    std::int64_t out_first, std::int64_t out_last, float* y) {
  const std::int64_t vector_end = w.in / 8 * 8;
  for (std::int64_t o = out_first; o < out_last; ++o) {
    const std::uint8_t* codes = w.codes + o * w.in;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * w.in;
      __m256 acc = _mm256_setzero_ps();
      for (std::int64_t i = 0; i < vector_end; i += 8) {
        acc = _mm256_fmadd_ps(decode8(codes + i, w.format), _mm256_loadu_ps(row + i), acc);
      }
      float sum = horizontal_sum(acc);
      for (std::int64_t i = vector_end; i < w.in; ++i) sum += w.decode[codes[i]] * row[i];
      y[r * w.out + o] = sum * w.scales[o];
    }
  }
}

}  // namespace

void float8_gemv_rows(const Float8Matrix& w, const float* x, std::int64_t rows,
                      std::int64_t out_first, std::int64_t out_last, float* y, KernelIsa isa) {
  if (isa == KernelIsa::Avx2) {
    gemv_rows_avx2(w, x, rows, out_first, out_last, y);
  } else {
    gemv_rows_scalar(w, x, rows, out_first, out_last, y);
  }
}

}  // namespace uq::cpu
