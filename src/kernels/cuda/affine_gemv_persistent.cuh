#pragma once
// The persistent tensor-core affine GEMV for 1-16 activation rows (GemvKernel::persistent).
//
// mma.sync m16n8k16 (bf16 in, fp32 accumulate) with the exact bf16 codes as A (16 weight rows x
// 16 k) and x as B (the fragments and group sums of affine_gemv_fragments.hpp, made by the
// prologue kernel). Codes enter the mma biased: for 2/4-bit one lop3 per pair
// ((w >> s) & 0x000F000F | 0x43004300: two bf16 128 + q, ~7 instructions per 8 codes with the
// shifts); 8-bit codes as two nibble halves, the high one as 2048 + 16 * hi (exponent 4 higher,
// so its mantissa unit is 16), both mmas into one accumulator; 3/5/6-bit codes through funnel
// shifts. The bias F of the codes (128, 8-bit 2176) is never subtracted per code: per group,
// weight row and B column (one bf16 part p of an x row), with C'_p = sum (F + q) x_p,
//   y += s * C'_p + (b - F s) * sum(x_p),   summed over parts: s * sum q x + b * sum(x),
// so scale, bias and the fold leave the inner loop. sum(x_p) must be the sum of exactly the
// values the mma multiplied (the prologue's per-part sums), else F s times the parts' residue
// (2^-17 |x| for 2 parts) would not cancel. Cost: the fp32 partial sums of C' are
// ~(F + q) / |q - 2^(bits-1)| larger than those of C; tests/cuda/test_affine_gemv.cpp states
// the modelled error against its bounds.
//
// Work: a warp owns 32 weight rows (two m-tiles sharing each B fragment) and a K slice; a block
// of 8 warps owns 8 / splits row pairs x `splits` K slices, adds the slices' partial sums in
// shared memory in a fixed order (deterministic) and combines the bf16 parts of each x row.
// Blocks loop over row blocks (persistent: grid = SMs x occupancy, or fewer row blocks).
// Each lane keeps `kDepth` groups of code words (and their scales and biases) in flight ahead of
// use, loaded with ld.global.nc.L1::no_allocate (read once); B fragments go through L1 (every
// warp of an SM reads the same ones).
// PDL: the first weight loads are issued before griddepcontrol.wait; x fragments, sums and y are
// touched only after it.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv_fragments.hpp"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/pdl_launch.hpp"

namespace uq::cuda::detail {

constexpr int kPersistentWarps = 8;
constexpr int kPairRows = 32;  // weight rows per warp: two m-tiles

struct PersistentArgs {
  const std::uint32_t* codes;
  const std::uint16_t* scales;
  const std::uint16_t* biases;
  const uint4* fragments;
  const float* sums;
  float* y;
  int out, in, rows, parts, splits;
  bool accumulate;
};

// Code words: read once, so they bypass L1 (L1::no_allocate) where a warp's load covers whole
// 32-byte sectors (a row's group >= 32 bytes); narrower groups keep L1, where the next group's
// load finds the rest of the sector.
template <bool kNoAllocate>
__device__ __forceinline__ std::uint32_t load_codes(const std::uint32_t* p) {
  std::uint32_t v;
  if constexpr (kNoAllocate)
    asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
  else
    v = __ldg(p);
  return v;
}
template <bool kNoAllocate>
__device__ __forceinline__ uint2 load_codes2(const std::uint32_t* p) {
  uint2 v;
  if constexpr (kNoAllocate)
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];"
                 : "=r"(v.x), "=r"(v.y)
                 : "l"(p));
  else
    v = __ldg(reinterpret_cast<const uint2*>(p));
  return v;
}
template <bool kNoAllocate>
__device__ __forceinline__ uint4 load_codes4(const std::uint32_t* p) {
  uint4 v;
  if constexpr (kNoAllocate)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  else
    v = __ldg(reinterpret_cast<const uint4*>(p));
  return v;
}

constexpr std::uint32_t kMagic = 0x43004300u;      // bf16 128 twice: 128 + q exact for q < 128
constexpr std::uint32_t kMagic2048 = 0x45004500u;  // bf16 2048 twice: 2048 + 16 q for q < 16

// The bias of the codes the mma sees (F above): 128 + q, and for 8-bit also 2048 + 16 * hi.
template <int BITS>
constexpr float kCodeBias = BITS == 8 ? 2176.0f : 128.0f;

