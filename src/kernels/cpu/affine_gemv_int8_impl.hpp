#pragma once
// The int8-activation GEMV kernel, templated on the integer dot product
// (`Dot`). Included only by affine_gemv_int8_avx2.cpp and
// affine_gemv_int8_vnni.cpp, the latter under an AVX-512 target pragma: the
// anonymous namespace keeps the two compilations of these templates apart.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/horizontal_sum.hpp"

namespace uq::cpu::detail {
namespace {

// Software prefetch distance along a 4-bit weight row: with it one thread
// streamed ~25% more bytes per CPU second (4096x4096, A/B on thread CPU
// time); it did not help the 8-bit rows.
constexpr std::int64_t kPrefetchBytes = 1024;

// The 32 codes of block `block` of a packed row as bytes, in
// activation_position order (unpaired layout).
template <int B>
inline __m256i unpack_block(const std::uint8_t* row, std::int64_t block) {
  const std::uint8_t* bytes = row + block * (kActivationBlock * B / 8);
  if constexpr (B == 8) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes));
  } else if constexpr (B == 4) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
    const __m128i low4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), low4),
                            _mm_and_si128(packed, low4));
  } else {
    static_assert(B == 2);
    std::int64_t packed;
    std::memcpy(&packed, bytes, sizeof packed);
    // 64-bit lane j shifted by 2j: every byte's low 2 bits are its code j.
    const __m256i shifted =
        _mm256_srlv_epi64(_mm256_set1_epi64x(packed), _mm256_setr_epi64x(0, 2, 4, 6));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x03));
  }
}

inline float param(const void* params, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::BF16:
      return bf16_to_f32(static_cast<const std::uint16_t*>(params)[index]);
    case DType::F16:
      return _cvtsh_ss(static_cast<const std::uint16_t*>(params)[index]);
    default:
      return static_cast<const float*>(params)[index];
  }
}

// Output row o times R activation rows from r0. Per block of 32, each row
// pair gets 8 int32 partial dots, scaled by d in float; per group the sum is
// scaled by s. Dot::offset<B> is subtracted from the codes by the dot product
// and added back here as offset·Σ d·Σq. One weight row at a time: streaming
// several rows at once measured slower (the prefetchers follow one stream).
template <class Dot, int B, int R>
inline void gemv_int8_row(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                          std::int64_t r0, std::int64_t o, float* y) {
  constexpr float offset = static_cast<float>(Dot::template offset<B>);
  const auto groups = w.groups_per_row();
  const std::int64_t blocks = w.in / kActivationBlock;
  const std::int64_t blocks_per_group = w.group_size / kActivationBlock;
  const auto* row = reinterpret_cast<const std::uint8_t*>(w.codes + o * w.words_per_row());
  const std::int8_t* xq[R];
  const float* d[R];
  const float* dq_sum[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = a.q.data() + (r0 + r) * w.in;
    d[r] = a.d.data() + (r0 + r) * blocks;
    dq_sum[r] = a.dq_sum.data() + (r0 + r) * blocks;
  }
  __m256 acc[R];
  float scalar_acc[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    scalar_acc[r] = 0.0f;
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256 group_acc[R];
    for (int r = 0; r < R; ++r) group_acc[r] = _mm256_setzero_ps();
    const std::int64_t first_block = g * blocks_per_group;
    for (std::int64_t b = first_block; b < first_block + blocks_per_group; ++b) {
      const __m256i codes = unpack_block<B>(row, b);
      for (int r = 0; r < R; ++r) {
        const __m256i xv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kActivationBlock));
        const __m256 dot = _mm256_cvtepi32_ps(Dot::template dot<B>(codes, xv));
        group_acc[r] = _mm256_fmadd_ps(dot, _mm256_broadcast_ss(d[r] + b), group_acc[r]);
      }
    }
    const auto index = o * groups + g;
    const float scale = param(w.scales, w.param_dtype, index);
    const float bias = param(w.biases, w.param_dtype, index);
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scale), group_acc[r], acc[r]);
      float offset_sum = 0.0f;
      if constexpr (offset != 0.0f) {
        for (std::int64_t b = first_block; b < first_block + blocks_per_group; ++b) {
          offset_sum += dq_sum[r][b];
        }
      }
      scalar_acc[r] += bias * xsum[(r0 + r) * groups + g] + scale * offset * offset_sum;
    }
  }
  for (int r = 0; r < R; ++r) {
    y[(r0 + r) * w.out + o] = horizontal_sum(acc[r]) + scalar_acc[r];
  }
}

