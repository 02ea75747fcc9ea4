#pragma once
// The int8-activation dot products of the ggml block formats, templated on
// the integer dot product `Dot` (Dot::dot(u8, s8): int32 lanes, each the sum
// of four u8·s8 products). Included only by ggml_gemv_int8_avx2.cpp and
// ggml_gemv_int8_vnni.cpp, the latter under an AVX-512 target pragma: the
// anonymous namespace keeps the two compilations apart.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/ggml_gemv_int8.hpp"
#include "kernels/cpu/horizontal_sum.hpp"

namespace uq::cpu::detail {
namespace {

inline float load_half(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return _cvtsh_ss(bits);
}

inline __m256i load_256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 bytes of two-code nibbles as 32 byte lanes: low nibbles then high ones
// (the element order of Q4_0/Q4_1/Q5_0 blocks).
inline __m256i unpack_nibbles(const std::byte* p) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                          _mm256_set1_epi8(0x0F));
}

// Bit i of `bits` as 0x10 in byte lane i (Q5_0's fifth bit).
inline __m256i spread_fifth_bits(const std::byte* p) {
  std::uint32_t bits;
  std::memcpy(&bits, p, sizeof bits);
  // Lane i takes byte i / 8 of `bits`, then tests its bit i % 8.
  const __m256i bytes =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                          _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                             0x0202020202020202, 0x0303030303030303));
  const __m256i select = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// Σ w·xq for signed codes w (|w| ≤ 128): |w| times xq carrying w's sign.
template <class Dot>
inline __m256i dot_signed(__m256i w, __m256i xq) {
  return Dot::dot(_mm256_abs_epi8(w), _mm256_sign_epi8(xq, w));
}

// acc += scale · (int32 lanes as float)
inline __m256 accumulate(__m256 acc, float scale, __m256i sums) {
  return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sums), acc);
}

template <class Dot>
float dot_q4_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 18) {
    const __m256i w = _mm256_sub_epi8(unpack_nibbles(blocks + 2), _mm256_set1_epi8(8));
    acc = accumulate(acc, load_half(blocks) * x.d[b], dot_signed<Dot>(w, load_256(x.q + 32 * b)));
  }
  return horizontal_sum(acc);
}

template <class Dot>
float dot_q4_1(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  __m256 acc = _mm256_setzero_ps();
  float min_sum = 0.0f;
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 20) {
    acc = accumulate(acc, load_half(blocks) * x.d[b],
                     Dot::dot(unpack_nibbles(blocks + 4), load_256(x.q + 32 * b)));
    min_sum += load_half(blocks + 2) * x.dq_sum[b];
  }
  return horizontal_sum(acc) + min_sum;
}

template <class Dot>
float dot_q5_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 22) {
    const __m256i codes =
        _mm256_or_si256(unpack_nibbles(blocks + 6), spread_fifth_bits(blocks + 2));
    const __m256i w = _mm256_sub_epi8(codes, _mm256_set1_epi8(16));
    acc = accumulate(acc, load_half(blocks) * x.d[b], dot_signed<Dot>(w, load_256(x.q + 32 * b)));
  }
  return horizontal_sum(acc);
}

template <class Dot>
float dot_q8_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 34) {
    acc = accumulate(acc, load_half(blocks) * x.d[b],
                     dot_signed<Dot>(load_256(blocks + 2), load_256(x.q + 32 * b)));
  }
  return horizontal_sum(acc);
}

// Eight bytes as eight float lanes.
inline __m256 u8x8_to_f32(const std::uint8_t* bytes) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes))));
}

template <class Dot>
float dot_q4_k(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps(), min_acc = _mm256_setzero_ps();
  for (std::int64_t super = 0; super < count / 256; ++super, blocks += 144) {
    std::uint8_t s[12];
    std::memcpy(s, blocks + 4, sizeof s);
    std::uint8_t scale[8], min[8];
    for (int j = 0; j < 4; ++j) {
      scale[j] = s[j] & 63;
      min[j] = s[j + 4] & 63;
      scale[j + 4] = static_cast<std::uint8_t>((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
      min[j + 4] = static_cast<std::uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
    // The eight sub-blocks meet activation blocks super·8 .. super·8 + 7: their
    // factors d·scale·d_x and the min terms dmin·min·d_x·Σq as vectors.
    const std::int64_t first = super * 8;
    alignas(32) float factor[8];
    _mm256_store_ps(
        factor, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(load_half(blocks)), u8x8_to_f32(scale)),
                              _mm256_loadu_ps(x.d + first)));
    min_acc =
        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(load_half(blocks + 2)), u8x8_to_f32(min)),
                        _mm256_loadu_ps(x.dq_sum + first), min_acc);
    for (int pair = 0; pair < 4; ++pair) {
      // 32 bytes: low nibbles are sub-block 2·pair, high nibbles 2·pair + 1.
      const __m256i packed = load_256(blocks + 16 + 32 * pair);
      const std::int8_t* xq = x.q + 32 * (first + 2 * pair);
      acc =
          accumulate(acc, factor[2 * pair], Dot::dot(_mm256_and_si256(packed, low4), load_256(xq)));
      acc = accumulate(
          acc, factor[2 * pair + 1],
          Dot::dot(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low4), load_256(xq + 32)));
    }
  }
  return horizontal_sum(acc) - horizontal_sum(min_acc);
}

template <class Dot>
float dot_q6_k(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  const __m256i offset = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t super = 0; super < count / 256; ++super, blocks += 210) {
    const float d = load_half(blocks + 208);
    const auto* scales = reinterpret_cast<const std::int8_t*>(blocks + 192);
    for (int half = 0; half < 2; ++half) {
      const __m256i ql0 = load_256(blocks + 64 * half);
      const __m256i ql1 = load_256(blocks + 64 * half + 32);
      const __m256i qh = load_256(blocks + 128 + 32 * half);
      // Elements 128·half + 32k + l (l < 32), k = 0..3, in ggml's bit layout.
      const __m256i codes[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45))};
      // Factors d·scale_j·d_x of the half's sub-blocks j of 16 (activation
      // block j / 2); sub-blocks 2k, 2k + 1 form activation block k.
      const std::int64_t b0 = super * 8 + half * 4;
      const __m256 dx = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(x.d + b0)),
                                                 _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
      const __m256 factors =
          _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(d), dx),
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales + 8 * half)))));
      for (int k = 0; k < 4; ++k) {
        // int32 lanes 0..3 sum elements 0..15 (factor 2k), lanes 4..7 16..31.
        const __m256 scale = _mm256_permutevar8x32_ps(
            factors, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                       2 * k + 1));
        const __m256i sums =
            dot_signed<Dot>(_mm256_sub_epi8(codes[k], offset), load_256(x.q + 32 * (b0 + k)));
        acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc);
      }
    }
  }
  return horizontal_sum(acc);
}

template <class Dot>
GgmlInt8Dot kernel_for(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return &dot_q4_0<Dot>;
    case GgmlType::Q4_1:
      return &dot_q4_1<Dot>;
    case GgmlType::Q5_0:
      return &dot_q5_0<Dot>;
    case GgmlType::Q8_0:
      return &dot_q8_0<Dot>;
    case GgmlType::Q4_K:
      return &dot_q4_k<Dot>;
    case GgmlType::Q6_K:
      return &dot_q6_k<Dot>;
    default:
      return nullptr;
  }
}

}  // namespace
}  // namespace uq::cpu::detail
