#pragma once
// The 1-2 row "stream" GEMV on the tensor cores: the stream kernel's structure (x stationary
// per warp, weights streamed past it through a cp.async ring per warp, affine_gemv_stream.cuh)
// with the products done by mma.sync m16n8k16 on exact bf16 codes instead of fp32 FMAs.
//
// Why: the SIMT stream kernel needs 3 instructions per code (LOP3 into 2^23's mantissa, FADD,
// FFMA) and ends up issue- and latency-bound near half the copy rate. Here one LOP3 makes two
// codes into bf16 128 + q and one mma multiplies 256 of them (16 weight rows x 16 k) by x:
// 0.076 warp-instructions per code at 4 bits (the tile loop's SASS) instead of 0.161.
//
// Layout. A warp owns a slice of kMmaStreamSlice (256) consecutive elements of `in`; a block's
// warps cover `in` (up to 16 slices; a wider `in` goes in passes, each adding its sums into y,
// the ring streaming on across them). The block walks tiles of 16 weight rows; per tile each warp
// copies the tile's codes of its slice (16 rows x 128 bytes at 4 bits) and their scales and
// biases into its ring slot. In the mma, lane (g = lane / 4, t = lane % 4) holds weight rows g
// and g + 8; per group of G codes lane t takes the G / 4 consecutive codes t G / 4 ..
// (t + 1) G / 4 - 1 of each of its rows (whole 32-bit words), so every k16 step stays inside
// one group and the group's scale applies to the mma's result. Within a word, register i
// holds codes (i, i + 16 / BITS) as bf16 (128 + q; 1 + q / 4 at 2 bits): one LOP3 of the
// shifted word with the mask and 0x4300 (0x3F80) in each half. The sum over k is order-free, so the
// B fragments (x) follow the same permutation: B register i of the lane's word holds x at those two
// codes.
//
// x as B: column c of the n-tile is part c % 3 (hi, mid, lo: three bf16 whose sum is the f32
// x exactly) of activation row c / 3, so 1-2 rows take columns 0-5 of one n-tile and the
// product is exact to fp32 accumulation. B lives in registers: 2 per k16 step, 32 per lane
// for the slice, built once. Per group and column: acc += s * C + (b - F s) * sum_group(x)
// (F = 128; 8-bit codes go in as two nibbles, the high one's mma result weighted 16:
// F = 128 + 16 * 128; 2 bits: 4 s and F = 1), the bias term on the hi column only.
//
// Row sums: the three part columns of a row are added by shuffles at the end of each tile, the
// slices' partial sums meet in shared memory and are added in slice order every kChunk tiles
// (deterministic). Input modes as the SIMT stream kernel: rmsnorm multiplies gamma * h and
// scales the row sums by 1 / rms(h); swiglu computes silu(gate) * up while loading x.
//
// Needs (mma_stream_supported): bits 2, 4 or 8, G * bits >= 128 (a lane's codes of a group are
// whole words), in % 256 == 0, in <= 65536 and the rings in shared memory; rmsnorm only in one
// pass (in <= 4096: the norm needs all of h before the first sum is written).
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/affine_gemv_stream.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/pdl_launch.hpp"

