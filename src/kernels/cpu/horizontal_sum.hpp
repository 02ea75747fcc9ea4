#pragma once
// The sum of the eight floats of an AVX vector, for the AVX2 kernels.
// Internal linkage (static) on purpose: the AVX-512 VNNI files include kernels under their
// target pragma, and a copy compiled there must never be merged with, and so replace, the
// AVX2 one that machines without AVX-512 run.
#include <immintrin.h>

namespace uq::cpu {

static inline float horizontal_sum(__m256 v) {
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  return _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)));
}

}  // namespace uq::cpu
