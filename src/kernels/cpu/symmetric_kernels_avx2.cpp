// AVX2+FMA implementations of the symmetric kernels. A chunk is 8 consecutive
// codes: 8 bytes (int8) or 4 bytes (int4, the low nibble first, so the chunk
// is a little-endian stream of 4-bit fields).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/horizontal_sum.hpp"
#include "kernels/cpu/symmetric_kernels.hpp"

namespace uq::cpu::detail {
namespace {

// The 8 signed codes of chunk `chunk` of a row, as fp32 lanes.
template <int B>
inline __m256 chunk_values(const std::uint8_t* row, std::int64_t chunk) {
  if constexpr (B == 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + chunk * 8));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
  } else {
    std::uint32_t packed;
    std::memcpy(&packed, row + chunk * 4, sizeof packed);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i nibbles =
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(packed)), shifts),
                         _mm256_set1_epi32(0x0F));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(nibbles, _mm256_set1_epi32(8)));
  }
}

template <int B>
void gemv_rows(const SymmetricMatrix& w, const float* x, std::int64_t rows, std::int64_t out_first,
               std::int64_t out_last, float* y) {
  const std::int64_t chunks = w.in / 8;
  for (std::int64_t o = out_first; o < out_last; ++o) {
    const std::uint8_t* row = w.codes + o * w.bytes_per_row();
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * w.in;
      __m256 acc = _mm256_setzero_ps();
      for (std::int64_t c = 0; c < chunks; ++c) {
        acc = _mm256_fmadd_ps(chunk_values<B>(row, c), _mm256_loadu_ps(xr + c * 8), acc);
      }
      float dot = horizontal_sum(acc);
      for (std::int64_t i = chunks * 8; i < w.in; ++i) {
        dot += static_cast<float>(w.code(row, i)) * xr[i];
      }
      y[r * w.out + o] = w.scales[o] * dot;
    }
  }
}

template <int B>
void dequantize_rows(const SymmetricMatrix& w, std::int64_t first, std::int64_t count, float* out) {
  const std::int64_t chunks = w.in / 8;
  for (std::int64_t o = first; o < first + count; ++o) {
    const std::uint8_t* row = w.codes + o * w.bytes_per_row();
    float* dst = out + (o - first) * w.in;
    const __m256 scale = _mm256_set1_ps(w.scales[o]);
    for (std::int64_t c = 0; c < chunks; ++c) {
      _mm256_storeu_ps(dst + c * 8, _mm256_mul_ps(scale, chunk_values<B>(row, c)));
    }
    for (std::int64_t i = chunks * 8; i < w.in; ++i) {
      dst[i] = w.scales[o] * static_cast<float>(w.code(row, i));
    }
  }
}

}  // namespace

void symmetric_gemv_rows_avx2(const SymmetricMatrix& w, const float* x, std::int64_t rows,
                              std::int64_t out_first, std::int64_t out_last, float* y) {
  if (w.bits == 8) {
    gemv_rows<8>(w, x, rows, out_first, out_last, y);
  } else {
    gemv_rows<4>(w, x, rows, out_first, out_last, y);
  }
}

void symmetric_dequantize_rows_avx2(const SymmetricMatrix& w, std::int64_t first,
                                    std::int64_t count, float* out) {
  if (w.bits == 8) {
    dequantize_rows<8>(w, first, count, out);
  } else {
    dequantize_rows<4>(w, first, count, out);
  }
}

}  // namespace uq::cpu::detail
