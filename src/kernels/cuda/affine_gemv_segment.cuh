#pragma once
// The 1-2 row SIMT GEMV: each lane owns whole 32-element segments (one group or part of one,
// every group size is >= 32), read as BITS words with 16-byte loads where the width allows.
// The scale and bias leave the inner loop: per segment y += s * sum(x q) + b * sum(x), with
// sum(x) shared by the warp's 8 output rows, so a weight costs ~4 instructions (shift, mask into
// an fp32 2^23 + q, subtract 2^23, fma) against ~10 in the run-of-8 kernel, whose 64-bit
// address arithmetic and per-weight fma with the scale made it instruction-bound (NOTES.md).
// Exact to fp32 rounding like the other 1..16-row kernels.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda::detail {

constexpr int kSegment = 32;  // elements per lane per step
// 8 output rows per warp, 4 warps per block: one wave on an H100/H200 for 14336 rows (v5 had 4
// rows per warp: 1.13 waves, so the second, nearly empty wave doubled the time).
constexpr int kSegmentWarps = 4;
constexpr int kSegmentOutputsPerWarp = 8;

// The BITS words holding 32 consecutive codes (word-aligned: `in` is a multiple of 32), with
// the widest aligned vector loads the width allows.
template <int BITS>
__device__ __forceinline__ void load_code_words(const std::uint32_t* src,
                                                std::uint32_t (&w)[BITS]) {
  if constexpr (BITS % 4 == 0) {
#pragma unroll
    for (int v = 0; v < BITS / 4; ++v) {
      const uint4 u = __ldg(reinterpret_cast<const uint4*>(src) + v);
      w[4 * v] = u.x, w[4 * v + 1] = u.y, w[4 * v + 2] = u.z, w[4 * v + 3] = u.w;
    }
  } else if constexpr (BITS % 2 == 0) {
#pragma unroll
    for (int v = 0; v < BITS / 2; ++v) {
      const uint2 u = __ldg(reinterpret_cast<const uint2*>(src) + v);
      w[2 * v] = u.x, w[2 * v + 1] = u.y;
    }
  } else {
#pragma unroll
    for (int v = 0; v < BITS; ++v) w[v] = __ldg(src + v);
  }
}

// Code e (a compile-time constant once loops unroll) of the 32 codes packed from bit 0 of w,
// as an exact float.
template <int BITS>
__device__ __forceinline__ float segment_code(const std::uint32_t (&w)[BITS], int e) {
  constexpr std::uint32_t mask = (1u << BITS) - 1u;
  const int word = e * BITS / 32, offset = e * BITS % 32;
  const std::uint32_t q = offset + BITS <= 32
                              ? (w[word] >> offset) & mask
                              : __funnelshift_r(w[word], w[word + 1], offset) & mask;
  return code_to_float(q);
}

// N (a multiple of 8) consecutive values of x from 16-byte aligned x, as floats.
template <int N, class XT>
__device__ __forceinline__ void load_xn(const XT* x, float (&v)[N]) {
#pragma unroll
  for (int k = 0; k < N / kRun; ++k) {
    float run[kRun];
    load_x8(x + kRun * k, run);
#pragma unroll
    for (int e = 0; e < kRun; ++e) v[kRun * k + e] = run[e];
  }
}

