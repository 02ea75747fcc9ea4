#include "kernels/cuda/bf16_gemv.hpp"

#include <cstddef>
#include <cstdint>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 4;  // 16-byte weight loads per lane issued before any is used

__device__ __forceinline__ float dot8(const uint4& w, const float4& a, const float4& b, float acc) {
  // bf16 -> f32 is the bf16 bits in the high half of the f32.
  acc = fmaf(__uint_as_float(w.x << 16), a.x, acc);
  acc = fmaf(__uint_as_float(w.x & 0xFFFF0000u), a.y, acc);
  acc = fmaf(__uint_as_float(w.y << 16), a.z, acc);
  acc = fmaf(__uint_as_float(w.y & 0xFFFF0000u), a.w, acc);
  acc = fmaf(__uint_as_float(w.z << 16), b.x, acc);
  acc = fmaf(__uint_as_float(w.z & 0xFFFF0000u), b.y, acc);
  acc = fmaf(__uint_as_float(w.w << 16), b.z, acc);
  acc = fmaf(__uint_as_float(w.w & 0xFFFF0000u), b.w, acc);
  return acc;
}

// A warp per output row; lanes take 16-byte chunks (8 weights) 32 apart, kUnroll at a time.
// The weights are read once (streaming loads); x stays in L1/L2. Launched with programmatic
// dependent launch (pdl_launch.hpp). Issuing the first weight batch before pdl_wait (v1 in
// docs/PERFORMANCE.md, "CUDA decoder") did not pay at the occupancy it cost.
template <int ROWS>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    bf16_gemv_kernel(const uint4* __restrict__ w, int out, int in, const float* __restrict__ x,
                     float* __restrict__ y, bool accumulate) {
  pdl_launch_dependents();
  pdl_wait();
  const int o = static_cast<int>(blockIdx.x) * kWarpsPerBlock + static_cast<int>(threadIdx.x / 32);
  if (o >= out) return;  // whole warp; no block barrier below
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int chunks = in / 8;
  const uint4* row = w + static_cast<std::size_t>(o) * chunks;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) acc[r] = 0.0f;
  int c = lane;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    uint4 weights[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) weights[u] = __ldcs(row + c + 32 * u);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        const float4* xr = x4 + static_cast<std::size_t>(r) * (in / 4) + 2 * (c + 32 * u);
        acc[r] = dot8(weights[u], __ldg(xr), __ldg(xr + 1), acc[r]);
      }
    }
  }
  for (; c < chunks; c += 32) {
    const uint4 weights = __ldcs(row + c);
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float4* xr = x4 + static_cast<std::size_t>(r) * (in / 4) + 2 * c;
      acc[r] = dot8(weights, __ldg(xr), __ldg(xr + 1), acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0) {
      float& target = y[static_cast<std::size_t>(r) * out + o];
      target = accumulate ? target + sum : sum;
    }
  }
}

}  // namespace

bool bf16_gemv_supports(int rows, int in) {
  return rows >= 1 && rows <= kBf16GemvMaxRows && in > 0 && in % 8 == 0;
}

void bf16_gemv_cuda(const __nv_bfloat16* w, int out, int in, const float* x, int rows, float* y,
                    bool accumulate, cudaStream_t stream) {
  if (!bf16_gemv_supports(rows, in)) {
    fail("cuda bf16 gemv: ", rows, " rows of ", in, " inputs (1-2 rows, a multiple of 8)");
  }
  if (reinterpret_cast<std::uintptr_t>(w) % 16 != 0 || reinterpret_cast<std::uintptr_t>(x) % 16) {
    fail("cuda bf16 gemv: weights and x must be 16-byte aligned");
  }
  const auto blocks = static_cast<unsigned>((out + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const auto* rows_of_w = reinterpret_cast<const uint4*>(w);
  launch_pdl("bf16_gemv_kernel", rows == 1 ? bf16_gemv_kernel<1> : bf16_gemv_kernel<2>, blocks,
             kWarpsPerBlock * 32, 0, stream, rows_of_w, out, in, x, y, accumulate);
}

}  // namespace uq::cuda