// One lane's slice of one weight row in one group: group / 4 codes, BITS bits each.
template <int BITS, int GROUP>
struct Slice {
  static constexpr int kCodes = GROUP / 4;
  static constexpr int kBits = kCodes * BITS;
  static constexpr bool kAligned = kBits % 32 == 0;
  // Unaligned slices (offset t * kBits inside the group) span at most this many words.
  static constexpr int kWords = kAligned ? kBits / 32 : (kBits + 31) / 32 + 1;
  static constexpr int kCodeRun = (BITS == 2 || BITS == 4) ? 8 : BITS == 8 ? 4 : 0;
  static constexpr int kSteps = GROUP / 16;
  static constexpr bool kNoAllocate = GROUP * BITS >= 256;
  std::uint32_t w[kWords];

  // group_words: the group's first code word; t: lane % 4.
  __device__ __forceinline__ void load(const std::uint32_t* group_words, int t) {
    if constexpr (kAligned) {
      const std::uint32_t* p = group_words + t * kWords;
      if constexpr (kWords % 4 == 0) {
#pragma unroll
        for (int v = 0; v < kWords / 4; ++v) {
          const uint4 u = load_codes4<kNoAllocate>(p + 4 * v);
          w[4 * v] = u.x, w[4 * v + 1] = u.y, w[4 * v + 2] = u.z, w[4 * v + 3] = u.w;
        }
      } else if constexpr (kWords == 2) {
        const uint2 u = load_codes2<kNoAllocate>(p);
        w[0] = u.x, w[1] = u.y;
      } else {
#pragma unroll
        for (int v = 0; v < kWords; ++v) w[v] = load_codes<kNoAllocate>(p + v);
      }
    } else {
      const int bit = t * kBits, first = bit / 32, last = (bit + kBits - 1) / 32;
#pragma unroll
      for (int v = 0; v < kWords; ++v)
        w[v] = first + v <= last ? load_codes<kNoAllocate>(group_words + first + v) : 0u;
    }
  }

  // Word v of the slice's bits shifted down to bit 0 (compile-time v once unrolled).
  __device__ __forceinline__ std::uint32_t aligned_word(int v, int shift) const {
    if constexpr (kAligned) {
      return w[v];
    } else {
      return __funnelshift_r(w[v], v + 1 < kWords ? w[v + 1] : 0u, shift);
    }
  }

  // Code e of the slice (generic widths).
  __device__ __forceinline__ std::uint32_t code(int e, int shift) const {
    constexpr std::uint32_t mask = (1u << BITS) - 1u;
    const int bit = e * BITS, v = bit / 32, offset = bit % 32;
    const std::uint32_t low = aligned_word(v, shift);
    if (offset + BITS <= 32) return (low >> offset) & mask;
    return __funnelshift_r(low, aligned_word(v + 1, shift), offset) & mask;
  }

  // The A-fragment registers of k step `step` (compile-time): `first` holds slots 0/1, `second`
  // slots 2/3 (affine_gemv_fragments.hpp); for 8-bit codes also the high nibbles times 16.
  __device__ __forceinline__ void step_pairs(int step, int shift, std::uint32_t& first,
                                             std::uint32_t& second, std::uint32_t& first_hi,
                                             std::uint32_t& second_hi) const {
    constexpr std::uint32_t kNibbles = 0x000F000Fu;
    if constexpr (BITS == 4) {
      const std::uint32_t word = aligned_word(step / 2, shift);
      const int s = 8 * (step % 2);
      first = mask_or(word >> s, kNibbles, kMagic);
      second = mask_or(word >> (s + 4), kNibbles, kMagic);
    } else if constexpr (BITS == 2) {
      // 16-bit unit u = step / 2 (8 codes): bytes {b0, b1, b1} put codes s and s + 4 16 bits
      // apart, then as 4-bit.
      const int unit = step / 2;
      const std::uint32_t word = aligned_word(unit / 2, shift);
      const std::uint32_t spread = __byte_perm(word, 0u, unit % 2 ? 0x4332u : 0x4110u);
      const int s = 4 * (step % 2);
      first = mask_or(spread >> s, 0x00030003u, kMagic);
      second = mask_or(spread >> (s + 2), 0x00030003u, kMagic);
    } else if constexpr (BITS == 8) {
      const std::uint32_t word = aligned_word(step, shift);
      first = mask_or(word, kNibbles, kMagic);
      second = mask_or(word >> 8, kNibbles, kMagic);
      first_hi = mask_or(word >> 4, kNibbles, kMagic2048);
      second_hi = mask_or(word >> 12, kNibbles, kMagic2048);
    } else {
      const int e = 4 * step;
      first = code(e, shift) | (code(e + 1, shift) << 16) | kMagic;
      second = code(e + 2, shift) | (code(e + 3, shift) << 16) | kMagic;
    }
  }
};

