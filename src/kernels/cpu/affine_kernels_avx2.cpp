// AVX2+FMA implementations of the affine kernels (chosen at run time by
// best_kernel_isa()). A chunk is 8 consecutive codes: `bits` bytes of a row,
// since every row starts on a word and holds a multiple of 32 codes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/affine_kernels.hpp"
#include "kernels/cpu/horizontal_sum.hpp"

namespace uq::cpu::detail {
namespace {

// The 8 codes of chunk `chunk` of a packed row, in order, as int32 lanes.
template <int B>
inline __m256i unpack_chunk(const std::uint8_t* row, std::int64_t chunk) {
  const std::uint8_t* bytes = row + chunk * B;
  const __m256i mask = _mm256_set1_epi32((1 << B) - 1);
  if constexpr (B == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
  } else if constexpr (B <= 4) {
    // The chunk fits in 32 bits: broadcast it and shift each lane to its code.
    std::uint32_t packed;
    std::memcpy(&packed, bytes, sizeof packed);
    const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(packed)), shifts),
                            mask);
  } else {
    // 5..7 bits: code j starts in byte j*B/8 and spans at most 2 bytes; gather
    // those 2 bytes into lane j, then shift by the bit offset inside the byte.
    std::int64_t packed;
    std::memcpy(&packed, bytes, sizeof packed);
    constexpr auto lo = [](int j) { return static_cast<char>(j * B / 8); };
    constexpr auto hi = [](int j) { return static_cast<char>(j * B / 8 + 1); };
    constexpr char z = static_cast<char>(0x80);
    const __m256i gather = _mm256_setr_epi8(
        lo(0), hi(0), z, z, lo(1), hi(1), z, z, lo(2), hi(2), z, z, lo(3), hi(3), z, z,  //
        lo(4), hi(4), z, z, lo(5), hi(5), z, z, lo(6), hi(6), z, z, lo(7), hi(7), z, z);
    const __m256i shifts = _mm256_setr_epi32(0, B % 8, 2 * B % 8, 3 * B % 8, 4 * B % 8, 5 * B % 8,
                                             6 * B % 8, 7 * B % 8);
    const __m256i pairs = _mm256_shuffle_epi8(_mm256_set1_epi64x(packed), gather);
    return _mm256_and_si256(_mm256_srlv_epi32(pairs, shifts), mask);
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

// O output rows starting at o0 times R rows of x. Each (o, r) pair keeps its
// own dot-product chain, so O·R independent FMA chains hide FMA latency.
template <int B, int R, int O>
inline void gemv_tile(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t o0,
                      float* y) {
  const auto groups = w.groups_per_row();
  const std::int64_t chunks_per_group = w.group_size / 8;
  const std::uint8_t* rows[O];
  for (int o = 0; o < O; ++o) {
    rows[o] = reinterpret_cast<const std::uint8_t*>(w.codes + (o0 + o) * w.words_per_row());
  }
  __m256 acc[O][R];
  float bias_acc[O][R];
  for (int o = 0; o < O; ++o) {
    for (int r = 0; r < R; ++r) {
      acc[o][r] = _mm256_setzero_ps();
      bias_acc[o][r] = 0.0f;
    }
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256 dot[O][R];
    for (int o = 0; o < O; ++o) {
      for (int r = 0; r < R; ++r) dot[o][r] = _mm256_setzero_ps();
    }
    for (std::int64_t chunk = g * chunks_per_group; chunk < (g + 1) * chunks_per_group; ++chunk) {
      __m256 xv[R];
      for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * w.in + chunk * 8);
      for (int o = 0; o < O; ++o) {
        const __m256 q = _mm256_cvtepi32_ps(unpack_chunk<B>(rows[o], chunk));
        for (int r = 0; r < R; ++r) dot[o][r] = _mm256_fmadd_ps(q, xv[r], dot[o][r]);
      }
    }
    for (int o = 0; o < O; ++o) {
      const auto index = (o0 + o) * groups + g;
      const __m256 scale = _mm256_set1_ps(param(w.scales, w.param_dtype, index));
      const float bias = param(w.biases, w.param_dtype, index);
      for (int r = 0; r < R; ++r) {
        acc[o][r] = _mm256_fmadd_ps(scale, dot[o][r], acc[o][r]);
        bias_acc[o][r] += bias * xsum[r * groups + g];
      }
    }
  }
  for (int o = 0; o < O; ++o) {
    for (int r = 0; r < R; ++r) y[r * w.out + o0 + o] = horizontal_sum(acc[o][r]) + bias_acc[o][r];
  }
}

