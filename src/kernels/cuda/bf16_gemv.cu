#include "kernels/cuda/bf16_gemv.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {

namespace {

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;              // 16-byte weight loads per lane issued before any is used
constexpr int kMaxSplits = 4;           // warps sharing one output row (K split)
constexpr long long kStagingShare = 4;  // grid_capacity

struct Args {
  const uint4* w;  // rows of in / 8 chunks of 8 bf16
  int out, in;
  const float* input;
  const float* gamma;
  float eps;
  GemvInputMode mode;
  float* y;
  bool accumulate;
};

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

__device__ __forceinline__ float silu_times(float gate, float up) {
  return gate / (1.0f + expf(-gate)) * up;  // as decoder_kernels' swiglu
}
__device__ __forceinline__ float4 swiglu4(const float4& gate, const float4& up) {
  return make_float4(silu_times(gate.x, up.x), silu_times(gate.y, up.y), silu_times(gate.z, up.z),
                     silu_times(gate.w, up.w));
}
__device__ __forceinline__ float squares(const float4& v, float sum) {
  return fmaf(v.w, v.w, fmaf(v.z, v.z, fmaf(v.y, v.y, fmaf(v.x, v.x, sum))));
}
__device__ __forceinline__ float4 normed(const float4& gamma, const float4& h, float inverse_rms) {
  // As decoder_kernels' rms_norm: gamma * (h * inverse_rms).
  return make_float4(gamma.x * (h.x * inverse_rms), gamma.y * (h.y * inverse_rms),
                     gamma.z * (h.z * inverse_rms), gamma.w * (h.w * inverse_rms));
}

// Barrier of the `count` threads of one row group (ids 1..8; 0 is __syncthreads').
__device__ __forceinline__ void group_barrier(int id, int count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}

// x [ROWS, in] into shared memory, chunk c (8 values) of row r as lo[c] = values 0-3 and hi[c] =
// values 4-7, lo and hi each `chunks` float4 long: a warp's 32 consecutive chunks are then 512
// contiguous bytes per load (no bank conflicts). Ends with the block synchronized.
template <int ROWS>
__device__ void stage_x(const Args& a, float4* staged) {
  const int chunks = a.in / 8;
  const int thread = static_cast<int>(threadIdx.x);
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    float4* lo = staged + static_cast<std::size_t>(r) * 2 * chunks;
    float4* hi = lo + chunks;
    if (a.mode == GemvInputMode::swiglu) {
      const auto* gate =
          reinterpret_cast<const float4*>(a.input + static_cast<std::size_t>(r) * 2 * a.in);
      const float4* up = gate + a.in / 4;
      for (int c = thread; c < chunks; c += kThreads) {
        lo[c] = swiglu4(gate[2 * c], up[2 * c]);
        hi[c] = swiglu4(gate[2 * c + 1], up[2 * c + 1]);
      }
    } else {
      const auto* h = reinterpret_cast<const float4*>(a.input + static_cast<std::size_t>(r) * a.in);
      for (int c = thread; c < chunks; c += kThreads) {
        lo[c] = h[2 * c];
        hi[c] = h[2 * c + 1];
      }
    }
  }
  if (a.mode == GemvInputMode::rmsnorm) {
    // Every block computes each row's RMS itself from the values it staged (each thread reads
    // back its own chunks, so no barrier before), summed in a fixed order.
    __shared__ float partial[kWarps][ROWS];
    __shared__ float inverse_rms[ROWS];
    const int warp = thread / 32;
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float4* lo = staged + static_cast<std::size_t>(r) * 2 * chunks;
      float sum = 0.0f;
      for (int c = thread; c < chunks; c += kThreads)
        sum = squares(lo[chunks + c], squares(lo[c], sum));
      sum = warp_sum(sum);
      if (thread % 32 == 0) partial[warp][r] = sum;
    }
    __syncthreads();
    if (thread < ROWS) {
      float total = 0.0f;
      for (int w = 0; w < kWarps; ++w) total += partial[w][thread];
      inverse_rms[thread] = 1.0f / sqrtf(total / static_cast<float>(a.in) + a.eps);
    }
    __syncthreads();
    const auto* gamma = reinterpret_cast<const float4*>(a.gamma);
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      float4* lo = staged + static_cast<std::size_t>(r) * 2 * chunks;
      float4* hi = lo + chunks;
      const float scale = inverse_rms[r];
      for (int c = thread; c < chunks; c += kThreads) {
        lo[c] = normed(__ldg(gamma + 2 * c), lo[c], scale);
        hi[c] = normed(__ldg(gamma + 2 * c + 1), hi[c], scale);
      }
    }
  }
  __syncthreads();
}

