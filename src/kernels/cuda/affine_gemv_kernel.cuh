#pragma once
// The fused affine-dequantization GEMV kernel, instantiated per bits in affine_gemv_b<bits>.cu.
//
// Work split: a block is kWarps warps; each warp owns kOutputsPerWarp consecutive output rows
// and all activation rows. Each lane takes runs of 8 consecutive elements (8*bits code bits,
// read as the one or two 32-bit words holding them), so a warp reads 32 runs = 256 elements of
// codes and of x contiguously: coalesced loads, which the first version (128 elements per lane,
// lanes 512 bytes of x apart) lacked. kUnroll runs per lane are loaded before any is used, for
// enough bytes in flight. Weights are dequantized in fp32 and reused across every activation
// row; warp shuffles reduce at the end.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda::detail {

constexpr int kWarps = 4;
constexpr int kOutputsPerWarp = 4;
constexpr int kRun = 8;               // consecutive elements per lane
constexpr int kWarpStep = 32 * kRun;  // elements a warp covers per run
constexpr int kUnroll = 4;            // runs per lane loaded before use
constexpr int kMaxRows = 16;

__device__ __forceinline__ float bf16_to_float(std::uint16_t bits) {
  return __uint_as_float(static_cast<std::uint32_t>(bits) << 16);
}

// (bits & mask) | magic in one lop3: ptxas splits the C form into two (one immediate each).
__device__ __forceinline__ std::uint32_t mask_or(std::uint32_t bits, std::uint32_t mask,
                                                 std::uint32_t magic) {
  std::uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(bits), "r"(mask), "r"(magic));
  return d;
}

// Exact int -> float for q < 2^23 without the slow I2F unit: 2^23 + q has q in its mantissa.
__device__ __forceinline__ float code_to_float(std::uint32_t q) {
  return __uint_as_float(q | 0x4B000000u) - 8388608.0f;
}

// Code e (a compile-time constant once loops unroll) of a run whose 8*BITS bits start at bit 0
// of (low, high).
template <int BITS>
__device__ __forceinline__ std::uint32_t run_code(std::uint32_t low, std::uint32_t high, int e) {
  constexpr std::uint32_t mask = (1u << BITS) - 1u;
  const int bit = e * BITS;
  if (bit + BITS <= 32) return (low >> bit) & mask;
  if (bit >= 32) return (high >> (bit - 32)) & mask;
  return __funnelshift_r(low, high, bit) & mask;
}

__device__ __forceinline__ void load_x8(const float* x, float (&v)[kRun]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x));
  const float4 b = __ldg(reinterpret_cast<const float4*>(x) + 1);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
  v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void load_x8(const __nv_bfloat16* x, float (&v)[kRun]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(x));
  const std::uint32_t pairs[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    v[2 * k] = __uint_as_float(pairs[k] << 16);
    v[2 * k + 1] = __uint_as_float(pairs[k] & 0xFFFF0000u);
  }
}