namespace uq::cuda::detail {

constexpr int kMmaStreamSlice = 256;           // elements of `in` per warp
constexpr int kMmaStreamMaxWarps = 16;         // a block's slices: 4096 of `in` per pass
constexpr int kMmaStreamMaxPasses = 16;        // in <= 65536
constexpr int kMmaStreamTile = 16;             // weight rows per tile (the mma's m)
constexpr int kMmaStreamChunk = 24;            // tiles between two block reductions
constexpr int kMmaStreamMaxClusterPasses = 8;  // the portable cluster size
// Floats between the three bf16 parts of a staged x row: 128 code pairs, padded.
constexpr int kMmaStreamPartStride = kMmaStreamSlice / 2 + 4;

// The widths it takes: one LOP3 puts 2- or 4-bit codes into bf16 (8 bits as two nibbles).
__host__ __device__ constexpr bool mma_stream_bits(int bits) {
  return bits == 2 || bits == 4 || bits == 8;
}
__host__ __device__ constexpr bool mma_stream_width(int bits, int group) {
  return mma_stream_bits(bits) && group * bits >= 128;
}

// Bytes of one row's codes of a slice in a ring slot: padded so that the lanes' reads of rows
// g = 0..7 hit distinct banks.
__host__ __device__ constexpr int mma_stream_pitch(int bits, int group) {
  return kMmaStreamSlice * bits / 8 + (group * bits / 8 < 128 ? group * bits / 8 : 16);
}
// A ring slot: a tile's codes, then its scales, then its biases.
__host__ __device__ constexpr int mma_stream_slot_bytes(int bits, int group) {
  return kMmaStreamTile * (mma_stream_pitch(bits, group) + 2 * (kMmaStreamSlice / group * 2));
}
// Tiles in each warp's ring.
__host__ __device__ constexpr int mma_stream_depth(int bits) {
  return bits == 8 ? 2 : 3;
}
// A warp's region after the rings: x's three parts per row while B is built, then the partial
// sums of a chunk of tiles.
__host__ __device__ constexpr int mma_stream_region_bytes(int rows) {
  const int stage = 3 * rows * kMmaStreamPartStride * 4;
  const int partial = kMmaStreamChunk * kMmaStreamTile * rows * 4;
  return stage > partial ? stage : partial;
}

template <int BITS, int GROUP>
struct MmaStreamShape {
  static_assert(mma_stream_width(BITS, GROUP));
  static constexpr int kCodesPerWord = 32 / BITS;
  static constexpr int kPairStride = 16 / BITS;  // register i of a word: codes i, i + this
  static constexpr int kRegsPerWord = BITS == 8 ? 2 : kPairStride;  // per nibble half at 8 bits
  static constexpr int kLaneWords = GROUP * BITS / 128;  // words of a row's group per lane
  // Elements of x a lane splits into parts for the staging area: whole words of codes.
  static constexpr int kStageRun = kCodesPerWord > 8 ? kCodesPerWord : 8;
  static constexpr int kGroups = kMmaStreamSlice / GROUP;
  static constexpr int kBRegs = kGroups * kLaneWords * kRegsPerWord;  // kMmaStreamSlice / 8
  static constexpr int kRowBytes = kMmaStreamSlice * BITS / 8;        // a row's codes of a slice
  static constexpr int kGroupRowBytes = GROUP * BITS / 8;
  static constexpr int kPitch = mma_stream_pitch(BITS, GROUP);
  static constexpr int kScaleBytes = kGroups * 2;  // a row's scales (or biases) of a slice
  static constexpr int kSlotBytes = mma_stream_slot_bytes(BITS, GROUP);
  static constexpr int kDepth = mma_stream_depth(BITS);
  // A code's bf16 value is kCodeScale^-1 q + kFold: scales are multiplied by kCodeScale and
  // the fold is kFold scaled ones. 4 and 8 bits: 128 + q (the nibble in the low mantissa bits).
  // 2 bits: 1 + q / 4 (the code in the top two mantissa bits), so the folded offset is ~1x the
  // code term instead of the ~85x of 128 against q <= 3, which fp32 accumulation could not
  // hide (relative L2 3.5e-5 against the exact-to-fp32 bound of 3e-5, seen on the H200).
  static constexpr float kCodeScale = BITS == 2 ? 4.0f : 1.0f;
  static constexpr float kFold = BITS == 8 ? 128.0f + 16.0f * 128.0f : BITS == 2 ? 1.0f : 128.0f;
};

// Two codes of `word` (the field at `shift` in each 16-bit half) as a bf16x2 pair of the values
// MmaStreamShape describes: one shift and one LOP3.
template <int BITS>
__device__ __forceinline__ std::uint32_t codes_as_bf16x2(std::uint32_t word, int shift) {
  if constexpr (BITS == 2) {
    const int up = 5 - shift;  // the code to mantissa bits 5-6 of 1.0 = 0x3F80
    return mask_or(up >= 0 ? word << up : word >> -up, 0x00600060u, 0x3F803F80u);
  } else {
    return mask_or(word >> shift, 0x000F000Fu, 0x43004300u);  // 128 = 0x4300
  }
}

// d = A B (the accumulator starts at zero).
__device__ __forceinline__ void mma_bf16_16816_first(float (&d)[4], const std::uint32_t (&a)[4],
                                                     std::uint32_t b0, std::uint32_t b1) {
  const float zero = 0.0f;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%10,%10,%10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(zero));
}