template <int BITS, int ROWS, class XT>
__global__ void __launch_bounds__(kSegmentWarps * 32)
    affine_gemv_segment_kernel(const std::uint32_t* __restrict__ codes,
                               const std::uint16_t* __restrict__ scales,
                               const std::uint16_t* __restrict__ biases, const XT* __restrict__ x,
                               float* __restrict__ y, int out, int in, int group_shift,
                               bool accumulate) {
  constexpr int kOut = kSegmentOutputsPerWarp;
  // Launched with programmatic dependent launch (pdl_launch.hpp): x and y may still be in use
  // by the kernel before until pdl_wait. Weight loads may move above the wait.
  pdl_launch_dependents();
  pdl_wait();
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int first_out = static_cast<int>(blockIdx.x * kSegmentWarps + threadIdx.x / 32) * kOut;
  if (first_out >= out) return;  // whole warp leaves; the kernel has no block barrier

  const std::size_t row_words = static_cast<std::size_t>(in) * BITS / 32;
  const std::size_t groups_per_row = static_cast<std::size_t>(in) >> group_shift;
  const std::uint32_t* row_codes[kOut];
  const std::uint16_t* row_scales[kOut];
  const std::uint16_t* row_biases[kOut];
#pragma unroll
  for (int o = 0; o < kOut; ++o) {
    // Rows past `out` re-read the last row; their sums are never stored.
    const auto row = static_cast<std::size_t>(min(first_out + o, out - 1));
    row_codes[o] = codes + row * row_words;
    row_scales[o] = scales + row * groups_per_row;
    row_biases[o] = biases + row * groups_per_row;
  }

  float acc[kOut][ROWS];
#pragma unroll
  for (int o = 0; o < kOut; ++o)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[o][r] = 0.0f;

  const int segments = in / kSegment;
  for (int seg = lane; seg < segments; seg += 32) {
    std::uint32_t words[kOut][BITS];
    float scale[kOut], bias[kOut];
    const int group = (seg * kSegment) >> group_shift;
#pragma unroll
    for (int o = 0; o < kOut; ++o) {
      load_code_words<BITS>(row_codes[o] + static_cast<std::size_t>(seg) * BITS, words[o]);
      scale[o] = bf16_to_float(__ldg(row_scales[o] + group));
      bias[o] = bf16_to_float(__ldg(row_biases[o] + group));
    }
    float xv[ROWS][kSegment], xsum[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      load_xn(x + static_cast<std::size_t>(r) * in + static_cast<std::size_t>(seg) * kSegment,
              xv[r]);
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < kSegment; ++e) s += xv[r][e];
      xsum[r] = s;
    }
#pragma unroll
    for (int o = 0; o < kOut; ++o) {
      float dot[ROWS];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) dot[r] = 0.0f;
#pragma unroll
      for (int e = 0; e < kSegment; ++e) {
        const float q = segment_code<BITS>(words[o], e);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) dot[r] = fmaf(xv[r][e], q, dot[r]);
      }
#pragma unroll
      for (int r = 0; r < ROWS; ++r)
        acc[o][r] = fmaf(scale[o], dot[r], fmaf(bias[o], xsum[r], acc[o][r]));
    }
  }

#pragma unroll
  for (int o = 0; o < kOut; ++o)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float sum = warp_sum(acc[o][r]);
      if (lane == o * ROWS + r && first_out + o < out) {
        float& target = y[static_cast<std::size_t>(r) * out + first_out + o];
        target = accumulate ? target + sum : sum;
      }
    }
}

template <int BITS, int ROWS, class XT>
void launch_affine_gemv_segment(const GemvArgs& a, int group_size, const XT* x) {
  constexpr int outputs_per_block = kSegmentWarps * kSegmentOutputsPerWarp;
  const int group_shift = group_size == 32 ? 5 : group_size == 64 ? 6 : 7;
  const auto blocks = static_cast<unsigned>((a.out + outputs_per_block - 1) / outputs_per_block);
  launch_pdl("affine_gemv_segment_kernel", affine_gemv_segment_kernel<BITS, ROWS, XT>, blocks,
             kSegmentWarps * 32, 0, a.stream, a.codes, a.scales, a.biases, x, a.y, a.out, a.in,
             group_shift, a.accumulate);
}

// The SIMT kernels: 32-element segments for 1-2 rows, runs of 8 for 3..16.
template <int BITS, class XT>
void launch_affine_gemv_simt_bits(const GemvArgs& a, int group_size, const XT* x) {
  if (a.rows == 1) return launch_affine_gemv_segment<BITS, 1>(a, group_size, x);
  if (a.rows == 2) return launch_affine_gemv_segment<BITS, 2>(a, group_size, x);
  launch_affine_gemv_bits<BITS>(a, group_size, x);
}

}  // namespace uq::cuda::detail
