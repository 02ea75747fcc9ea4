#pragma once
// The 1-2 row "stream" GEMV: x stays in registers, the weights stream past it.
//
// Each warp of a block owns one slice of kStreamSlice (1024) consecutive elements of `in`: lane
// l holds x for elements 32 l .. 32 l + 31 of the slice in registers, loaded once. The warp then
// walks the block's output rows; per row it needs only that row's codes for its slice (one
// 16-byte chunk per lane at 4 bits, 512 contiguous bytes per warp) and one scale and bias per
// lane. Those are copied by cp.async into a per-warp ring of kStreamDepth rows, so every warp
// keeps kStreamDepth rows of weights in flight and computes row r while rows r+1 .. r+7 arrive:
// the weight stream never waits on arithmetic, and nothing but the weights crosses DRAM.
// The slices' partial row sums meet in shared memory and are added in slice order at the end
// (deterministic). Grid: one wave, as many resident blocks as fit, rows split evenly.
//
// Per code: widths 2, 4 and 8 take a code straight into the mantissa of 2^23 (one LOP3 with the
// shifted mask: 2^23 + q 2^k exactly, k < 16), subtract 2^23, and multiply by x 2^-k, prescaled
// once per slice: 3 instructions per code (the 1-2 row segment kernel spends ~4, plus a shift).
// Widths 3, 5 and 6 extract each code with shifts (codes straddle words). y += s * (q . x) +
// b * sum(x) per lane and row, as in the other SIMT kernels: exact to fp32 rounding.
//
// Input modes (GemvInput in affine_gemv.hpp): rmsnorm multiplies gamma * h and scales the row
// sum by 1 / rms(h) at the end (the slices' sums of squares meet like the partial sums), so the
// norm costs no extra pass over x; swiglu computes silu(gate) * up while loading x.
//
// Needs (stream_eligible): rows of codes and of scales starting on 16 and 4 bytes
// (in * bits % 128 == 0, in / group even), in <= 16 * 1024, and the rings in shared memory.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_segment.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/stream_split.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda::detail {

constexpr int kStreamSlice = 1024;   // elements of `in` per warp: 32 per lane
constexpr int kStreamDepth = 8;      // weight rows in flight per warp
constexpr int kStreamMaxWarps = 16;  // in <= 16384; 128 registers per thread at most

template <class XT>
struct StreamArgs {
  const std::uint32_t* codes;
  const std::uint16_t* scales;
  const std::uint16_t* biases;
  const XT* input;     // plain: x [rows, in]; rmsnorm: h [rows, in]; swiglu: gate|up [rows, 2 in]
  const float* gamma;  // rmsnorm
  float eps;           // rmsnorm
  GemvInputMode mode;
  float* y;
  int out, in, rows;
  int rows_per_block;
  bool accumulate;
};

// Bytes of one ring slot: the slice's codes of one row, then its scales, then its biases.
template <int BITS, int GROUP>
struct StreamSlot {
  static constexpr int kCodeBytes = kStreamSlice * BITS / 8;
  static constexpr int kGroupBytes = kStreamSlice / GROUP * 2;
  static constexpr int kBytes = kCodeBytes + 2 * kGroupBytes;
};

__host__ __device__ constexpr bool stream_prescales(int bits) {
  return bits == 2 || bits == 4 || bits == 8;
}

// Bit offset of code e of a 32-code run within its 16-bit half word: q 2^k, k < 16.
__host__ __device__ constexpr int stream_code_shift(int bits, int e) {
  return (e * bits) % 16;
}

// N consecutive values of x (N a multiple of 8, from 16-byte aligned `first`) for activation
// row `row`, as `mode` defines them; adds h^2 into `squares` (rmsnorm). Both stream kernels
// load x through it (32 values per lane here, a run of 8 or 16 in the tensor-core one).
template <int N, class XT>
__device__ __forceinline__ void stream_load_x(const StreamArgs<XT>& a, int row, int first,
                                              float (&x)[N], float& squares) {
  const std::size_t in = static_cast<std::size_t>(a.in);
  if (a.mode == GemvInputMode::swiglu) {
    const XT* gate = a.input + static_cast<std::size_t>(row) * 2 * in + first;
    float up[N];
    load_xn(gate, x);
    load_xn(gate + in, up);
#pragma unroll
    for (int e = 0; e < N; ++e)
      x[e] = x[e] / (1.0f + expf(-x[e])) * up[e];  // as decoder_kernels' swiglu
    return;
  }
  load_xn(a.input + static_cast<std::size_t>(row) * in + first, x);
  if (a.mode == GemvInputMode::rmsnorm) {
    float gamma[N];
    load_xn(a.gamma + first, gamma);
#pragma unroll
    for (int e = 0; e < N; ++e) {
      squares = fmaf(x[e], x[e], squares);
      x[e] *= gamma[e];
    }
  }
}

