#include "kernels/cuda/format_kernels.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/format_decoders.cuh"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kOutPerWarp = 2;  // output rows one warp computes (x is read once for both)
constexpr int kMaxSplits = 8;   // warps of a block that may share rows, splitting K
// Row-count buckets: accumulators for at most kFewRows input rows keep the decode path at <= 80
// registers (3 blocks per SM); more rows get kFormatGemvMaxRows accumulators and 2 blocks.
constexpr int kFewRows = 4;
// Code bytes of one row a warp stages per tile: 2 rows x 2 buffers x 8 warps stay under the
// 48 KB of static-size shared memory, and ~24 warps per SM keep ~50 KB of copies in flight.
constexpr std::int64_t kTileBytes = 1152;
// Staging slack: the range is widened to 16-byte words and decoders read up to 12 bytes past a
// chunk's first byte (the garbage tail chunk of a row included).
constexpr std::int64_t kStageSlack = 64;
constexpr int kRowThreads = 256;

// How format_gemv_kernel covers W: `splits` warps of a block share each pair of rows, taking
// tiles of `tile_elements` columns in turn; each warp stages a tile of one row in `span` 16-byte
// words.
struct GemvPlan {
  int tile_elements;
  int splits;
  int span;
};

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

__device__ __forceinline__ void copy16_async(uint4* shared, const uint4* global) {
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global)
               : "memory");
}

