#include "kernels/cpu/ggml_kernels.hpp"
#include "kernels/cpu/horizontal_sum.hpp"

#include <immintrin.h>

#include <cstring>

namespace uq {
namespace {

float block_scale(const std::byte* block) {
  std::uint16_t bits;
  std::memcpy(&bits, block, sizeof bits);
  return _cvtsh_ss(bits);
}

// Eight unsigned / signed bytes of `bytes` (starting at byte `offset`) as floats.
__m256 u8_to_f32(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}
__m256 i8_to_f32(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

}  // namespace

float ggml_dot_q4_0_avx2(const std::byte* blocks, const float* x, std::int64_t count) {
  const __m128i low_mask = _mm_set1_epi8(0x0F);
  const __m256 eight = _mm256_set1_ps(8.0f);
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t done = 0; done < count; done += 32, blocks += 18, x += 32) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 2));
    const __m128i low = _mm_and_si128(packed, low_mask);                      // elements 0..15
    const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask);  // 16..31
    __m256 sum = _mm256_mul_ps(_mm256_sub_ps(u8_to_f32(low), eight), _mm256_loadu_ps(x));
    sum = _mm256_fmadd_ps(_mm256_sub_ps(u8_to_f32(_mm_srli_si128(low, 8)), eight),
                          _mm256_loadu_ps(x + 8), sum);
    sum = _mm256_fmadd_ps(_mm256_sub_ps(u8_to_f32(high), eight), _mm256_loadu_ps(x + 16), sum);
    sum = _mm256_fmadd_ps(_mm256_sub_ps(u8_to_f32(_mm_srli_si128(high, 8)), eight),
                          _mm256_loadu_ps(x + 24), sum);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(block_scale(blocks)), sum, acc);
  }
  return cpu::horizontal_sum(acc);
}

float ggml_dot_q8_0_avx2(const std::byte* blocks, const float* x, std::int64_t count) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t done = 0; done < count; done += 32, blocks += 34, x += 32) {
    const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 2));
    const __m128i second = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 18));
    __m256 sum = _mm256_mul_ps(i8_to_f32(first), _mm256_loadu_ps(x));
    sum = _mm256_fmadd_ps(i8_to_f32(_mm_srli_si128(first, 8)), _mm256_loadu_ps(x + 8), sum);
    sum = _mm256_fmadd_ps(i8_to_f32(second), _mm256_loadu_ps(x + 16), sum);
    sum = _mm256_fmadd_ps(i8_to_f32(_mm_srli_si128(second, 8)), _mm256_loadu_ps(x + 24), sum);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(block_scale(blocks)), sum, acc);
  }
  return cpu::horizontal_sum(acc);
}

}  // namespace uq