template <int BITS, int GROUP, int ROWS, class XT>
__global__ void __launch_bounds__(kStreamMaxWarps * 32)
    affine_gemv_stream_kernel(const StreamArgs<XT> a) {
  using Slot = StreamSlot<BITS, GROUP>;
  extern __shared__ uint4 stream_shared[];
  pdl_launch_dependents();
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int warps = static_cast<int>(blockDim.x / 32);
  char* const ring = reinterpret_cast<char*>(stream_shared) + warp * kStreamDepth * Slot::kBytes;
  // After every ring: per row and slice the partial sums, then per slice the sums of squares.
  float* const partial = reinterpret_cast<float*>(reinterpret_cast<char*>(stream_shared) +
                                                  warps * kStreamDepth * Slot::kBytes);
  float* const squares_of = partial + a.rows_per_block * warps * ROWS;

  const int first_row = static_cast<int>(blockIdx.x) * a.rows_per_block;
  const int block_rows = min(a.rows_per_block, a.out - first_row);
  const int k0 = warp * kStreamSlice;
  const int valid = min(kStreamSlice, a.in - k0);  // a multiple of GROUP
  const std::size_t row_bytes = static_cast<std::size_t>(a.in) * BITS / 8;
  const std::size_t group_row_bytes = static_cast<std::size_t>(a.in / GROUP) * 2;
  const int valid_code_bytes = valid * BITS / 8;
  const int valid_group_bytes = valid / GROUP * 2;
  const char* const codes = reinterpret_cast<const char*>(a.codes) + k0 * BITS / 8;
  const char* const scales = reinterpret_cast<const char*>(a.scales) + k0 / GROUP * 2;
  const char* const biases = reinterpret_cast<const char*>(a.biases) + k0 / GROUP * 2;

  // What this lane copies of every row, fixed for the slice: code units lane, lane + 32 (16
  // bytes each; zero-filled past the slice's codes, -1: no such unit) and one 4-byte unit of the
  // scales (lanes 0-15) or biases (16-31). The sources then advance by one row per issue.
  constexpr int kCodeUnits = Slot::kCodeBytes / 16;
  constexpr int kLaneCodeUnits = (kCodeUnits + 31) / 32;
  int code_bytes[kLaneCodeUnits], code_offset[kLaneCodeUnits];
#pragma unroll
  for (int u = 0; u < kLaneCodeUnits; ++u) {
    const int unit = lane + 32 * u;
    const int left = valid_code_bytes - 16 * unit;
    code_bytes[u] = unit < kCodeUnits ? min(max(left, 0), 16) : -1;
    code_offset[u] = left > 0 ? 16 * unit : 0;
  }
  constexpr int kGroupUnits = Slot::kGroupBytes / 4;  // 4..16
  const int group_unit = lane % 16;
  const bool copies_group = group_unit < kGroupUnits;
  const int group_bytes = valid_group_bytes - 4 * group_unit > 0 ? 4 : 0;
  const int group_offset = group_bytes > 0 ? 4 * group_unit : 0;
  const int group_slot = Slot::kCodeBytes + (lane < 16 ? 0 : Slot::kGroupBytes) + 4 * group_unit;
  const char* next_codes = codes + static_cast<std::size_t>(first_row) * row_bytes;
  const char* next_groups =
      (lane < 16 ? scales : biases) + static_cast<std::size_t>(first_row) * group_row_bytes;
  int issued = 0, issue_slot = 0;
  // The next row of the block into its slot (one commit group per row, empty past the block).
  const auto issue = [&] {
    if (issued < block_rows) {
      char* const slot = ring + issue_slot;
#pragma unroll
      for (int u = 0; u < kLaneCodeUnits; ++u)
        if (code_bytes[u] >= 0)
          cp_async16(slot + 16 * (lane + 32 * u), next_codes + code_offset[u], code_bytes[u]);
      if (copies_group) cp_async_ca<4>(slot + group_slot, next_groups + group_offset, group_bytes);
      next_codes += row_bytes;
      next_groups += group_row_bytes;
      issue_slot = issue_slot == (kStreamDepth - 1) * Slot::kBytes ? 0 : issue_slot + Slot::kBytes;
    }
    ++issued;
    cp_async_commit();
  };
  // The weights never change during a decode step: start streaming them before waiting for
  // the kernel that writes x.
#pragma unroll
  for (int r = 0; r < kStreamDepth - 1; ++r) issue();
  pdl_wait();

  const int first = k0 + lane * kSegment;
  const bool active = lane * kSegment < valid;
  float x[ROWS][kSegment], x_sum[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    float squares = 0.0f;
    if (active) {
      stream_load_x(a, r, first, x[r], squares);
    } else {
#pragma unroll
      for (int e = 0; e < kSegment; ++e) x[r][e] = 0.0f;
    }
    float sum = 0.0f;
#pragma unroll
    for (int e = 0; e < kSegment; ++e) sum += x[r][e];
    x_sum[r] = sum;
    if constexpr (stream_prescales(BITS)) {
#pragma unroll
      for (int e = 0; e < kSegment; ++e)
        x[r][e] *=
            __uint_as_float(static_cast<std::uint32_t>(127 - stream_code_shift(BITS, e)) << 23);
    }
    if (a.mode == GemvInputMode::rmsnorm) {
      squares = warp_sum(squares);
      if (lane == 0) squares_of[warp * ROWS + r] = squares;
    }
  }

  const int group_index = lane * kSegment / GROUP;
  int read_slot = 0;
  float* row_partial = partial + warp * ROWS;
  for (int r = 0; r < block_rows; ++r) {
    issue();
    cp_async_wait<kStreamDepth - 1>();
    __syncwarp();
    const char* const slot = ring + read_slot;
    read_slot = read_slot == (kStreamDepth - 1) * Slot::kBytes ? 0 : read_slot + Slot::kBytes;
    std::uint32_t words[BITS];
    const char* const lane_codes = slot + lane * 4 * BITS;
    if constexpr (BITS % 4 == 0) {
#pragma unroll
      for (int v = 0; v < BITS / 4; ++v) {
        const uint4 u = reinterpret_cast<const uint4*>(lane_codes)[v];
        words[4 * v] = u.x, words[4 * v + 1] = u.y, words[4 * v + 2] = u.z, words[4 * v + 3] = u.w;
      }
    } else if constexpr (BITS % 2 == 0) {
#pragma unroll
      for (int v = 0; v < BITS / 2; ++v) {
        const uint2 u = reinterpret_cast<const uint2*>(lane_codes)[v];
        words[2 * v] = u.x, words[2 * v + 1] = u.y;
      }
    } else {
#pragma unroll
      for (int v = 0; v < BITS; ++v)
        words[v] = reinterpret_cast<const std::uint32_t*>(lane_codes)[v];
    }
    const auto* group_bits = reinterpret_cast<const std::uint16_t*>(slot + Slot::kCodeBytes);
    const float scale = bf16_to_float(group_bits[group_index]);
    const float bias = bf16_to_float(group_bits[Slot::kGroupBytes / 2 + group_index]);
    __syncwarp();  // the next issue refills this slot

    float dot[ROWS][2];
#pragma unroll
    for (int row = 0; row < ROWS; ++row) dot[row][0] = dot[row][1] = 0.0f;
#pragma unroll
    for (int e = 0; e < kSegment; ++e) {
      float q;
      if constexpr (stream_prescales(BITS)) {
        constexpr std::uint32_t mask = (1u << BITS) - 1u;
        const std::uint32_t word = words[e * BITS / 32];
        const std::uint32_t half = (e * BITS) % 32 < 16 ? word : word >> 16;
        q = __uint_as_float(mask_or(half, mask << stream_code_shift(BITS, e), 0x4B000000u)) -
            8388608.0f;
      } else {
        q = segment_code<BITS>(words, e);
      }
#pragma unroll
      for (int row = 0; row < ROWS; ++row) dot[row][e % 2] = fmaf(q, x[row][e], dot[row][e % 2]);
    }
#pragma unroll
    for (int row = 0; row < ROWS; ++row) {
      const float sum = warp_sum(fmaf(scale, dot[row][0] + dot[row][1], bias * x_sum[row]));
      if (lane == 0) row_partial[row] = sum;
    }
    row_partial += warps * ROWS;
  }

  __syncthreads();
  for (int t = static_cast<int>(threadIdx.x); t < block_rows * ROWS; t += blockDim.x) {
    const int r = t / ROWS, row = t % ROWS;
    float sum = 0.0f;
    for (int w = 0; w < warps; ++w) sum += partial[(r * warps + w) * ROWS + row];
    if (a.mode == GemvInputMode::rmsnorm) {
      float squares = 0.0f;
      for (int w = 0; w < warps; ++w) squares += squares_of[w * ROWS + row];
      sum *= 1.0f / sqrtf(squares / static_cast<float>(a.in) + a.eps);  // as rms_norm_kernel
    }
    float& target = a.y[static_cast<std::size_t>(row) * a.out + first_row + r];
    target = a.accumulate ? target + sum : sum;
  }
}