template <int BITS, int GROUP, int ROWS, class XT>
__global__ void __launch_bounds__(kWarps * 32)
    affine_gemv_kernel(const std::uint32_t* __restrict__ codes,
                       const std::uint16_t* __restrict__ scales,
                       const std::uint16_t* __restrict__ biases, const XT* __restrict__ x,
                       float* __restrict__ y, int out, int in, int rows) {
  constexpr int kOut = kOutputsPerWarp;
  // A run needs a second word when its bits can cross a word boundary.
  constexpr bool kMayStraddle = (kRun * BITS > 32) || (32 % (kRun * BITS) != 0);

  const int lane = static_cast<int>(threadIdx.x % 32);
  const int first_out = static_cast<int>(blockIdx.x * kWarps + threadIdx.x / 32) * kOut;
  if (first_out >= out) return;  // whole warp leaves; the kernel has no block barrier

  const std::size_t row_bits = static_cast<std::size_t>(in) * BITS;  // a multiple of 32
  const int groups_per_row = in / GROUP;

  float acc[kOut][ROWS];
#pragma unroll
  for (int o = 0; o < kOut; ++o)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[o][r] = 0.0f;

  for (int base = lane * kRun; base < in; base += kWarpStep * kUnroll) {
    std::uint32_t low[kOut][kUnroll], high[kOut][kUnroll];
    float scale[kOut][kUnroll], bias[kOut][kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int e0 = base + u * kWarpStep;  // in is a multiple of 32: a run is all in or all out
      const bool valid = e0 < in;
#pragma unroll
      for (int o = 0; o < kOut; ++o) {
        // Rows past `out` re-read the last row; their sums are never stored.
        const std::size_t row = static_cast<std::size_t>(min(first_out + o, out - 1));
        const std::size_t bit = row * row_bits + static_cast<std::size_t>(e0) * BITS;
        const std::uint32_t* word = codes + bit / 32;
        const int offset = static_cast<int>(bit % 32);
        const std::uint32_t w0 = valid ? __ldg(word) : 0u;
        // Runs start at bit offset (8 * bits * lane) % 32 and span at most 64 bits from
        // there, so two words always hold one.
        const std::uint32_t w1 =
            kMayStraddle && valid && offset + kRun * BITS > 32 ? __ldg(word + 1) : 0u;
        // Shift the run down to bit 0 of (low, high).
        low[o][u] = __funnelshift_r(w0, w1, offset);
        high[o][u] = w1 >> offset;
        const std::size_t group = row * groups_per_row + e0 / GROUP;
        scale[o][u] = valid ? bf16_to_float(__ldg(scales + group)) : 0.0f;
        bias[o][u] = valid ? bf16_to_float(__ldg(biases + group)) : 0.0f;
      }
    }

#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int e0 = base + u * kWarpStep;
      if (e0 >= in) break;
      float w[kOut][kRun];
#pragma unroll
      for (int o = 0; o < kOut; ++o)
#pragma unroll
        for (int e = 0; e < kRun; ++e)
          w[o][e] = fmaf(code_to_float(run_code<BITS>(low[o][u], high[o][u], e)), scale[o][u],
                         bias[o][u]);
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        if (r >= rows) break;
        float xv[kRun];
        load_x8(x + static_cast<std::size_t>(r) * in + e0, xv);
#pragma unroll
        for (int o = 0; o < kOut; ++o)
#pragma unroll
          for (int e = 0; e < kRun; ++e) acc[o][r] = fmaf(xv[e], w[o][e], acc[o][r]);
      }
    }
  }

#pragma unroll
  for (int o = 0; o < kOut; ++o)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float sum = warp_sum(acc[o][r]);
      // Spread the stores over lanes rather than all on lane 0.
      if (lane == (o * ROWS + r) % 32 && r < rows && first_out + o < out)
        y[static_cast<std::size_t>(r) * out + first_out + o] = sum;
    }
}

struct GemvArgs {
  const std::uint32_t* codes;
  const std::uint16_t* scales;
  const std::uint16_t* biases;
  float* y;
  int out;
  int in;
  int rows;  // 1..kMaxRows
  cudaStream_t stream;
  bool accumulate = false;  // y += product (the 1-2 row segment kernel only)
};

template <int BITS, int GROUP, int ROWS, class XT>
void launch_affine_gemv(const GemvArgs& a, const XT* x) {
  constexpr int outputs_per_block = kWarps * kOutputsPerWarp;
  const unsigned blocks =
      static_cast<unsigned>((a.out + outputs_per_block - 1) / outputs_per_block);
  affine_gemv_kernel<BITS, GROUP, ROWS, XT><<<blocks, kWarps * 32, 0, a.stream>>>(
      a.codes, a.scales, a.biases, x, a.y, a.out, a.in, a.rows);
  UQ_CUDA_CHECK_LAUNCH("affine_gemv_kernel");
}

template <int BITS, int GROUP, class XT>
void launch_affine_gemv_rows(const GemvArgs& a, const XT* x) {
  if (a.rows <= 1) return launch_affine_gemv<BITS, GROUP, 1>(a, x);
  if (a.rows <= 2) return launch_affine_gemv<BITS, GROUP, 2>(a, x);
  if (a.rows <= 4) return launch_affine_gemv<BITS, GROUP, 4>(a, x);
  if (a.rows <= 8) return launch_affine_gemv<BITS, GROUP, 8>(a, x);
  return launch_affine_gemv<BITS, GROUP, 16>(a, x);
}

// Explicitly instantiated once per bit width in affine_gemv_b<BITS>.cu (parallel builds).
template <int BITS, class XT>
void launch_affine_gemv_bits(const GemvArgs& a, int group_size, const XT* x) {
  if (group_size == 32) return launch_affine_gemv_rows<BITS, 32>(a, x);
  if (group_size == 64) return launch_affine_gemv_rows<BITS, 64>(a, x);
  return launch_affine_gemv_rows<BITS, 128>(a, x);
}

}  // namespace uq::cuda::detail
