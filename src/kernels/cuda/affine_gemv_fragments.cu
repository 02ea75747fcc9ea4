#include "kernels/cuda/affine_gemv_fragments.hpp"

#include <algorithm>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda::detail {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxRows = 16;

__device__ __forceinline__ float load_value(const float* p) {
  return *p;
}
__device__ __forceinline__ float load_value(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}

// x[row, i] as the main kernel multiplies it.
template <class XT>
__device__ __forceinline__ float x_value(const FragmentArgs<XT>& a, const float* inverse_rms,
                                         int row, int i) {
  const std::size_t in = static_cast<std::size_t>(a.in);
  if (a.mode == FragmentMode::swiglu) {
    const XT* gate = a.input + static_cast<std::size_t>(row) * 2 * in;
    const float g = load_value(gate + i);
    return g / (1.0f + expf(-g)) * load_value(gate + in + i);  // as decoder_kernels' swiglu
  }
  const float h = load_value(a.input + static_cast<std::size_t>(row) * in + i);
  if (a.mode == FragmentMode::rmsnorm) return a.gamma[i] * (h * inverse_rms[row]);
  return h;
}

// Part `part` of the bf16 split of v, as bf16 bits.
__device__ __forceinline__ std::uint32_t bf16_part(float v, int part) {
  __nv_bfloat16 piece = __float2bfloat16_rn(v);
  for (int p = 0; p < part; ++p) {
    v -= __bfloat162float(piece);
    piece = __float2bfloat16_rn(v);
  }
  return __bfloat16_as_ushort(piece);
}

template <class XT>
__global__ void __launch_bounds__(kThreads) affine_gemv_fragments_kernel(FragmentArgs<XT> a) {
  // Reads x written by the previous kernel: wait for it when launched programmatically.
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float inverse_rms[kMaxRows];
  if (a.mode == FragmentMode::rmsnorm) {
    // Every block computes the RMS of every row itself (rows <= 16): the whole block per row,
    // unrolled so that loads overlap.
    __shared__ float partial[kThreads / 32][kMaxRows];
    const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
    for (int row = 0; row < a.rows; ++row) {
      const XT* h = a.input + static_cast<std::size_t>(row) * a.in;
      float sum = 0.0f;
#pragma unroll 8
      for (int i = static_cast<int>(threadIdx.x); i < a.in; i += kThreads) {
        const float v = load_value(h + i);
        sum += v * v;
      }
      sum = warp_sum(sum);
      if (lane == 0) partial[warp][row] = sum;
    }
    __syncthreads();
    if (static_cast<int>(threadIdx.x) < a.rows) {
      float total = 0.0f;
      for (int w = 0; w < kThreads / 32; ++w) total += partial[w][threadIdx.x];
      inverse_rms[threadIdx.x] = 1.0f / sqrtf(total / static_cast<float>(a.in) + a.eps);
    }
    __syncthreads();
  }

  const int slice = a.group / 4;  // elements per lane per group
  const int steps_per_group = a.group / 16;
  const std::size_t fragment_items = static_cast<std::size_t>(a.in / 32) * a.tiles * 32;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * kThreads;
  for (std::size_t item = blockIdx.x * static_cast<std::size_t>(kThreads) + threadIdx.x;
       item < fragment_items; item += stride) {
    const int lane = static_cast<int>(item % 32);
    const int tile = static_cast<int>(item / 32 % static_cast<std::size_t>(a.tiles));
    const int kpair = static_cast<int>(item / (32 * static_cast<std::size_t>(a.tiles)));
    const int column = 8 * tile + lane / 4, t = lane % 4;
    const int row = column / a.parts, part = column % a.parts;
    std::uint32_t words[4] = {0u, 0u, 0u, 0u};
    if (row < a.rows) {
      for (int half = 0; half < 2; ++half) {
        const int step = 2 * kpair + half;
        const int group = step / steps_per_group, local = step % steps_per_group;
        const int first = group * a.group + t * slice;
        std::uint32_t bits[4];
        for (int s = 0; s < 4; ++s)
          bits[s] = bf16_part(
              x_value(a, inverse_rms, row, first + fragment_element(a.code_run, local, s)), part);
        words[2 * half] = bits[0] | (bits[1] << 16);
        words[2 * half + 1] = bits[2] | (bits[3] << 16);
      }
    }
    a.fragments[item] = make_uint4(words[0], words[1], words[2], words[3]);
  }

  // Group sums of each column's part: one warp per (group, column), lanes across the group.
  const std::size_t sum_items = sum_count(a.in, a.group, a.tiles);
  const int lane = static_cast<int>(threadIdx.x % 32);
  for (std::size_t item = (blockIdx.x * static_cast<std::size_t>(kThreads) + threadIdx.x) / 32;
       item < sum_items; item += stride / 32) {
    const int column = static_cast<int>(item % (8 * static_cast<std::size_t>(a.tiles)));
    const int group = static_cast<int>(item / (8 * static_cast<std::size_t>(a.tiles)));
    const int row = column / a.parts, part = column % a.parts;
    float sum = 0.0f;
    if (row < a.rows) {
      for (int i = lane; i < a.group; i += 32)
        sum += __uint_as_float(bf16_part(x_value(a, inverse_rms, row, group * a.group + i), part)
                               << 16);
      sum = warp_sum(sum);
    }
    if (lane == 0) a.sums[item] = sum;
  }
}

}  // namespace

template <class XT>
void launch_affine_gemv_fragments(const FragmentArgs<XT>& args) {
  const std::size_t items = static_cast<std::size_t>(args.in / 32) * args.tiles * 32;
  // RMSNorm: every block reads every row once for the RMS, so few blocks.
  const std::size_t cap = args.mode == FragmentMode::rmsnorm ? 32 : 1024;
  const auto blocks = static_cast<unsigned>(std::min(cap, (items + kThreads - 1) / kThreads));
  affine_gemv_fragments_kernel<XT><<<blocks, kThreads, 0, args.stream>>>(args);
  UQ_CUDA_CHECK_LAUNCH("affine_gemv_fragments_kernel");
}

template void launch_affine_gemv_fragments<float>(const FragmentArgs<float>&);
template void launch_affine_gemv_fragments<__nv_bfloat16>(const FragmentArgs<__nv_bfloat16>&);

}  // namespace uq::cuda::detail