// One group's data for one lane: code slices of 2 m-tiles x rows {g, g + 8}; the scale and bias
// (bf16 bits) of one of those 4 rows, row (t / 2, t % 2), converted to f32 and folded (b - F s)
// by their holder and shuffled to the other lanes at use (2 loads per group instead of 8, one
// conversion per lane instead of one per row).
template <int BITS, int GROUP>
struct GroupStage {
  Slice<BITS, GROUP> slice[2][2];
  std::uint32_t scale, bias;
};

template <int BITS, int GROUP, int TILES>
// Two blocks per SM (128 registers) where that does not spill; 4 n-tiles (9-16 rows) need more.
__global__ void __launch_bounds__(kPersistentWarps * 32, TILES == 4 ? 1 : 2)
    affine_gemv_persistent_kernel(PersistentArgs a) {
  using SliceT = Slice<BITS, GROUP>;
  // Groups in flight per lane: as many as the register budget allows (one block per SM with 4
  // n-tiles leaves 255 registers; two blocks leave 128).
  constexpr bool kSmallSlice = SliceT::kWords <= 2;
  constexpr int kDepth = TILES == 4 ? (kSmallSlice ? 6 : 3) : (kSmallSlice && TILES == 1 ? 4 : 2);
  constexpr int kColumns = 8 * TILES;
  // 4 n-tiles only come with 2 bf16 parts per x row (f32 x, 9-16 rows: the launcher checks).
  constexpr bool kPairedParts = TILES == 4;
  constexpr int kStride = kColumns + 1;  // padded row of partial sums
  __shared__ float partial[kPersistentWarps][kPairRows][kStride];

  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int g = lane / 4, t = lane % 4;
  const int splits = a.splits, pairs_per_block = kPersistentWarps / splits;
  const int pair_local = warp / splits, split = warp % splits;
  const int groups = a.in / GROUP;
  const int group_begin = split * groups / splits, group_end = (split + 1) * groups / splits;
  const std::size_t row_words = static_cast<std::size_t>(a.in) * BITS / 32;
  const int shift = SliceT::kAligned ? 0 : (t * SliceT::kBits) % 32;
  const int rows_per_block = pairs_per_block * kPairRows;
  const int row_blocks = (a.out + rows_per_block - 1) / rows_per_block;
  bool waited = false;

  for (int block = static_cast<int>(blockIdx.x); block < row_blocks;
       block += static_cast<int>(gridDim.x)) {
    const int row0 = block * rows_per_block + pair_local * kPairRows;
    const int end = row0 < a.out ? group_end : group_begin;  // idle warps past `out`
    // Pointers at group `base` of the loop below, advanced once per kDepth groups: every load
    // and fragment read of an unrolled iteration is the pointer plus a constant offset.
    constexpr int kGroupWords = GROUP * BITS / 32;
    const std::uint32_t* codes_at[2][2];
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // Rows past `out` re-read the last row; their sums are never stored.
        const int row = min(row0 + 16 * m + 8 * h + g, a.out - 1);
        codes_at[m][h] = a.codes + static_cast<std::size_t>(row) * row_words +
                         static_cast<std::size_t>(group_begin) * kGroupWords;
      }
    const int own_row = min(row0 + 16 * (t / 2) + 8 * (t % 2) + g, a.out - 1);
    const std::size_t own_group = static_cast<std::size_t>(own_row) * groups + group_begin;
    const std::uint16_t* scale_at = a.scales + own_group;
    const std::uint16_t* bias_at = a.biases + own_group;
    constexpr int kGroupFragments = GROUP / 32 * TILES * 32;  // uint4 per group
    const uint4* fragments_at =
        a.fragments + static_cast<std::size_t>(group_begin) * kGroupFragments + lane;
    const float* sums_at = a.sums + static_cast<std::size_t>(group_begin) * kColumns + 2 * t;
    // Group base + ahead (ahead: a compile-time constant once unrolled).
    const auto load_group = [&](GroupStage<BITS, GROUP>& s, int ahead) {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int h = 0; h < 2; ++h) s.slice[m][h].load(codes_at[m][h] + ahead * kGroupWords, t);
      s.scale = __ldg(scale_at + ahead);
      s.bias = __ldg(bias_at + ahead);
    };
    GroupStage<BITS, GROUP> stage[kDepth];