template <int B, int R>
void gemv_rows_fixed(const AffineMatrix& w, const float* x, const float* xsum,
                     std::int64_t out_first, std::int64_t out_last, float* y) {
  constexpr int O = R == 1 ? 4 : (R == 2 ? 2 : 1);
  std::int64_t o = out_first;
  for (; o + O <= out_last; o += O) gemv_tile<B, R, O>(w, x, xsum, o, y);
  for (; o < out_last; ++o) gemv_tile<B, R, 1>(w, x, xsum, o, y);
}

template <int B>
void gemv_rows_bits(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t rows,
                    std::int64_t out_first, std::int64_t out_last, float* y) {
  const auto groups = w.groups_per_row();
  for (std::int64_t r0 = 0; r0 < rows; r0 += 4) {
    const float* xs = x + r0 * w.in;
    const float* sums = xsum + r0 * groups;
    float* ys = y + r0 * w.out;
    switch (std::min<std::int64_t>(4, rows - r0)) {
      case 1:
        gemv_rows_fixed<B, 1>(w, xs, sums, out_first, out_last, ys);
        break;
      case 2:
        gemv_rows_fixed<B, 2>(w, xs, sums, out_first, out_last, ys);
        break;
      case 3:
        gemv_rows_fixed<B, 3>(w, xs, sums, out_first, out_last, ys);
        break;
      default:
        gemv_rows_fixed<B, 4>(w, xs, sums, out_first, out_last, ys);
    }
  }
}

template <int B>
void dequantize_rows_bits(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                          float* out) {
  const auto groups = w.groups_per_row();
  const std::int64_t chunks_per_group = w.group_size / 8;
  for (std::int64_t o = first; o < first + count; ++o) {
    const auto* row = reinterpret_cast<const std::uint8_t*>(w.codes + o * w.words_per_row());
    float* dst = out + (o - first) * w.in;
    for (std::int64_t g = 0; g < groups; ++g) {
      const __m256 scale = _mm256_set1_ps(param(w.scales, w.param_dtype, o * groups + g));
      const __m256 bias = _mm256_set1_ps(param(w.biases, w.param_dtype, o * groups + g));
      for (std::int64_t chunk = g * chunks_per_group; chunk < (g + 1) * chunks_per_group; ++chunk) {
        const __m256 q = _mm256_cvtepi32_ps(unpack_chunk<B>(row, chunk));
        _mm256_storeu_ps(dst + chunk * 8, _mm256_fmadd_ps(q, scale, bias));
      }
    }
  }
}

template <template <int> class Op, class... Args>
void dispatch_bits(int bits, Args&&... args) {
  switch (bits) {
    case 1:
      return Op<1>::run(args...);
    case 2:
      return Op<2>::run(args...);
    case 3:
      return Op<3>::run(args...);
    case 4:
      return Op<4>::run(args...);
    case 5:
      return Op<5>::run(args...);
    case 6:
      return Op<6>::run(args...);
    case 7:
      return Op<7>::run(args...);
    default:
      return Op<8>::run(args...);
  }
}

template <int B>
struct GemvOp {
  template <class... Args>
  static void run(Args... args) {
    gemv_rows_bits<B>(args...);
  }
};
template <int B>
struct DequantizeOp {
  template <class... Args>
  static void run(Args... args) {
    dequantize_rows_bits<B>(args...);
  }
};

}  // namespace

void gemv_rows_avx2(const AffineMatrix& w, const float* x, const float* xsum, std::int64_t rows,
                    std::int64_t out_first, std::int64_t out_last, float* y) {
  dispatch_bits<GemvOp>(w.bits, w, x, xsum, rows, out_first, out_last, y);
}

void dequantize_rows_avx2(const AffineMatrix& w, std::int64_t first, std::int64_t count,
                          float* out) {
  dispatch_bits<DequantizeOp>(w.bits, w, first, count, out);
}

}  // namespace uq::cpu::detail