// A persistent grid of kWarps-warp blocks. Each block stages x (stage_x), then its row groups
// (`splits` warps each) take output rows blockIdx.x * groups + group, then every
// gridDim.x * groups-th after it. The warps of a group take consecutive K slices of the row;
// lanes take 16-byte chunks (8 weights) 32 apart, kUnroll at a time, loaded once (streaming)
// while x comes from shared memory. Slice sums go through shared memory (two buffers by
// parity: one group barrier per row) and split 0 adds them in order. PDL: everything after
// pdl_wait (x is the predecessor's output); issuing weight loads before it (v1 in
// docs/PERFORMANCE.md, "CUDA decoder") did not pay at the occupancy it cost.
template <int ROWS, int SPLITS>
__global__ void __launch_bounds__(kThreads, ROWS == 1 ? 4 : 2) bf16_gemv_kernel(const Args a) {
  pdl_launch_dependents();
  pdl_wait();
  extern __shared__ float4 staged[];
  stage_x<ROWS>(a, staged);

  __shared__ float partial[2][kWarps][ROWS];
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int group = warp / SPLITS, split = warp % SPLITS;
  const int groups = kWarps / SPLITS;
  const int chunks = a.in / 8;
  const int span = (chunks + SPLITS - 1) / SPLITS;
  const int begin = min(chunks, split * span);
  const int end = min(chunks, begin + span);
  int parity = 0;
  for (int o = static_cast<int>(blockIdx.x) * groups + group; o < a.out;
       o += static_cast<int>(gridDim.x) * groups) {
    // This warp's slice: weights and x from `begin`, lanes 32 chunks apart.
    const uint4* row = a.w + static_cast<std::size_t>(o) * chunks + begin + lane;
    const float4* xs = staged + begin + lane;
    const int count = end - begin - lane;  // chunks from the lane's first one to the slice's end
    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = 0.0f;
    int k = 0;
    for (; k + 32 * (kUnroll - 1) < count; k += 32 * kUnroll) {
      uint4 weights[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) weights[u] = __ldcs(row + k + 32 * u);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          const float4* lo = xs + r * 2 * chunks + k + 32 * u;
          acc[r] = dot8(weights[u], lo[0], lo[chunks], acc[r]);
        }
      }
    }
    for (; k < count; k += 32) {
      const uint4 weights = __ldcs(row + k);
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        const float4* lo = xs + r * 2 * chunks + k;
        acc[r] = dot8(weights, lo[0], lo[chunks], acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = warp_sum(acc[r]);
    if constexpr (SPLITS > 1) {
      if (lane == 0) {
#pragma unroll
        for (int r = 0; r < ROWS; ++r) partial[parity][warp][r] = acc[r];
      }
      group_barrier(1 + group, 32 * SPLITS);
      if (split == 0) {
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          for (int s = 1; s < SPLITS; ++s) acc[r] += partial[parity][warp + s][r];
        }
      }
      parity ^= 1;
    }
    if (split == 0 && lane == 0) {
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        float& target = a.y[static_cast<std::size_t>(r) * a.out + o];
        target = a.accumulate ? target + acc[r] : acc[r];
      }
    }
  }
}

using Kernel = void (*)(Args);

Kernel kernel_for(int rows, int splits) {
  if (rows == 1) {
    return splits == 1   ? bf16_gemv_kernel<1, 1>
           : splits == 2 ? bf16_gemv_kernel<1, 2>
                         : bf16_gemv_kernel<1, 4>;
  }
  return splits == 1   ? bf16_gemv_kernel<2, 1>
         : splits == 2 ? bf16_gemv_kernel<2, 2>
                       : bf16_gemv_kernel<2, 4>;
}