#pragma unroll
    for (int u = 0; u < kDepth; ++u)
      if (group_begin + u < end) load_group(stage[u], u);
    if (!waited) {
      // x fragments and y belong to the previous kernels: wait for them only now.
      pdl_wait();
      waited = true;
    }

    float acc[2][TILES][4];
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int j = 0; j < TILES; ++j)
#pragma unroll
        for (int k = 0; k < 4; ++k) acc[m][j][k] = 0.0f;

    for (int base = group_begin; base < end; base += kDepth) {
#pragma unroll
      for (int u = 0; u < kDepth; ++u) {
        const int group = base + u;
        if (group >= end) break;
        GroupStage<BITS, GROUP>& s = stage[u];
        float c[2][TILES][4];
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
          for (int j = 0; j < TILES; ++j)
#pragma unroll
            for (int k = 0; k < 4; ++k) c[m][j][k] = 0.0f;
#pragma unroll
        for (int pair = 0; pair < SliceT::kSteps / 2; ++pair) {
          uint4 b[TILES];
#pragma unroll
          for (int j = 0; j < TILES; ++j)
            b[j] = __ldg(fragments_at + u * kGroupFragments + (pair * TILES + j) * 32);
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int step = 2 * pair + half;
#pragma unroll
            for (int m = 0; m < 2; ++m) {
              std::uint32_t lo[2], hi[2], lo16[2] = {0u, 0u}, hi16[2] = {0u, 0u};
#pragma unroll
              for (int h = 0; h < 2; ++h)
                s.slice[m][h].step_pairs(step, shift, lo[h], hi[h], lo16[h], hi16[h]);
#pragma unroll
              for (int j = 0; j < TILES; ++j) {
                const std::uint32_t b0 = half ? b[j].z : b[j].x, b1 = half ? b[j].w : b[j].y;
                mma_bf16_16816(c[m][j], {lo[0], lo[1], hi[0], hi[1]}, b0, b1);
                if constexpr (BITS == 8)
                  mma_bf16_16816(c[m][j], {lo16[0], lo16[1], hi16[0], hi16[1]}, b0, b1);
              }
            }
          }
        }
        // y += s * C' + (b - F s) * sum(x), per weight row (g, g + 8) and column (2t, 2t + 1).
        const float own_scale = __uint_as_float(s.scale << 16);
        const float own_bias = fmaf(-kCodeBias<BITS>, own_scale, __uint_as_float(s.bias << 16));
        float scale[2][2], bias[2][2];
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int holder = (lane & ~3) | (2 * m + h);
            scale[m][h] = __shfl_sync(~0u, own_scale, holder);
            bias[m][h] = __shfl_sync(~0u, own_bias, holder);
          }
#pragma unroll
        for (int j = 0; j < TILES; ++j) {
          const float2 xs = __ldg(reinterpret_cast<const float2*>(sums_at + u * kColumns + 8 * j));
          if constexpr (kPairedParts) {
            // Columns 2t, 2t + 1: the hi and lo part of one x row, added before scaling (3
            // instructions per pair instead of 4); the lo column's accumulator stays 0.
            const float xs_row = xs.x + xs.y;
#pragma unroll
            for (int m = 0; m < 2; ++m)
#pragma unroll
              for (int h = 0; h < 2; ++h)
                acc[m][j][2 * h] = fmaf(scale[m][h], c[m][j][2 * h] + c[m][j][2 * h + 1],
                                        fmaf(bias[m][h], xs_row, acc[m][j][2 * h]));
          } else {
#pragma unroll
            for (int m = 0; m < 2; ++m)
#pragma unroll
              for (int h = 0; h < 2; ++h) {
                acc[m][j][2 * h] =
                    fmaf(scale[m][h], c[m][j][2 * h], fmaf(bias[m][h], xs.x, acc[m][j][2 * h]));
                acc[m][j][2 * h + 1] = fmaf(scale[m][h], c[m][j][2 * h + 1],
                                            fmaf(bias[m][h], xs.y, acc[m][j][2 * h + 1]));
              }
          }
        }
        if (group + kDepth < end) load_group(s, u + kDepth);
      }
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int h = 0; h < 2; ++h) codes_at[m][h] += kDepth * kGroupWords;
      scale_at += kDepth;
      bias_at += kDepth;
      fragments_at += kDepth * kGroupFragments;
      sums_at += kDepth * kColumns;
    }