// x0 and x1 as three bf16x2 pairs {hi, mid, lo} whose sums are x0 and x1 exactly (24
// significant bits: 8 per part; the rounding residues are exact in fp32).
__device__ __forceinline__ void split_bf16x2(float x0, float x1, std::uint32_t& hi,
                                             std::uint32_t& mid, std::uint32_t& lo) {
  hi = pack_bf16x2(x0, x1);
  const float rest0 = x0 - __uint_as_float(hi << 16);
  const float rest1 = x1 - __uint_as_float(hi & 0xFFFF0000u);
  mid = pack_bf16x2(rest0, rest1);
  lo = pack_bf16x2(rest0 - __uint_as_float(mid << 16), rest1 - __uint_as_float(mid & 0xFFFF0000u));
}

template <int BITS, int GROUP, int ROWS, class XT>
__global__ void __launch_bounds__(kMmaStreamMaxWarps * 32, 1)
    affine_gemv_stream_mma_kernel(const StreamArgs<XT> a) {
  using S = MmaStreamShape<BITS, GROUP>;
  constexpr int kTile = kMmaStreamTile;
  extern __shared__ uint4 mma_stream_shared[];
  pdl_launch_dependents();
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int warps = static_cast<int>(blockDim.x / 32);
  const int g = lane / 4, t = lane % 4;
  char* const ring = reinterpret_cast<char*>(mma_stream_shared) + warp * S::kDepth * S::kSlotBytes;
  // After every ring: per warp a region that first stages x, then holds the warp's partial sums
  // of a chunk (per tile, tile row and x row); then per slice and x row the sums of squares.
  char* const regions =
      reinterpret_cast<char*>(mma_stream_shared) + warps * S::kDepth * S::kSlotBytes;
  float* const squares_of =
      reinterpret_cast<float*>(regions + warps * mma_stream_region_bytes(ROWS));
  // Passes split over a cluster (gridDim.y > 1): block rank p of the cluster runs pass p of the
  // block's rows and keeps its row sums here, [tile row][x row], until the cluster adds them.
  float* const pass_sums = squares_of + warps * ROWS;

  const int tiles_per_block = a.rows_per_block / kTile;
  const int first_row = static_cast<int>(blockIdx.x) * a.rows_per_block;
  const int block_tiles = min(tiles_per_block, (a.out - first_row + kTile - 1) / kTile);
  // Wider `in` than a block's warps cover goes in passes: warp w takes slice p warps + w in
  // pass p (none past the last slice), and each pass adds its sums into y.
  const int slices = a.in / kMmaStreamSlice;
  const bool split_passes = gridDim.y > 1;
  const int first_pass = static_cast<int>(blockIdx.y);
  const int passes = split_passes ? first_pass + 1 : (slices + warps - 1) / warps;
  const std::size_t row_bytes = static_cast<std::size_t>(a.in) * BITS / 8;
  const std::size_t group_row_bytes = static_cast<std::size_t>(a.in / GROUP) * 2;

  // What this lane copies of every tile: code units of 16 bytes (unit u = lane + 32 k is row
  // u / kUnitsPerRow, column u % kUnitsPerRow of the tile) and one row's scales (lanes 0-15)
  // or biases (16-31). The sources advance by one tile per issue, by one pass per block_tiles.
  constexpr int kUnitsPerRow = S::kRowBytes / 16;
  constexpr int kLaneUnits = kTile * kUnitsPerRow / 32;
  constexpr int kUnitRowStep = 32 / kUnitsPerRow;
  const int unit_row = lane / kUnitsPerRow, unit_column = lane % kUnitsPerRow;
  const int group_row = lane % 16;
  const char* const pass_codes = reinterpret_cast<const char*>(a.codes) +
                                 static_cast<std::size_t>(first_row + unit_row) * row_bytes +
                                 warp * S::kRowBytes + 16 * unit_column;
  const char* const pass_groups =
      reinterpret_cast<const char*>(lane < 16 ? a.scales : a.biases) +
      static_cast<std::size_t>(first_row + group_row) * group_row_bytes + warp * S::kScaleBytes;
  const char* next_codes = pass_codes + static_cast<std::size_t>(first_pass) * warps * S::kRowBytes;
  const char* next_groups =
      pass_groups + static_cast<std::size_t>(first_pass) * warps * S::kScaleBytes;
  const int code_slot = unit_row * S::kPitch + 16 * unit_column;
  const int group_slot =
      kTile * S::kPitch + (lane < 16 ? 0 : kTile * S::kScaleBytes) + group_row * S::kScaleBytes;
  int rows_left = a.out - first_row;  // of the next tile to issue
  int issue_pass = first_pass, issue_tile = 0, issue_slot = 0;
  const std::size_t unit_stride = kUnitRowStep * row_bytes;
  const auto issue = [&] {
    if (issue_pass < passes) {
      char* const slot = ring + issue_slot;
      if (issue_pass * warps + warp >= slices) {
        // No slice for this warp in this pass: nothing to copy.
      } else if (rows_left >= kTile) {
#pragma unroll
        for (int k = 0; k < kLaneUnits; ++k)
          cp_async16(slot + code_slot + k * kUnitRowStep * S::kPitch, next_codes + k * unit_stride,
                     16);
        cp_async_ca<S::kScaleBytes>(slot + group_slot, next_groups, S::kScaleBytes);
      } else {  // the matrix's last tile, short: zeros past its rows (nothing is read there)
#pragma unroll
        for (int k = 0; k < kLaneUnits; ++k) {
          const bool valid = unit_row + k * kUnitRowStep < rows_left;
          cp_async16(slot + code_slot + k * kUnitRowStep * S::kPitch,
                     next_codes + (valid ? k * unit_stride : 0), valid ? 16 : 0);
        }
        cp_async_ca<S::kScaleBytes>(slot + group_slot, next_groups,
                                    group_row < rows_left ? S::kScaleBytes : 0);
      }
      if (++issue_tile < block_tiles) {
        next_codes += kTile * row_bytes;
        next_groups += kTile * group_row_bytes;
        rows_left -= kTile;
      } else {
        issue_tile = 0;
        ++issue_pass;
        next_codes = pass_codes + static_cast<std::size_t>(issue_pass) * warps * S::kRowBytes;
        next_groups = pass_groups + static_cast<std::size_t>(issue_pass) * warps * S::kScaleBytes;
        rows_left = a.out - first_row;
      }
      issue_slot = issue_slot == (S::kDepth - 1) * S::kSlotBytes ? 0 : issue_slot + S::kSlotBytes;
    }
    cp_async_commit();
  };
  // Weights are constants of the decode step: start streaming them before waiting for x.
#pragma unroll
  for (int k = 0; k < S::kDepth - 1; ++k) issue();
  pdl_wait();

  float* const stage = reinterpret_cast<float*>(regions + warp * mma_stream_region_bytes(ROWS));
  int read_slot = 0;
  for (int pass = first_pass; pass < passes; ++pass) {
    const bool active = pass * warps + warp < slices;
    const int k0 = (pass * warps + warp) * kMmaStreamSlice;
    // x into B fragments, through this warp's staging area: each lane splits a run of x into
    // its three bf16 parts and stores them as the code pairs of the run's words (one vector store
    // per part), then lane (g, t) reads its column's part back in fragment order. Column g of the
    // fragments is part g % 3 of x row g / 3 (zero past 3 ROWS columns).
    constexpr int kStageRun = S::kStageRun;
    constexpr int kRunPairs = kStageRun / 2;
    constexpr int kLanesPerGroup = GROUP / kStageRun;
    float row_sum[ROWS];  // of this lane's run, then of its group
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      float v[kStageRun], squares = 0.0f, sum = 0.0f;
      const bool stages = active && lane * kStageRun < kMmaStreamSlice;
      if (stages) {
        stream_load_x(a, r, k0 + lane * kStageRun, v, squares);
#pragma unroll
        for (int e = 0; e < kStageRun; ++e) sum += v[e];
        std::uint32_t pairs[3][kRunPairs];
#pragma unroll
        for (int w = 0; w < kStageRun / S::kCodesPerWord; ++w)
#pragma unroll
          for (int i = 0; i < S::kRegsPerWord; ++i) {
            const int e = w * S::kCodesPerWord + i, pair = w * S::kRegsPerWord + i;
            split_bf16x2(v[e], v[e + S::kPairStride], pairs[0][pair], pairs[1][pair],
                         pairs[2][pair]);
          }
#pragma unroll
        for (int part = 0; part < 3; ++part) {
          auto* const dst =
              reinterpret_cast<uint4*>(stage + (r * 3 + part) * kMmaStreamPartStride) +
              lane * kRunPairs / 4;
#pragma unroll
          for (int k = 0; k < kRunPairs / 4; ++k)
            dst[k] = make_uint4(pairs[part][4 * k], pairs[part][4 * k + 1], pairs[part][4 * k + 2],
                                pairs[part][4 * k + 3]);
        }
      }
#pragma unroll
      for (int offset = 1; offset < kLanesPerGroup; offset *= 2)
        sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
      row_sum[r] = sum;
      if (a.mode == GemvInputMode::rmsnorm) {
        squares = warp_sum(squares);
        if (lane == 0) squares_of[warp * ROWS + r] = squares;
      }
    }
    __syncwarp();
    const bool holds_x = active && g < 3 * ROWS;
    std::uint32_t b[S::kBRegs];
    constexpr int kGroupPairs = S::kLaneWords * S::kRegsPerWord;  // GROUP / 8
    const auto* const parts =
        reinterpret_cast<const uint4*>(stage + (holds_x ? g : 0) * kMmaStreamPartStride);
#pragma unroll
    for (int gi = 0; gi < S::kGroups; ++gi)
#pragma unroll
      for (int k = 0; k < kGroupPairs / 4; ++k) {
        const uint4 u =
            holds_x ? parts[(gi * 4 + t) * kGroupPairs / 4 + k] : make_uint4(0, 0, 0, 0);
        std::uint32_t* const dst = b + gi * kGroupPairs + 4 * k;
        dst[0] = u.x, dst[1] = u.y, dst[2] = u.z, dst[3] = u.w;
      }
    // sum(x) of each group for this lane's columns 2t, 2t + 1, on the hi columns only.
    float group_sum[S::kGroups][2];
#pragma unroll
    for (int gi = 0; gi < S::kGroups; ++gi)
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const int column = 2 * t + q;
        float sum = 0.0f;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          const float group = __shfl_sync(0xFFFFFFFFu, row_sum[r], gi * kLanesPerGroup);
          if (column == 3 * r) sum = group;
        }
        group_sum[gi][q] = sum;
      }
    __syncwarp();  // the staging area becomes this warp's partial sums

    for (int chunk = 0; chunk < block_tiles; chunk += kMmaStreamChunk) {
      const int chunk_tiles = min(kMmaStreamChunk, block_tiles - chunk);
      for (int i = 0; i < chunk_tiles; ++i) {
        issue();
        cp_async_wait<S::kDepth - 1>();
        __syncwarp();
        const char* const slot = ring + read_slot;
        read_slot = read_slot == (S::kDepth - 1) * S::kSlotBytes ? 0 : read_slot + S::kSlotBytes;
        // This lane's scales and biases of rows g and g + 8, as bf16 pairs.
        constexpr int kScaleWords = (S::kScaleBytes + 3) / 4;
        std::uint32_t scale_words[2][kScaleWords], bias_words[2][kScaleWords];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const char* const scale_row = slot + kTile * S::kPitch + (g + 8 * h) * S::kScaleBytes;
#pragma unroll
          for (int k = 0; k < kScaleWords; ++k) {
            scale_words[h][k] = reinterpret_cast<const std::uint32_t*>(scale_row)[k];
            bias_words[h][k] =
                reinterpret_cast<const std::uint32_t*>(scale_row + kTile * S::kScaleBytes)[k];
          }
        }
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // stays zero where the warp has no slice
        if (active) {
#pragma unroll
          for (int gi = 0; gi < S::kGroups; ++gi) {
            // This lane's words of the group in rows g and g + 8.
            std::uint32_t words[2][S::kLaneWords];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const char* const src =
                  slot + (g + 8 * h) * S::kPitch + gi * S::kGroupRowBytes + t * S::kLaneWords * 4;
              if constexpr (S::kLaneWords % 4 == 0) {
#pragma unroll
                for (int v = 0; v < S::kLaneWords / 4; ++v) {
                  const uint4 u = reinterpret_cast<const uint4*>(src)[v];
                  words[h][4 * v] = u.x, words[h][4 * v + 1] = u.y;
                  words[h][4 * v + 2] = u.z, words[h][4 * v + 3] = u.w;
                }
              } else if constexpr (S::kLaneWords == 2) {
                const uint2 u = *reinterpret_cast<const uint2*>(src);
                words[h][0] = u.x, words[h][1] = u.y;
              } else {
                words[h][0] = *reinterpret_cast<const std::uint32_t*>(src);
              }
            }
            float c[4], c_high[4];
#pragma unroll
            for (int w = 0; w < S::kLaneWords; ++w)
#pragma unroll
              for (int p = 0; p < S::kRegsPerWord / 2; ++p) {
                const int reg = (gi * S::kLaneWords + w) * S::kRegsPerWord + 2 * p;
                const int shift = 2 * p * (BITS == 8 ? 8 : BITS);
                const int next_shift = (2 * p + 1) * (BITS == 8 ? 8 : BITS);
                const std::uint32_t fragment[4] = {codes_as_bf16x2<BITS>(words[0][w], shift),
                                                   codes_as_bf16x2<BITS>(words[1][w], shift),
                                                   codes_as_bf16x2<BITS>(words[0][w], next_shift),
                                                   codes_as_bf16x2<BITS>(words[1][w], next_shift)};
                if (w == 0 && p == 0)
                  mma_bf16_16816_first(c, fragment, b[reg], b[reg + 1]);
                else
                  mma_bf16_16816(c, fragment, b[reg], b[reg + 1]);
                if constexpr (BITS == 8) {  // the high nibbles of the same codes
                  const std::uint32_t high[4] = {
                      codes_as_bf16x2<BITS>(words[0][w], shift + 4),
                      codes_as_bf16x2<BITS>(words[1][w], shift + 4),
                      codes_as_bf16x2<BITS>(words[0][w], next_shift + 4),
                      codes_as_bf16x2<BITS>(words[1][w], next_shift + 4)};
                  if (w == 0 && p == 0)
                    mma_bf16_16816_first(c_high, high, b[reg], b[reg + 1]);
                  else
                    mma_bf16_16816(c_high, high, b[reg], b[reg + 1]);
                }
              }
            if constexpr (BITS == 8) {
#pragma unroll
              for (int k = 0; k < 4; ++k) c[k] = fmaf(16.0f, c_high[k], c[k]);
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const std::uint32_t sw = scale_words[h][gi / 2], bw = bias_words[h][gi / 2];
              const float scale =
                  S::kCodeScale * __uint_as_float(gi % 2 == 0 ? sw << 16 : sw & 0xFFFF0000u);
              const float bias = fmaf(-S::kFold, scale,
                                      __uint_as_float(gi % 2 == 0 ? bw << 16 : bw & 0xFFFF0000u));
#pragma unroll
              for (int q = 0; q < 2; ++q)
                acc[2 * h + q] =
                    fmaf(scale, c[2 * h + q], fmaf(bias, group_sum[gi][q], acc[2 * h + q]));
            }
          }
        }
        __syncwarp();  // the next issue refills this slot

        // Rows g and g + 8 of each x row: its three part columns are spread over lanes t.
        float* const tile_partial = stage + i * kTile * ROWS;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          float sums[2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            float s = 0.0f;
#pragma unroll
            for (int q = 0; q < 2; ++q)
              if ((2 * t + q) / 3 == r) s += acc[2 * h + q];
            s += __shfl_xor_sync(0xFFFFFFFFu, s, 1);
            s += __shfl_xor_sync(0xFFFFFFFFu, s, 2);
            sums[h] = s;
          }
          if (t == r) {
            tile_partial[g * ROWS + r] = sums[0];
            tile_partial[(g + 8) * ROWS + r] = sums[1];
          }
        }
      }

      __syncthreads();
      for (int k = static_cast<int>(threadIdx.x); k < chunk_tiles * kTile * ROWS;
           k += static_cast<int>(blockDim.x)) {
        const int tile = k / (kTile * ROWS), row = k / ROWS % kTile, r = k % ROWS;
        const int out_row = first_row + (chunk + tile) * kTile + row;
        if (out_row >= a.out) continue;
        float sum = 0.0f;
        for (int w = 0; w < warps; ++w) {
          const auto* const partial =
              reinterpret_cast<const float*>(regions + w * mma_stream_region_bytes(ROWS));
          sum += partial[(tile * kTile + row) * ROWS + r];
        }
        if (a.mode == GemvInputMode::rmsnorm) {
          float sum_squares = 0.0f;
          for (int w = 0; w < warps; ++w) sum_squares += squares_of[w * ROWS + r];
          sum *=
              1.0f / sqrtf(sum_squares / static_cast<float>(a.in) + a.eps);  // as rms_norm_kernel
        }
        if (split_passes) {
          pass_sums[((chunk + tile) * kTile + row) * ROWS + r] = sum;
          continue;
        }
        float& target = a.y[static_cast<std::size_t>(r) * a.out + out_row];
        target = a.accumulate || pass > 0 ? target + sum : sum;
      }
      __syncthreads();  // the next chunk (or pass) rewrites the partial sums (or stages x)
    }
  }
  if (!split_passes) return;
  // The cluster's blocks add their passes' sums in pass order, each for every cluster-size-th
  // run of blockDim sums (through distributed shared memory, as the passes of one block would
  // have added them into y), then wait for one another before leaving with their shared memory.
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int ranks = static_cast<int>(gridDim.y);
  const int items = min(block_tiles * kTile, a.out - first_row) * ROWS;
  for (int k = first_pass * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x); k < items;
       k += ranks * static_cast<int>(blockDim.x)) {
    const int out_row = first_row + k / ROWS, r = k % ROWS;
    float& target = a.y[static_cast<std::size_t>(r) * a.out + out_row];
    float sum = a.accumulate ? target : 0.0f;
    for (int p = 0; p < ranks; ++p) sum += cluster.map_shared_rank(pass_sums, p)[k];
    target = sum;
  }
  cluster.sync();
}

