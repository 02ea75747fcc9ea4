#pragma once
// Affine GEMV / skinny GEMM on the tensor cores (mma.sync m16n8k16, bf16 in, fp32 out).
//
// The matrix units see exact integers: codes become bf16 (exact for q < 256) and the
// per-group affine map is applied afterwards in fp32, y += scale * (q . x) + bias * sum(x),
// one 32-element chunk (inside one group for every group size) at a time. bf16 x enters the
// mma exactly; f32 x is split into hi + lo bf16 parts (two mmas, 16 significant bits), so both
// keep the fp32 result to ~1e-6. Dequantization costs ~1-2 integer ops per weight instead of
// the ~10 of the fp32 SIMT kernel, and rows 1..16 cost the same weight traffic.
//
// Work split: a block of kMmaWarps warps owns 16 output rows (one m-tile); its warps split the
// `in` dimension into contiguous chunk ranges and reduce through shared memory at the end.
// In the mma, lane (g = lane / 4, t = lane % 4) holds weight rows g and g + 8 and activation
// row g (+ 8 for the second n-tile); the sum over k is order-free, so logical k pairs map to
// physical elements (8t + 2s + {0, 4}) and (8t + 2s + {1, 5}) in step s of a chunk: each lane
// reads its own 8 consecutive codes and 8 consecutive activations.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda::detail {

constexpr int kMmaWarps = 8;
constexpr int kMmaTileRows = 16;
constexpr int kChunk = 32;
constexpr int kMmaUnroll = 8;  // chunks whose codes a lane loads before using any

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const std::uint32_t (&a)[4],
                                               std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// bf16x2 {high, low} from two floats, round to nearest even.
__device__ __forceinline__ std::uint32_t pack_bf16x2(float low, float high) {
  std::uint32_t packed;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(high), "f"(low));
  return packed;
}

// Codes e and e + 4 of a run (8 codes starting at bit 0 of (low, high)) as exact bf16x2
// {q[e + 4], q[e]}; e is a compile-time constant once loops unroll.
template <int BITS>
__device__ __forceinline__ std::uint32_t code_pair(std::uint32_t low, std::uint32_t high, int e) {
  if constexpr (BITS == 8) {
    // 128 + q is not exact in bf16 for q >= 128: go through fp32 (exact for q < 2^23).
    const std::uint32_t q0 = (low >> (8 * e)) & 0xFFu;  // e < 4: code e is in the low word
    const std::uint32_t q1 = (high >> (8 * e)) & 0xFFu;
    return pack_bf16x2(__uint_as_float(q0 | 0x4B000000u) - 8388608.0f,
                       __uint_as_float(q1 | 0x4B000000u) - 8388608.0f);
  } else {
    constexpr std::uint32_t kMagic = 0x43004300u;  // bf16 128.0 twice: 128 + q exact for q < 128
    constexpr std::uint32_t kOne = 0x3F803F80u, kMinus128 = 0xC300C300u;
    std::uint32_t biased;
    if constexpr (BITS == 4)
      biased = ((low >> (4 * e)) & 0x000F000Fu) | kMagic;  // q[e + 4] sits 16 bits above q[e]
    else
      biased = run_code<BITS>(low, high, e) | (run_code<BITS>(low, high, e + 4) << 16) | kMagic;
    std::uint32_t exact;  // (128 + q) * 1 - 128, exact in bf16
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(exact) : "r"(biased), "r"(kOne), "r"(kMinus128));
    return exact;
  }
}

// The 8 activations of one lane's run as floats (for sum(x)) and as B-fragment pairs:
// pairs[k] = {x[e + 4], x[e]} for e = k, k = 0..3; f32 x also yields the residual pairs.
template <class XT>
struct XRun;

template <>
struct XRun<__nv_bfloat16> {
  static constexpr bool kSplit = false;
  std::uint32_t hi[4];
  std::uint32_t lo[4];  // unused: bf16 x enters the mma exactly
  float sum;
  __device__ __forceinline__ void load(const __nv_bfloat16* x) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(x));
    const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
    // Element e is half (e % 2) of word e / 2; e + 4 is the same half of word e / 2 + 2.
    hi[0] = __byte_perm(w[0], w[2], 0x5410);
    hi[1] = __byte_perm(w[0], w[2], 0x7632);
    hi[2] = __byte_perm(w[1], w[3], 0x5410);
    hi[3] = __byte_perm(w[1], w[3], 0x7632);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k)
      s += __uint_as_float(w[k] << 16) + __uint_as_float(w[k] & 0xFFFF0000u);
    sum = s;
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int k = 0; k < 4; ++k) hi[k] = lo[k] = 0u;
    sum = 0.0f;
  }
};