// The most dynamic shared memory a block may opt into on the current device, set as each
// kernel's limit once.
int shared_limit() {
  static int limit = 0;
  static std::once_flag once;
  std::call_once(once, [] {
    int device = 0;
    UQ_CUDA_CHECK(cudaGetDevice(&device));
    UQ_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    // The kernels' static shared memory (partial sums) comes out of the same budget.
    limit -= 1024;
    for (const int rows : {1, 2}) {
      for (int splits = 1; splits <= kMaxSplits; splits *= 2) {
        UQ_CUDA_CHECK(cudaFuncSetAttribute(kernel_for(rows, splits),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
      }
    }
  });
  return limit;
}

std::size_t staged_bytes(int rows, int in) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(in) * sizeof(float);
}

// The K split with the best balance of output rows over the row groups that fit on the device
// at once (each group ends on the same round), fewer splits unless more gain 5%; at least 32
// chunks (one per lane) per slice.
int choose_splits(int out, int chunks, long long block_slots) {
  int best = 1;
  double best_balance = 0.0;
  for (int splits = 1; splits <= kMaxSplits; splits *= 2) {
    if (splits > 1 && chunks < 32 * splits) break;
    const long long groups = block_slots * (kWarps / splits);
    const long long rounds = (out + groups - 1) / groups;
    const double balance = static_cast<double>(out) / static_cast<double>(groups * rounds);
    if (balance > best_balance + 0.05) {
      best = splits;
      best_balance = balance;
    }
  }
  return best;
}

// Blocks the grid may have: as many as fit on the device at once, but every block reads its
// whole input from L2 to stage x (16 KB at in 4096; 114 KB of gate|up for down's SwiGLU at
// 14336), all at the start: so at most as many as keep those reads under 1 / kStagingShare of
// the weight bytes, and never fewer than one block per SM. Unmeasured: the trade is fewer
// warps in flight (down at 1/8: one block per SM, half the old kernel's warps) against a
// start-up burst of L2 reads (down at full occupancy: 45 MB for 117 MB of weights).
long long grid_capacity(int rows, int out, int in, GemvInputMode mode, int per_sm) {
  const long long sms = current_device_multiprocessors();
  const auto input_bytes =
      static_cast<long long>(staged_bytes(rows, in)) * (mode == GemvInputMode::swiglu ? 2 : 1);
  const long long weight_bytes = 2LL * out * in;
  return std::min(sms * per_sm, std::max(sms, weight_bytes / (kStagingShare * input_bytes)));
}

std::atomic<int> forced_splits{0};

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

}  // namespace

bool bf16_gemv_supports(int rows, int in) {
  return rows >= 1 && rows <= kBf16GemvMaxRows && in > 0 && in % 8 == 0 &&
         staged_bytes(rows, in) <= static_cast<std::size_t>(shared_limit());
}

void bf16_gemv_cuda(const __nv_bfloat16* w, int out, int in, const float* x, int rows, float* y,
                    bool accumulate, cudaStream_t stream) {
  bf16_gemv_fused_cuda(w, out, in, x, rows, {}, y, accumulate, stream);
}

void bf16_gemv_fused_cuda(const __nv_bfloat16* w, int out, int in, const float* input, int rows,
                          const GemvInput& how, float* y, bool accumulate, cudaStream_t stream) {
  if (!bf16_gemv_supports(rows, in)) {
    fail("cuda bf16 gemv: ", rows, " rows of ", in,
         " inputs (1-2 rows, a multiple of 8, within a block's shared memory)");
  }
  if (out < 0) fail("cuda bf16 gemv: ", out, " outputs");
  if (out == 0) return;
  if (w == nullptr || input == nullptr || y == nullptr) fail("cuda bf16 gemv: null w, x or y");
  if (how.mode == GemvInputMode::rmsnorm && how.gamma == nullptr)
    fail("cuda bf16 gemv: rmsnorm needs its weight (gamma)");
  if (!aligned16(w) || !aligned16(input) ||
      (how.mode == GemvInputMode::rmsnorm && !aligned16(how.gamma))) {
    fail("cuda bf16 gemv: weights, x and the norm weight must be 16-byte aligned");
  }
  const std::size_t shared = staged_bytes(rows, in);
  // Every split's kernel has the same launch bounds, so the same blocks per SM.
  int per_sm = 0;
  UQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel_for(rows, 1),
                                                              kThreads, shared));
  const long long block_slots = grid_capacity(rows, out, in, how.mode, std::max(per_sm, 1));
  const int forced = forced_splits.load();
  const int splits = forced != 0 ? forced : choose_splits(out, in / 8, block_slots);
  const int groups = kWarps / splits;
  const long long needed = (out + groups - 1) / groups;
  const auto blocks = static_cast<unsigned>(std::min(needed, block_slots));
  const Args args{reinterpret_cast<const uint4*>(w),
                  out,
                  in,
                  input,
                  how.gamma,
                  how.eps,
                  how.mode,
                  y,
                  accumulate};
  launch_pdl("bf16_gemv_kernel", kernel_for(rows, splits), blocks, kThreads, shared, stream, args);
}

void set_bf16_gemv_splits(int splits) {
  if (splits != 0 && splits != 1 && splits != 2 && splits != kMaxSplits)
    fail("cuda bf16 gemv: K split ", splits, " (0 = automatic, 1, 2 or 4)");
  forced_splits.store(splits);
}

}  // namespace uq::cuda