#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int j = 0; j < TILES; ++j)
#pragma unroll
        for (int k = 0; k < 4; ++k)
          partial[warp][16 * m + g + 8 * (k / 2)][8 * j + 2 * t + k % 2] = acc[m][j][k];
    __syncthreads();
    // Output (pair, weight row, x row): the K slices in order, then the bf16 parts in order.
    const int items = pairs_per_block * kPairRows * a.rows;
    for (int i = static_cast<int>(threadIdx.x); i < items; i += kPersistentWarps * 32) {
      const int x_row = i / (pairs_per_block * kPairRows);
      const int local = i % (pairs_per_block * kPairRows);
      const int pair = local / kPairRows, weight_row = local % kPairRows;
      const int o = block * rows_per_block + local;
      if (o >= a.out) continue;
      float sum = 0.0f;
      for (int p = 0; p < a.parts; ++p)
        for (int sp = 0; sp < splits; ++sp)
          sum += partial[pair * splits + sp][weight_row][x_row * a.parts + p];
      float& target = a.y[static_cast<std::size_t>(x_row) * a.out + o];
      target = a.accumulate ? target + sum : sum;
    }
    __syncthreads();
  }
}

// Blocks per SM the kernel reaches, read off the device once per instantiation.
template <int BITS, int GROUP, int TILES>
int persistent_blocks_per_sm() {
  static int blocks = 0;
  static std::once_flag once;
  std::call_once(once, [] {
    UQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &blocks, affine_gemv_persistent_kernel<BITS, GROUP, TILES>, kPersistentWarps * 32, 0));
    blocks = std::max(blocks, 1);
  });
  return blocks;
}

// Launched with programmatic stream serialization after the prologue (PDL).
template <int BITS, int GROUP, int TILES>
void launch_affine_gemv_persistent(PersistentArgs a, cudaStream_t stream) {
  if (TILES == 4 && a.parts != 2) fail("cuda affine gemv: 4 n-tiles need 2 parts per x row");
  const int sms = current_device_multiprocessors();
  const int groups = a.in / GROUP;
  // Fewest K splits that still give every SM a block; short outputs (down_proj) get more.
  int splits = 1;
  const auto row_blocks = [&](int s) {
    const int rows_per_block = kPersistentWarps / s * kPairRows;
    return (a.out + rows_per_block - 1) / rows_per_block;
  };
  while (splits < kPersistentWarps && 2 * splits <= groups && row_blocks(splits) < sms) splits *= 2;
  a.splits = splits;
  const int capacity = sms * persistent_blocks_per_sm<BITS, GROUP, TILES>();
  launch_pdl("affine_gemv_persistent_kernel", affine_gemv_persistent_kernel<BITS, GROUP, TILES>,
             dim3(static_cast<unsigned>(std::min(row_blocks(splits), capacity))),
             dim3(kPersistentWarps * 32), 0, stream, a);
}

// Explicitly instantiated once per bit width in affine_gemv_b<BITS>.cu.
template <int BITS>
void launch_affine_gemv_persistent_bits(const PersistentArgs& a, int group_size, int tiles,
                                        cudaStream_t stream) {
  const auto by_tiles = [&]<int GROUP>() {
    if (tiles == 1) return launch_affine_gemv_persistent<BITS, GROUP, 1>(a, stream);
    if (tiles == 2) return launch_affine_gemv_persistent<BITS, GROUP, 2>(a, stream);
    launch_affine_gemv_persistent<BITS, GROUP, 4>(a, stream);
  };
  if (group_size == 32) return by_tiles.template operator()<32>();
  if (group_size == 64) return by_tiles.template operator()<64>();
  by_tiles.template operator()<128>();
}

}  // namespace uq::cuda::detail