template <>
struct XRun<float> {
  static constexpr bool kSplit = true;
  std::uint32_t hi[4];
  std::uint32_t lo[4];
  float sum;
  __device__ __forceinline__ void load(const float* x) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(x));
    const float4 b = __ldg(reinterpret_cast<const float4*>(x) + 1);
    const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      hi[k] = pack_bf16x2(v[k], v[k + 4]);
      const float r0 = v[k] - __uint_as_float(hi[k] << 16);
      const float r1 = v[k + 4] - __uint_as_float(hi[k] & 0xFFFF0000u);
      lo[k] = pack_bf16x2(r0, r1);
      s += v[k] + v[k + 4];
    }
    sum = s;
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int k = 0; k < 4; ++k) hi[k] = lo[k] = 0u;
    sum = 0.0f;
  }
};

// NTILES n-tiles of 8 activation rows: 1 for rows <= 8, 2 for rows <= 16.
template <int BITS, int NTILES, class XT>
__global__ void __launch_bounds__(kMmaWarps * 32)
    affine_gemv_mma_kernel(const std::uint32_t* __restrict__ codes,
                           const std::uint16_t* __restrict__ scales,
                           const std::uint16_t* __restrict__ biases, const XT* __restrict__ x,
                           float* __restrict__ y, int out, int in, int rows, int group_shift) {
  constexpr bool kMayStraddle = (kRun * BITS > 32) || (32 % (kRun * BITS) != 0);
  __shared__ float partial[kMmaWarps][kMmaTileRows][8 * NTILES];

  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int g = lane / 4, t = lane % 4;
  const int tile_first = static_cast<int>(blockIdx.x) * kMmaTileRows;
  // Rows past `out` re-read the last row; their sums are never stored.
  const std::size_t row_a = static_cast<std::size_t>(min(tile_first + g, out - 1));
  const std::size_t row_b = static_cast<std::size_t>(min(tile_first + g + 8, out - 1));
  const std::size_t row_bits = static_cast<std::size_t>(in) * BITS;  // a multiple of 32
  const std::size_t groups_per_row = static_cast<std::size_t>(in) >> group_shift;
  const std::uint32_t* codes_a = codes + row_a * row_bits / 32;
  const std::uint32_t* codes_b = codes + row_b * row_bits / 32;
  const int lane_bit = kRun * t * BITS;  // run start inside a chunk's bits
  const int lane_word = lane_bit / 32, lane_offset = lane_bit % 32;

  const int chunks = in / kChunk;
  const int per_warp = (chunks + kMmaWarps - 1) / kMmaWarps;
  const int chunk_begin = warp * per_warp;
  const int chunk_end = min(chunks, chunk_begin + per_warp);

  float acc[NTILES][4];
#pragma unroll
  for (int j = 0; j < NTILES; ++j)
#pragma unroll
    for (int k = 0; k < 4; ++k) acc[j][k] = 0.0f;

  for (int c0 = chunk_begin; c0 < chunk_end; c0 += kMmaUnroll) {
    std::uint32_t run_lo[2][kMmaUnroll], run_hi[2][kMmaUnroll];
    float scale[2][kMmaUnroll], bias[2][kMmaUnroll];
#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      const int c = c0 + u;
      const bool valid = c < chunk_end;
      const int word = c * BITS + lane_word;  // a chunk is 32 * BITS bits = BITS words
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t* src = (h == 0 ? codes_a : codes_b) + word;
        const std::uint32_t w0 = valid ? __ldg(src) : 0u;
        const std::uint32_t w1 =
            kMayStraddle && valid && lane_offset + kRun * BITS > 32 ? __ldg(src + 1) : 0u;
        run_lo[h][u] = __funnelshift_r(w0, w1, lane_offset);
        run_hi[h][u] = w1 >> lane_offset;
        const std::size_t group = (h == 0 ? row_a : row_b) * groups_per_row +
                                  ((static_cast<std::size_t>(c) * kChunk) >> group_shift);
        scale[h][u] = valid ? bf16_to_float(__ldg(scales + group)) : 0.0f;
        bias[h][u] = valid ? bf16_to_float(__ldg(biases + group)) : 0.0f;
      }
    }