// Warps of a block: in passes of up to kMmaStreamMaxWarps slices, as even as they come.
inline int mma_stream_warps(int in) {
  const int slices = in / kMmaStreamSlice;
  const int passes = (slices + kMmaStreamMaxWarps - 1) / kMmaStreamMaxWarps;
  return (slices + passes - 1) / passes;
}

// Shared memory of a block: the rings, the regions, the sums of squares and, where the passes
// are split over a cluster, the row sums of `split_tiles` tiles.
inline std::size_t mma_stream_shared_bytes(int bits, int group, int in, int rows,
                                           int split_tiles = 0) {
  const auto warps = static_cast<std::size_t>(mma_stream_warps(in));
  return warps * (mma_stream_depth(bits) * mma_stream_slot_bytes(bits, group) +
                  mma_stream_region_bytes(rows) + rows * sizeof(float)) +
         static_cast<std::size_t>(split_tiles) * kMmaStreamTile * rows * sizeof(float);
}

// Passes over `in` (1 where the block's warps cover it).
inline int mma_stream_passes(int in) {
  const int slices = in / kMmaStreamSlice;
  const int warps = mma_stream_warps(in);
  return (slices + warps - 1) / warps;
}

// Clusters of `passes` blocks that can be resident at once with `shared` bytes each (0: none).
template <class Kernel>
int mma_stream_resident_clusters(Kernel kernel, int threads, std::size_t shared, int passes) {
  cudaLaunchAttribute attribute = cluster_dimension(dim3(1, static_cast<unsigned>(passes), 1));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(1, static_cast<unsigned>(passes), 1);
  config.blockDim = dim3(static_cast<unsigned>(threads), 1, 1);
  config.dynamicSmemBytes = shared;
  config.attrs = &attribute;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    cudaGetLastError();  // a cluster shape the device cannot run: not an error, no split
    return 0;
  }
  return clusters;
}