// The 4-bit pair layout: one 32-byte load holds blocks b and b+1 (same group);
// int32 lanes 0..3 of the dot belong to block b, 4..7 to block b+1.
template <class Dot, int R>
inline void gemv_int8_row_paired(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                                 std::int64_t r0, std::int64_t o, float* y) {
  const auto groups = w.groups_per_row();
  const std::int64_t blocks = w.in / kActivationBlock;
  const std::int64_t blocks_per_group = w.group_size / kActivationBlock;
  const auto* row = reinterpret_cast<const std::uint8_t*>(w.codes + o * w.words_per_row());
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const std::int8_t* xq[R];
  const float* d[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = a.q.data() + (r0 + r) * w.in;
    d[r] = a.d.data() + (r0 + r) * blocks;
  }
  __m256 acc[R];
  float scalar_acc[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    scalar_acc[r] = 0.0f;
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256 group_acc[R];
    for (int r = 0; r < R; ++r) group_acc[r] = _mm256_setzero_ps();
    const std::int64_t first_block = g * blocks_per_group;
    for (std::int64_t b = first_block; b < first_block + blocks_per_group; b += 2) {
      _mm_prefetch(reinterpret_cast<const char*>(row + b * (kActivationBlock / 2) + kPrefetchBytes),
                   _MM_HINT_T0);
      const __m256i packed =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * (kActivationBlock / 2)));
      const __m256i even = _mm256_and_si256(packed, low4);
      const __m256i odd = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      for (int r = 0; r < R; ++r) {
        const auto* x = reinterpret_cast<const __m256i*>(xq[r] + b * kActivationBlock);
        const __m256 dot = _mm256_cvtepi32_ps(
            Dot::dot_pair(even, _mm256_loadu_si256(x), odd, _mm256_loadu_si256(x + 1)));
        const __m256 dv =
            _mm256_set_m128(_mm_broadcast_ss(d[r] + b + 1), _mm_broadcast_ss(d[r] + b));
        group_acc[r] = _mm256_fmadd_ps(dot, dv, group_acc[r]);
      }
    }
    const auto index = o * groups + g;
    const float scale = param(w.scales, w.param_dtype, index);
    const float bias = param(w.biases, w.param_dtype, index);
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scale), group_acc[r], acc[r]);
      scalar_acc[r] += bias * xsum[(r0 + r) * groups + g];
    }
  }
  for (int r = 0; r < R; ++r) {
    y[(r0 + r) * w.out + o] = horizontal_sum(acc[r]) + scalar_acc[r];
  }
}

template <class Dot, int B, int R>
void gemv_int8_fixed(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                     std::int64_t r0, std::int64_t out_first, std::int64_t out_last, float* y) {
  for (std::int64_t o = out_first; o < out_last; ++o) {
    if constexpr (B == 4) {
      if (a.paired) {
        gemv_int8_row_paired<Dot, R>(w, a, xsum, r0, o, y);
        continue;
      }
    }
    gemv_int8_row<Dot, B, R>(w, a, xsum, r0, o, y);
  }
}

template <class Dot, int B>
void gemv_int8_bits(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                    std::int64_t out_first, std::int64_t out_last, float* y) {
  for (std::int64_t r0 = 0; r0 < a.rows; r0 += 4) {
    switch (std::min<std::int64_t>(4, a.rows - r0)) {
      case 1:
        gemv_int8_fixed<Dot, B, 1>(w, a, xsum, r0, out_first, out_last, y);
        break;
      case 2:
        gemv_int8_fixed<Dot, B, 2>(w, a, xsum, r0, out_first, out_last, y);
        break;
      case 3:
        gemv_int8_fixed<Dot, B, 3>(w, a, xsum, r0, out_first, out_last, y);
        break;
      default:
        gemv_int8_fixed<Dot, B, 4>(w, a, xsum, r0, out_first, out_last, y);
    }
  }
}

template <class Dot>
void gemv_int8_rows(const AffineMatrix& w, const Int8Activations& a, const float* xsum,
                    std::int64_t out_first, std::int64_t out_last, float* y) {
  switch (w.bits) {
    case 2:
      return gemv_int8_bits<Dot, 2>(w, a, xsum, out_first, out_last, y);
    case 4:
      return gemv_int8_bits<Dot, 4>(w, a, xsum, out_first, out_last, y);
    default:
      return gemv_int8_bits<Dot, 8>(w, a, xsum, out_first, out_last, y);
  }
}

}  // namespace
}  // namespace uq::cpu::detail