__device__ __forceinline__ void commit_async() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most one committed group of this thread is still in flight.
__device__ __forceinline__ void wait_async_but_one() {
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

// First 16-byte word of the codes that tile `tile` of `row` needs.
template <DeviceFormat F>
__device__ __forceinline__ std::int64_t tile_first_word(const FormatView& w, int row, int tile,
                                                        int tile_elements) {
  return code_byte<F>(w, row, static_cast<std::int64_t>(tile) * tile_elements) / 16;
}

// Each warp owns kOutPerWarp rows of W and, with `splits` > 1, every splits-th tile of them.
// Per tile it copies each row's code bytes (the 16-byte words covering them) into its shared
// buffer with cp.async, the next tile's copies in flight while it decodes this one; lane l
// decodes chunks l, l + 32, ... of the tile from shared memory and multiplies them with x read
// through the L1 cache. Split warps add their sums in a fixed order (deterministic).
template <DeviceFormat F, int kMaxRows>
__global__ void __launch_bounds__(kGemvThreads, kMaxRows <= 4 ? 3 : 2)
    format_gemv_kernel(FormatView w, const float* __restrict__ x, int rows, float* __restrict__ y,
                       GemvPlan plan) {
  __shared__ uint4 staged[kGemvWarps * 2 * kOutPerWarp * ((kTileBytes + kStageSlack) / 16)];
  __shared__ float partial[kGemvWarps][kOutPerWarp][kMaxRows];
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int split = warp % plan.splits;
  const int groups_per_block = kGemvWarps / plan.splits;
  const int first_out =
      (static_cast<int>(blockIdx.x) * groups_per_block + warp / plan.splits) * kOutPerWarp;
  const int chunks = (w.in + 7) / 8;
  const int tiles = (w.in + plan.tile_elements - 1) / plan.tile_elements;
  const bool vector = w.in % 4 == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  uint4* buffers = staged + warp * 2 * kOutPerWarp * plan.span;  // [buffer][o][span]
  const auto* code_words = reinterpret_cast<const uint4*>(w.codes);
  int row_of[kOutPerWarp];  // rows past `out` repeat the last row; their sums are dropped
  std::int64_t row_start[kOutPerWarp];  // their first code bytes
#pragma unroll
  for (int o = 0; o < kOutPerWarp; ++o) {
    row_of[o] = min(first_out + o, w.out - 1);
    row_start[o] = code_byte<F>(w, row_of[o], 0);
  }

  // Copies tile `tile` (if any) into buffer `buffer`; always commits a group, so that waiting
  // for all but one group always means the previous tile has landed.
  const auto stage = [&](int tile, int buffer) {
    if (tile < tiles) {
#pragma unroll
      for (int o = 0; o < kOutPerWarp; ++o) {
        const int row = row_of[o];
        const std::int64_t first = tile_first_word<F>(w, row, tile, plan.tile_elements);
        const std::int64_t last_element =
            min(static_cast<std::int64_t>(tile + 1) * plan.tile_elements,
                static_cast<std::int64_t>(w.in));
        // + 1: a bnb4 tile may end on a high nibble; + 16: the decoders' reads past a chunk.
        const std::int64_t end = (code_byte<F>(w, row, last_element) + 1 + 16 + 15) / 16;
        uint4* to = buffers + (buffer * kOutPerWarp + o) * plan.span;
        for (int i = lane; i < static_cast<int>(end - first); i += 32)
          copy16_async(to + i, code_words + first + i);
      }
    }
    commit_async();
  };

  float acc[kOutPerWarp][kMaxRows] = {};
  if (first_out < w.out) {
    stage(split, 0);
    int buffer = 0;
    for (int tile = split; tile < tiles; tile += plan.splits, buffer ^= 1) {
      stage(tile + plan.splits, buffer ^ 1);
      wait_async_but_one();
      __syncwarp();  // every lane's copies of this tile are visible to the warp
      StagedRow codes[kOutPerWarp];
#pragma unroll
      for (int o = 0; o < kOutPerWarp; ++o) {
        codes[o] = {reinterpret_cast<const std::uint32_t*>(buffers +
                                                           (buffer * kOutPerWarp + o) * plan.span),
                    static_cast<int>(row_start[o] - 16 * tile_first_word<F>(w, row_of[o], tile,
                                                                            plan.tile_elements))};
      }
      const int tile_first_chunk = tile * (plan.tile_elements / 8);
      const int tile_end_chunk = min(chunks, tile_first_chunk + plan.tile_elements / 8);
      for (int chunk = tile_first_chunk + lane; chunk < tile_end_chunk; chunk += 32) {
        const int valid = w.in - chunk * 8;
        float v[kOutPerWarp][8];
#pragma unroll
        for (int o = 0; o < kOutPerWarp; ++o) {
          decode<F>(w, codes[o], row_of[o], chunk, v[o]);
          if (valid < 8) {  // the row's last chunk: its tail may be garbage
#pragma unroll
            for (int j = 0; j < 8; ++j) v[o][j] = j < valid ? v[o][j] : 0.0f;
          }
        }
#pragma unroll
        for (int r = 0; r < kMaxRows; ++r) {
          if (r < rows) {
            float xv[8];
            load_x(x + static_cast<std::int64_t>(r) * w.in, chunk, valid, vector, xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
#pragma unroll
              for (int o = 0; o < kOutPerWarp; ++o) acc[o][r] += v[o][j] * xv[j];
            }
          }
        }
      }
      __syncwarp();  // the buffer is read before the next iteration refills it
    }
  }
#pragma unroll
  for (int o = 0; o < kOutPerWarp; ++o) {
#pragma unroll
    for (int r = 0; r < kMaxRows; ++r) {
      if (r < rows) {
        const float total = warp_sum(acc[o][r]);
        if (lane == 0) {
          if (plan.splits > 1) {
            partial[warp][o][r] = total;
          } else if (first_out + o < w.out) {
            y[static_cast<std::int64_t>(r) * w.out + first_out + o] = total;
          }
        }
      }
    }
  }
  if (plan.splits == 1) return;  // uniform over the block
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < groups_per_block * kOutPerWarp * rows;
       i += kGemvThreads) {
    const int group = i / (kOutPerWarp * rows);
    const int o = i / rows % kOutPerWarp;
    const int r = i % rows;
    const int row = (static_cast<int>(blockIdx.x) * groups_per_block + group) * kOutPerWarp + o;
    if (row >= w.out) continue;
    float sum = 0.0f;
    for (int s = 0; s < plan.splits; ++s) sum += partial[group * plan.splits + s][o][r];
    y[static_cast<std::int64_t>(r) * w.out + row] = sum;
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
  decode<F>(w, GlobalRow{reinterpret_cast<const std::uint32_t*>(w.codes), code_byte<F>(w, row, 0)},
            row, chunk, v);
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

// Tiles of about kTileBytes per row (a multiple of 256 columns: whole ggml super-blocks and
// 32 lanes x 8 columns); rows split over warps until the grid has a few warps per SM slot.
template <DeviceFormat F>
GemvPlan gemv_plan(const FormatView& w) {
  const std::int64_t bytes256 = row_code_bytes<F>(w, 256);
  const auto tile_elements =
      static_cast<int>(256 * std::max<std::int64_t>(1, kTileBytes / bytes256));
  const int tiles = (w.in + tile_elements - 1) / tile_elements;
  const int sms = current_device_multiprocessors();
  const std::int64_t groups = (w.out + kOutPerWarp - 1) / kOutPerWarp;
  int splits = 1;
  while (splits < kMaxSplits && splits * 2 <= tiles && groups * splits < std::int64_t{sms} * 32)
    splits *= 2;
  const auto span = static_cast<int>((row_code_bytes<F>(w, tile_elements) + kStageSlack + 15) / 16);
  return {tile_elements, splits, span};
}

}  // namespace

void format_gemv(const FormatView& w, const float* x, int rows, float* y, cudaStream_t stream) {
  if (rows < 1 || rows > kFormatGemvMaxRows)
    fail("cuda format_gemv: ", rows, " rows (1 to ", kFormatGemvMaxRows, ")");
  with_format(w.format, [&]<DeviceFormat F>() {
    const GemvPlan plan = gemv_plan<F>(w);
    const int groups_per_block = kGemvWarps / plan.splits;
    const int groups = (w.out + kOutPerWarp - 1) / kOutPerWarp;
    const int blocks = (groups + groups_per_block - 1) / groups_per_block;
    if (rows <= kFewRows) {
      format_gemv_kernel<F, kFewRows><<<blocks, kGemvThreads, 0, stream>>>(w, x, rows, y, plan);
    } else {
      format_gemv_kernel<F, kFormatGemvMaxRows>
          <<<blocks, kGemvThreads, 0, stream>>>(w, x, rows, y, plan);
    }
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