template <int BITS, int GROUP, int ROWS, class XT>
void launch_affine_gemv_stream_mma(StreamArgs<XT> a, cudaStream_t stream) {
  using S = MmaStreamShape<BITS, GROUP>;
  static_assert(mma_stream_width(BITS, GROUP));
  const auto kernel = affine_gemv_stream_mma_kernel<BITS, GROUP, ROWS, XT>;
  const int threads = mma_stream_warps(a.in) * 32;
  const std::size_t shared = mma_stream_shared_bytes(BITS, GROUP, a.in, ROWS);
  static_assert(S::kSlotBytes % 16 == 0);
  static std::once_flag opt_in;  // on the device current at the first call
  std::call_once(opt_in, [&] {
    UQ_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(current_device_shared_memory_optin())));
  });
  const int tiles = (a.out + kMmaStreamTile - 1) / kMmaStreamTile;
  // A wide `in`: its passes split over a cluster of as many blocks, each running one pass of
  // the same rows (no pass waits for the one before; the sums meet in shared memory), as many
  // clusters as are resident at once. RMSNorm runs in one pass only, so never here.
  const int passes = mma_stream_passes(a.in);
  if (passes > 1 && passes <= kMmaStreamMaxClusterPasses && a.mode != GemvInputMode::rmsnorm &&
      mma_stream_pass_split_enabled()) {
    // The row sums' bytes grow with the tiles per block, which the resident clusters set.
    int tiles_per_block = 1;
    bool fits = false;
    for (int tried = 0; tried < 3 && !fits; ++tried) {
      const int clusters = mma_stream_resident_clusters(
          kernel, threads, mma_stream_shared_bytes(BITS, GROUP, a.in, ROWS, tiles_per_block),
          passes);
      if (clusters < 1) break;
      const int needed = (tiles + clusters - 1) / clusters;
      fits = needed <= tiles_per_block;
      tiles_per_block = fits ? tiles_per_block : needed;
    }
    if (fits) {
      a.rows_per_block = tiles_per_block * kMmaStreamTile;
      const auto row_blocks =
          static_cast<unsigned>((tiles + tiles_per_block - 1) / tiles_per_block);
      launch_pdl_cluster("affine_gemv_stream_mma_kernel", kernel,
                         dim3(row_blocks, static_cast<unsigned>(passes), 1),
                         dim3(1, static_cast<unsigned>(passes), 1), threads,
                         mma_stream_shared_bytes(BITS, GROUP, a.in, ROWS, tiles_per_block), stream,
                         a);
      return;
    }
  }
  int per_sm = 0;
  UQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared));
  if (per_sm < 1)
    fail("cuda affine gemv: the tensor-core stream kernel's block does not fit an SM (in ", a.in,
         ")");
  // One wave: the fewest tiles per block that keep every block resident at once.
  const int slots = per_sm * current_device_multiprocessors();
  const int tiles_per_block = (tiles + slots - 1) / slots;
  a.rows_per_block = tiles_per_block * kMmaStreamTile;
  const auto blocks = static_cast<unsigned>((tiles + tiles_per_block - 1) / tiles_per_block);
  launch_pdl("affine_gemv_stream_mma_kernel", kernel, blocks, threads, shared, stream, a);
}

template <int BITS, class XT>
void launch_affine_gemv_stream_mma_bits(const StreamArgs<XT>& a, int group, cudaStream_t stream) {
  const auto by_rows = [&](auto group_constant) {
    constexpr int kGroup = decltype(group_constant)::value;
    if constexpr (mma_stream_width(BITS, kGroup)) {
      if (a.rows == 1) return launch_affine_gemv_stream_mma<BITS, kGroup, 1>(a, stream);
      launch_affine_gemv_stream_mma<BITS, kGroup, 2>(a, stream);
    } else {
      fail("cuda affine gemv: the tensor-core stream kernel does not take ", BITS, "-bit group ",
           kGroup);
    }
  };
  if (group == 32) return by_rows(std::integral_constant<int, 32>{});
  if (group == 64) return by_rows(std::integral_constant<int, 64>{});
  by_rows(std::integral_constant<int, 128>{});
}

}  // namespace uq::cuda::detail
