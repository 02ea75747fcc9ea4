#include "kernels/cuda/format_kernels.hpp"

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/format_decoders.cuh"

namespace uq::cuda {
namespace {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kOutPerWarp = 2;     // output rows one warp computes
constexpr int kChunksPerLane = 2;  // 8-element chunks a lane decodes per row and x tile
constexpr int kTileColumns = 32 * 8 * kChunksPerLane;
constexpr int kRowThreads = 256;

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Position in the staged x tile of tile column c: element j of chunk (k, lane) sits at
// (k * 8 + j) * 32 + lane, so the 32 lanes reading element j of their chunks hit 32 banks.
__device__ __forceinline__ int staged_position(int column) {
  const int k = column / 256;
  const int lane = column % 256 / 8;
  const int j = column % 8;
  return (k * 8 + j) * 32 + lane;
}

// Each warp owns kOutPerWarp rows of W; the block stages a tile of x (all rows, kTileColumns
// columns, zero past `in`) in shared memory; lane l decodes chunks l and l + 32 of the tile for
// each of its rows, then reads each x value once for all of them.
template <DeviceFormat F>
__global__ void __launch_bounds__(kGemvThreads)
    format_gemv_kernel(FormatView w, const float* __restrict__ x, int rows, float* __restrict__ y) {
  __shared__ float xs[kFormatGemvMaxRows * kTileColumns];
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int first_out = (static_cast<int>(blockIdx.x) * kGemvWarps + warp) * kOutPerWarp;
  const int chunks = (w.in + 7) / 8;
  float acc[kOutPerWarp][kFormatGemvMaxRows] = {};
  for (int tile = 0; tile < w.in; tile += kTileColumns) {
    __syncthreads();
    for (int i = static_cast<int>(threadIdx.x); i < rows * kTileColumns; i += kGemvThreads) {
      const int r = i / kTileColumns;
      const int column = i % kTileColumns;
      xs[r * kTileColumns + staged_position(column)] =
          tile + column < w.in ? x[static_cast<std::int64_t>(r) * w.in + tile + column] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kChunksPerLane; ++k) {
      const int chunk = (tile + (k * 32 + lane) * 8) / 8;
      if (chunk >= chunks) continue;
      const int valid = w.in - chunk * 8;
      float v[kOutPerWarp][8];
#pragma unroll
      for (int o = 0; o < kOutPerWarp; ++o) {
        if (first_out + o < w.out) {
          decode<F>(w, first_out + o, chunk, v[o]);
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) v[o][j] = 0.0f;
        }
        if (valid < 8) {
#pragma unroll
          for (int j = 0; j < 8; ++j) v[o][j] = j < valid ? v[o][j] : 0.0f;
        }
      }
#pragma unroll
      for (int r = 0; r < kFormatGemvMaxRows; ++r) {
        if (r < rows) {
          const float* row = xs + r * kTileColumns + k * 8 * 32 + lane;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const float value = row[j * 32];
#pragma unroll
            for (int o = 0; o < kOutPerWarp; ++o) acc[o][r] += v[o][j] * value;
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