// Warps per block: one per slice of `in`.
inline int stream_warps(int in) {
  return (in + kStreamSlice - 1) / kStreamSlice;
}

inline std::size_t stream_ring_bytes(int bits, int group, int in) {
  return static_cast<std::size_t>(stream_warps(in)) * kStreamDepth *
         (kStreamSlice * bits / 8 + 2 * (kStreamSlice / group * 2));
}

// Shared memory of a block: the rings, partial sums and sums of squares.
inline std::size_t stream_shared_bytes(int bits, int group, int in, int rows, int rows_per_block) {
  const auto warps = static_cast<std::size_t>(stream_warps(in));
  return stream_ring_bytes(bits, group, in) +
         (static_cast<std::size_t>(rows_per_block) + 1) * warps * rows * sizeof(float);
}

template <int BITS, int GROUP, int ROWS, class XT>
void launch_affine_gemv_stream(StreamArgs<XT> a, cudaStream_t stream) {
  const auto kernel = affine_gemv_stream_kernel<BITS, GROUP, ROWS, XT>;
  const int threads = stream_warps(a.in) * 32;
  static std::once_flag opt_in;  // on the device current at the first call
  std::call_once(opt_in, [&] {
    UQ_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(current_device_shared_memory_optin())));
  });
  const int rows_per_block =
      stream_rows_per_block(a.out, current_device_multiprocessors(), [&](int rows) {
        int per_sm = 0;
        UQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, kernel, threads, stream_shared_bytes(BITS, GROUP, a.in, ROWS, rows)));
        return per_sm;
      });
  if (rows_per_block < 1)
    fail("cuda affine gemv: the stream kernel's block does not fit an SM (in ", a.in, ")");
  a.rows_per_block = rows_per_block;
  const auto blocks = static_cast<unsigned>((a.out + rows_per_block - 1) / rows_per_block);
  launch_pdl("affine_gemv_stream_kernel", kernel, blocks, threads,
             stream_shared_bytes(BITS, GROUP, a.in, ROWS, rows_per_block), stream, a);
}

template <int BITS, class XT>
void launch_affine_gemv_stream_bits(const StreamArgs<XT>& a, int group, cudaStream_t stream) {
  const auto by_rows = [&](auto group_constant) {
    constexpr int kGroup = decltype(group_constant)::value;
    if (a.rows == 1) return launch_affine_gemv_stream<BITS, kGroup, 1>(a, stream);
    launch_affine_gemv_stream<BITS, kGroup, 2>(a, stream);
  };
  if (group == 32) return by_rows(std::integral_constant<int, 32>{});
  if (group == 64) return by_rows(std::integral_constant<int, 64>{});
  by_rows(std::integral_constant<int, 128>{});
}

}  // namespace uq::cuda::detail
