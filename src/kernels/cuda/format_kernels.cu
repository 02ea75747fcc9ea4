#include "kernels/cuda/format_kernels.hpp"

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/format_decoders.cuh"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kOutPerWarp = 2;     // output rows one warp computes
constexpr int kChunksPerLane = 2;  // 8-element chunks a lane decodes per row and step
constexpr int kRowThreads = 256;

// x[r, 8 chunk .. 8 chunk + 8) into v, zeros past `in` (16-byte loads where aligned).
__device__ __forceinline__ void load_x(const float* __restrict__ row, int chunk, int valid,
                                       bool vector, float (&v)[8]) {
  if (vector && valid >= 8) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(row + chunk * 8));
    const float4 b = __ldg(reinterpret_cast<const float4*>(row + chunk * 8) + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = j < valid ? __ldg(row + chunk * 8 + j) : 0.0f;
  }
}

// Each warp owns kOutPerWarp rows of W; lane l decodes chunks l, l + 32, ... of each (two per
// step, so several independent loads are in flight) and multiplies them with x read through the
// L1 cache (x is small and every warp of the SM reads it). No block-wide barrier: warps stream
// their rows independently.
template <DeviceFormat F>
__global__ void __launch_bounds__(kGemvThreads)
    format_gemv_kernel(FormatView w, const float* __restrict__ x, int rows, float* __restrict__ y) {
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int first_out = (static_cast<int>(blockIdx.x) * kGemvWarps + warp) * kOutPerWarp;
  if (first_out >= w.out) return;
  const int chunks = (w.in + 7) / 8;
  const bool vector = w.in % 4 == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  float acc[kOutPerWarp][kFormatGemvMaxRows] = {};
  for (int base = 0; base < chunks; base += 32 * kChunksPerLane) {
    float v[kChunksPerLane][kOutPerWarp][8];
#pragma unroll
    for (int k = 0; k < kChunksPerLane; ++k) {
      const int chunk = base + k * 32 + lane;
      const int valid = w.in - chunk * 8;
#pragma unroll
      for (int o = 0; o < kOutPerWarp; ++o) {
        if (chunk < chunks && first_out + o < w.out) {
          decode<F>(w, first_out + o, chunk, v[k][o]);
#pragma unroll
          for (int j = 0; j < 8; ++j) v[k][o][j] = j < valid ? v[k][o][j] : 0.0f;
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) v[k][o][j] = 0.0f;
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kChunksPerLane; ++k) {
      const int chunk = base + k * 32 + lane;
      if (chunk >= chunks) continue;
      const int valid = w.in - chunk * 8;
#pragma unroll
      for (int r = 0; r < kFormatGemvMaxRows; ++r) {
        if (r < rows) {
          float xv[8];
          load_x(x + static_cast<std::int64_t>(r) * w.in, chunk, valid, vector, xv);
#pragma unroll
          for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int o = 0; o < kOutPerWarp; ++o) acc[o][r] += v[k][o][j] * xv[j];
          }
        }
      }
    }
  }
#pragma unroll
  for (int o = 0; o < kOutPerWarp; ++o) {
#pragma unroll
    for (int r = 0; r < kFormatGemvMaxRows; ++r) {
      if (r < rows) {
        const float total = warp_sum(acc[o][r]);
        if (lane == 0 && first_out + o < w.out)
          y[static_cast<std::int64_t>(r) * w.out + first_out + o] = total;
      }
    }
  }
}

template <DeviceFormat F>
__global__ void format_rows_kernel(FormatView w, int first, const std::int32_t* ids, int count,
                                   float* out) {
  const int chunks = (w.in + 7) / 8;
  const std::int64_t index =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + static_cast<std::int64_t>(threadIdx.x);
  if (index >= static_cast<std::int64_t>(count) * chunks) return;
  const auto t = static_cast<int>(index / chunks);
  const auto chunk = static_cast<int>(index % chunks);
  const int row = ids != nullptr ? ids[t] : first + t;
  float v[8];
  decode<F>(w, row, chunk, v);
  float* destination = out + static_cast<std::int64_t>(t) * w.in + chunk * 8;
  const int valid = min(8, w.in - chunk * 8);
  if (valid == 8 && w.in % 4 == 0) {
    reinterpret_cast<float4*>(destination)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(destination)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (j < valid) destination[j] = v[j];
  }
}

// Calls body.template operator()<F>() for the format of `w`.
template <class Body>
void with_format(DeviceFormat format, Body&& body) {
  switch (format) {
    case DeviceFormat::affine:
      return body.template operator()<DeviceFormat::affine>();
    case DeviceFormat::symmetric8:
      return body.template operator()<DeviceFormat::symmetric8>();
    case DeviceFormat::symmetric4:
      return body.template operator()<DeviceFormat::symmetric4>();
    case DeviceFormat::float8:
      return body.template operator()<DeviceFormat::float8>();
    case DeviceFormat::bnb4:
      return body.template operator()<DeviceFormat::bnb4>();
    case DeviceFormat::ggml_f32:
      return body.template operator()<DeviceFormat::ggml_f32>();
    case DeviceFormat::ggml_f16:
      return body.template operator()<DeviceFormat::ggml_f16>();
    case DeviceFormat::ggml_bf16:
      return body.template operator()<DeviceFormat::ggml_bf16>();
    case DeviceFormat::ggml_q8_0:
      return body.template operator()<DeviceFormat::ggml_q8_0>();
    case DeviceFormat::ggml_q4_0:
      return body.template operator()<DeviceFormat::ggml_q4_0>();
    case DeviceFormat::ggml_q4_1:
      return body.template operator()<DeviceFormat::ggml_q4_1>();
    case DeviceFormat::ggml_q5_0:
      return body.template operator()<DeviceFormat::ggml_q5_0>();
    case DeviceFormat::ggml_q4_k:
      return body.template operator()<DeviceFormat::ggml_q4_k>();
    case DeviceFormat::ggml_q6_k:
      return body.template operator()<DeviceFormat::ggml_q6_k>();
  }
  fail("cuda: unknown device format ", static_cast<int>(format));
}

}  // namespace

void format_gemv(const FormatView& w, const float* x, int rows, float* y, cudaStream_t stream) {
  if (rows < 1 || rows > kFormatGemvMaxRows)
    fail("cuda format_gemv: ", rows, " rows (1 to ", kFormatGemvMaxRows, ")");
  const int blocks = (w.out + kGemvWarps * kOutPerWarp - 1) / (kGemvWarps * kOutPerWarp);
  with_format(w.format, [&]<DeviceFormat F>() {
    format_gemv_kernel<F><<<blocks, kGemvThreads, 0, stream>>>(w, x, rows, y);
    UQ_CUDA_CHECK_LAUNCH("format_gemv_kernel");
  });
}

void format_decode_rows(const FormatView& w, int first, const std::int32_t* ids, int count,
                        float* out, cudaStream_t stream) {
  if (count <= 0) return;
  const std::int64_t items = static_cast<std::int64_t>(count) * ((w.in + 7) / 8);
  const auto blocks = static_cast<unsigned>((items + kRowThreads - 1) / kRowThreads);
  with_format(w.format, [&]<DeviceFormat F>() {
    format_rows_kernel<F><<<blocks, kRowThreads, 0, stream>>>(w, first, ids, count, out);
    UQ_CUDA_CHECK_LAUNCH("format_rows_kernel");
  });
}

}  // namespace uq::cuda