#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      const int c = c0 + u;
      if (c >= chunk_end) break;
      // A fragments of the chunk's two k-steps: {row g, row g + 8} x {pair 2s, pair 2s + 1}.
      std::uint32_t a[2][4];
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        a[s][0] = code_pair<BITS>(run_lo[0][u], run_hi[0][u], 2 * s);
        a[s][1] = code_pair<BITS>(run_lo[1][u], run_hi[1][u], 2 * s);
        a[s][2] = code_pair<BITS>(run_lo[0][u], run_hi[0][u], 2 * s + 1);
        a[s][3] = code_pair<BITS>(run_lo[1][u], run_hi[1][u], 2 * s + 1);
      }
#pragma unroll
      for (int j = 0; j < NTILES; ++j) {
        const int x_row = 8 * j + g;
        XRun<XT> xr;
        if (x_row < rows)
          xr.load(x + static_cast<std::size_t>(x_row) * in + static_cast<std::size_t>(c) * kChunk +
                  kRun * t);
        else
          xr.zero();
        __syncwarp();  // mma.sync needs the whole warp converged after the branch
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int s = 0; s < 2; ++s) {
          mma_bf16_16816(d, a[s], xr.hi[2 * s], xr.hi[2 * s + 1]);
          if constexpr (XRun<XT>::kSplit) mma_bf16_16816(d, a[s], xr.lo[2 * s], xr.lo[2 * s + 1]);
        }
        // sum(x) of activation row 8j + g over the chunk, then of rows 8j + 2t and 8j + 2t + 1
        // (the columns this lane's d holds).
        float xsum = xr.sum;
        xsum += __shfl_xor_sync(0xFFFFFFFFu, xsum, 1);
        xsum += __shfl_xor_sync(0xFFFFFFFFu, xsum, 2);
        const float xsum0 = __shfl_sync(0xFFFFFFFFu, xsum, 8 * t);
        const float xsum1 = __shfl_sync(0xFFFFFFFFu, xsum, 8 * t + 4);
        acc[j][0] += scale[0][u] * d[0] + bias[0][u] * xsum0;
        acc[j][1] += scale[0][u] * d[1] + bias[0][u] * xsum1;
        acc[j][2] += scale[1][u] * d[2] + bias[1][u] * xsum0;
        acc[j][3] += scale[1][u] * d[3] + bias[1][u] * xsum1;
      }
    }
  }

#pragma unroll
  for (int j = 0; j < NTILES; ++j) {
    partial[warp][g][8 * j + 2 * t] = acc[j][0];
    partial[warp][g][8 * j + 2 * t + 1] = acc[j][1];
    partial[warp][g + 8][8 * j + 2 * t] = acc[j][2];
    partial[warp][g + 8][8 * j + 2 * t + 1] = acc[j][3];
  }
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < kMmaTileRows * 8 * NTILES; i += kMmaWarps * 32) {
    const int tile_row = i / (8 * NTILES), x_row = i % (8 * NTILES);
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) sum += partial[w][tile_row][x_row];
    if (tile_first + tile_row < out && x_row < rows)
      y[static_cast<std::size_t>(x_row) * out + tile_first + tile_row] = sum;
  }
}

template <int BITS, int NTILES, class XT>
void launch_affine_gemv_mma(const GemvArgs& a, int group_size, const XT* x) {
  const int group_shift = group_size == 32 ? 5 : group_size == 64 ? 6 : 7;
  const unsigned blocks = static_cast<unsigned>((a.out + kMmaTileRows - 1) / kMmaTileRows);
  affine_gemv_mma_kernel<BITS, NTILES, XT><<<blocks, kMmaWarps * 32, 0, a.stream>>>(
      a.codes, a.scales, a.biases, x, a.y, a.out, a.in, a.rows, group_shift);
  UQ_CUDA_CHECK_LAUNCH("affine_gemv_mma_kernel");
}

template <int BITS, class XT>
void launch_affine_gemv_mma_bits(const GemvArgs& a, int group_size, const XT* x) {
  if (a.rows <= 8) return launch_affine_gemv_mma<BITS, 1>(a, group_size, x);
  return launch_affine_gemv_mma<BITS, 2>(a, group_size, x);
}

}  // namespace uq::cuda::detail
